"""What every command shares: options, logging, the system configuration, the summary."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import asynccontextmanager
from dataclasses import asdict

import numpy as np
import structlog

from ... import actors
from ...chip import CoreConfig, N_NEURONS, N_ROWS
from ...chip._mismatch import MismatchSpec
from .._report import traffic_table

__all__ = ["VERSION", "common_parser", "configure_logging", "system_config", "final_weights", "print_traffic",
           "board_session", "open_job_system", "board_fields", "link_wrapping", "fault_fields", "add_record_argument",
           "job_recorder"]

VERSION = "0.1.0"


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and trial noise")
    common.add_argument("--chip-seed", type=int, default=0, action=_Given,
                        help="which emulated die (device mismatch); with --board, the board's (checked if given)")
    common.add_argument("--report", metavar="PATH", help="write the JSON report here")
    common.add_argument("--log-json", action="store_true", help="structured JSON logs on stderr")
    common.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    common.add_argument("--link-buffer", type=int, default=4, help="frames buffered per link direction")
    common.add_argument("--window", type=int, default=4, help="runs the host keeps in flight")
    common.add_argument("--ideal-chip", action="store_true", help="no device mismatch and no noise")
    common.add_argument("--no-calibrate", action="store_true", help="skip the neuron calibration")
    common.add_argument("--ppu-fixed-point", type=int, default=0, metavar="BITS",
                        help="PPU weight accumulator and gradients in BITS-bit fixed point (0: float64)")
    common.add_argument("--board", metavar="HOST:PORT",
                        help="use the board served there (`neurosplit chip serve`) instead of one in this process")
    common.add_argument("--board-timeout", type=float, default=60.0, metavar="S",
                        help="seconds a --board may stay silent while a reply is awaited (default 60)")
    common.add_argument("--faults", type=_faults_type, metavar="SPEC|FILE",
                        help="inject faults, e.g. 'host:drop=0.01,dup=0.01,reorder=0.01,corrupt=0.001;chip:drop=0.001' "
                             "or a .toml/.json file (docs/faults.md); host-link faults turn on reliable delivery")
    common.add_argument("--reliable", action="store_true",
                        help="reliable delivery (HostARQ-like) on the host link even without faults")
    common.add_argument("--link-timeout", type=float, default=10.0, metavar="S",
                        help="seconds frames may stay unacknowledged on the reliable host link before the run "
                             "stops (default 10)")
    return common


def _faults_type(text: str) -> dict:
    try:
        return actors.parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Given(argparse.Action):
    """Stores the value and notes that it was given (``args.given`` holds the destinations)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = getattr(namespace, "given", frozenset()) | {self.dest}


