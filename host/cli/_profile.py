"""``neurosplit profile`` (any job, profiled in detail) and ``neurosplit compare`` (the learning
schemes side by side on one task and seeds: host-link bytes and messages per training sample and
per gradient estimate, wall time, accuracy).

Both write the JSON report, one CSV per table and PNG plots into ``--out`` (plots need the
optional matplotlib; they are drawn from the report, see host/_profile_report.py).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from time import perf_counter

from ... import actors
from .._profile_report import compare_text, plot_compare, plot_profile, profile_text, write_tables_csv
from .._report import weights_sha256
from .._training import LEARNING_SCHEMES, train
from ._common import common_parser, final_weights, open_job_system
from ._train import add_train_arguments, train_config

__all__ = ["Profile", "Compare"]


def _nested_common() -> argparse.ArgumentParser:
    """The common options for a nested command, defaulting to "not given", so that an option given
    before the nested command's name (``profile --seed 3 run``) is not reset by the nested parser."""
    common = common_parser()
    for action in common._actions:
        action.default = argparse.SUPPRESS
    return common


def _profile_options(p, default) -> None:
    p.add_argument("--out", metavar="DIR", default=default,
                   help="directory for the report, CSV tables and plots (default: profile-<command>)")
    p.add_argument("--counters-only", action="store_true", default=default,
                   help="only the always-on counters (no per-frame latency, no time series)")
    p.add_argument("--no-plots", action="store_true", default=default, help="write no PNG plots")


def _write_outputs(report: dict, tables: dict, out: Path, plot) -> list[str]:
    lines = [f"tables: {', '.join(str(p) for p in write_tables_csv(tables, out))}"]
    drawn = plot(out)
    lines.append(drawn if isinstance(drawn, str) else f"plots: {', '.join(str(p) for p in drawn)}")
    return lines


class Profile:
    NAME = "profile"
    HELP = "run a job (run, train, demo) with detailed traffic, latency and busy-time profiling"

    @staticmethod
    def add_arguments(p) -> None:
        from . import COMMANDS  # resolved when the parser is built, after every command module loaded

        _profile_options(p, argparse.SUPPRESS)
        sub = p.add_subparsers(dest="profiled", required=True, metavar="{" + ",".join(
            c.NAME for c in COMMANDS if c.NAME in ("run", "train", "demo")) + "}")
        for cmd in COMMANDS:
            if cmd.NAME in ("run", "train", "demo"):
                nested = sub.add_parser(cmd.NAME, parents=[_nested_common()], help=cmd.HELP)
                _profile_options(nested, argparse.SUPPRESS)  # also after the command (exact beats --outputs)
                cmd.add_arguments(nested)

    @staticmethod
    async def job(args) -> dict:
        from . import COMMANDS

        inner = next(c for c in COMMANDS if c.NAME == args.profiled)
        out = Path(getattr(args, "out", None) or f"profile-{inner.NAME}")
        if not args.report:
            args.report = str(out / "report.json")
        profiler = actors.Profiler(detailed=not getattr(args, "counters_only", False))
        with actors.profiling(profiler):
            report = await inner.job(args)
        report["profiled_command"] = inner.NAME
        report["profile"] = profiler.report()
        report["profile"]["out_dir"] = str(out)
        report["profile"]["plots"] = not getattr(args, "no_plots", False)
        return report

    @staticmethod
    def summary(report: dict) -> None:
        from . import COMMANDS

        inner = next(c for c in COMMANDS if c.NAME == report["profiled_command"])
        inner.summary(report)
        profile = report["profile"]
        print()
        print(profile_text(profile))
        out = Path(profile["out_dir"])
        plot = (lambda d: plot_profile(profile, d)) if profile["plots"] else (lambda d: "plots: off (--no-plots)")
        for line in _write_outputs(report, profile["tables"], out, plot):
            print(line)


