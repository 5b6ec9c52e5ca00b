"""Yin-Yang inference through the whole actor pipeline, beside the analog hardware's rate.

Test samples (the Yin-Yang test split's generator, seed 40, as many as asked) are encoded as
time-to-first-spike playback, sent by the host actor in runs of ``--batch`` samples with
``--window`` runs in flight, played by the router into the core, integrated, and their spikes sent
back up to the host, which classifies each sample by its first output spike. Every hop carries
msgpack frames, as always. The network is the training default (25 inputs, 100 hidden, 3
outputs) with its initial weights, or with weights after ``--train-epochs`` of on-chip training.

Printed side by side (samples per second, same samples, same machine):

- ``pipeline``: host -> router -> core -> router -> host, wall time of the runs only (the
  configuration and a warm-up run are excluded; input encoding on the host is timed apart);
- ``core, no actors``: the same runs fed to chip.AnalogCore directly (no links, no encoding);
- ``Cramer et al. 2022``: 85,000 frames/s, the inference rate of the BrainScaleS-2 hardware
  (bss2_facts.md §10), the target of this benchmark on 2 cores.

    python -m benchmarks.inference_throughput
    python -m benchmarks.inference_throughput --samples 50000 --batch 5000 --json /tmp/inference.json
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import trio

from neurosplit.actors import Profiler, SystemConfig, open_system
from neurosplit.chip import NEURON_LABEL_BASE, AnalogCore, CoreConfig
from neurosplit.chip._mismatch import MismatchSpec
from neurosplit.host._network import place
from neurosplit.host._training import TrainConfig, build_network, encode_batch, train
from neurosplit.host._yinyang import YINYANG_SEEDS, yin_yang
from neurosplit.protocol import RunRequest, SpikeBatch

from ._common import header_line, versions_of_project, write_json

HARDWARE_SAMPLES_PER_S = 85_000.0  # Cramer et al. 2022, BrainScaleS-2 inference (bss2_facts.md §10)


def _classify(t, label, sample, n_samples: int, output_labels: np.ndarray) -> np.ndarray:
    """Class of each sample: the output neuron that spiked first (-1 when none did; on a tie, the
    lowest label). Spikes come in tick order, ties by label: the first output spike of each sample
    is its class, found without a pass per output neuron."""
    col_of = np.full(1 << 16, -1, np.int8)
    col_of[output_labels] = np.arange(output_labels.size)
    col = col_of[label]
    is_out = col >= 0
    s, c = sample[is_out].astype(np.int64), col[is_out]
    cls = np.full(n_samples, -1, np.int64)
    if s.size and np.count_nonzero(np.diff(t[is_out]) < 0):
        raise ValueError("spikes must come in tick order")
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]]) if s.size else np.zeros(0, np.int64)
    cls[s[first]] = c[first]
    return cls


def _batches(cfg: TrainConfig, net, n: int, batch: int):
    x, y = yin_yang(n, YINYANG_SEEDS["test"])
    out = []
    for lo in range(0, n, batch):
        xs = x[lo:lo + batch]
        out.append((encode_batch(xs, cfg, net.input_label), y[lo:lo + batch], xs.shape[0]))
    return out


async def _pipeline(args, cfg, net, placement, batches, weights) -> dict:
    core = CoreConfig(mismatch=MismatchSpec(), calibrate=args.calibrate, threads=args.threads)
    config = SystemConfig(seed=args.seed, chip_seed=args.chip_seed, window=args.window, link_buffer=args.link_buffer,
                          core=core)
    profiler = Profiler(detailed=True) if args.profile else None
    output_labels = np.sort(NEURON_LABEL_BASE + np.asarray(net.output, np.int64)).astype(np.uint16)
    correct = 0
    async with open_system(config, profiler=profiler) as system:
        host = system.host
        await host.configure(placement.neurons, placement.rows)
        await host.write_weights(placement.weight_rows, placement.weight_columns,
                                 placement.weight_block if weights is None else weights)
        (t, lab, smp), _, n = batches[0]
        await host.run(t, lab, smp, n_samples=n, sample_ticks=cfg.sample_ticks)  # warm-up (numba loads)
        before = {k: {d: dict(v) for d, v in dirs.items()} for k, dirs in system.traffic().items()}
        busy_before = {a.name: a.busy_s for a in (system.host, system.router, system.core, system.ppu)}

        async def one(k: int) -> None:
            nonlocal correct
            (t, lab, smp), y, n = batches[k]
            res = await host.run(t, lab, smp, n_samples=n, sample_ticks=cfg.sample_ticks)
            rt, rl, rs = res.spike_arrays()
            correct += int(np.sum(_classify(rt, rl, rs, n, output_labels) == y))

        t0, c0 = time.perf_counter(), time.process_time()
        async with trio.open_nursery() as nursery:
            for k in range(len(batches)):
                nursery.start_soon(one, k)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        after = system.traffic()
        busy = {a.name: a.busy_s - busy_before[a.name] for a in (system.host, system.router, system.core, system.ppu)}
        dropped = system.dropped()
    n_total = sum(b[2] for b in batches)
    hops = {}
    for link, dirs in after.items():
        for d, s in dirs.items():
            m = s["messages"] - before[link][d]["messages"]
            b = s["bytes"] - before[link][d]["bytes"]
            if m:
                hops[f"{link}/{d}"] = {"messages": m, "bytes": b, "bytes_per_sample": b / n_total,
                                       "codec_s": (s["encode_s"] - before[link][d]["encode_s"])
                                       + (s["decode_s"] - before[link][d]["decode_s"])}
    out = {"samples": n_total, "wall_s": wall, "cpu_s": cpu, "samples_per_s": n_total / wall,
           "samples_per_cpu_s": n_total / cpu, "accuracy": correct / n_total,
           "hops": hops, "busy_s": busy, "dropped": dropped}
    if profiler is not None:
        out["profile"] = profiler.report()
    return out


def _core_only(args, cfg, placement, batches, weights) -> dict:
    """The same runs through chip.AnalogCore directly: what the actors and the protocol add to."""
    core = AnalogCore(CoreConfig(mismatch=MismatchSpec(), calibrate=args.calibrate, threads=args.threads),
                      chip_seed=args.chip_seed, seed=args.seed)
    core.configure_neurons(placement.neurons)
    core.configure_rows(placement.rows)
    from neurosplit.protocol import WriteWeights
    core.write_weights(WriteWeights(request_id=0, row=placement.weight_rows, column=placement.weight_columns,
                                    weight=placement.weight_block if weights is None else weights))

    def feed(run_id: int, k: int) -> int:
        (t, lab, smp), _, n = batches[k]
        core.start_run(RunRequest(run_id=run_id, n_samples=n, sample_ticks=cfg.sample_ticks))
        out = core.feed(SpikeBatch(run_id=run_id, t_ticks=t, label=lab, sample=smp, horizon_ticks=n * cfg.sample_ticks))
        return sum(m.n_events() for m in out)

    feed(10**6, 0)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    spikes = sum(feed(k, k) for k in range(len(batches)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_total = sum(b[2] for b in batches)
    return {"samples": n_total, "wall_s": wall, "cpu_s": cpu, "samples_per_s": n_total / wall,
            "samples_per_cpu_s": n_total / cpu, "spikes": spikes}


async def _trained_weights(args, cfg) -> np.ndarray | None:
    if not args.train_epochs:
        return None
    tcfg = TrainConfig(epochs=args.train_epochs, seed=args.seed)
    async with open_system(SystemConfig(seed=args.seed, chip_seed=args.chip_seed,
                                        core=CoreConfig(calibrate=args.calibrate))) as system:
        await train(system.host, tcfg)
        placement = place(build_network(tcfg))
        reply = await system.host.read_weights(placement.weight_rows, placement.weight_columns)
    return reply.weight


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=2_000, help="samples per run")
    p.add_argument("--window", type=int, default=4, help="runs in flight")
    p.add_argument("--link-buffer", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="core simulation threads (0: one per CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chip-seed", type=int, default=0)
    p.add_argument("--calibrate", action="store_true", help="calibrate the neurons first (slower start)")
    p.add_argument("--train-epochs", type=int, default=0, help="train on chip first, to infer with trained weights")
    p.add_argument("--profile", action="store_true", help="attach the detailed profiler to the pipeline run")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    cfg = TrainConfig(seed=args.seed)
    net = build_network(cfg)
    placement = place(net)
    _batches(cfg, net, 1, 1)  # loads the compiled generator and encoder: a one-off, not the encoding's cost
    t0 = time.perf_counter()
    batches = _batches(cfg, net, args.samples, args.batch)
    encode_s = time.perf_counter() - t0
    weights = trio.run(_trained_weights, args, cfg)
    pipe = trio.run(_pipeline, args, cfg, net, placement, batches, weights)
    alone = _core_only(args, cfg, placement, batches, weights)
    threads = args.threads or os.cpu_count()
    print(header_line(versions_of_project(), {"core": threads, "actors": 1},
                      {"seed": args.seed, "chip_seed": args.chip_seed, "data": YINYANG_SEEDS["test"]},
                      batch=args.batch, window=args.window))
    print(f"{args.samples:,} Yin-Yang test samples, {args.batch:,} per run, {args.window} runs in flight; "
          f"host-side generation and encoding of the inputs {encode_s:.3f} s (not in the rates)")
    print(f"{'':<28} {'samples/s':>11} {'wall s':>8} {'vs hardware':>12} {'samples/cpu-s':>14} {'cpu s':>7}")
    nan = float("nan")
    for name, rate, wall, per_cpu, cpu in (
            ("pipeline (actors, msgpack)", pipe["samples_per_s"], pipe["wall_s"], pipe["samples_per_cpu_s"], pipe["cpu_s"]),
            ("core, no actors", alone["samples_per_s"], alone["wall_s"], alone["samples_per_cpu_s"], alone["cpu_s"]),
            ("Cramer et al. 2022 (BSS-2)", HARDWARE_SAMPLES_PER_S, nan, nan, nan)):
        print(f"{name:<28} {rate:>11,.0f} {wall:>8.2f} {rate / HARDWARE_SAMPLES_PER_S:>11.3f}x {per_cpu:>14,.0f} {cpu:>7.2f}")
    print(f"pipeline / core alone: {pipe['samples_per_s'] / alone['samples_per_s']:.2f} in wall time, "
          f"{pipe['samples_per_cpu_s'] / alone['samples_per_cpu_s']:.2f} in CPU time; accuracy "
          f"{pipe['accuracy']:.3f} ({'trained ' + str(args.train_epochs) + ' epochs' if args.train_epochs else 'initial weights'}); "
          f"dropped {pipe['dropped'] or 'none'}")
    print(f"{'hop':<12} {'messages':>9} {'bytes':>13} {'B/sample':>9} {'codec s':>8}")
    for hop, h in pipe["hops"].items():
        print(f"{hop:<12} {h['messages']:>9,} {h['bytes']:>13,} {h['bytes_per_sample']:>9.1f} {h['codec_s']:>8.3f}")
    print("busy s (inside handle): " + ", ".join(f"{k} {v:.2f}" for k, v in pipe["busy_s"].items()))
    result = {"samples_per_s": pipe["samples_per_s"], "target_samples_per_s": HARDWARE_SAMPLES_PER_S,
              "core_only_samples_per_s": alone["samples_per_s"], "pipeline": pipe, "core_only": alone,
              "encode_s": encode_s, "args": vars(args), "versions": versions_of_project(), "threads": threads}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
