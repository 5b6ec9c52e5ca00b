"""Slow, independent float64 twins for EventProp: an exact event-driven LIF forward (closed-form
membrane between events, ``scipy.optimize.brentq`` for threshold crossings) and a plain-python
adjoint sweep. Neither shares code with ``neurosplit.chip``; the tests use them as the
finite-difference forward and as the twin of the numba reverse sweep.

Model (hardware time t in us), identical to ``chip._params.NeuronParams``::

    tau_mem dV/dt = (v_leak - V) + I,   tau_syn dI/dt = -I,
    V >= v_th -> spike, V := v_reset, held for t_ref, then free;  I_post += w[src, post] per spike.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import brentq


class Spikes(NamedTuple):
    """Same fields as ``neurosplit.chip.SpikeRecord``; sorted by (sample, t_us, neuron)."""

    t_us: np.ndarray
    neuron: np.ndarray
    sample: np.ndarray


def _v_rel(v0, i0, s, tm, ts):
    """V - v_leak after free evolution for s us from (V0 - v_leak = v0, I = i0)."""
    if tm == ts:
        return (v0 + i0 * s / tm) * math.exp(-s / tm)
    k = ts / (tm - ts)
    return v0 * math.exp(-s / tm) + k * i0 * (math.exp(-s / tm) - math.exp(-s / ts))


def _v_peak_s(v0, i0, tm, ts):
    """Time of the interior maximum of V - v_leak (s > 0), or None if V has none."""
    if i0 <= v0:  # dV/ds(0) <= 0: no maximum after 0 (at most a minimum)
        return None
    if tm == ts:
        s = tm * (1.0 - v0 / i0)
        return s if s > 0.0 else None
    k = ts / (tm - ts)
    a, b = v0 + k * i0, -k * i0
    arg = -b * tm / (a * ts) if a != 0.0 else math.inf
    if not arg > 0.0:
        return None
    if math.isinf(arg):
        return math.inf
    s = math.log(arg) / (1.0 / ts - 1.0 / tm)
    return s if s > 0.0 else None


def _first_crossing(v0, i0, theta, length, tm, ts):
    """First s in (0, length] with V - v_leak = theta, or None. theta > v0 assumed."""
    s_hi = _v_peak_s(v0, i0, tm, ts)
    s_hi = length if s_hi is None or s_hi > length else s_hi
    if s_hi <= 0.0 or _v_rel(v0, i0, s_hi, tm, ts) < theta:
        return None
    f = lambda s: _v_rel(v0, i0, s, tm, ts) - theta  # noqa: E731
    if f(s_hi) == 0.0:
        return s_hi
    return brentq(f, 0.0, s_hi, xtol=1e-15, rtol=8.9e-16, maxiter=500)


def simulate_one(w, params, t_in, src_in, t_end):
    """One sample from rest. Returns lists (t, neuron) of its spikes in time order."""
    n = w.shape[1]
    n_in = w.shape[0] - n
    tm, ts, vl, vr, vth, tref = (np.asarray(a, float) for a in params)
    v = np.zeros(n)  # V - v_leak
    cur = np.zeros(n)
    free_at = np.full(n, -math.inf)  # refractory until this time
    t = 0.0
    order = np.argsort(t_in, kind="stable")
    t_in, src_in = np.asarray(t_in, float)[order], np.asarray(src_in)[order]
    ip = 0
    out_t, out_n = [], []
    while True:
        t_next_in = t_in[ip] if ip < len(t_in) else math.inf
        releases = free_at[free_at > t]
        t_rel = releases.min() if releases.size else math.inf
        t_stop = min(t_next_in, t_rel, t_end)
        best, best_n = math.inf, -1
        for j in range(n):
            if free_at[j] > t:
                continue
            s = _first_crossing(v[j], cur[j], vth[j] - vl[j], t_stop - t, tm[j], ts[j])
            if s is not None and t + s < best:
                best, best_n = t + s, j
        t_new = best if best_n >= 0 else t_stop
        dt = t_new - t
        for j in range(n):
            if free_at[j] <= t:
                v[j] = _v_rel(v[j], cur[j], dt, tm[j], ts[j])
            cur[j] *= math.exp(-dt / ts[j])
        t = t_new
        if best_n >= 0:
            j = best_n
            out_t.append(t)
            out_n.append(j)
            v[j] = vr[j] - vl[j]
            free_at[j] = t + tref[j]
            cur += w[n_in + j]
            continue
        if t >= t_end:
            break
        if t == t_rel:
            for j in np.flatnonzero(free_at == t):
                v[j] = vr[j] - vl[j]  # held at reset until now; free from here on
            continue
        while ip < len(t_in) and t_in[ip] == t:
            cur += w[src_in[ip]]
            ip += 1
    return out_t, out_n


def simulate(w, params, in_t_us, in_src, in_sample, n_samples, t_end_us) -> Spikes:
    """Batch forward: every sample from rest; spikes sorted by (sample, t, neuron)."""
    ts_all, ns_all, ss_all = [], [], []
    in_sample = np.asarray(in_sample)
    for s in range(n_samples):
        sel = in_sample == s
        t, nn = simulate_one(np.asarray(w, float), params, np.asarray(in_t_us)[sel],
                             np.asarray(in_src)[sel], t_end_us)
        ts_all += t
        ns_all += nn
        ss_all += [s] * len(t)
    t, nn, ss = np.array(ts_all, float), np.array(ns_all, np.int32), np.array(ss_all, np.int32)
    order = np.lexsort((nn, t, ss))
    return Spikes(t[order], nn[order], ss[order])


def synaptic_current(w, params, t_pre, src_pre, neuron, t):
    """I_neuron(t^-): direct sum over presynaptic events strictly before t (src = row of w)."""
    ts = float(params.tau_syn_us[neuron])
    total = 0.0
    for tp, sp in zip(t_pre, src_pre):
        if tp < t:
            total += w[sp, neuron] * math.exp(-(t - tp) / ts)
    return total


def adjoint(w, params, in_t_us, in_src, in_sample, spikes, dl_dt, n_samples, t_end_us,
            denom_min_lsb=0.0):
    """Plain-python reverse sweep (recurrent EventProp with refractory release events).

    Returns (grad_w float64[n_in+n, n], grad_in_t float64[m], n_grazing int)."""
    w = np.asarray(w, float)
    n = w.shape[1]
    n_in = w.shape[0] - n
    tm, ts, vl, vr, vth, tref = (np.asarray(a, float) for a in params)
    grad_w = np.zeros_like(w)
    grad_in = np.zeros(len(in_t_us))
    n_grazing = 0
    for s in range(n_samples):
        in_idx = [i for i in range(len(in_t_us)) if in_sample[i] == s]
        sp_idx = [k for k in range(len(spikes.t_us)) if spikes.sample[k] == s]
        t_pre = [in_t_us[i] for i in in_idx] + [spikes.t_us[k] for k in sp_idx]
        src_pre = [int(in_src[i]) for i in in_idx] + [n_in + int(spikes.neuron[k]) for k in sp_idx]
        # (time, kind, index): kind 0 input, 1 neuron spike, 2 release
        events = [(in_t_us[i], 0, i) for i in in_idx] + [(spikes.t_us[k], 1, k) for k in sp_idx]
        for k in sp_idx:
            j = int(spikes.neuron[k])
            if spikes.t_us[k] + tref[j] < t_end_us:
                events.append((spikes.t_us[k] + tref[j], 2, k))
        times = sorted({e[0] for e in events}, reverse=True)
        lv, li, q = np.zeros(n), np.zeros(n), np.zeros(n)
        t_cur = t_end_us
        for t in times:
            d = t_cur - t
            a = np.exp(-d / tm)
            b = np.exp(-d / ts)
            coupling = np.where(tm == ts, d / tm * b, tm / np.where(tm == ts, 1.0, tm - ts) * (a - b))
            li = li * b + lv * coupling
            lv = lv * a
            t_cur = t
            group = [e for e in events if e[0] == t]
            eps = {}
            for _, kind, idx in group:  # reads with lambda^+ of every neuron
                if kind == 0:
                    row = int(in_src[idx])
                    grad_w[row] += -ts * li
                    grad_in[idx] += float(np.dot(w[row], lv - li))
                elif kind == 1:
                    row = n_in + int(spikes.neuron[idx])
                    grad_w[row] += -ts * li
                    eps[idx] = float(np.dot(w[row], lv - li))
            for _, kind, idx in group:  # refractory releases
                if kind == 2:
                    j = int(spikes.neuron[idx])
                    i_rel = synaptic_current(w, params, t_pre, src_pre, j, t)
                    q[j] = lv[j] * (vl[j] - vr[j] + i_rel)
                    lv[j] = 0.0
            for _, kind, idx in group:  # spike jumps
                if kind == 1:
                    j = int(spikes.neuron[idx])
                    den = vl[j] - vth[j] + synaptic_current(w, params, t_pre, src_pre, j, t)
                    if den < denom_min_lsb:
                        den = denom_min_lsb
                        n_grazing += 1
                    lv[j] = (q[j] + dl_dt[idx] + eps[idx]) / den
                    q[j] = 0.0
    return grad_w, grad_in, n_grazing