class _Meter:
    """Host-link counters by phase of a training job: ``setup`` (handshake, configuration, the
    first weights), ``train`` (the training runs and, for host schemes, the weight writes),
    ``eval`` (test-set runs). Phases switch on the job's own calls and progress events."""

    PHASES = ("setup", "train", "eval", "end")

    def __init__(self, link) -> None:
        self.link = link
        self.phase = "setup"
        self.totals = {p: {"down": [0, 0, 0], "up": [0, 0, 0]} for p in self.PHASES}
        self.by_type = {p: {"down": {}, "up": {}} for p in self.PHASES}
        self.runs = dict.fromkeys(self.PHASES, 0)
        self.samples = dict.fromkeys(self.PHASES, 0)
        self.wall_s = dict.fromkeys(self.PHASES, 0.0)
        # what the results carried, counted from the messages (not the bytes): per phase
        self.content = {p: {"input_events_down": 0, "spike_events_up": 0, "membrane_values_up": 0,
                            "trace_values_up": 0} for p in self.PHASES}
        self._snap = self._take()
        self._t = perf_counter()

    def _take(self) -> dict:
        return {d: (s.messages, s.bytes, s.events, {k: list(v) for k, v in s.by_tag.items()})
                for d, s in self.link.stats.items()}

    def switch(self, phase: str) -> None:
        now, t = self._take(), perf_counter()
        for d in ("down", "up"):
            before, after = self._snap[d], now[d]
            for i in range(3):
                self.totals[self.phase][d][i] += after[i] - before[i]
            for tag, (m, b, _) in after[3].items():
                b0 = before[3].get(tag, [0, 0, 0])[1]
                if b - b0:
                    row = self.by_type[self.phase][d]
                    row[tag] = row.get(tag, 0) + b - b0
        self.wall_s[self.phase] += t - self._t
        self._snap, self._t, self.phase = now, t, phase

    def progress(self, event: dict) -> None:
        if event.get("done"):
            self.switch("train")  # the epoch's evaluation is over
        elif event.get("batch") is not None and event.get("batch") == event.get("batches"):
            self.switch("eval")  # the epoch's last training batch is done; evaluation follows


class _MeteredBoard:
    """The board client as the training loop sees it, counting runs per phase."""

    def __init__(self, host, meter: _Meter) -> None:
        self._host = host
        self._meter = meter

    def __getattr__(self, name):
        return getattr(self._host, name)

    async def run(self, *args, **kwargs):
        meter = self._meter
        if meter.phase == "setup":
            meter.switch("train")
        phase = meter.phase
        meter.runs[phase] += 1
        meter.samples[phase] += int(kwargs.get("n_samples", 0))
        result = await self._host.run(*args, **kwargs)
        content = meter.content[phase]
        content["input_events_down"] += int(len(args[0])) if args else 0
        content["spike_events_up"] += sum(b.n_events() for b in getattr(result, "spikes", []))
        content["membrane_values_up"] += sum(int(m.adc_lsb.size) for m in getattr(result, "membrane", []))
        content["trace_values_up"] += sum(int(t.adc_lsb.size) for t in getattr(result, "traces", []))
        return result


def _per(value: float, n: int) -> float:
    return value / n if n else 0.0


async def _compare_one(args, scheme: str) -> dict:
    scheme_args = copy.copy(args)
    scheme_args.learning = scheme
    cfg = train_config(scheme_args)
    async with open_job_system(scheme_args) as system:  # --faults, --reliable and --board apply to each scheme
        meter = _Meter(system.links["host"])
        report = await train(_MeteredBoard(system.host, meter), cfg, progress=meter.progress)
        meter.switch("end")
        weights = await final_weights(system)
        traffic, dropped = system.traffic(), system.dropped()
    train_down, train_up = meter.totals["train"]["down"], meter.totals["train"]["up"]
    grads, samples = meter.runs["train"], meter.samples["train"]
    eval_bytes = sum(meter.totals["eval"][d][1] for d in ("down", "up"))
    content = meter.content["train"]
    # the same content in the hardware's own formats: a spike event as a 16-bit label and an
    # 8-bit timestamp (bss2_facts.md §3), a CADC value as 8 bits, an MADC value as 10 (2 bytes)
    # (every other message, control and results, at its bytes as sent)
    other_up = sum(b for tag, b in meter.by_type["train"]["up"].items()
                   if tag not in ("spike_batch", "membrane_samples", "neuron_trace"))
    hw_up = 3 * content["spike_events_up"] + content["membrane_values_up"] + 2 * content["trace_values_up"] + other_up
    return {
        "learning": scheme,
        "test_accuracy": report["test_accuracy"],
        "train_accuracy": report["train_accuracy"][-1],
        "wall_s": report["wall_s"],
        "train_wall_s": meter.wall_s["train"],
        "eval_wall_s": meter.wall_s["eval"],
        "setup_wall_s": meter.wall_s["setup"],
        "samples_per_s": report["samples_per_s"],
        "gradient_estimates": grads,
        "training_samples": samples,
        "samples_per_gradient": _per(samples, grads),
        "up_spike_events_per_sample": _per(content["spike_events_up"], samples),
        "up_membrane_values_per_sample": _per(content["membrane_values_up"] + content["trace_values_up"], samples),
        "up_hardware_format_bytes_per_sample": _per(hw_up, samples),
        "train_bytes_per_gradient": _per(train_down[1] + train_up[1], grads),
        "train_down_bytes_per_gradient": _per(train_down[1], grads),
        "train_up_bytes_per_gradient": _per(train_up[1], grads),
        "train_messages_per_gradient": _per(train_down[0] + train_up[0], grads),
        "train_bytes_per_sample": _per(train_down[1] + train_up[1], samples),
        "train_down_bytes_per_sample": _per(train_down[1], samples),
        "train_up_bytes_per_sample": _per(train_up[1], samples),
        "train_messages_per_sample": _per(train_down[0] + train_up[0], samples),
        "eval_bytes_per_sample": _per(eval_bytes, meter.samples["eval"]),
        "setup_bytes": sum(meter.totals["setup"][d][1] for d in ("down", "up")),
        "train_bytes_by_type": meter.by_type["train"],
        "link_bytes_per_training_sample": {
            name: _per(sum(traffic[name][d]["bytes"] for d in ("down", "up")), report["_training_samples"])
            for name in traffic},
        "traffic": traffic,
        "dropped": dropped,
        "weights_sha256": weights_sha256(weights),
    }


