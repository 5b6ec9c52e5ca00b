"""Optimiser steps shared by the plasticity processor and the host: pure functions on numpy arrays."""

from __future__ import annotations

import math

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["AdamState", "adam_init", "adam_step", "to_fixed_point"]


class AdamState(NamedTuple):
    m: np.ndarray  # float64, first-moment estimate, shape of the parameter
    v: np.ndarray  # float64, second-moment estimate, shape of the parameter
    step: int  # steps taken so far


def adam_init(shape) -> AdamState:
    """Zero moments for a parameter of ``shape``."""
    return AdamState(np.zeros(shape), np.zeros(shape), 0)


def adam_step(w, grad, state: AdamState, *, lr: float, beta1: float = 0.9, beta2: float = 0.999,
              eps: float = 1e-8) -> tuple[np.ndarray, AdamState]:
    """One Adam step (Kingma & Ba, bias-corrected): returns (new w, new state); inputs are not modified.

    w, grad: float64 arrays of one shape; lr > 0 in units of w per step."""
    w = np.asarray(w, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != w.shape or state.m.shape != w.shape:
        raise ValueError(f"grad and state must have the shape of w {w.shape}, got {grad.shape}, "
                         f"{state.m.shape}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError(f"beta1 and beta2 must lie in [0, 1), got {beta1}, {beta2}")
    step = state.step + 1
    m_old = np.ascontiguousarray(state.m, dtype=np.float64)
    v_old = np.ascontiguousarray(state.v, dtype=np.float64)
    w_new, m, v = np.empty_like(w), np.empty_like(w), np.empty_like(w)
    _adam_kernel(np.ascontiguousarray(w).ravel(), np.ascontiguousarray(grad).ravel(), m_old.ravel(), v_old.ravel(),
                 float(lr), float(beta1), float(beta2), float(eps), 1.0 - beta1**step, 1.0 - beta2**step,
                 w_new.ravel(), m.ravel(), v.ravel())
    return w_new, AdamState(m, v, step)


@njit(cache=True, nogil=True, error_model="numpy")
def _adam_kernel(w, g, m_old, v_old, lr, beta1, beta2, eps, bias1, bias2, w_new, m, v):
    """One fused pass of the Adam update; per element the operations of the numpy expression
    ``w - lr * (m / bias1) / (sqrt(v / bias2) + eps)`` in numpy's order, so the bits are numpy's."""
    c1, c2 = 1.0 - beta1, 1.0 - beta2
    for i in range(w.shape[0]):
        mi = beta1 * m_old[i] + c1 * g[i]
        vi = beta2 * v_old[i] + c2 * g[i] * g[i]
        m[i], v[i] = mi, vi
        w_new[i] = w[i] - lr * (mi / bias1) / (math.sqrt(vi / bias2) + eps)


def to_fixed_point(x, *, frac_bits: int, total_bits: int) -> np.ndarray:
    """Round to the nearest value of a signed two's-complement fixed-point format, saturating.

    The grid is k / 2**frac_bits for integer k in [-2**(total_bits-1), 2**(total_bits-1) - 1]. Halves
    round up (towards +inf: add half an LSB, then truncate, as a fixed-point unit does). NaN raises.
    Returns float64 values on the grid, shape of x."""
    if not 1 <= total_bits <= 53:
        raise ValueError(f"total_bits must lie in [1, 53], got {total_bits}")
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("x must not contain NaN")
    scale = 2.0 ** frac_bits
    lo, hi = -(2.0 ** (total_bits - 1)), 2.0 ** (total_bits - 1) - 1.0
    k = np.floor(np.clip(x * scale, lo - 1.0, hi + 1.0) + 0.5)
    return np.clip(k, lo, hi) / scale
