"""Exact event-driven LIF integration of a batch (eventprop.md §1.2).

Per neuron, with u = V - v_leak (LSB above the leak) and hardware time in us::

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

The state is lazy: each neuron keeps (u, I) at the time it was last touched and a key, the time of
its next event: a refractory release, an exact crossing, or a cheap lower bound of the crossing
(u rises no faster than (max(I, 0) - u)/tau_mem). A bound that becomes the earliest key is tightened
or replaced by the exact crossing, so the root search runs about once per spike instead of once per
input. Blocks of 32 keys keep their minimum for the next-event search. An input or a spike touches
only the nonzero entries of its weight row. Events at equal times: neuron events first (lower neuron
index first), then inputs (in input order), then probes; so a probe at a spike time reads v_reset.
"""

from __future__ import annotations

import math
import operator
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from ._lif_inputs import prepare_inputs, prepare_network, prepare_probes, prepare_threshold_offset
from ._spikes import BUFFER_FULL, CAP_EXCEEDED, DONE, SpikeRecord, collect_spikes, concat_records, sample_blocks

__all__ = ["EventResult", "simulate_events"]

_INF = np.inf

# Rows of the per-neuron constant table nc[7, n] the kernels read (see neuron_constants).
_TM, _INV_TM, _INV_TS, _INV_SLOW, _AD, _SLOW_MEM, _E = range(7)
_BLOCK_BITS = 5  # neurons are grouped in blocks of 32 for the next-event search


class EventResult(NamedTuple):
    spikes: SpikeRecord
    v_probe_lsb: np.ndarray | None  # float64[n_samples, p, q]: V at probe_t_us[i] of probe_neuron[j]


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


@njit(cache=True, nogil=True)
def _key_set(k, new, key, bmin, barg, dirty):
    """key[k] = new, keeping each block's (min key, its lowest neuron index) exact or marked dirty."""
    old = key[k]
    key[k] = new
    b = k >> _BLOCK_BITS
    if new <= old:
        if new < bmin[b] or (new == bmin[b] and k < barg[b]):
            bmin[b] = new
            barg[b] = k
    elif barg[b] == k:
        dirty[b] = True


@njit(cache=True, nogil=True)
def _next_neuron(key, bmin, barg, dirty):
    """The neuron with the smallest key (lowest index among equal keys)."""
    n = key.shape[0]
    best = 0
    for b in range(bmin.shape[0]):
        if dirty[b]:
            lo = b << _BLOCK_BITS
            arg = lo
            for k in range(lo + 1, min(lo + (1 << _BLOCK_BITS), n)):
                if key[k] < key[arg]:
                    arg = k
            bmin[b] = key[arg]
            barg[b] = arg
            dirty[b] = False
        if bmin[b] < bmin[best]:
            best = b
    return barg[best]


@njit(cache=True, nogil=True)
def _deliver(row, t, row_ptr, col, val, nc, theta, u, cur, t_last, refr, key, exact, bmin, barg):
    """A spike of source ``row`` at time t: every target's I jumps by its weight.

    A free target gets the lower bound of its next crossing as key (made exact only when the bound
    becomes the next event, so a neuron that is hit again first never pays for a root search). A
    smaller old key stays: it is still a lower bound, and keys that only decrease keep block minima
    exact. This loop is the hot path, hence written out by hand.
    """
    for idx in range(row_ptr[row], row_ptr[row + 1]):
        k = col[idx]
        s = t - t_last[k]
        t_last[k] = t
        if refr[k]:
            if s > 0.0:
                cur[k] *= math.exp(-s * nc[_INV_TS, k])
            cur[k] += val[idx]
            continue  # key stays the release time
        uk, ck = u[k], cur[k]
        if s > 0.0:
            uk, ck = _u_at(s, uk, ck, nc, k)
        ck += val[idx]
        u[k], cur[k] = uk, ck
        new = t + _crossing_bound(uk, ck, theta[k], nc[_TM, k])
        old = key[k]
        exact[k] = new == _INF and old == _INF
        if new < old:
            key[k] = new
            b = k >> _BLOCK_BITS
            if new < bmin[b] or (new == bmin[b] and k < barg[b]):
                bmin[b] = new
                barg[b] = k


