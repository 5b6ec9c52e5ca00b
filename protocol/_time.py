"""Emulated hardware time: FPGA ticks, hardware microseconds and biological milliseconds.

Messages carry time as integer FPGA ticks (8 ns at 125 MHz, bss2_facts.md §2). The hardware
runs about 1000x faster than the biology it models, so one hardware microsecond stands for one
biological millisecond. These are the only conversions; everything else keeps its unit in its
name (``_ticks``, ``_us``, ``_bio_ms``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TICK_NS",
    "TICKS_PER_US",
    "ACCELERATION",
    "ticks_to_us",
    "us_to_ticks",
    "us_to_bio_ms",
    "bio_ms_to_us",
]

TICK_NS = 8
"""Length of one FPGA clock tick in nanoseconds (125 MHz)."""

TICKS_PER_US = 1000 // TICK_NS
"""FPGA ticks per hardware microsecond (125)."""

ACCELERATION = 1000.0
"""Speed-up of emulated hardware time against biological time."""


def ticks_to_us(t_ticks):
    """FPGA ticks (int) to hardware microseconds (float64)."""
    return np.asarray(t_ticks, dtype=np.float64) / TICKS_PER_US


def us_to_ticks(t_us):
    """Hardware microseconds to FPGA ticks, rounded down: the tick in which the event falls."""
    return np.floor(np.asarray(t_us, dtype=np.float64) * TICKS_PER_US).astype(np.int64)


def us_to_bio_ms(t_us, acceleration: float = ACCELERATION):
    """Hardware microseconds to biological milliseconds (1 us on chip is 1 ms in the model at 1000x)."""
    return np.asarray(t_us, dtype=np.float64) * acceleration / 1000.0


def bio_ms_to_us(t_bio_ms, acceleration: float = ACCELERATION):
    """Biological milliseconds to hardware microseconds."""
    return np.asarray(t_bio_ms, dtype=np.float64) * 1000.0 / acceleration
