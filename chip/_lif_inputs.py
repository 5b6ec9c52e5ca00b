"""Argument checks and preparation shared by the two LIF integrators (``_lif_event``, ``_lif_step``).

Everything here is plain numpy; the kernels only ever see the contiguous arrays built here.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from ._params import NeuronParams


class Network(NamedTuple):
    """The synapse matrix as rows of nonzero entries (CSR) plus per-neuron parameter arrays."""

    n: int
    n_in: int
    row_ptr: np.ndarray  # int64[n_in + n + 1]: entries of source row s are row_ptr[s]:row_ptr[s + 1]
    col: np.ndarray  # int32[nnz]: postsynaptic neuron
    val: np.ndarray  # float64[nnz]: jump of that neuron's I, LSB
    p: NeuronParams  # contiguous float64[n] arrays


class Inputs(NamedTuple):
    n_samples: int
    t_end_us: float
    t_us: np.ndarray  # float64[m]
    src: np.ndarray  # int32[m]
    offsets: np.ndarray  # int64[n_samples + 1]: inputs of sample s are offsets[s]:offsets[s + 1]


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _int_array(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64)


def _float_array(x, name: str, ndim: int) -> np.ndarray:
    try:
        a = np.ascontiguousarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a float array: {exc}") from None
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a.ravel()[_first_bad(~np.isfinite(a.ravel()))]}")
    return a


def positive_float(x, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be > 0 and finite, got {x!r}")
    return v


def prepare_network(w_lsb, params) -> Network:
    if not isinstance(params, NeuronParams):
        raise ValueError(f"params must be a NeuronParams, got {type(params).__name__}")
    n = params.n
    arrays = []
    for name, arr in zip(NeuronParams._fields, params):
        a = _float_array(arr, f"params.{name}", 1)
        if a.shape != (n,):
            raise ValueError(f"params.{name} must have shape ({n},), got {a.shape}")
        arrays.append(a)
    p = NeuronParams(*arrays)
    for name in ("tau_mem_us", "tau_syn_us"):
        a = getattr(p, name)
        if np.any(a <= 0):
            raise ValueError(f"params.{name} must be > 0, got {a[_first_bad(a <= 0)]}")
    if np.any(p.t_ref_us < 0):
        raise ValueError(f"params.t_ref_us must be >= 0, got {p.t_ref_us[_first_bad(p.t_ref_us < 0)]}")
    w = _float_array(w_lsb, "w_lsb", 2)
    if w.shape[1] != n or w.shape[0] < n:
        raise ValueError(f"w_lsb must have shape (n_in + {n}, {n}) with n_in >= 0, got {w.shape}")
    rows, cols = np.nonzero(w)  # row-major: each source's targets in ascending neuron order
    row_ptr = np.zeros(w.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=w.shape[0]), out=row_ptr[1:])
    return Network(n, w.shape[0] - n, row_ptr, cols.astype(np.int32), np.ascontiguousarray(w[rows, cols]), p)


def prepare_inputs(in_t_us, in_src, in_sample, n_samples, t_end_us, n_in: int) -> Inputs:
    try:
        n_samples = operator.index(n_samples)
    except TypeError:
        raise ValueError(f"n_samples must be an integer, got {n_samples!r}") from None
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    t_end = positive_float(t_end_us, "t_end_us")
    t = _float_array(in_t_us, "in_t_us", 1)
    src = _int_array(in_src, "in_src")
    smp = _int_array(in_sample, "in_sample")
    if not t.shape == src.shape == smp.shape:
        raise ValueError(f"in_t_us, in_src and in_sample must share one length, got {t.size}, {src.size}, {smp.size}")
    for name, a, hi in (("in_src", src, n_in), ("in_sample", smp, n_samples)):
        if (bad := (a < 0) | (a >= hi)).any():
            i = _first_bad(bad)
            raise ValueError(f"{name}[{i}] must be in [0, {hi}), got {a[i]}")
    if (bad := (t < 0) | (t >= t_end)).any():
        i = _first_bad(bad)
        raise ValueError(f"in_t_us[{i}] must be in [0, t_end_us={t_end}), got {t[i]}")
    if t.size > 1:
        ds, dt = np.diff(smp), np.diff(t)
        if (bad := (ds < 0) | ((ds == 0) & (dt < 0))).any():
            i = _first_bad(bad) + 1
            raise ValueError(f"in_t_us/in_sample must be sorted by (sample, t); entry {i} "
                             f"(sample {smp[i]}, t {t[i]}) comes after (sample {smp[i - 1]}, t {t[i - 1]})")
    offsets = np.searchsorted(smp, np.arange(n_samples + 1), side="left").astype(np.int64)
    return Inputs(n_samples, t_end, t, src.astype(np.int32), offsets)


def prepare_threshold_offset(v_th_offset_lsb, n_samples: int, n: int) -> tuple[np.ndarray, bool]:
    """(float64[n_samples, n] or float64[0, n], whether it is used)."""
    if v_th_offset_lsb is None:
        return np.zeros((0, n), np.float64), False
    off = _float_array(v_th_offset_lsb, "v_th_offset_lsb", 2)
    if off.shape != (n_samples, n):
        raise ValueError(f"v_th_offset_lsb must have shape ({n_samples}, {n}), got {off.shape}")
    return off, True


def prepare_probes(probe_t_us, probe_neuron, t_end_us: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    if (probe_t_us is None) != (probe_neuron is None):
        raise ValueError("probe_t_us and probe_neuron must be given together")
    if probe_t_us is None:
        return np.empty(0, np.float64), np.empty(0, np.int64)
    pt = _float_array(probe_t_us, "probe_t_us", 1)
    pn = _int_array(probe_neuron, "probe_neuron")
    if (bad := (pt < 0) | (pt >= t_end_us)).any():
        i = _first_bad(bad)
        raise ValueError(f"probe_t_us[{i}] must be in [0, t_end_us={t_end_us}), got {pt[i]}")
    if pt.size > 1 and (bad := np.diff(pt) < 0).any():
        i = _first_bad(bad) + 1
        raise ValueError(f"probe_t_us must be sorted, probe_t_us[{i}] = {pt[i]} < probe_t_us[{i - 1}] = {pt[i - 1]}")
    if (bad := (pn < 0) | (pn >= n)).any():
        i = _first_bad(bad)
        raise ValueError(f"probe_neuron[{i}] must be in [0, {n}), got {pn[i]}")
    return pt, pn