def configure_logging(json_logs: bool, level: str) -> None:
    """structlog for the whole process; called once, before any actor binds its logger."""
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever sys.stderr is when a line is written: cached loggers must not keep a stream that
    has since been replaced and closed (pytest's capture, a redirection)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def system_config(args) -> actors.SystemConfig:
    spec = MismatchSpec.ideal() if args.ideal_chip else MismatchSpec()
    return actors.SystemConfig(seed=args.seed, chip_seed=args.chip_seed, link_buffer=args.link_buffer,
                               window=args.window, core=CoreConfig(mismatch=spec, calibrate=not args.no_calibrate),
                               ppu=actors.PpuConfig(fixed_point_bits=args.ppu_fixed_point),
                               session=board_session(args))


def board_session(args) -> dict[str, int]:
    """What the host's Hello asks of the board: every option above that shapes results except the
    die, so a board in its own process (built by actors.session_config) computes the same bits.
    An option added to system_config that changes results must travel here too."""
    return {"seed": args.seed, "ideal_chip": int(args.ideal_chip), "calibrate": int(not args.no_calibrate),
            "ppu_fixed_point_bits": args.ppu_fixed_point, "link_buffer": args.link_buffer}


@asynccontextmanager
async def open_job_system(args):
    """The system a job runs on: in this process, or the board at ``--board`` (whose die is the
    board's: a --chip-seed given with --board must match it). With --record, its frames are
    recorded (job_recorder)."""
    config = system_config(args)
    if getattr(args, "board", None) and (getattr(args, "faults", None) or getattr(args, "reliable", False)):
        raise ValueError("--faults and --reliable work on a board in this process, not with --board")
    recorder = job_recorder(args)
    try:
        if not getattr(args, "board", None):
            wrap = link_wrapping(args).wrap
            async with actors.open_system(config, wrap=wrap if recorder is None else recorder.wrap(wrap)) as system:
                yield system
            return
        wrap_transport = None if recorder is None else recorder.end_wrapper("host", "a")
        async with actors.connect_board(args.board, config, timeout_s=args.board_timeout,
                                        wrap_transport=wrap_transport) as system:
            if "chip_seed" in getattr(args, "given", ()) and system.chip_seed != args.chip_seed:
                raise ValueError(f"--chip-seed {args.chip_seed} does not match the board at {args.board}, which is "
                                 f"chip {system.chip_seed} (a board's die is its server's --chip-seed)")
            yield system
    finally:
        if recorder is not None:
            recorder.close()


def add_record_argument(p) -> None:
    p.add_argument("--record", metavar="PATH",
                   help="write every frame crossing every link, with link, direction, wall-clock and emulated "
                        "stamps, to PATH (a .nsrec file for `neurosplit replay`; docs/testing.md); with --board "
                        "only the host link can be recorded (the board's own links are in its process)")


def job_recorder(args):
    """A FrameRecorder for --record PATH (None without it); its header says what ran and, with
    --board, that only the host link was recorded."""
    path = getattr(args, "record", None)
    if not path:
        return None
    from ...actors.testing import FrameRecorder

    remote = bool(getattr(args, "board", None))
    meta = {"command": getattr(args, "command", None), "version": VERSION, "seed": args.seed,
            "chip_seed": None if remote else args.chip_seed, "session": board_session(args),
            "board": args.board if remote else "in-process", "host_only": remote,
            "faults": {link: asdict(spec) for link, spec in (getattr(args, "faults", None) or {}).items()},
            "reliable": bool(getattr(args, "reliable", False))}
    if remote:
        meta["note"] = (f"only the host link was recorded, at the host's end (board at {args.board}); "
                        "the board's chip, ppu and synram links live in its process")
    return FrameRecorder(path, links=("host",) if remote else actors.LINK_NAMES, meta=meta)


def board_fields(args, system) -> dict:
    """Report fields that say which board ran the job (its die, and its address if remote)."""
    if not getattr(args, "board", None):
        return {}
    return {"chip_seed": system.chip_seed, "board": args.board}


def link_wrapping(args) -> actors.LinkWrapping:
    """Fault injection and reliable delivery under the job's links, from --faults, --reliable and
    --link-timeout (made once per job: its counters are read back by fault_fields)."""
    if getattr(args, "_link_wrapping", None) is None:
        faults = getattr(args, "faults", None) or {}
        host_loses = "host" in faults and faults["host"].loses_frames
        reliable = False
        if getattr(args, "reliable", False) or host_loses:
            reliable = actors.ReliableConfig(link_timeout_s=getattr(args, "link_timeout", 10.0))
        args._link_wrapping = actors.wrap_links(faults, seed=args.seed, reliable=reliable)
    return args._link_wrapping


def fault_fields(args) -> dict:
    """Report fields: what the fault injection did (``faults``) and what reliable delivery repaired
    (``reliable``), when either was on."""
    wrapping = getattr(args, "_link_wrapping", None)
    if wrapping is None:
        return {}
    return {k: v for k, v in wrapping.statistics().items() if v}


async def final_weights(system: actors.System) -> np.ndarray:
    """The whole synapse array as stored on chip, uint8[256, 512]."""
    reply = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
    return reply.weight


def print_traffic(report: dict) -> None:
    print(traffic_table(report["traffic"]))
    print(f"dropped events: {report['dropped'] or 'none'}")
