"""``neurosplit run``: Poisson spike trains through a small feed-forward network."""

from __future__ import annotations

import time

import numpy as np

from ...chip import GENERIC_TARGETS, NEURON_LABEL_BASE
from ...protocol import TICKS_PER_US
from .._network import feedforward, place
from .._report import spikes_sha256, weights_sha256
from ._common import add_record_argument, board_fields, fault_fields, final_weights, open_job_system, print_traffic

NAME = "run"
HELP = "play Poisson spike trains through a small network"


def add_arguments(p) -> None:
    p.add_argument("--inputs", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--outputs", type=int, default=8)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--trial-us", type=float, default=100.0, help="length of each sample, hardware us")
    p.add_argument("--rate-khz", type=float, default=20.0, help="input rate per source, kHz hardware (= Hz bio)")
    p.add_argument("--weight", type=float, default=20.0, help="weight scale in 6-bit codes")
    add_record_argument(p)


async def job(args) -> dict:
    rng = np.random.default_rng([args.seed, 0])
    net = feedforward(args.inputs, args.hidden, args.outputs, GENERIC_TARGETS, rng,
                      hidden_init=(args.weight / 4, args.weight), output_init=(args.weight / 2, args.weight))
    placement = place(net)
    sample_ticks = int(round(args.trial_us * TICKS_PER_US))
    n_events = rng.poisson(args.rate_khz * 1e-3 * args.trial_us * args.inputs * args.samples)
    t = np.sort(rng.integers(0, args.samples * sample_ticks, n_events))
    label = net.input_label[rng.integers(0, args.inputs, n_events)]
    sample = (t // sample_ticks).astype(np.uint32)
    t0 = time.perf_counter()
    async with open_job_system(args) as system:
        await system.host.configure(placement.neurons, placement.rows)
        await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        result = await system.host.run(t, label, sample, n_samples=args.samples, sample_ticks=sample_ticks)
        weights = await final_weights(system)
        traffic, dropped = system.traffic(), system.dropped()
    rt, rl, rs = result.spike_arrays()
    counts = np.bincount(rl.astype(np.int64) - NEURON_LABEL_BASE, minlength=net.n)[net.circuits]
    return {"events_in": int(t.size), "events_out": int(rt.size), "wall_s": time.perf_counter() - t0,
            "samples": args.samples, "trial_us": args.trial_us, "n_hidden": args.hidden,
            "spikes_sha256": spikes_sha256(rt, rl, rs), "weights_sha256": weights_sha256(weights),
            "spike_counts": counts.tolist(), "traffic": traffic, "dropped": dropped,
            "quantisation": placement.report.__dict__, **board_fields(args, system), **fault_fields(args)}


def summary(report: dict) -> None:
    counts = np.asarray(report["spike_counts"])
    h, n = report["n_hidden"], report["samples"]
    print(f"played {report['events_in']} input events into {n} samples of {report['trial_us']} us "
          f"({report['trial_us']} ms biological); recorded {report['events_out']} spikes")
    print(f"spikes per hidden neuron per sample: {counts[:h].sum() / h / n:.2f}; "
          f"per output neuron: {counts[h:].sum() / max(len(counts) - h, 1) / n:.2f}")
    print(f"output spike counts: {counts[h:].tolist()}")
    print_traffic(report)
