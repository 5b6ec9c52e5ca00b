"""Slow, independent float64 twins of ``chip._lif_event.simulate_events`` and ``chip._lif_step.simulate_steps``.

Shares no code with ``neurosplit.chip``. Model (hardware time t in us)::

    tau_mem dV/dt = (v_leak - V) + I,   tau_syn dI/dt = -I,
    V >= v_th (+ offset) -> spike, V := v_reset, held for t_ref, then free;  I_post += w[src, post] per spike.

Event twin: every neuron is advanced together to each event time with the textbook closed form in
absolute V (A e^{-s/tau_m} + B e^{-s/tau_s}, or the degenerate (a + b s) e^{-s/tau} for tau_m == tau_s).
The critical point of V is found by brentq on dV/dt (not by a peak formula), each monotone piece is
searched for the threshold by brentq, and the search is redone after every event (re-scan after
resets). Events at equal times: spikes/releases (lowest neuron first), then inputs, then probes.

Step twin: numpy over neurons, a python loop over grid points, the order of operations documented
in ``chip._lif_step``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

_EPS_T = 1e-15


def _u(v0, i0, s, tm, ts, vl):
    """V - v_leak after s us of free evolution from (v0, i0); kept apart from v_leak so that dV/dt far
    from the last event (u ~ 1e-17) does not round to 0 and hide the critical point."""
    if tm == ts:
        return (v0 - vl + i0 * s / tm) * math.exp(-s / tm)
    k = ts / (tm - ts)
    a = v0 - vl + k * i0
    return a * math.exp(-s / tm) - k * i0 * math.exp(-s / ts)


def _voltage(v0, i0, s, tm, ts, vl):
    """V after s us of free evolution from (v0, i0)."""
    return vl + _u(v0, i0, s, tm, ts, vl)


def _dvdt(v0, i0, s, tm, ts, vl):
    return (i0 * math.exp(-s / ts) - _u(v0, i0, s, tm, ts, vl)) / tm


def _first_crossing(v0, i0, th, horizon, tm, ts, vl):
    """First s in [0, horizon] with V(s) = th, or None."""
    if v0 >= th:
        return 0.0
    if horizon <= 0:
        return None
    cuts = [0.0]
    d0, d1 = _dvdt(v0, i0, 0.0, tm, ts, vl), _dvdt(v0, i0, horizon, tm, ts, vl)
    if d0 * d1 < 0:  # one sign change of dV/dt: the critical point
        cuts.append(brentq(lambda s: _dvdt(v0, i0, s, tm, ts, vl), 0.0, horizon, xtol=1e-15, rtol=1e-15))
    cuts.append(horizon)
    f = lambda s: _voltage(v0, i0, s, tm, ts, vl) - th  # noqa: E731
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        if f(hi) >= 0:
            if f(lo) >= 0:
                return lo
            return brentq(f, lo, hi, xtol=1e-15, rtol=1e-15)
    return None


def simulate_events_naive(w, params, in_t, in_src, in_sample, n_samples, t_end, v_th_offset=None,
                          probe_t=(), probe_neuron=()):
    """Returns (spikes as a list of (sample, t, neuron) in event order, v_probe float64[n_samples, p, q])."""
    w = np.asarray(w, float)
    tm_a, ts_a, vl_a, vr_a, vth_a, tref_a = (np.asarray(x, float) for x in params)
    n = tm_a.size
    n_in = w.shape[0] - n
    spikes = []
    v_probe = np.full((n_samples, len(probe_t), len(probe_neuron)), np.nan)
    for smp in range(n_samples):
        th = vth_a + (0.0 if v_th_offset is None else np.asarray(v_th_offset, float)[smp])
        inputs = [(float(t), int(s)) for t, s, m in zip(in_t, in_src, in_sample) if m == smp]
        v = [float(x) for x in vl_a]
        i = [0.0] * n
        ref_end = [None] * n  # release time while refractory
        now = 0.0
        ii = pi = 0
        while True:
            # Candidate neuron events: releases, and threshold crossings of free neurons.
            best = (math.inf, -1, "")
            for j in range(n):
                if ref_end[j] is not None:
                    cand = (ref_end[j], j, "release")
                else:
                    s = _first_crossing(v[j], i[j], th[j], t_end - now, tm_a[j], ts_a[j], vl_a[j])
                    cand = (now + s, j, "spike") if s is not None else (math.inf, j, "")
                if cand[0] < best[0] or (cand[0] == best[0] and cand[1] < best[1]):
                    best = cand
            t_nr = best[0] if best[0] < t_end else math.inf
            t_in = inputs[ii][0] if ii < len(inputs) else math.inf
            t_pr = probe_t[pi] if pi < len(probe_t) else math.inf
            t_next = min(t_nr, t_in, t_pr)
            if t_next == math.inf:
                break
            for j in range(n):  # advance everybody to t_next
                s = t_next - now
                if ref_end[j] is None:
                    v[j] = _voltage(v[j], i[j], s, tm_a[j], ts_a[j], vl_a[j])
                i[j] *= math.exp(-s / ts_a[j])
            now = t_next
            if t_nr == t_next:
                j = best[1]
                if best[2] == "release":
                    ref_end[j] = None
                    v[j] = vr_a[j]
                    continue
                spikes.append((smp, now, j))
                v[j] = vr_a[j]
                if tref_a[j] > 0:
                    ref_end[j] = now + tref_a[j]
                for k in range(n):
                    i[k] += w[n_in + j, k]
            elif t_in == t_next:
                for k in range(n):
                    i[k] += w[inputs[ii][1], k]
                ii += 1
            else:
                for q, k in enumerate(probe_neuron):
                    v_probe[smp, pi, q] = vr_a[k] if ref_end[k] is not None else v[k]
                pi += 1
    return spikes, v_probe


def simulate_steps_naive(w, params, in_t, in_src, in_sample, n_samples, t_end, dt, v_th_offset=None,
                         with_pre=False):
    """Returns (spikes as a list of (sample, t, neuron), V float64[n_samples, n_steps + 1, n], I same),
    and with_pre also V float64[n_samples, n_steps, n] before each grid point's threshold check."""
    w = np.asarray(w, float)
    tm, ts, vl, vr, vth, tref = (np.asarray(x, float) for x in params)
    n = tm.size
    n_in = w.shape[0] - n
    n_steps = math.ceil(t_end / dt - 1e-9)
    alpha, beta = np.exp(-dt / tm), np.exp(-dt / ts)
    same = tm == ts
    gamma = np.where(same, dt / tm * alpha, ts / np.where(same, 1.0, tm - ts) * (alpha - beta))
    n_ref = np.array([max(math.ceil(x / dt - 1e-9), 0) for x in tref])
    spikes = []
    vs = np.zeros((n_samples, n_steps + 1, n))
    cs = np.zeros_like(vs)
    vpre = np.zeros((n_samples, n_steps, n))
    for smp in range(n_samples):
        th = vth + (0.0 if v_th_offset is None else np.asarray(v_th_offset, float)[smp])
        bins = {}
        for t, s, m in zip(in_t, in_src, in_sample):
            if m == smp:
                bins.setdefault(max(math.ceil(t / dt - 1e-9), 0), []).append(s)
        v, c, hold = vl.copy(), np.zeros(n), np.zeros(n, int)
        for k in range(n_steps + 1):
            if k > 0:
                free = hold == 0
                v = np.where(free, vl + alpha * (v - vl) + gamma * c, v)
                hold = np.where(free, hold, hold - 1)
                c = beta * c
            fired = np.zeros(n, bool)
            if k < n_steps:
                vpre[smp, k] = v
                fired = (hold == 0) & (v >= th)
                for j in np.flatnonzero(fired):
                    spikes.append((smp, k * dt, int(j)))
                v = np.where(fired, vr, v)
                hold = np.where(fired, n_ref, hold)
            for s in bins.get(k, []):
                c = c + w[s]
            for j in np.flatnonzero(fired):
                c = c + w[n_in + j]
            vs[smp, k] = np.where(hold > 0, vr, v)
            cs[smp, k] = c
    return (spikes, vs, cs, vpre) if with_pre else (spikes, vs, cs)
