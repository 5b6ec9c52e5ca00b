"""The ``neurosplit`` command line: the composition root, the one host module that starts actors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace

import numpy as np
import structlog
import trio

from .. import actors
from ..chip import CoreConfig, GENERIC_TARGETS, N_NEURONS, N_ROWS
from ..chip._mismatch import MismatchSpec
from ..protocol import NeurosplitError, TICKS_PER_US
from ._network import feedforward, place
from ._report import Progress, host_link_bytes, spikes_sha256, traffic_table, weights_sha256, write_report
from ._training import LEARNING_SCHEMES, TrainConfig, train

__all__ = ["main"]

VERSION = "0.1.0"


def configure_logging(json_logs: bool, level: str) -> None:
    """structlog for the whole process; called once, before any actor binds its logger."""
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _system_config(args) -> actors.SystemConfig:
    spec = MismatchSpec.ideal() if args.ideal_chip else MismatchSpec()
    return actors.SystemConfig(seed=args.seed, chip_seed=args.chip_seed, link_buffer=args.link_buffer,
                               window=args.window, core=CoreConfig(mismatch=spec, calibrate=not args.no_calibrate),
                               ppu=actors.PpuConfig(fixed_point_bits=args.ppu_fixed_point))


async def _final_weights(system: actors.System) -> np.ndarray:
    reply = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
    return reply.weight


# -- run --------------------------------------------------------------------------------------
async def _run_job(args) -> dict:
    rng = np.random.default_rng([args.seed, 0])
    net = feedforward(args.inputs, args.hidden, args.outputs, GENERIC_TARGETS, rng,
                      hidden_init=(args.weight / 4, args.weight), output_init=(args.weight / 2, args.weight))
    placement = place(net)
    sample_ticks = int(round(args.trial_us * TICKS_PER_US))
    # Poisson input trains: rate_khz per input in hardware time (kHz on chip = Hz in biology).
    n_events = rng.poisson(args.rate_khz * 1e-3 * args.trial_us * args.inputs * args.samples)
    t = np.sort(rng.integers(0, args.samples * sample_ticks, n_events))
    label = net.input_label[rng.integers(0, args.inputs, n_events)]
    sample = (t // sample_ticks).astype(np.uint32)
    t0 = time.perf_counter()
    async with actors.open_system(_system_config(args)) as system:
        await system.host.configure(placement.neurons, placement.rows)
        await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        result = await system.host.run(t, label, sample, n_samples=args.samples, sample_ticks=sample_ticks)
        weights = await _final_weights(system)
        traffic, dropped = system.traffic(), system.dropped()
    rt, rl, rs = result.spike_arrays()
    counts = np.bincount(rl.astype(np.int64) - 8192, minlength=net.n)[net.circuits]
    print(f"played {t.size} input events into {args.samples} samples of {args.trial_us} us; "
          f"recorded {rt.size} spikes")
    print(f"spikes per hidden neuron per sample: {counts[:args.hidden].sum() / args.hidden / args.samples:.2f}; "
          f"per output neuron: {counts[args.hidden:].sum() / args.outputs / args.samples:.2f}")
    print(f"output spike counts: {counts[args.hidden:].tolist()}")
    return {"events_in": int(t.size), "events_out": int(rt.size), "wall_s": time.perf_counter() - t0,
            "spikes_sha256": spikes_sha256(rt, rl, rs), "weights_sha256": weights_sha256(weights),
            "spike_counts": counts.tolist(), "traffic": traffic, "dropped": dropped,
            "quantisation": placement.report.__dict__}


# -- train / demo -------------------------------------------------------------------------------
async def _train_job(args, cfg: TrainConfig) -> dict:
    async with actors.open_system(_system_config(args)) as system:
        report = await train(system.host, cfg, progress=Progress())
        weights = await _final_weights(system)
        traffic, dropped = system.traffic(), system.dropped()
    report["traffic"] = traffic
    report["dropped"] = dropped
    report["weights_sha256"] = weights_sha256(weights)
    report["host_link_bytes_per_sample"] = host_link_bytes(traffic) / report["_training_samples"]
    if report["learning"] == "on-chip-eventprop":
        report["ppu_memory_bytes"] = actors.PPU_MEMORY_BYTES
    return report


def _train_config(args, **over) -> TrainConfig:
    cfg = TrainConfig(learning=args.learning, seed=args.seed)
    fields = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "n_train": args.n_train,
              "n_test": args.n_test, "n_hidden": args.hidden}
    return replace(cfg, **{k: v for k, v in fields.items() if v is not None}, **over)


def _print_summary(report: dict) -> None:
    print()
    if "test_accuracy" in report:
        print(f"test accuracy {report['test_accuracy']:.3f}   ({report['learning']}, seed {report['seed']}, "
              f"chip seed {report['chip_seed']}, {report['wall_s']:.1f} s, {report['samples_per_s']:.0f} samples/s)")
        if "ppu_working_set_bytes" in report:
            print(f"PPU working set {report['ppu_working_set_bytes']:,.0f} bytes "
                  f"(a BrainScaleS-2 PPU has {report['ppu_memory_bytes']:,} bytes of SRAM)")
        print(f"host link: {report['host_link_bytes_per_sample']:,.0f} bytes per training sample")
    print(traffic_table(report["traffic"]))
    print(f"dropped events: {report['dropped'] or 'none'}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurosplit", description=__doc__)
    p.add_argument("--version", action="version", version=f"neurosplit {VERSION}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and trial noise")
    common.add_argument("--chip-seed", type=int, default=0, help="which emulated die (device mismatch)")
    common.add_argument("--report", metavar="PATH", help="write the JSON report here")
    common.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    common.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    common.add_argument("--link-buffer", type=int, default=4, help="frames buffered per link direction")
    common.add_argument("--window", type=int, default=4, help="runs the host keeps in flight")
    common.add_argument("--ideal-chip", action="store_true", help="no device mismatch and no noise")
    common.add_argument("--no-calibrate", action="store_true", help="skip the neuron calibration")
    common.add_argument("--ppu-fixed-point", type=int, default=0, metavar="BITS",
                        help="PPU weight accumulator and gradients in BITS-bit fixed point (0: float64)")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="play Poisson spike trains through a small network")
    run.add_argument("--inputs", type=int, default=32)
    run.add_argument("--hidden", type=int, default=64)
    run.add_argument("--outputs", type=int, default=8)
    run.add_argument("--samples", type=int, default=16)
    run.add_argument("--trial-us", type=float, default=100.0, help="length of each sample, hardware us")
    run.add_argument("--rate-khz", type=float, default=20.0, help="input rate per source, kHz hardware (= Hz bio)")
    run.add_argument("--weight", type=float, default=20.0, help="mean weight in 6-bit codes")

    def add_train_args(sp, epochs_default=None):
        sp.add_argument("--learning", choices=LEARNING_SCHEMES, default="on-chip-eventprop")
        sp.add_argument("--epochs", type=int, default=epochs_default)
        sp.add_argument("--batch-size", type=int)
        sp.add_argument("--lr", type=float)
        sp.add_argument("--n-train", type=int)
        sp.add_argument("--n-test", type=int)
        sp.add_argument("--hidden", type=int)

    tr = sub.add_parser("train", parents=[common], help="train a task with one learning scheme")
    tr.add_argument("task", choices=["yinyang"])
    add_train_args(tr)
    demo = sub.add_parser("demo", parents=[common], help="a short on-chip EventProp training (the README's job)")
    add_train_args(demo, epochs_default=DEMO_EPOCHS)
    return p


DEMO_EPOCHS = 5


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_json, args.log_level)
    header = {"command": args.command, "version": VERSION, "seed": args.seed, "chip_seed": args.chip_seed}
    try:
        if args.command == "run":
            report = {**header, **trio.run(_run_job, args)}
        else:
            cfg = _train_config(args)
            report = {**header, **trio.run(_train_job, args, cfg)}
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # report which actor failed, not a nursery traceback
        failed = actors.first_actor_failure(exc)
        if failed is not None:
            print(f"neurosplit: {failed}", file=sys.stderr)
            return 2
        if isinstance(exc, (NeurosplitError, ValueError)):
            print(f"neurosplit: {exc}", file=sys.stderr)
            return 2
        raise
    _print_summary(report)
    if args.report:
        print(f"report: {write_report(args.report, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
