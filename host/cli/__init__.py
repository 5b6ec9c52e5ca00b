"""The ``neurosplit`` command line: the composition root, the one place on the host that starts actors.

Each command is a module (or class) with NAME, HELP, ``add_arguments(parser)``, an async
``job(args) -> dict`` that returns the report fields, and ``summary(report)`` that prints them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import SimpleNamespace

import trio

from ... import actors
from ...protocol import NeurosplitError
from .._report import write_report
from ._common import VERSION, common_parser, configure_logging

__all__ = ["main", "COMMANDS"]

_COMMAND_MODULES = {  # command name -> (module, class holding it; None: the module itself)
    "run": ("._run", None),
    "train": ("._train", "Train"),
    "demo": ("._train", "Demo"),
    "chip": ("._chip", None),
    "mismatch": ("._mismatch", None),
    "sweep": ("._sweep", None),
    "profile": ("._profile", "Profile"),
    "compare": ("._profile", "Compare"),
    "replay": ("._replay", None),
    "conformance": ("._conformance", None),
}
"""Commands are imported on use: a command's module loads what it needs (the conformance kit, the
mismatch study, Ray for sweeps), so ``neurosplit train`` does not pay for the other commands'
imports at start-up."""


def _command(name: str):
    module, cls = _COMMAND_MODULES[name]
    mod = importlib.import_module(module, __name__)
    if cls is not None:
        return getattr(mod, cls)
    return SimpleNamespace(NAME=mod.NAME, HELP=mod.HELP, add_arguments=mod.add_arguments, job=mod.job,
                           summary=mod.summary)


def __getattr__(name: str):
    if name == "COMMANDS":  # every command, in the order of the help (imports them all)
        return [_command(n) for n in _COMMAND_MODULES]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _named_command(argv: list[str]) -> str | None:
    """The command argv names: its first argument that is not an option (the top-level parser has
    only flags), if it is a command's name."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in _COMMAND_MODULES else None


def _parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, given an argv that names one, of that command alone (the
    other commands' modules stay unimported)."""
    p = argparse.ArgumentParser(prog="neurosplit", description="Emulated BrainScaleS-2-like chip, as trio actors.")
    p.add_argument("--version", action="version", version=f"neurosplit {VERSION}")
    common = common_parser()
    sub = p.add_subparsers(dest="command", required=True)
    named = None if argv is None else _named_command(argv)
    for name in _COMMAND_MODULES:
        if named is None or name == named:
            cmd = _command(name)
            cmd.add_arguments(sub.add_parser(cmd.NAME, parents=[common], help=cmd.HELP))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(argv).parse_args(argv)
    configure_logging(args.log_json, args.log_level)
    command = _command(args.command)
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
