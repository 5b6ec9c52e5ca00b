"""What every command shares: options, logging, the system configuration, the summary."""

from __future__ import annotations

import argparse
import logging
import sys

import numpy as np
import structlog

from ... import actors
from ...chip import CoreConfig, N_NEURONS, N_ROWS
from ...chip._mismatch import MismatchSpec
from .._report import traffic_table

__all__ = ["VERSION", "common_parser", "configure_logging", "system_config", "final_weights", "print_traffic"]

VERSION = "0.1.0"


def common_parser() -> argparse.ArgumentParser:
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
    return common


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


def system_config(args) -> actors.SystemConfig:
    spec = MismatchSpec.ideal() if args.ideal_chip else MismatchSpec()
    return actors.SystemConfig(seed=args.seed, chip_seed=args.chip_seed, link_buffer=args.link_buffer,
                               window=args.window, core=CoreConfig(mismatch=spec, calibrate=not args.no_calibrate),
                               ppu=actors.PpuConfig(fixed_point_bits=args.ppu_fixed_point))


async def final_weights(system: actors.System) -> np.ndarray:
    """The whole synapse array as stored on chip, uint8[256, 512]."""
    reply = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
    return reply.weight


def print_traffic(report: dict) -> None:
    print(traffic_table(report["traffic"]))
    print(f"dropped events: {report['dropped'] or 'none'}")
