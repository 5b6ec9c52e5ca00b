"""calix-like neuron calibration through the emulated observables.

For each CapMem-set parameter a vectorised binary search over integer codes finds, for every
neuron at once, the code whose *measured* value is nearest the target (calix's BinarySearch,
ending with a choice between the last two candidates). Each measurement is one batched
``simulate_events`` run of all neurons being calibrated, read through the noisy, clipped ADCs of
the die (chip/_adc.py), as on the chip:

  leak       CADC reads of the resting membrane (no input, threshold out of reach), averaged.
  tau_mem    MADC trace of the decay after a short burst through a synapse row, with the
             synaptic time constant set as short as possible: log-linear fit of the tail.
  tau_syn    the same with the membrane set as fast as possible, so V follows I: fit of the tail.
  reset      leak far above threshold (calix's offset current) and a long refractory time: the
             neuron fires at once and is clamped at reset; CADC reads inside the refractory
             windows (picked with the timestamped spikes) are averaged.
  threshold  leak above threshold, short refractory time: regular firing; the largest CADC read
             per run lies just below threshold (calix ThresholdCalibCADC), averaged over runs.
  t_ref      digital: counter and clock are computed, as calix does (no measurement).

What remains (the realistic residual): the CADC channel offsets (calibration aims the reading,
not the true potential), read noise, threshold jitter, CapMem code steps and fit error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..protocol import TICKS_PER_US, ChipLimitError
from ._adc import CADC_PERIOD_TICKS, MADC_MAX, cadc_read, cadc_sample_ticks, madc_read, madc_sample_ticks
from ._mismatch import (CAPMEM_MAX, Die, NeuronCodes, nominal_codes, nominal_tau_us, potential_code,
                        realised_params, refractory_codes, tau_code)
from ._params import N_NEURONS, NeuronParams, uniform_params
from ._synapses import CURRENT_LSB_PER_CODE, SynapseArray, effective_weights

__all__ = ["CalibSettings", "ParamResidual", "CalibrationResult", "calibrate", "residuals", "clear_calibration_cache"]

_PARAMS = NeuronParams._fields
_STREAM = 0xCA11B  # calibration noise: default_rng([seed, _STREAM, param, step, kind])
_KICK_LABEL = 1
_BURST = 64  # events in the tau_mem burst (0.5 us at one per tick)


@dataclass(frozen=True)
class CalibSettings:
    """Knobs of the calibration runs (defaults are what the tests and benchmarks use).

    potential_window_codes: a potential's search spans nominal code +- this (0.417 LSB per code).
    tau_window: a time constant's search spans target / tau_window .. target * tau_window.
    leak_reads: CADC reads per run for the leak; runs: batch entries per CADC measurement.
    threshold_time_us: length of each threshold run (regular firing, CADC every 2 us).
    kick_lsb: nominal membrane excursion of the tau_mem burst.
    madc_period_ticks: MADC sampling period for the tau fits (16 ticks = 7.8 MS/s: a quarter of the
    full rate; the fit error stays far below the CapMem step).
    """

    potential_window_codes: int = 128
    tau_window: float = 3.0
    leak_reads: int = 8
    runs: int = 4
    threshold_time_us: float = 100.0
    kick_lsb: float = 60.0
    madc_period_ticks: int = 16


@dataclass(frozen=True)
class ParamResidual:
    """Deviation of realised from target over the neurons: absolute (LSB, us) for potentials and
    t_ref, relative (realised / target - 1) for tau_mem and tau_syn."""

    mean: float
    std: float
    max_abs: float


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """neurons int64[n]: calibrated circuits; targets: what was asked; codes: what was found;
    params: what the core integrates with (realised on the die); measured: the observables at the
    chosen codes (CADC LSB for potentials, fitted us for taus); residual / uncalibrated: per
    parameter, realised - target with the found codes / with the nominal codes; at_limit: per
    parameter, how many neurons ended on the edge of their search window."""

    chip_seed: int
    neurons: np.ndarray
    targets: NeuronParams
    codes: NeuronCodes
    params: NeuronParams
    measured: NeuronParams
    residual: dict
    uncalibrated: dict
    at_limit: dict

    def summary(self) -> dict:
        """Plain-JSON digest for reports: per parameter the residual and uncalibrated spread."""
        return {"chip_seed": self.chip_seed, "n_neurons": int(self.neurons.size),
                "residual": {k: dataclasses.asdict(v) for k, v in self.residual.items()},
                "uncalibrated": {k: dataclasses.asdict(v) for k, v in self.uncalibrated.items()},
                "at_limit": dict(self.at_limit)}


def residuals(params: NeuronParams, targets: NeuronParams) -> dict[str, ParamResidual]:
    """ParamResidual per parameter name of ``params`` against ``targets``."""
    out = {}
    for name in _PARAMS:
        p, t = getattr(params, name), getattr(targets, name)
        d = p / t - 1.0 if name in ("tau_mem_us", "tau_syn_us") else p - t
        out[name] = ParamResidual(float(d.mean()), float(d.std()), float(np.abs(d).max())) if d.size else \
            ParamResidual(0.0, 0.0, 0.0)
    return out


class _Bench:
    """The measurement setup of one calibration: die, neurons, stimulus row, simulator."""

    def __init__(self, die: Die, neurons: np.ndarray, targets: NeuronParams, settings: CalibSettings,
                 simulate: Callable, seed: int):
        self.die, self.idx, self.targets, self.s, self.simulate = die, neurons, targets, settings, simulate
        self.seed = seed
        self.n = neurons.size
        fast = float(nominal_tau_us(CAPMEM_MAX))
        # per-column burst codes: about kick_lsb of excursion for each neuron's own tau_mem target
        burst = np.clip(np.rint(settings.kick_lsb * targets.tau_mem_us / (CURRENT_LSB_PER_CODE * fast * _BURST)), 1, 63)
        self.w_burst = self._stimulus(burst)
        self.w_single = self._stimulus(np.full(self.n, 63.0))

    def _stimulus(self, code: np.ndarray) -> np.ndarray:
        """w_lsb of one excitatory calibration row with ``code`` per column, through the die's gains."""
        array = SynapseArray.empty()
        weight, label, sign = array.weight.copy(), array.row_label.copy(), array.row_sign.copy()
        weight[0, self.idx], label[0], sign[0] = code.astype(np.uint8), _KICK_LABEL, 1
        return effective_weights(SynapseArray(weight, label, sign), self.die.synapse_gain, [_KICK_LABEL], self.idx)

    def rng(self, param: int, step: int, kind: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _STREAM, param, step, kind])

    def run(self, codes: NeuronCodes, param: int, step: int, runs: int, in_t_us, t_end_us: float, probe_t_us,
            w_lsb: np.ndarray | None = None):
        """One batched simulation of all neurons (``runs`` identical batch entries with their own
        threshold jitter); calibration input events at in_t_us through w_lsb. Returns EventResult."""
        params = realised_params(self.die, codes, self.idx)
        jitter = self.die.spec.threshold_jitter_lsb * self.rng(param, step, 2).standard_normal((runs, N_NEURONS))
        in_t = np.tile(np.asarray(in_t_us, np.float64), runs)
        m = len(in_t_us)
        res = self.simulate(self.w_single if w_lsb is None else w_lsb, params, in_t, np.zeros(in_t.size, np.int64),
                            np.repeat(np.arange(runs), m), runs, t_end_us,
                            v_th_offset_lsb=np.ascontiguousarray(jitter[:, self.idx]),
                            probe_t_us=probe_t_us, probe_neuron=np.arange(self.n))
        return res

    def cadc(self, v_lsb: np.ndarray, param: int, step: int) -> np.ndarray:
        """CADC reads (float64) of probes float64[runs, p, n]; noise drawn for all 512 channels."""
        full = np.zeros(v_lsb.shape[:-1] + (N_NEURONS,))
        full[..., self.idx] = v_lsb
        codes = cadc_read(full, self.die.cadc_offset_lsb, self.rng(param, step, 1), noise_lsb=self.die.spec.cadc_noise_lsb)
        return codes[..., self.idx].astype(np.float64)

    def madc(self, v_lsb: np.ndarray, param: int, step: int) -> np.ndarray:
        """MADC codes (float64) of traces float64[p, n], each neuron recorded in its own run. The
        noise comes in blocks of 256 samples x 512 channels, so a read's draw depends neither on
        the record length nor on the other neurons."""
        p = v_lsb.shape[0]
        full = np.zeros((p, N_NEURONS))
        full[:, self.idx] = v_lsb
        z = np.concatenate([self.rng(param, step, 100 + k).standard_normal((256, N_NEURONS))
                            for k in range(-(-p // 256))])[:p]
        codes = madc_read(full, None, gain_codes_per_lsb=self.die.madc_gain_codes_per_lsb,
                          offset_codes=self.die.madc_offset_codes, noise_codes=self.die.spec.madc_noise_codes,
                          normals=z)
        return codes[..., self.idx].astype(np.float64)


def _cadc_times_us(t_start_us: float, t_end_us: float) -> np.ndarray:
    ticks = cadc_sample_ticks(int(round(t_end_us * TICKS_PER_US)), t_start_ticks=int(round(t_start_us * TICKS_PER_US)))
    return ticks / TICKS_PER_US


# --- measurements: each returns the observed value per neuron, float64[n] -------------------------

def _measure_leak(b: _Bench, codes: NeuronCodes, step: int) -> np.ndarray:
    codes = codes.replace(v_th_code=CAPMEM_MAX)  # threshold out of reach: V rests at the leak
    probe = _cadc_times_us(1.0, 1.0 + b.s.leak_reads * CADC_PERIOD_TICKS / TICKS_PER_US)
    res = b.run(codes, 0, step, b.s.runs, [], probe[-1] + 0.5, probe)
    return b.cadc(res.v_probe_lsb, 0, step).mean(axis=(0, 1))


def _fit_decay_tau(t_us: np.ndarray, y: np.ndarray, base_mask: np.ndarray, fit_start_us: float,
                   fit_len_us: np.ndarray, noise: float) -> np.ndarray:
    """Time constant (us) of the exponential decay of traces y float64[p, n] towards their
    baseline (mean of rows base_mask), fitted on [fit_start, fit_start + fit_len[j]] by weighted
    log-linear least squares over unclipped points more than 4 noise above baseline.

    Two passes: the second weights (var(log u) ~ noise^2 / u^2) and selects points by the first
    pass's curve instead of the noisy trace, so neither the weights nor the cut at the noise floor
    favour upward noise (which would lengthen the fitted tau). 0 where too few points (a decay too
    fast to see), inf where nothing decays.
    """
    u = y - y[base_mask].mean(axis=0)
    dt = t_us[:, None] - fit_start_us
    window = (dt >= 0) & (dt <= fit_len_us[None, :]) & (y < MADC_MAX)
    floor = 4.0 * max(noise, 1.0)
    ok = window & (u > floor)
    curve = u
    for _ in range(2):
        w = np.where(ok, curve * curve, 0.0)
        lu = np.log(np.where(ok, np.maximum(u, 1e-300), 1.0))
        s, sx, sy = w.sum(0), (w * dt).sum(0), (w * lu).sum(0)
        sxx, sxy = (w * dt * dt).sum(0), (w * dt * lu).sum(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            slope = (s * sxy - sx * sy) / (s * sxx - sx * sx)
            icept = (sy - slope * sx) / s
            enough = ok.sum(0) >= 3
            curve = np.exp(icept + slope * dt)
        ok = window & enough & (curve > floor) & (u > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(slope < 0, -1.0 / slope, np.inf)
    return np.where(enough & (ok.sum(0) >= 3), tau, 0.0)


def _measure_tau(b: _Bench, codes: NeuronCodes, step: int, which: str) -> np.ndarray:
    param = 1 if which == "tau_mem" else 2
    t_kick, skip = 5.0, 4.0  # fit from 4 us after the stimulus: the fast other time constant is gone
    target = b.targets.tau_mem_us if which == "tau_mem" else b.targets.tau_syn_us
    if which == "tau_mem":  # a burst through a fast synapse: V jumps, then decays with tau_mem
        codes, w, n_kick = codes.replace(tau_syn_code=CAPMEM_MAX, v_th_code=CAPMEM_MAX), b.w_burst, _BURST
    else:  # one full-code event with a fast membrane: V follows I (~76 LSB) as it decays with tau_syn
        codes, w, n_kick = codes.replace(tau_mem_code=CAPMEM_MAX, v_th_code=CAPMEM_MAX), b.w_single, 1
    kick = t_kick + np.arange(n_kick) / TICKS_PER_US  # one event per tick, as a synapse driver accepts
    fit_len = 2.0 * target  # the tail stays well above the 4-sigma cut, which would bias the fit
    t_end = kick[-1] + skip + fit_len.max() + 0.1
    probe = madc_sample_ticks(int(TICKS_PER_US), int(t_end * TICKS_PER_US), period_ticks=b.s.madc_period_ticks) / TICKS_PER_US
    res = b.run(codes, param, step, 1, kick, t_end + 0.1, probe, w)
    y = b.madc(res.v_probe_lsb[0], param, step)
    return _fit_decay_tau(probe, y, probe < t_kick - 0.1, kick[-1] + skip, fit_len, b.die.spec.madc_noise_codes)


def _measure_reset(b: _Bench, codes: NeuronCodes, step: int) -> np.ndarray:
    counter, clock = 200, 4  # 25.6 us clamped at reset per spike
    t_ref = counter * 2 ** (clock + 1) / 250.0
    th = b.targets.v_reset_lsb + 50.0
    codes = codes.replace(v_th_code=potential_code(th), v_leak_code=potential_code(th + 100.0),
                          t_ref_counter=counter, t_ref_clock=clock)
    probe = _cadc_times_us(1.0, 3 * t_ref)
    res = b.run(codes, 3, step, b.s.runs, [], 3 * t_ref, probe)
    reads = b.cadc(res.v_probe_lsb, 3, step)
    inside = _in_windows(res.spikes, probe, b.s.runs, b.n, 0.3, t_ref - 0.5)
    with np.errstate(invalid="ignore"):
        return np.where(inside, reads, 0.0).sum(axis=(0, 1)) / inside.sum(axis=(0, 1))


def _in_windows(spikes, probe: np.ndarray, runs: int, n: int, after: float, before: float) -> np.ndarray:
    """bool[runs, p, n]: probe i of (run, neuron) lies in [t_s + after, t_s + before] of a spike."""
    inside = np.zeros((runs, probe.size, n), bool)
    lo = np.searchsorted(probe, spikes.t_us + after, "left")
    hi = np.searchsorted(probe, spikes.t_us + before, "right")
    count = np.maximum(hi - lo, 0)
    first = np.cumsum(count) - count
    k = np.arange(count.sum()) - np.repeat(first, count) + np.repeat(lo, count)
    inside[np.repeat(spikes.sample, count), k, np.repeat(spikes.neuron, count)] = True
    return inside


def _measure_threshold(b: _Bench, codes: NeuronCodes, step: int) -> np.ndarray:
    # leak 60 LSB above the target threshold stands for calix's offset current: regular firing
    codes = codes.replace(v_leak_code=potential_code(b.targets.v_th_lsb + 60.0), t_ref_counter=125, t_ref_clock=0)
    probe = _cadc_times_us(1.0, 1.0 + b.s.threshold_time_us)
    res = b.run(codes, 4, step, b.s.runs, [], probe[-1] + 0.5, probe)
    return b.cadc(res.v_probe_lsb, 4, step).max(axis=1).mean(axis=0)


# --- search -----------------------------------------------------------------------------------------

def _search(measure: Callable, target: np.ndarray, lo: np.ndarray, hi: np.ndarray, increasing: bool):
    """Vectorised binary search for the code in [lo, hi] whose measurement is nearest target.
    Returns (code int64[n], measured float64[n], at_limit bool[n])."""
    lo, hi, lo0, hi0 = lo.copy(), hi.copy(), lo.copy(), hi.copy()
    step = 0
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        m = measure(mid, step)
        step += 1
        up = (m < target) if increasing else (m > target)  # NaN (nothing measured) goes down
        active = lo < hi
        lo = np.where(active & up, mid + 1, lo)
        hi = np.where(active & ~up, mid, hi)
    # lo is the first code past the target: the nearer of lo - 1 and lo wins
    below = np.maximum(lo - 1, lo0)
    m_lo, m_below = measure(lo, step), measure(below, step + 1)
    pick = np.abs(m_below - target) < np.abs(m_lo - target)
    code, m = np.where(pick, below, lo), np.where(pick, m_below, m_lo)
    return code, m, (code == lo0) | (code == hi0)


def _potential_window(target: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    c = potential_code(target)
    return np.clip(c - half, 0, CAPMEM_MAX), np.clip(c + half - 1, 0, CAPMEM_MAX)


def _targets(targets, neurons) -> tuple[NeuronParams, np.ndarray]:
    if isinstance(targets, dict):
        idx = np.arange(N_NEURONS) if neurons is None else np.atleast_1d(np.asarray(neurons))
        targets = uniform_params(idx.size, **targets)
    elif isinstance(targets, NeuronParams):
        targets = NeuronParams(*(np.ascontiguousarray(a, dtype=np.float64) for a in targets))
        idx = np.arange(targets.n) if neurons is None else np.atleast_1d(np.asarray(neurons))
    else:
        raise TypeError(f"targets must be NeuronParams or a dict of its fields, got {type(targets).__name__}")
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"neurons must be a 1-d integer array, got {idx.dtype} shape {idx.shape}")
    if idx.size != targets.n:
        raise ValueError(f"neurons has {idx.size} entries but targets has {targets.n}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_NEURONS):
        raise ChipLimitError(f"neuron circuits must lie in 0..{N_NEURONS - 1}, got {idx.min()}..{idx.max()}")
    if np.unique(idx).size != idx.size:
        raise ValueError("neurons must not repeat a circuit")
    for name in ("v_leak_lsb", "v_reset_lsb", "v_th_lsb"):
        v = getattr(targets, name)
        if v.size and not (np.all(v >= 10.0) and np.all(v <= 245.0)):
            raise ChipLimitError(f"{name} targets must lie in 10..245 LSB (the CADC's range), got {v.min():g}..{v.max():g}")
    for name in ("tau_mem_us", "tau_syn_us"):
        v = getattr(targets, name)
        if v.size and not (np.all(v >= 1.0) and np.all(v <= 200.0)):
            raise ChipLimitError(f"{name} targets must lie in 1..200 us, got {v.min():g}..{v.max():g}")
    return targets, idx.astype(np.int64)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 32


def clear_calibration_cache() -> None:
    """Forget every cached calibration result."""
    _CACHE.clear()


def _key(die: Die, targets: NeuronParams, idx: np.ndarray, settings: CalibSettings, seed: int) -> tuple:
    h = hashlib.sha256(idx.tobytes())
    for a in targets:
        h.update(a.tobytes())
    return die.chip_seed, die.spec, settings, seed, h.hexdigest()


def calibrate(die: Die, targets, neurons=None, *, seed: int | None = None,
              settings: CalibSettings = CalibSettings(), simulate: Callable | None = None) -> CalibrationResult:
    """Calibrate neuron circuits ``neurons`` (int[n]; default: all targets' / all 512) of ``die``
    towards ``targets`` (NeuronParams of n, or a dict like GENERIC_TARGETS for all of them).

    seed: of the measurement noise (ADC reads, threshold jitter); default the die's chip seed.
    Deterministic given (die, targets, neurons, seed, settings); a neuron's result does not depend
    on which other neurons are calibrated with it. Results made with the default simulator are
    cached in memory by (chip seed, spec, settings, seed, hash of targets and neurons).
    ``simulate`` replaces ``simulate_events`` (same signature), e.g. with a reference twin.
    """
    targets, idx = _targets(targets, neurons)
    seed = die.chip_seed if seed is None else int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    key = _key(die, targets, idx, settings, seed) if simulate is None else None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if simulate is None:
        from ._lif_event import simulate_events as simulate
    b = _Bench(die, idx, targets, settings, simulate, seed)
    start = nominal_codes(targets)
    counter, clock = refractory_codes(targets.t_ref_us)
    codes = start.replace(t_ref_counter=counter, t_ref_clock=clock)
    measured, at_limit = {}, {}
    half = settings.potential_window_codes

    def run_search(name: str, field: str, fn, target, lo, hi, increasing):
        nonlocal codes
        code, m, edge = _search(lambda c, step: fn(b, codes.replace(**{field: c}), step), target, lo, hi, increasing)
        codes = codes.replace(**{field: code})
        measured[name], at_limit[name] = m, int(edge.sum())

    run_search("v_leak_lsb", "v_leak_code", _measure_leak, targets.v_leak_lsb,
               *_potential_window(targets.v_leak_lsb, half), True)
    for which in ("tau_mem", "tau_syn"):
        t = getattr(targets, f"{which}_us")
        lo, hi = tau_code(t * settings.tau_window), tau_code(t / settings.tau_window)
        run_search(f"{which}_us", f"{which}_code", lambda bb, c, s, w=which: _measure_tau(bb, c, s, w), t, lo, hi, False)
    run_search("v_reset_lsb", "v_reset_code", _measure_reset, targets.v_reset_lsb,
               *_potential_window(targets.v_reset_lsb, half), True)
    run_search("v_th_lsb", "v_th_code", _measure_threshold, targets.v_th_lsb,
               *_potential_window(targets.v_th_lsb, half), True)
    params = realised_params(die, codes, idx)
    measured["t_ref_us"] = np.asarray(counter * 2.0 ** (clock + 1) / 250.0, np.float64)
    at_limit["t_ref_us"] = 0
    result = CalibrationResult(
        chip_seed=die.chip_seed, neurons=idx, targets=targets, codes=codes, params=params,
        measured=NeuronParams(*(np.asarray(measured[f], np.float64) for f in _PARAMS)),
        residual=residuals(params, targets),
        uncalibrated=residuals(realised_params(die, start, idx), targets), at_limit=at_limit)
    if key is not None:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result
