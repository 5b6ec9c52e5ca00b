"""Per-chip device mismatch and the CapMem transfer from parameter codes to analog parameters.

On BrainScaleS-2 every neuron parameter is set through a 10-bit CapMem cell (bss2_facts.md §1).
The same code gives a different voltage or bias current on every neuron circuit and every die
(fixed-pattern noise). We model each CapMem-set parameter per neuron as

    potentials:       v_lsb    = nominal_potential_lsb(code) * (1 + gain_dev) + offset_lsb
    time constants:   1/tau_us = nominal_rate_per_us(code)   * (1 + gain_dev) + offset_per_us

(an OTA bias current sets a conductance, so mismatch acts on the rate 1/tau). The refractory time
is digital (an 8-bit counter on a divided clock) plus a small analog part per neuron. A die also
fixes a gain per synapse, an offset per CADC channel and the MADC's gain and offset.

``draw_die(chip_seed, spec)`` draws all of it for all 512 neuron circuits and the whole synapse
array at once, so the draw never depends on how many neurons a network uses. Trial-to-trial
noise is keyed by (seed, run_id): threshold jitter per (sample, circuit) by a counter-based
generator, ADC read noise by numpy generators per run and sample. Sources and the
status of every default: docs/mismatch.md.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ._adc import MADC_CODES_PER_LSB
from ._hashed_normal import hashed_normals_into, run_key
from ._params import N_NEURONS, N_ROWS, NeuronParams

__all__ = [
    "CAPMEM_MAX",
    "REFRACTORY_COUNTER_MAX",
    "REFRACTORY_CLOCK_MAX",
    "TAU_CODE_US",
    "MismatchSpec",
    "Transfer",
    "Die",
    "NeuronCodes",
    "draw_die",
    "realised_params",
    "nominal_codes",
    "nominal_potential_lsb",
    "potential_code",
    "nominal_tau_us",
    "tau_code",
    "refractory_period_us",
    "refractory_codes",
    "threshold_jitter",
    "noise_rng",
    "CADC_NOISE_STREAM",
    "MADC_NOISE_STREAM",
]

CAPMEM_MAX = 1023
"""Largest 10-bit CapMem code."""

REFRACTORY_COUNTER_MAX = 255
"""Largest value of the 8-bit refractory counter (bss2_facts.md §2)."""

REFRACTORY_CLOCK_MAX = 15
"""Largest refractory clock scaler s: the counter ticks at 250 MHz / 2**(s + 1)."""

# Potentials: calix maps CapMem 70..550 onto CADC 20..220 (bss2_facts.md §5), i.e. 0.417 LSB per code.
_V_CODE_0, _V_LSB_0, _V_LSB_PER_CODE = 70.0, 20.0, 200.0 / 480.0

TAU_CODE_US = 400.0
"""Nominal time constant transfer tau_us = TAU_CODE_US / (code + 1): 10 us at code 39, 0.39 us at
1023, 400 us at 0 (assumption; the real bias-to-tau map depends on the capacitance setting)."""

_REFRACTORY_BASE_MHZ = 250.0
_RATE_FLOOR_PER_US = 1.0 / (10.0 * TAU_CODE_US)  # guard: a realised 1/tau never drops below this


def nominal_potential_lsb(code) -> np.ndarray:
    """Nominal CapMem transfer for potentials (leak, reset, threshold): code -> LSB, float64."""
    return _V_LSB_0 + (np.asarray(code, dtype=np.float64) - _V_CODE_0) * _V_LSB_PER_CODE


def potential_code(v_lsb) -> np.ndarray:
    """The code whose nominal potential is nearest v_lsb, clipped to 0..1023, int64."""
    code = np.rint(_V_CODE_0 + (np.asarray(v_lsb, dtype=np.float64) - _V_LSB_0) / _V_LSB_PER_CODE)
    return np.clip(code, 0, CAPMEM_MAX).astype(np.int64)


def nominal_tau_us(code) -> np.ndarray:
    """Nominal CapMem transfer for time constants: code -> hardware us, float64."""
    return TAU_CODE_US / (np.asarray(code, dtype=np.float64) + 1.0)


def tau_code(tau_us) -> np.ndarray:
    """The code whose nominal time constant is nearest tau_us (in rate), clipped to 0..1023, int64."""
    code = np.rint(TAU_CODE_US / np.asarray(tau_us, dtype=np.float64) - 1.0)
    return np.clip(code, 0, CAPMEM_MAX).astype(np.int64)


def refractory_period_us(counter, clock) -> np.ndarray:
    """Digital refractory time: counter ticks of a 250 MHz / 2**(clock + 1) clock, hardware us."""
    return np.asarray(counter, dtype=np.float64) * 2.0 ** (np.asarray(clock, dtype=np.float64) + 1.0) / _REFRACTORY_BASE_MHZ


def refractory_codes(t_ref_us) -> tuple[np.ndarray, np.ndarray]:
    """(counter, clock) nearest t_ref_us, per neuron, using the fastest clock whose 8-bit counter
    still reaches it (finest steps; calix computes these settings, it does not measure them).

    Simplification: each neuron picks its own clock scaler (the chip offers two shared clocks).
    """
    t = np.atleast_1d(np.asarray(t_ref_us, dtype=np.float64))
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"t_ref_us must be finite and >= 0, got min {t.min() if t.size else None}")
    longest = refractory_period_us(REFRACTORY_COUNTER_MAX, REFRACTORY_CLOCK_MAX)
    if np.any(t > longest):
        raise ValueError(f"t_ref_us must be <= {longest:g} (counter 255 on the slowest clock), got {t.max():g}")
    step = 2.0 ** (np.arange(REFRACTORY_CLOCK_MAX + 1) + 1.0) / _REFRACTORY_BASE_MHZ
    # smallest scaler whose counter, rounded, still fits in 8 bits
    clock = np.minimum(np.searchsorted((REFRACTORY_COUNTER_MAX + 0.5) * step, t, side="right"), REFRACTORY_CLOCK_MAX)
    counter = np.clip(np.rint(t / step[clock]), 0, REFRACTORY_COUNTER_MAX)
    return counter.astype(np.int64), clock.astype(np.int64)


@dataclass(frozen=True)
class MismatchSpec:
    """Magnitudes of device mismatch and noise (standard deviations). docs/mismatch.md gives the
    source of each default and marks the unconfirmed ones.

    Fixed pattern, per neuron circuit (drawn once per die). Potentials: CapMem transfer offset in
    LSB and gain CV (relative); time constants: gain CV and offset of the rate 1/tau (1/us).
    ``t_ref_offset_us``: analog part of the refractory time. ``synapse_gain_cv``: per-synapse CV of
    the weight-to-current gain. ``cadc_offset_lsb``: per-channel CADC offset left after CADC
    calibration. ``madc_gain_cv``, ``madc_offset_codes``: of the one MADC.

    Trial to trial (drawn per run): ``threshold_jitter_lsb`` per sample and neuron,
    ``cadc_noise_lsb`` per CADC read, ``madc_noise_codes`` per MADC read.

    Expected after calibration (reference values, not drawn): ``calibrated_*``.
    """

    v_leak_offset_lsb: float = 10.0
    v_leak_gain_cv: float = 0.05
    v_reset_offset_lsb: float = 10.0
    v_reset_gain_cv: float = 0.05
    v_th_offset_lsb: float = 12.0
    v_th_gain_cv: float = 0.05
    tau_mem_gain_cv: float = 0.20
    tau_mem_offset_per_us: float = 0.003
    tau_syn_gain_cv: float = 0.25
    tau_syn_offset_per_us: float = 0.003
    t_ref_offset_us: float = 0.05
    synapse_gain_cv: float = 0.10
    cadc_offset_lsb: float = 2.0
    madc_gain_cv: float = 0.02
    madc_offset_codes: float = 5.0
    threshold_jitter_lsb: float = 1.0
    cadc_noise_lsb: float = 2.0
    madc_noise_codes: float = 2.0
    calibrated_v_leak_lsb: float = 2.0
    calibrated_v_reset_lsb: float = 2.0
    calibrated_v_th_lsb: float = 3.0
    calibrated_tau_cv: float = 0.05

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"MismatchSpec.{f.name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, f.name, float(value))

    @classmethod
    def ideal(cls) -> "MismatchSpec":
        """No mismatch and no noise at all: every die is the nominal chip."""
        return cls(**{f.name: 0.0 for f in dataclasses.fields(cls)})

    def scaled(self, factor: float) -> "MismatchSpec":
        """This spec with every fixed-pattern spread times ``factor`` (noise and references kept):
        for decalibration sweeps. The same chip seed then gives the same pattern, scaled."""
        if not factor >= 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        keep = {"threshold_jitter_lsb", "cadc_noise_lsb", "madc_noise_codes"}
        return dataclasses.replace(self, **{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)
                                            if f.name not in keep and not f.name.startswith("calibrated_")})


def _frozen_array(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Transfer:
    """Deviation of one CapMem transfer per neuron circuit. gain_dev float64[512]: relative gain
    deviation; offset float64[512]: additive offset (LSB for potentials, 1/us for rates)."""

    gain_dev: np.ndarray
    offset: np.ndarray


@dataclass(frozen=True, eq=False)
class Die:
    """One emulated chip's frozen fixed-pattern deviations (arrays are read-only).

    v_leak, v_reset, v_th, tau_mem, tau_syn: Transfer per parameter, float64[512] each.
    t_ref_offset_us float64[512]: analog part of the refractory time (us).
    synapse_gain float64[256, 512]: multiplies each synapse's weight-to-current conversion.
    cadc_offset_lsb float64[512]: per-channel CADC offset (LSB).
    madc_gain_codes_per_lsb, madc_offset_codes: the MADC's transfer on this die.
    """

    chip_seed: int
    spec: MismatchSpec
    v_leak: Transfer
    v_reset: Transfer
    v_th: Transfer
    tau_mem: Transfer
    tau_syn: Transfer
    t_ref_offset_us: np.ndarray
    synapse_gain: np.ndarray
    cadc_offset_lsb: np.ndarray
    madc_gain_codes_per_lsb: float
    madc_offset_codes: float


_CAPMEM_PARAMS = ("v_leak", "v_reset", "v_th", "tau_mem", "tau_syn")
_OFFSET_FIELD = {"v_leak": "v_leak_offset_lsb", "v_reset": "v_reset_offset_lsb", "v_th": "v_th_offset_lsb",
                 "tau_mem": "tau_mem_offset_per_us", "tau_syn": "tau_syn_offset_per_us"}
# Fixed stream index per drawn quantity: adding a quantity later appends a stream, leaving old dies intact.
_STREAMS = {**{f"{p}_gain": 2 * i for i, p in enumerate(_CAPMEM_PARAMS)},
            **{f"{p}_offset": 2 * i + 1 for i, p in enumerate(_CAPMEM_PARAMS)},
            "t_ref": 10, "synapse": 11, "cadc": 12, "madc": 13}


@functools.lru_cache(maxsize=16)
def draw_die(chip_seed: int, spec: MismatchSpec = MismatchSpec()) -> Die:
    """The die of chip ``chip_seed``: every deviation for all 512 neuron circuits and the whole
    256 x 512 synapse array. Same (chip_seed, spec) -> bit-identical die.

    Each quantity has its own child stream of ``np.random.default_rng(chip_seed)`` and is drawn as
    standard normals scaled by the spec, so ``spec.scaled(k)`` scales one fixed pattern. Offsets
    are Gaussian; gains (1 + gain_dev, synapse gains) are log-normal with mean 1 and the spec's CV.
    """
    if isinstance(chip_seed, bool) or not isinstance(chip_seed, (int, np.integer)) or chip_seed < 0:
        raise ValueError(f"chip_seed must be an int >= 0, got {chip_seed!r}")
    if not isinstance(spec, MismatchSpec):
        raise TypeError(f"spec must be a MismatchSpec, got {type(spec).__name__}")
    streams = np.random.default_rng(int(chip_seed)).spawn(len(_STREAMS))

    def gain(stream: str, cv: float, shape) -> np.ndarray:
        # log-normal with mean 1 and CV cv: positive like the bias currents it stands for
        s_log = np.sqrt(np.log1p(cv * cv))
        return np.exp(s_log * streams[_STREAMS[stream]].standard_normal(shape) - 0.5 * s_log * s_log)

    transfers = {}
    for p in _CAPMEM_PARAMS:
        g = gain(f"{p}_gain", getattr(spec, f"{p}_gain_cv"), N_NEURONS) - 1.0
        off = getattr(spec, _OFFSET_FIELD[p]) * streams[_STREAMS[f"{p}_offset"]].standard_normal(N_NEURONS)
        transfers[p] = Transfer(_frozen_array(g, np.float64), _frozen_array(off, np.float64))
    t_ref = spec.t_ref_offset_us * streams[_STREAMS["t_ref"]].standard_normal(N_NEURONS)
    syn = gain("synapse", spec.synapse_gain_cv, (N_ROWS, N_NEURONS))
    cadc = spec.cadc_offset_lsb * streams[_STREAMS["cadc"]].standard_normal(N_NEURONS)
    madc_z = streams[_STREAMS["madc"]].standard_normal(2)
    return Die(chip_seed=int(chip_seed), spec=spec, **transfers,
               t_ref_offset_us=_frozen_array(t_ref, np.float64), synapse_gain=_frozen_array(syn, np.float64),
               cadc_offset_lsb=_frozen_array(cadc, np.float64),
               madc_gain_codes_per_lsb=float(MADC_CODES_PER_LSB * (1.0 + spec.madc_gain_cv * madc_z[0])),
               madc_offset_codes=float(spec.madc_offset_codes * madc_z[1]))


@dataclass(frozen=True, eq=False)
class NeuronCodes:
    """Per-neuron configuration codes, each int64[n] (read-only).

    v_leak_code, v_reset_code, v_th_code: CapMem codes 0..1023 of the potentials.
    tau_mem_code, tau_syn_code: CapMem codes 0..1023 of the leak and synaptic bias currents
    (a larger code is a larger conductance, i.e. a shorter time constant).
    t_ref_counter 0..255, t_ref_clock 0..15: refractory counter and its clock scaler.
    """

    v_leak_code: np.ndarray
    v_reset_code: np.ndarray
    v_th_code: np.ndarray
    tau_mem_code: np.ndarray
    tau_syn_code: np.ndarray
    t_ref_counter: np.ndarray
    t_ref_clock: np.ndarray

    def __post_init__(self) -> None:
        n = None
        for f in dataclasses.fields(self):
            a = np.atleast_1d(np.asarray(getattr(self, f.name)))
            if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
                raise ValueError(f"NeuronCodes.{f.name} must be a 1-d integer array, got {a.dtype} shape {a.shape}")
            hi = {"t_ref_counter": REFRACTORY_COUNTER_MAX, "t_ref_clock": REFRACTORY_CLOCK_MAX}.get(f.name, CAPMEM_MAX)
            if (bad := np.flatnonzero((a < 0) | (a > hi))).size:
                raise ValueError(f"NeuronCodes.{f.name}[{bad[0]}] must lie in 0..{hi}, got {a[bad[0]]}")
            if n is not None and a.size != n:
                raise ValueError(f"NeuronCodes.{f.name} has {a.size} entries, expected {n} like v_leak_code")
            n = a.size
            object.__setattr__(self, f.name, _frozen_array(a, np.int64))

    @property
    def n(self) -> int:
        return int(self.v_leak_code.shape[0])

    def replace(self, **codes) -> "NeuronCodes":
        """A copy with some fields replaced (scalars broadcast to all neurons)."""
        full = {k: np.broadcast_to(np.asarray(v, dtype=np.int64), (self.n,)) for k, v in codes.items()}
        return dataclasses.replace(self, **full)


def nominal_codes(targets: NeuronParams) -> NeuronCodes:
    """The codes an uncalibrated chip would use: the nominal transfers inverted at the targets."""
    counter, clock = refractory_codes(targets.t_ref_us)
    return NeuronCodes(potential_code(targets.v_leak_lsb), potential_code(targets.v_reset_lsb),
                       potential_code(targets.v_th_lsb), tau_code(targets.tau_mem_us), tau_code(targets.tau_syn_us),
                       counter, clock)


def _neuron_index(neurons, n_codes: int) -> np.ndarray:
    idx = np.arange(n_codes) if neurons is None else np.atleast_1d(np.asarray(neurons))
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"neurons must be a 1-d integer array, got {idx.dtype} shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_NEURONS):
        raise ValueError(f"neurons must lie in 0..{N_NEURONS - 1}, got {idx.min()}..{idx.max()}")
    if idx.size != n_codes:
        raise ValueError(f"neurons has {idx.size} entries but codes has {n_codes}")
    return idx.astype(np.int64)


def realised_params(die: Die, codes: NeuronCodes, neurons=None) -> NeuronParams:
    """What the analog core integrates with when circuits ``neurons`` (int[n], default 0..n-1) of
    ``die`` are configured with ``codes`` (n entries): the nominal transfers bent by the die."""
    idx = _neuron_index(neurons, codes.n)

    def potential(name: str) -> np.ndarray:
        t: Transfer = getattr(die, name)
        return nominal_potential_lsb(getattr(codes, f"{name}_code")) * (1.0 + t.gain_dev[idx]) + t.offset[idx]

    def tau(name: str) -> np.ndarray:
        t: Transfer = getattr(die, name)
        rate = (1.0 / nominal_tau_us(getattr(codes, f"{name}_code"))) * (1.0 + t.gain_dev[idx]) + t.offset[idx]
        return 1.0 / np.maximum(rate, _RATE_FLOOR_PER_US)

    t_ref = np.maximum(refractory_period_us(codes.t_ref_counter, codes.t_ref_clock) + die.t_ref_offset_us[idx], 0.0)
    return NeuronParams(tau("tau_mem"), tau("tau_syn"), potential("v_leak"),
                        potential("v_reset"), potential("v_th"), t_ref)


CADC_NOISE_STREAM = 1
MADC_NOISE_STREAM = 2


def noise_rng(seed: int, run_id: int, stream: int) -> np.random.Generator:
    """The generator of one kind of ADC read noise of run ``run_id``:
    ``np.random.default_rng([seed, run_id, stream])``; stream CADC_NOISE_STREAM or MADC_NOISE_STREAM."""
    return np.random.default_rng([int(seed), int(run_id), int(stream)])


def threshold_jitter(seed: int, run_id: int, n_samples: int, neurons, spec: MismatchSpec, *,
                     first_sample: int = 0) -> np.ndarray:
    """Per-sample threshold offsets of run ``run_id``, float64[n_samples, n] (LSB), of samples
    ``first_sample .. first_sample + n_samples - 1`` and circuits ``neurons`` (int[n] in 0..511).

    Each value is ``spec.threshold_jitter_lsb`` times a standard normal computed from (seed, run_id,
    sample, circuit) alone by a counter-based generator (chip/_hashed_normal.py: splitmix64 words into
    an exact ziggurat). It therefore does not depend on which other circuits are asked for, on how a
    run's samples are split into calls, or on threads, and only the values asked for are computed.
    seed, run_id: ints in [0, 2**64)."""
    for name, value in (("seed", seed), ("run_id", run_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 1 << 64:
            raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if first_sample < 0:
        raise ValueError(f"first_sample must be >= 0, got {first_sample}")
    idx = np.ascontiguousarray(np.atleast_1d(np.asarray(neurons, dtype=np.int64)))
    if idx.ndim != 1:
        raise ValueError(f"neurons must be 1-d, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_NEURONS):
        raise ValueError(f"neurons must lie in 0..{N_NEURONS - 1}, got {idx.min()}..{idx.max()}")
    out = np.empty((int(n_samples), idx.size))
    if out.size:
        hashed_normals_into(run_key(int(seed), int(run_id)), int(first_sample), idx, spec.threshold_jitter_lsb, out)
    return out
