"""The closed-form propagator of one LIF neuron and its threshold-crossing search (eventprop.md §1.2).

Shared by the exact integrators ``_lif_event`` (all neurons, one event queue) and ``_lif_event_ff``
(neurons without recurrent input, one neuron at a time). Per neuron, with u = V - v_leak (LSB above
the leak) and hardware time in us::

    tau_mem du/dt = -u + I,   tau_syn dI/dt = -I,   u >= theta = v_th + offset - v_leak  ->  spike.

Between events the state evolves in closed form. With d = 1/tau_syn - 1/tau_mem::

    I(s) = I0 exp(-s/tau_syn),   u(s) = u0 exp(-s/tau_mem) + I0 g(s),
    g(s) = tau_syn/(tau_mem - tau_syn) (exp(-s/tau_mem) - exp(-s/tau_syn)),

and g is evaluated through expm1 so it stays accurate as tau_mem -> tau_syn, where it becomes the
degenerate kernel (s/tau) exp(-s/tau) (used exactly when tau_mem == tau_syn).

u has at most one critical point, at s* = tau_mem log1p(x)/e with e = tau_mem/tau_syn - 1 and
x = e (I0 - u0)/(I0 + e u0) (the peak formula of eventprop.md §1.2 rewritten so that e -> 0 is
smooth). So [0, horizon] splits into at most two monotone pieces; the first crossing sits in the
first piece whose end is at or above theta, and a safeguarded Newton iteration (Newton steps inside
a shrinking bracket, bisection when a step leaves it) finds it to ~1e-14 relative.

Both integrators must do the same floating-point operations per neuron in the same order (their
results are bit-identical): the propagation of a delivery is ``_u_at`` then ``I += w``, a spike's time
is ``max(t0 + _next_crossing(..., t_end - t0), t0 + _crossing_bound(...))`` from the state at its last
touch t0, and a release decays I by ``exp(-(t - t0) * inv_tau_syn)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_INF = np.inf

# Rows of the per-neuron constant table nc[7, n] the kernels read (see neuron_constants).
_TM, _INV_TM, _INV_TS, _INV_SLOW, _AD, _SLOW_MEM, _E = range(7)


def neuron_constants(tau_mem_us: np.ndarray, tau_syn_us: np.ndarray) -> np.ndarray:
    """float64[7, n]: the per-neuron constants of the propagator (rows _TM ... _E)."""
    tm, ts = tau_mem_us, tau_syn_us
    d = 1.0 / ts - 1.0 / tm  # exactly 0 when tau_mem == tau_syn
    return np.ascontiguousarray(np.stack([tm, 1.0 / tm, 1.0 / ts, 1.0 / np.maximum(tm, ts), np.abs(d),
                                          (tm >= ts).astype(np.float64), d * tm]))


@njit(cache=True, nogil=True)
def _decay(s, inv_tm, inv_slow, ad, slow_mem):
    """(exp(-s/tau_mem), exp(-s/tau_syn), g(s)) for s >= 0, from the slower exponential and expm1."""
    e_slow = math.exp(-s * inv_slow)
    if ad > 0.0:
        x = math.expm1(-s * ad)
        e_fast = e_slow * (1.0 + x)
        g = e_slow * (-x / ad) * inv_tm
    else:
        e_fast = e_slow
        g = e_slow * s * inv_tm
    if slow_mem:
        return e_slow, e_fast, g
    return e_fast, e_slow, g


@njit(cache=True, nogil=True)
def _u_at(s, u0, i0, nc, k):
    """(u(s), I(s)) of neuron k from (u0, i0)."""
    em, es, g = _decay(s, nc[_INV_TM, k], nc[_INV_SLOW, k], nc[_AD, k], nc[_SLOW_MEM, k] > 0.0)
    return u0 * em + i0 * g, i0 * es


@njit(cache=True, nogil=True)
def _s_critical(u0, i0, tau_m, e):
    """Time > 0 of the critical point of u(s), or -1 if there is none."""
    den = i0 + e * u0
    if den == 0.0:
        return -1.0
    if e == 0.0:
        s = tau_m * (i0 - u0) / i0
    else:
        x = e * (i0 - u0) / den
        if not x > -1.0:
            return -1.0
        s = tau_m * math.log1p(x) / e
    if s > 0.0 and s < _INF:
        return s
    return -1.0


@njit(cache=True, nogil=True)
def _root(lo, hi, f_lo, f_hi, u0, i0, theta, nc, k):
    """s in [lo, hi] with u(s) = theta, for u increasing on the bracket, f_lo < 0 <= f_hi."""
    inv_tm = nc[_INV_TM, k]
    x = lo + (hi - lo) * (-f_lo / (f_hi - f_lo))  # regula falsi start
    if not (x > lo and x < hi):
        x = 0.5 * (lo + hi)
    dx_old = hi - lo
    dx = dx_old
    u, i = _u_at(x, u0, i0, nc, k)
    f = u - theta
    df = (i - u) * inv_tm
    for _ in range(200):
        if ((x - hi) * df - f) * ((x - lo) * df - f) > 0.0 or abs(2.0 * f) > abs(dx_old * df):
            dx_old = dx
            dx = 0.5 * (hi - lo)  # Newton would leave the bracket or converge too slowly: bisect
            x = lo + dx
        else:
            dx_old = dx
            dx = f / df
            x -= dx
        if abs(dx) < 1e-14 * (1.0 + x):
            return x
        u, i = _u_at(x, u0, i0, nc, k)
        f = u - theta
        df = (i - u) * inv_tm
        if f < 0.0:
            lo = x
        elif f > 0.0:
            hi = x
        else:
            return x
    return x


@njit(cache=True, nogil=True)
def _next_crossing(u0, i0, theta, horizon, nc, k):
    """Time s in [0, horizon] of neuron k's first crossing u(s) = theta from (u0, i0), or inf."""
    if u0 >= theta:
        return 0.0
    # Crossing upwards needs I(s) >= u(s) = theta there, and I(s) < max(i0, 0) for s > 0.
    if i0 <= theta and theta >= 0.0:
        return _INF
    if not horizon > 0.0:
        return _INF
    sc = _s_critical(u0, i0, nc[_TM, k], nc[_E, k])
    s_end = sc if (sc > 0.0 and sc < horizon) else horizon
    f_end = _u_at(s_end, u0, i0, nc, k)[0] - theta
    if f_end >= 0.0:
        return _root(0.0, s_end, u0 - theta, f_end, u0, i0, theta, nc, k)
    if s_end < horizon:  # after a minimum u may rise again (only reaches theta if theta < 0)
        f_h = _u_at(horizon, u0, i0, nc, k)[0] - theta
        if f_h >= 0.0:
            return _root(s_end, horizon, f_end, f_h, u0, i0, theta, nc, k)
    return _INF