def _ratios(rows: list[dict]) -> list[dict]:
    by = {r["learning"]: r for r in rows}
    out = []

    def ratio(a: str, b: str, key: str, what: str) -> None:
        if a in by and b in by and by[b][key] > 0:
            value = by[a][key] / by[b][key]
            out.append({"numerator": a, "denominator": b, "key": key, "ratio": value,
                        "text": f"{what}: {a} / {b} = {by[a][key]:,.0f} / {by[b][key]:,.0f} = {value:.1f}x"})

    ratio("host-surrogate", "host-eventprop", "train_up_bytes_per_sample",
          "up-link bytes per training sample, dense membrane samples vs spike times")
    ratio("host-surrogate", "host-eventprop", "up_hardware_format_bytes_per_sample",
          "the same content in hardware formats (3 B per spike event, 1 B per CADC value)")
    ratio("host-surrogate", "host-eventprop", "train_up_bytes_per_gradient",
          "up-link bytes per gradient estimate (batch sizes may differ)")
    ratio("host-surrogate", "host-eventprop", "train_bytes_per_gradient", "host-link bytes per gradient (both ways)")
    ratio("host-eventprop", "on-chip-eventprop", "train_bytes_per_gradient",
          "host-link bytes per gradient, EventProp on the host vs on chip")
    ratio("host-eventprop", "on-chip-eventprop", "train_up_bytes_per_gradient", "up-link bytes per gradient")
    return out


class Compare:
    NAME = "compare"
    HELP = "train with every learning scheme on the same task and seeds; host-link traffic side by side"

    @staticmethod
    def add_arguments(p) -> None:
        p.add_argument("task", choices=["yinyang"])
        add_train_arguments(p)
        for action in p._actions:  # the schemes come from --schemes here, not --learning
            if action.dest == "learning":
                p._remove_action(action)
                for group in p._action_groups:
                    if action in group._group_actions:
                        group._group_actions.remove(action)
                for opt in action.option_strings:
                    p._option_string_actions.pop(opt, None)
        p.add_argument("--schemes", nargs="+", choices=LEARNING_SCHEMES, default=list(LEARNING_SCHEMES),
                       help="learning schemes to compare (default: all)")
        p.add_argument("--out", metavar="DIR", default="compare", help="directory for the report, CSV and plot")
        p.add_argument("--no-plots", action="store_true", help="write no PNG plot")

    @staticmethod
    async def job(args) -> dict:
        out = Path(args.out)
        if not args.report:
            args.report = str(out / "report.json")
        rows = []
        for scheme in args.schemes:
            rows.append(await _compare_one(args, scheme))
        cfg = train_config(_with(args, learning=args.schemes[0]))
        missing = [s for s in ("host-surrogate",) if s not in LEARNING_SCHEMES]
        return {"task": args.task, "compare": {
            "task": args.task, "seed": args.seed, "chip_seed": args.chip_seed, "epochs": cfg.epochs,
            "n_train": cfg.n_train, "n_test": cfg.n_test, "batch_size": cfg.batch_size, "schemes": rows,
            "ratios": _ratios(rows), "not_available": missing, "out_dir": str(out), "plots": not args.no_plots,
            "definitions": {
                "gradient estimate": "one training run (batch) whose gradient updates the weights",
                "train_*": "host-link frames (headers included) sent or received during training runs and the "
                           "weight writes that follow them; not setup (configuration, first weights) or evaluation",
                "up": "board -> host", "down": "host -> board",
                "up_hardware_format_bytes_per_sample": "what came up per training sample, re-counted at 3 bytes per "
                                                       "spike event (16-bit label, 8-bit timestamp) and 1 byte per "
                                                       "CADC value (2 per MADC value); other messages at their bytes"}}}

    @staticmethod
    def summary(report: dict) -> None:
        compare = report["compare"]
        print(compare_text(compare))
        if compare["not_available"]:
            print(f"not available in this build: {', '.join(compare['not_available'])}")
        rows = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in compare["schemes"]]
        out = Path(compare["out_dir"])
        plot = (lambda d: plot_compare(compare, d)) if compare["plots"] else (lambda d: "plots: off (--no-plots)")
        for line in _write_outputs(report, {"compare": rows}, out, plot):
            print(line)


def _with(args, **changes):
    new = copy.copy(args)
    for k, v in changes.items():
        setattr(new, k, v)
    return new
