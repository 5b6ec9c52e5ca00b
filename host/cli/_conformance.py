"""``neurosplit conformance``: the protocol conformance suite against a board (actors.conformance)."""

from __future__ import annotations

import sys
from pathlib import Path

from ...actors import conformance

NAME = "conformance"
HELP = "check that a board speaks the protocol: named scenarios, table, JSON and JUnit XML"


def add_arguments(p) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--server", action="store_true",
                       help="test a board server started in this process on an ephemeral loopback port (default: a "
                            "board in this process on an in-process host link)")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML here (one testcase per scenario)")
    p.add_argument("-k", dest="pattern", metavar="PATTERN",
                   help="run only scenarios whose name matches: a substring or glob, several separated by commas, "
                        "'not X' to leave X out")
    p.add_argument("--list", action="store_true", help="list the scenarios and what each checks, run nothing")
    p.set_defaults(log_level="error")  # the board logs every malformed frame it refuses: expected here


async def job(args) -> dict:
    if args.server and args.board:
        raise ValueError("--server starts a board server here; --board tests one elsewhere: give one of them")
    scenarios = conformance.select(args.pattern)
    if args.pattern and not scenarios:
        raise ValueError(f"-k {args.pattern!r} matches no scenario; `neurosplit conformance --list` names them")
    if args.list:
        return {"listed": [{"name": s.name, "checks": s.checks} for s in scenarios]}
    session = {"seed": args.seed, "calibrate": 0}
    progress = _Progress(len(scenarios))
    if args.board:
        given = "chip_seed" in getattr(args, "given", ())  # else the board's Hello says which die it is
        target = conformance.SocketTarget(address=args.board, session_map=session,
                                          chip_seed=args.chip_seed if given else None)
        results = await conformance.run_suite(target, scenarios, progress=progress)
    elif args.server:
        async with conformance.serving_target(args.chip_seed, session_map=session) as target:
            results = await conformance.run_suite(target, scenarios, progress=progress)
    else:
        target = conformance.InProcessTarget(chip_seed=args.chip_seed, session_map=session,
                                             link_buffer=args.link_buffer)
        results = await conformance.run_suite(target, scenarios, progress=progress)
    out = conformance.report(results, target.as_dict())
    out["exit_status"] = 1 if out["failed"] else 0  # CI reads the exit status
    if args.junit:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(conformance.junit_xml(results, target=target.description))
        out["junit"] = str(path)
    return out


class _Progress:
    def __init__(self, n: int) -> None:
        self.n, self.done = n, 0

    def __call__(self, result) -> None:
        self.done += 1
        if sys.stderr.isatty():
            print(f"\r[{self.done}/{self.n}] {result.name:<40}", end="" if self.done < self.n else "\n",
                  file=sys.stderr, flush=True)


def summary(report: dict) -> None:
    if "listed" in report:
        for s in report["listed"]:
            print(f"{s['name']}\n    {s['checks']}")
        return
    print(f"conformance against {report['target']['description']}")
    print(conformance.table(report["scenarios"]))
    if report.get("junit"):
        print(f"junit: {report['junit']}")