@njit(cache=True, nogil=True)
def _crossing_bound(u0, i0, theta, tau_m):
    """A lower bound on the first crossing time from (u0, i0): inf if there is none, 0 if u0 >= theta.

    I(s) <= i_max = max(i0, 0), so u(s) <= i_max + (u0 - i_max) exp(-s/tau_m) <= u0 + (i_max - u0) s/tau_m.
    """
    if u0 >= theta:
        return 0.0
    i_max = i0 if i0 > 0.0 else 0.0
    if i_max <= theta:
        return _INF
    return tau_m * (theta - u0) / (i_max - u0)


_BELOW_MARGIN = 1e-9  # relative: far above the rounding of u (~1e-15), far below any threshold distance that matters


@njit(cache=True, nogil=True)
def _stays_below(u0, i0, theta, h, nc, k):
    """Whether u stays clearly below theta on [0, h] from (u0, i0): then there is no crossing before h.

    Exact up to a margin of 1e-9 (1 + |theta|): near the threshold it answers False and the caller does
    the full search. The maximum of u on [0, h] is at an end or at the one critical point.
    """
    limit = theta - _BELOW_MARGIN * (1.0 + abs(theta))
    if not u0 < limit:
        return False
    if i0 <= theta and theta >= 0.0:
        return True
    if not _u_at(h, u0, i0, nc, k)[0] < limit:
        return False
    sc = _s_critical(u0, i0, nc[_TM, k], nc[_E, k])
    if sc > 0.0 and sc < h:
        return _u_at(sc, u0, i0, nc, k)[0] < limit
    return True
