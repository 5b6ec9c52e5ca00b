"""The two analog-to-digital converters through which the analog core is observed.

CADC (column-parallel ADC): 8 bit, one channel per neuron, all neurons sampled at once, at most
1.85 MS/s per channel; in learning setups the PPU samples every >= 1.7 us (bss2_facts.md §5).
Emulated as: code = clip(rint(V + channel offset + read noise), 0, 255). A membrane "LSB" is by
definition one ideal CADC code, so an ideal, noise-free CADC reads V itself (rounded).

MADC (membrane ADC): 10 bit SAR at about 30 MS/s, two inputs, so at most two neurons per run
(bss2_facts.md §5). Emulated at one sample per 4 FPGA ticks (32 ns, 31.25 MS/s): the tick-aligned
period nearest 30 MS/s, so sample times stay integer ticks. Gain: about 3 MADC codes per CADC
LSB. This is an assumption derived from the shared 1.2 V input range: ~1.2 mV per MADC code
against ~3.6 mV per CADC code (bss2_facts.md §5, "Voltage per LSB", unconfirmed).

Every function is pure: noise comes from the ``np.random.Generator`` the caller hands in.
"""

from __future__ import annotations

import numpy as np

from ..protocol import ChipLimitError, TICKS_PER_US

__all__ = [
    "CADC_BITS",
    "CADC_MAX",
    "CADC_PERIOD_TICKS",
    "CADC_MIN_PERIOD_TICKS",
    "MADC_BITS",
    "MADC_MAX",
    "MADC_PERIOD_TICKS",
    "MADC_CODES_PER_LSB",
    "MADC_MAX_NEURONS",
    "cadc_read",
    "cadc_sample_ticks",
    "madc_read",
    "madc_sample_ticks",
    "madc_to_lsb",
    "check_madc_neurons",
]

CADC_BITS = 8
CADC_MAX = (1 << CADC_BITS) - 1
"""Largest CADC code (255)."""

CADC_PERIOD_TICKS = 2 * TICKS_PER_US
"""Default CADC sampling period: 250 ticks = 2 us, the PPU's period when storing to SRAM."""

