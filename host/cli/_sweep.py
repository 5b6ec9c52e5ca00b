"""``neurosplit sweep SPEC.toml``: a grid of jobs on Ray (``--address`` joins a cluster, else a
local Ray) or, without Ray, on a local process pool; one JSON report per point and a summary.

Each point runs ``run_point`` in a worker process: the point's options are parsed by the same
command-line parser as a job typed by hand, structlog is configured in the worker, the job runs in
its own trio event loop, and the report goes back to the driver, which writes it (host/_sweep.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import socket
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import trio

from ... import actors
from .._report import _jsonable
from .._sweep import ENGINES, Point, load_spec, run_sweep, summary_rows, summary_table
from ._common import VERSION, configure_logging

NAME = "sweep"
HELP = "run a grid of jobs from a TOML spec on Ray or a local process pool"
NOT_IN_SWEEPS = ("sweep", "chip")  # commands that are not one job with one report


def add_arguments(p) -> None:
    p.add_argument("spec", help="the sweep spec, a TOML file (docs/scaling.md)")
    p.add_argument("--out", metavar="DIR", help="where reports go (default: sweeps/<spec name>)")
    p.add_argument("--engine", choices=ENGINES, default="auto", help="auto: Ray when installed, else a process pool")
    p.add_argument("--workers", type=int, default=0, help="worker processes (local Ray CPUs); 0: all cores")
    p.add_argument("--address", help="join the Ray cluster at this address instead of starting a local Ray")
    p.add_argument("--dry-run", action="store_true", help="check the spec and list its points, run nothing")


async def job(args) -> dict:
    spec = load_spec(args.spec)
    points = spec.points()
    for point in points:  # every point must parse before any runs
        point_args(point.command, point.options, point.id)
    out = Path(args.out) if args.out else Path("sweeps") / Path(args.spec).stem
    header = {"seed": None, "chip_seed": None, "out": str(out), "points": len(points)}
    if args.dry_run:
        return {**header, "dry_run": True, "rows": [{"id": p.id, **{k: p.options[k] for k in spec.grid}}
                                                    for p in points]}
    # Blocking on purpose: the engine is the only thing this event loop runs.
    outcome = run_sweep(spec, out, run_point, engine=args.engine, workers=args.workers, address=args.address)
    return {**header, "engine": outcome.engine, "workers": outcome.workers, "counts": outcome.counts,
            "ran": outcome.ran, "wall_s": outcome.wall_s,
            "points_per_minute": 60.0 * outcome.ran / outcome.wall_s if outcome.ran and outcome.wall_s else None,
            "errors": outcome.errors, "rows": summary_rows(out, spec)}


def summary(report: dict) -> None:
    print(summary_table(report["rows"]))
    if report.get("dry_run"):
        print(f"{report['points']} points (dry run: nothing ran)")
        return
    c = report["counts"]
    rate = f", {report['points_per_minute']:.1f} points/min" if report.get("points_per_minute") else ""
    print(f"{report['points']} points: {c['ok']} ran now, {c['skipped']} had reports, {c['failed']} failed "
          f"({report['engine']}, {report['workers']} workers, {report['wall_s']:.1f} s{rate})")
    print(f"reports in {report['out']}/points/, table in {report['out']}/summary.csv")


# -- one point ------------------------------------------------------------------------------------

def point_args(command: str, options: dict, point_id: str = "") -> argparse.Namespace:
    """The parsed command line of one point; ValueError names the point and the option at fault."""
    from . import COMMANDS, _parser  # the package imports this module first

    where = f"point {point_id}" if point_id else "sweep"
    names = [c.NAME for c in COMMANDS if c.NAME not in NOT_IN_SWEEPS]
    if command not in names:
        raise ValueError(f"{where}: command must be one of {', '.join(names)}, got {command!r}")
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    by_flag = {s: a for a in sub._actions for s in a.option_strings}
    positional = [a for a in sub._actions if not a.option_strings]
    argv = [command] + [str(options[a.dest]) for a in positional if a.dest in options]
    for key, value in options.items():
        if any(a.dest == key for a in positional):
            continue
        action = by_flag.get(f"--{key}")
        if action is None:
            known = sorted(s[2:] for s in by_flag if s.startswith("--") and s != "--help")
            raise ValueError(f"{where}: {command} has no option {key!r} (known: {', '.join(known)})")
        if action.nargs == 0:  # a switch
            if not isinstance(value, bool):
                raise ValueError(f"{where}: {key} is a switch: true or false, got {value!r}")
            argv += [f"--{key}"] if value else []
        else:
            argv += [f"--{key}", str(value)]
    err = io.StringIO()
    try:
        with redirect_stderr(err):
            return parser.parse_args(argv)
    except SystemExit:
        raise ValueError(f"{where}: {err.getvalue().strip().splitlines()[-1]}") from None


def run_point(task: dict) -> dict:
    """Run one point in this (worker) process. task: {"command", "options", "id"}. Returns
    {"status": "ok", "report": ...} or {"status": "failed", "error": ..., "traceback": ..., "log_tail": ...}."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    try:
        args = point_args(task["command"], task["options"], task["id"])
        # structlog is configured per process (cached loggers do not travel); the job's progress
        # lines and logs are kept, not interleaved with other workers' on the terminal.
        configure_logging(json_logs=True, level=args.log_level)
        from . import COMMANDS

        command = next(c for c in COMMANDS if c.NAME == args.command)
        header = {"command": args.command, "version": VERSION, "seed": args.seed, "chip_seed": args.chip_seed}
        with redirect_stdout(out), redirect_stderr(err):
            report = {**header, **trio.run(command.job, args)}
    except Exception as exc:
        return {"status": "failed", "error": describe(exc), "traceback": traceback.format_exc(),
                "log_tail": err.getvalue()[-4000:], "worker": _worker(t0)}
    report = {"point": {"id": task["id"], "command": task["command"], "options": task["options"]}, **report}
    return {"status": "ok", "report": json.loads(json.dumps(_jsonable(report))), "worker": _worker(t0)}


def _worker(t0: float) -> dict:
    """Where and how a point ran (kept in sweep.json, not in the point's report, which must not
    depend on the engine): host, pid, wall seconds in the worker, peak resident memory so far."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "wall_s": time.perf_counter() - t0,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def describe(exc: BaseException) -> str:
    """One line for an error, as the command line would print it."""
    failed = actors.first_actor_failure(exc)
    if failed is not None:
        return str(failed)
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