@njit(cache=True, nogil=True)
def _run_events(row_ptr, col, val, n_in, nc, v_leak, v_reset, theta0, t_ref, th_off, use_off,
                in_t, in_src, in_off, t_end, probe_t, probe_nrn, v_probe,
                s_begin, max_spikes, out_t, out_nrn, out_smp, status):
    n = v_leak.shape[0]
    n_samples = in_off.shape[0] - 1
    n_pr = probe_t.shape[0]
    u_reset = v_reset - v_leak
    u = np.zeros(n)
    cur = np.zeros(n)
    t_last = np.zeros(n)
    key = np.full(n, _INF)
    exact = np.zeros(n, np.bool_)  # key is the exact next event (else a lower bound of the crossing)
    theta = np.zeros(n)
    refr = np.zeros(n, np.bool_)
    n_blocks = (n + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
    bmin = np.empty(n_blocks)
    barg = np.zeros(n_blocks, np.int64)
    dirty = np.ones(n_blocks, np.bool_)
    n_out = 0
    for smp in range(s_begin, n_samples):
        out_start = n_out
        for j in range(n):
            theta[j] = theta0[j] + th_off[smp, j] if use_off else theta0[j]
            u[j] = 0.0
            cur[j] = 0.0
            t_last[j] = 0.0
            refr[j] = False
            key[j] = _crossing_bound(0.0, 0.0, theta[j], nc[_TM, j])
            exact[j] = key[j] == _INF
        dirty[:] = True
        ip, ie, pp = in_off[smp], in_off[smp + 1], 0
        while True:
            t_in = in_t[ip] if ip < ie else _INF
            t_pr = probe_t[pp] if pp < n_pr else _INF
            j = _next_neuron(key, bmin, barg, dirty) if n > 0 else 0
            t_nr = key[j] if n > 0 and key[j] < t_end else _INF
            if t_nr < _INF and t_nr <= t_in and t_nr <= t_pr:
                t = t_nr
                if not exact[j]:  # a lower bound is next: tighten it, or find the crossing
                    t0 = t_last[j]
                    new = t0 + _crossing_bound(u[j], cur[j], theta[j], nc[_TM, j])
                    if new <= key[j]:
                        # max: a root found a rounding error below its lower bound must not go back in time
                        new = max(t0 + _next_crossing(u[j], cur[j], theta[j], t_end - t0, nc, j), key[j])
                        exact[j] = True
                    _key_set(j, new, key, bmin, barg, dirty)
                    continue
                if refr[j]:  # refractory release: V leaves v_reset, I kept decaying meanwhile
                    cur[j] *= math.exp(-(t - t_last[j]) * nc[_INV_TS, j])
                    u[j] = u_reset[j]
                    t_last[j] = t
                    refr[j] = False
                    lb = _crossing_bound(u[j], cur[j], theta[j], nc[_TM, j])
                    _key_set(j, t + lb, key, bmin, barg, dirty)
                    exact[j] = lb == _INF
                    continue
                if n_out - out_start >= max_spikes:
                    status[0], status[1], status[2] = smp, out_start, CAP_EXCEEDED
                    return
                if n_out >= out_t.shape[0]:
                    status[0], status[1], status[2] = smp, out_start, BUFFER_FULL
                    return
                out_t[n_out], out_nrn[n_out], out_smp[n_out] = t, j, smp
                n_out += 1
                cur[j] = _u_at(t - t_last[j], u[j], cur[j], nc, j)[1]
                u[j] = u_reset[j]
                t_last[j] = t
                if t_ref[j] > 0.0:
                    refr[j] = True
                    _key_set(j, t + t_ref[j], key, bmin, barg, dirty)
                    exact[j] = True
                else:
                    lb = _crossing_bound(u[j], cur[j], theta[j], nc[_TM, j])
                    _key_set(j, t + lb, key, bmin, barg, dirty)
                    exact[j] = lb == _INF
                _deliver(n_in + j, t, row_ptr, col, val, nc, theta, u, cur, t_last, refr, key, exact, bmin, barg)
            elif t_in < _INF and t_in <= t_pr:
                _deliver(in_src[ip], t_in, row_ptr, col, val, nc, theta, u, cur, t_last, refr, key, exact,
                         bmin, barg)
                ip += 1
            elif t_pr < _INF:
                for q in range(probe_nrn.shape[0]):
                    k = probe_nrn[q]
                    if refr[k]:
                        v_probe[smp, pp, q] = v_reset[k]
                    else:
                        s = t_pr - t_last[k]
                        v = _u_at(s, u[k], cur[k], nc, k)[0] if s > 0.0 else u[k]
                        v_probe[smp, pp, q] = v_leak[k] + v
                pp += 1
            else:
                break
    status[0], status[1], status[2] = n_samples, n_out, DONE


def simulate_events(w_lsb, params, in_t_us, in_src, in_sample, n_samples, t_end_us, *,
                    v_th_offset_lsb=None, probe_t_us=None, probe_neuron=None,
                    max_spikes_per_sample=None, threads: int = 1) -> EventResult:
    """Exact event-driven LIF dynamics of a batch of independent samples, each from rest over [0, t_end_us).

    w_lsb: float64[n_in + n, n]; row s < n_in is external input s, row n_in + j is neuron j; column =
      postsynaptic neuron; value = jump of its I in LSB (negative = inhibitory). Spikes of neuron j act
      on its targets at once (no delay).
    params: NeuronParams of n neurons (per-neuron float64[n]; tau_mem_us == tau_syn_us is allowed).
    in_t_us: float64[m], hardware us since the sample's start, in [0, t_end_us); in_src: int[m] in
      [0, n_in); in_sample: int[m] in [0, n_samples); sorted by (sample, t).
    n_samples: int >= 0; t_end_us: float > 0, the trial length in hardware us (spikes at t < t_end_us).
    v_th_offset_lsb: optional float64[n_samples, n], trial-to-trial threshold noise added to v_th_lsb.
    probe_t_us: optional float64[p], sorted, in [0, t_end_us); probe_neuron: int[q] in [0, n); the exact
      V (LSB) of those neurons at those times goes to ``v_probe_lsb`` float64[n_samples, p, q]. A probe
      sees every event at times <= its own (V = v_reset_lsb while refractory and at a spike's time).
      Probes never change the spikes.
    max_spikes_per_sample: int >= 0, default 64 n + 64; a sample emitting more raises SpikeLimitError.
    threads: int >= 1, most threads to share the samples between (contiguous blocks of at least 32
      samples; the kernel releases the GIL). The result is the same for any value.

    Returns EventResult(spikes: SpikeRecord, v_probe_lsb or None). Deterministic: bit-identical on
    repeat, and each sample's result does not depend on the rest of the batch.
    """
    net = prepare_network(w_lsb, params)
    inp = prepare_inputs(in_t_us, in_src, in_sample, n_samples, t_end_us, net.n_in)
    off, use_off = prepare_threshold_offset(v_th_offset_lsb, inp.n_samples, net.n)
    probe_t, probe_nrn = prepare_probes(probe_t_us, probe_neuron, inp.t_end_us, net.n)
    if max_spikes_per_sample is None:
        max_spikes = 64 * net.n + 64
    else:
        try:
            max_spikes = operator.index(max_spikes_per_sample)
        except TypeError:
            max_spikes = -1
        if max_spikes < 0:
            raise ValueError(f"max_spikes_per_sample must be an integer >= 0, got {max_spikes_per_sample!r}")
    p = net.p
    nc = neuron_constants(p.tau_mem_us, p.tau_syn_us)
    theta0 = p.v_th_lsb - p.v_leak_lsb
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    v_probe = np.full((inp.n_samples, probe_t.size, probe_nrn.size), np.nan)

    def block(lo: int, hi: int) -> SpikeRecord:
        # Samples [lo, hi): the kernel stops at the end of the offsets it is handed. Each sample
        # starts from rest, so a block computes exactly what one call over all samples would.
        offsets = inp.offsets[:hi + 1]

        def run(s_begin, out_t, out_nrn, out_smp, status):
            _run_events(net.row_ptr, net.col, net.val, net.n_in, nc, p.v_leak_lsb, p.v_reset_lsb, theta0,
                        p.t_ref_us, off, use_off, inp.t_us, inp.src, offsets, inp.t_end_us, probe_t, probe_nrn,
                        v_probe, s_begin, max_spikes, out_t, out_nrn, out_smp, status)

        n_inputs = int(inp.offsets[hi] - inp.offsets[lo])
        capacity = min((hi - lo) * max_spikes, 2 * n_inputs + 8 * net.n + 64)
        return collect_spikes(run, hi, capacity, max_spikes, s_begin=lo)

    blocks = sample_blocks(inp.n_samples, int(threads))
    if len(blocks) == 1:
        spikes = block(0, inp.n_samples)
    else:
        spikes = concat_records(list(_executor(len(blocks)).map(lambda b: block(*b), blocks)))
    return EventResult(spikes, v_probe if probe_t_us is not None else None)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _executor(n: int) -> ThreadPoolExecutor:
    """A shared pool of at least ``n`` worker threads for sample blocks (grown, never shrunk)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="neurosplit-samples")
        return _POOL
