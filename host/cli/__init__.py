"""The ``neurosplit`` command line: the composition root, the one place on the host that starts actors.

Each command is a module (or class) with NAME, HELP, ``add_arguments(parser)``, an async
``job(args) -> dict`` that returns the report fields, and ``summary(report)`` that prints them.
"""

from __future__ import annotations

import argparse
import sys
from types import SimpleNamespace

import trio

from ... import actors
from ...protocol import NeurosplitError
from .._report import write_report
from . import _mismatch
from . import _chip, _conformance, _profile, _replay, _run, _sweep, _train
from ._common import VERSION, common_parser, configure_logging

__all__ = ["main", "COMMANDS"]

COMMANDS = [
    SimpleNamespace(NAME=_run.NAME, HELP=_run.HELP, add_arguments=_run.add_arguments, job=_run.job,
                    summary=_run.summary),
    _train.Train,
    _train.Demo,
    SimpleNamespace(NAME=_chip.NAME, HELP=_chip.HELP, add_arguments=_chip.add_arguments, job=_chip.job,
                    summary=_chip.summary),
    SimpleNamespace(NAME=_mismatch.NAME, HELP=_mismatch.HELP, add_arguments=_mismatch.add_arguments,
                    job=_mismatch.job, summary=_mismatch.summary),
    SimpleNamespace(NAME=_sweep.NAME, HELP=_sweep.HELP, add_arguments=_sweep.add_arguments, job=_sweep.job,
                    summary=_sweep.summary),
    _profile.Profile,
    _profile.Compare,
    SimpleNamespace(NAME=_replay.NAME, HELP=_replay.HELP, add_arguments=_replay.add_arguments, job=_replay.job,
                    summary=_replay.summary),
    SimpleNamespace(NAME=_conformance.NAME, HELP=_conformance.HELP, add_arguments=_conformance.add_arguments,
                    job=_conformance.job, summary=_conformance.summary),
]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurosplit", description="Emulated BrainScaleS-2-like chip, as trio actors.")
    p.add_argument("--version", action="version", version=f"neurosplit {VERSION}")
    common = common_parser()
    sub = p.add_subparsers(dest="command", required=True)
    for cmd in COMMANDS:
        cmd.add_arguments(sub.add_parser(cmd.NAME, parents=[common], help=cmd.HELP))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.log_json, args.log_level)
    command = next(c for c in COMMANDS if c.NAME == args.command)
    header = {"command": args.command, "version": VERSION, "seed": args.seed, "chip_seed": args.chip_seed}
    try:
        report = {**header, **trio.run(command.job, args)}
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # name the actor that failed, not a nursery traceback
        failed = actors.first_actor_failure(exc)
        if failed is not None:
            print(f"neurosplit: {failed}", file=sys.stderr)
            return 2
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, (NeurosplitError, ValueError)):
            print(f"neurosplit: {leaf}", file=sys.stderr)
            return 2
        raise
    command.summary(report)
    if args.report:
        print(f"report: {write_report(args.report, report)}")
    return int(report.get("exit_status", 0))  # a job that found a failure (a replay's divergence) says so


if __name__ == "__main__":
    sys.exit(main())