CADC_MIN_PERIOD_TICKS = -(-17 * TICKS_PER_US // 10)
"""Shortest CADC period: 1.7 us rounded up to whole ticks (213 ticks = 1.704 us)."""

MADC_BITS = 10
MADC_MAX = (1 << MADC_BITS) - 1
"""Largest MADC code (1023)."""

MADC_PERIOD_TICKS = 4
"""MADC sampling period: 4 ticks = 32 ns (31.25 MS/s), the tick-aligned rate nearest ~30 MS/s."""

MADC_CODES_PER_LSB = 3.0
"""Nominal MADC codes per membrane LSB (assumption: ~1.2 mV per MADC code, ~3.6 mV per CADC code)."""

MADC_MAX_NEURONS = 2
"""The MADC has two inputs: at most two neurons can be recorded in one run."""


def _check_nonnegative(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0:  # also refuses NaN
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _noise(shape, rng, normals, scale: float, name: str) -> np.ndarray:
    if normals is None:
        if rng is None:
            raise ValueError(f"{name}: give rng or normals for the read noise")
        return rng.normal(0.0, scale, size=shape)
    normals = np.asarray(normals, dtype=np.float64)
    if normals.shape != shape:
        raise ValueError(f"normals must have the shape of the reads {shape}, got {normals.shape}")
    return scale * normals


def cadc_read(v_lsb, offset_lsb, rng: np.random.Generator | None, *, noise_lsb: float = 2.0,
              normals=None) -> np.ndarray:
    """Membrane potentials as the CADC reads them.

    v_lsb: float64[..., n] true membrane potentials (LSB), last axis = channel (neuron).
    offset_lsb: float64[n] (or scalar) per-channel offset of this die (LSB), added to every read.
    rng: source of the Gaussian read noise, one independent draw per read.
    noise_lsb: standard deviation of the read noise (LSB), >= 0.
    normals: optional float64 standard normals of v's shape, used instead of drawing from rng
    (so a caller can fix which draw each read gets; rng may then be None).
    Returns uint8[..., n]: rint(v + offset + noise) clipped to 0..255 (a reading outside the range
    saturates, as a ramp ADC does).
    """
    noise_lsb = _check_nonnegative("noise_lsb", noise_lsb)
    v = np.asarray(v_lsb, dtype=np.float64)
    offset = np.asarray(offset_lsb, dtype=np.float64)
    if offset.ndim > 1 or (offset.ndim == 1 and (v.ndim == 0 or offset.shape[0] != v.shape[-1])):
        raise ValueError(f"offset_lsb must be a scalar or have the channel length {v.shape[-1:]}, "
                         f"got shape {offset.shape}")
    x = v + offset
    if noise_lsb > 0.0:
        x = x + _noise(x.shape, rng, normals, noise_lsb, "cadc_read")
    return np.clip(np.rint(x), 0, CADC_MAX).astype(np.uint8)


def cadc_sample_ticks(t_end_ticks: int, *, period_ticks: int = CADC_PERIOD_TICKS,
                      t_start_ticks: int = 0) -> np.ndarray:
    """CADC sample times t_start, t_start + period, ... strictly before t_end, int64 FPGA ticks.

    Raises ChipLimitError if period_ticks is below the CADC's 1.7 us minimum (213 ticks).
    """
    period_ticks, t_start_ticks, t_end_ticks = int(period_ticks), int(t_start_ticks), int(t_end_ticks)
    if period_ticks < CADC_MIN_PERIOD_TICKS:
        raise ChipLimitError(f"cadc period_ticks must be >= {CADC_MIN_PERIOD_TICKS} (1.7 us) on this chip, "
                             f"got {period_ticks}")
    if t_start_ticks < 0:
        raise ValueError(f"t_start_ticks must be >= 0, got {t_start_ticks}")
    return np.arange(t_start_ticks, max(t_end_ticks, t_start_ticks), period_ticks, dtype=np.int64)


def madc_read(v_lsb, rng: np.random.Generator | None, *, gain_codes_per_lsb: float = MADC_CODES_PER_LSB,
              offset_codes: float = 0.0, noise_codes: float = 2.0, normals=None) -> np.ndarray:
    """Membrane potentials as the MADC reads them.

    v_lsb: float64[...] true membrane potentials (LSB), any shape (typically [m] or [m, 2]).
    gain_codes_per_lsb: MADC codes per membrane LSB of this die (nominal MADC_CODES_PER_LSB).
    offset_codes: MADC code of V = 0 on this die.
    noise_codes: standard deviation of the Gaussian read noise, in MADC codes, >= 0.
    normals: optional standard normals of v's shape used instead of drawing from rng (as cadc_read).
    Returns uint16[...]: rint(gain * v + offset + noise) clipped to 0..1023.
    """
    noise_codes = _check_nonnegative("noise_codes", noise_codes)
    if not float(gain_codes_per_lsb) > 0.0:
        raise ValueError(f"gain_codes_per_lsb must be > 0, got {gain_codes_per_lsb}")
    x = np.asarray(v_lsb, dtype=np.float64) * float(gain_codes_per_lsb) + float(offset_codes)
    if noise_codes > 0.0:
        x = x + _noise(x.shape, rng, normals, noise_codes, "madc_read")
    return np.clip(np.rint(x), 0, MADC_MAX).astype(np.uint16)


def madc_to_lsb(codes, *, gain_codes_per_lsb: float = MADC_CODES_PER_LSB, offset_codes: float = 0.0) -> np.ndarray:
    """MADC codes back to membrane LSB with a given (usually the nominal) gain and offset; float64."""
    return (np.asarray(codes, dtype=np.float64) - float(offset_codes)) / float(gain_codes_per_lsb)


def madc_sample_ticks(t_start_ticks: int, t_end_ticks: int, *, period_ticks: int = MADC_PERIOD_TICKS) -> np.ndarray:
    """MADC sample times from t_start (inclusive) to t_end (exclusive), int64 FPGA ticks.

    Raises ChipLimitError if period_ticks is below the emulated MADC's one sample per 4 ticks.
    """
    period_ticks, t_start_ticks, t_end_ticks = int(period_ticks), int(t_start_ticks), int(t_end_ticks)
    if period_ticks < MADC_PERIOD_TICKS:
        raise ChipLimitError(f"madc period_ticks must be >= {MADC_PERIOD_TICKS} (~30 MS/s) on this chip, "
                             f"got {period_ticks}")
    if t_start_ticks < 0:
        raise ValueError(f"t_start_ticks must be >= 0, got {t_start_ticks}")
    return np.arange(t_start_ticks, max(t_end_ticks, t_start_ticks), period_ticks, dtype=np.int64)


def check_madc_neurons(neurons) -> np.ndarray:
    """The neuron circuits one MADC run records, int64[<= 2]; ChipLimitError for more than two."""
    neurons = np.atleast_1d(np.asarray(neurons, dtype=np.int64))
    if neurons.ndim != 1:
        raise ValueError(f"neurons must be 1-d, got shape {neurons.shape}")
    if neurons.size > MADC_MAX_NEURONS:
        raise ChipLimitError(f"the MADC records at most {MADC_MAX_NEURONS} neurons per run, "
                             f"got {neurons.size} ({neurons.size - MADC_MAX_NEURONS} too many)")
    return neurons
