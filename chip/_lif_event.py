"""Exact event-driven LIF integration of a batch (eventprop.md §1.2).

The closed-form propagator and the threshold-crossing search are ``_lif_closed_form``'s (its docstring
has the equations). Networks without neuron -> neuron synapses go neuron by neuron (``_lif_event_ff``),
networks whose neuron synapses form no cycle layer by layer (``_lif_event_layered``); both
give the event queue's bits (the layered one up to exact time ties, see there); the queue below runs
recurrent networks. Without probes, a layered network (one layer included) goes a whole layer at a
time, interval by interval, with vectorised exponentials (``_lif_event_grouped``): the queue's spikes
up to rounding (~1e-13 us), not its bits, and several times faster on Yin-Yang-like layers.

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

from ._lif_closed_form import (_AD, _INF, _INV_SLOW, _INV_TM, _INV_TS, _SLOW_MEM, _TM, _crossing_bound,
                               _next_crossing, _u_at, neuron_constants)
from ._lif_event_ff import _run_ff, exp_tables
from ._lif_event_grouped import _run_grouped, layer_fill
from ._lif_event_layered import _run_layered, neuron_layers
from ._lif_inputs import prepare_inputs, prepare_network, prepare_probes, prepare_threshold_offset
from ._params import NeuronParams
from ._spikes import (BUFFER_FULL, CAP_EXCEEDED, DONE, SpikeRecord, collect_spikes_resumable, concat_records,
                      sample_blocks)

__all__ = ["EventResult", "simulate_events"]


_BLOCK_BITS = 5  # neurons are grouped in blocks of 32 for the next-event search


class EventResult(NamedTuple):
    spikes: SpikeRecord
    v_probe_lsb: np.ndarray | None  # float64[n_samples, p, q]: V at probe_t_us[i] of probe_neuron[j]


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


@njit(cache=True, nogil=True, error_model="numpy")
def _deliver(row, t, row_ptr, col, val, tm, inv_tm, inv_ts, inv_slow, ad, slow_mem, theta, u, cur, t_last, refr,
             key, exact, bmin, barg, dirty, memo, e_row, x_row):
    """A spike of source ``row`` at time t: every target's I jumps by its weight; the hot path.

    Per target the arithmetic is exactly ``_u_at`` followed by ``I += w``, bit for bit. A first pass
    finds the exp (and expm1) each target needs, memoised by argument: targets that share a time
    constant and were last touched at the same time (a dense layer) share one call. The second pass,
    free of calls, updates the states. Each free target's key becomes the lower bound of its next
    crossing from its new state (made exact only when the bound becomes the next event, so a neuron
    that is hit again first never pays for a root search). A row that reaches every neuron visits them
    in index order and rebuilds each block's minimum on the way; a sparser row goes through _key_set.
    ``col`` is unsigned (no negative-index wraparound), e_row and x_row are scratch float64[n].
    error_model="numpy": no zero-division checks (every divisor here is > 0).
    """
    lo, hi = row_ptr[row], row_ptr[row + 1]
    n = u.shape[0]
    m = hi - lo
    cols, vals = col[lo:hi], val[lo:hi]
    memo[0], memo[2] = math.nan, math.nan  # exp(memo[0]) = memo[1], expm1(memo[2]) = memo[3]; nan matches nothing
    for i in range(m):  # the memo lives in memory: a store in the branch keeps LLVM from calling exp regardless
        k = cols[i]
        s = t - t_last[k]
        if s > 0.0:
            r = refr[k]
            a = -s * (inv_ts[k] if r else inv_slow[k])  # as the refractory decay / _decay
            if a != memo[0]:
                memo[0] = a
                memo[1] = math.exp(a)
            e_row[i] = memo[1]
            adk = ad[k]
            if adk > 0.0 and not r:
                b = -s * adk
                if b != memo[2]:
                    memo[2] = b
                    memo[3] = math.expm1(b)
                x_row[i] = memo[3]
    dense = m == n  # then cols[k] == k
    bm, ba = _INF, 0
    mask = (1 << _BLOCK_BITS) - 1
    for i in range(m):
        k = cols[i]
        s = t - t_last[k]
        t_last[k] = t
        if refr[k]:
            ck = cur[k]
            if s > 0.0:
                ck *= e_row[i]
            cur[k] = ck + vals[i]
            new = key[k]  # stays the release time
        else:
            uk, ck = u[k], cur[k]
            if s > 0.0:  # as _u_at
                e_slow = e_row[i]
                adk = ad[k]
                if adk > 0.0:
                    x = x_row[i]
                    e_fast = e_slow * (1.0 + x)
                    g = e_slow * (-x / adk) * inv_tm[k]
                else:
                    e_fast = e_slow
                    g = e_slow * s * inv_tm[k]
                if slow_mem[k] > 0.0:
                    uk, ck = uk * e_slow + ck * g, ck * e_fast
                else:
                    uk, ck = uk * e_fast + ck * g, ck * e_slow
            ck += vals[i]
            u[k], cur[k] = uk, ck
            lb = _crossing_bound(uk, ck, theta[k], tm[k])
            exact[k] = lb == _INF
            new = t + lb
            if dense:
                key[k] = new
            else:
                _key_set(k, new, key, bmin, barg, dirty)
        if dense:
            if new < bm:
                bm, ba = new, k
            if (k & mask) == mask or k == n - 1:
                blk = k >> _BLOCK_BITS
                bmin[blk], barg[blk], dirty[blk] = bm, ba, False
                bm, ba = _INF, k + 1


# Resumable kernel: cursor = [sample, next input, next probe, spikes written, first spike of the sample,
# whether the sample has been started]; neuron state lives in the arrays the caller keeps between calls.
_C_SMP, _C_IN, _C_PR, _C_OUT, _C_START, _C_LIVE = range(6)


@njit(cache=True, nogil=True)
def _run_events(row_ptr, col, val, n_in, nc, v_leak, v_reset, theta0, t_ref, th_off, use_off,
                in_t, in_src, in_off, t_end, probe_t, probe_nrn, v_probe, max_spikes,
                u, cur, t_last, key, exact, theta, refr, bmin, barg, dirty, cursor,
                out_t, out_nrn, out_smp, status):
    """Simulate from ``cursor`` on until the last sample of ``in_off`` is done or the output is full.

    On a full output buffer it returns at the spike that did not fit, before changing any state, with the
    cursor and the neuron arrays saved: called again with larger buffers (the spikes so far copied into
    them), it carries on exactly where it stopped.
    """
    n = v_leak.shape[0]
    n_samples = in_off.shape[0] - 1
    n_pr = probe_t.shape[0]
    tm, inv_tm, inv_ts, inv_slow, ad, slow_mem = nc[_TM], nc[_INV_TM], nc[_INV_TS], nc[_INV_SLOW], nc[_AD], nc[_SLOW_MEM]
    u_reset = v_reset - v_leak
    memo, e_row, x_row = np.empty(4), np.empty(n), np.empty(n)  # _deliver's scratch
    smp, ip, pp = cursor[_C_SMP], cursor[_C_IN], cursor[_C_PR]
    n_out, out_start = cursor[_C_OUT], cursor[_C_START]
    live = cursor[_C_LIVE] != 0
    while smp < n_samples:
        if not live:
            for j in range(n):
                theta[j] = theta0[j] + th_off[smp, j] if use_off else theta0[j]
                u[j] = 0.0
                cur[j] = 0.0
                t_last[j] = 0.0
                refr[j] = False
                key[j] = _crossing_bound(0.0, 0.0, theta[j], tm[j])
                exact[j] = key[j] == _INF
            dirty[:] = True
            ip, pp, out_start, live = in_off[smp], 0, n_out, True
        ie = in_off[smp + 1]
        while True:
            t_in = in_t[ip] if ip < ie else _INF
            t_pr = probe_t[pp] if pp < n_pr else _INF
            j = _next_neuron(key, bmin, barg, dirty) if n > 0 else 0
            t_nr = key[j] if n > 0 and key[j] < t_end else _INF
            if t_nr < _INF and t_nr <= t_in and t_nr <= t_pr:
                t = t_nr
                if not exact[j]:  # a lower bound (t_last + bound of the state) is next: find the crossing
                    t0 = t_last[j]
                    # max: a root found a rounding error below its lower bound must not go back in time
                    new = max(t0 + _next_crossing(u[j], cur[j], theta[j], t_end - t0, nc, j), key[j])
                    exact[j] = True
                    _key_set(j, new, key, bmin, barg, dirty)
                    continue
                if refr[j]:  # refractory release: V leaves v_reset, I kept decaying meanwhile
                    cur[j] *= math.exp(-(t - t_last[j]) * inv_ts[j])
                    u[j] = u_reset[j]
                    t_last[j] = t
                    refr[j] = False
                    lb = _crossing_bound(u[j], cur[j], theta[j], tm[j])
                    _key_set(j, t + lb, key, bmin, barg, dirty)
                    exact[j] = lb == _INF
                    continue
                if n_out - out_start >= max_spikes:
                    status[0], status[1], status[2] = smp, out_start, CAP_EXCEEDED
                    return
                if n_out >= out_t.shape[0]:
                    cursor[_C_SMP], cursor[_C_IN], cursor[_C_PR] = smp, ip, pp
                    cursor[_C_OUT], cursor[_C_START], cursor[_C_LIVE] = n_out, out_start, 1
                    status[0], status[1], status[2] = smp, n_out, BUFFER_FULL
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
                    lb = _crossing_bound(u[j], cur[j], theta[j], tm[j])
                    _key_set(j, t + lb, key, bmin, barg, dirty)
                    exact[j] = lb == _INF
                _deliver(n_in + j, t, row_ptr, col, val, tm, inv_tm, inv_ts, inv_slow, ad, slow_mem, theta,
                         u, cur, t_last, refr, key, exact, bmin, barg, dirty, memo, e_row, x_row)
            elif t_in < _INF and t_in <= t_pr:
                _deliver(in_src[ip], t_in, row_ptr, col, val, tm, inv_tm, inv_ts, inv_slow, ad, slow_mem, theta,
                         u, cur, t_last, refr, key, exact, bmin, barg, dirty, memo, e_row, x_row)
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
        smp += 1
        live = False
    cursor[_C_SMP], cursor[_C_OUT], cursor[_C_LIVE] = smp, n_out, 0
    status[0], status[1], status[2] = n_samples, n_out, DONE



class _Plan:
    """What simulate_events derives from the network alone (validated; the kernels' layouts)."""

    def __init__(self, net) -> None:
        n = net.n
        self.net = net
        self.col = net.col.view(np.uint32)  # targets and sources are >= 0: unsigned indices skip wraparound
        self.nc = neuron_constants(net.p.tau_mem_us, net.p.tau_syn_us)
        self.theta0 = net.p.v_th_lsb - net.p.v_leak_lsb
        # No neuron synapses onto a neuron: each one can be integrated on its own (bit-identical, faster).
        self.independent = bool(net.row_ptr[net.n_in] == net.row_ptr[-1])
        # Neurons in layers (no cycle through neuron synapses): layer by layer, neuron by neuron.
        self.layers = None if self.independent else neuron_layers(net.row_ptr, net.col, net.n_in, n)
        self.group, self.tab_inv, self.tab_ad = exp_tables(self.nc)
        self.order = self.layer_ptr = self.wt_all = self.fill = self.wl = None
        if self.independent or self.layers is not None:
            self.order, self.layer_ptr = self.layers if self.layers is not None else (
                np.arange(n, dtype=np.int64), np.array([0, n], np.int64))
            self.wt_all = np.zeros((n, net.n_in + n))  # weights onto each neuron from each source row, 0 = none
            self.wt_all[net.col, np.repeat(np.arange(net.n_in + n), np.diff(net.row_ptr))] = net.val
            self.fill = layer_fill(self.wt_all, self.order, self.layer_ptr)
            self.wl = np.ascontiguousarray(self.wt_all[self.order].T)
        self.wt_in = self.wt = self.dense_src = None
        if self.independent:
            self.wt_in = np.zeros((net.n_in, n))  # dense input weights, 0 = no synapse (as in w_lsb)
            self.wt_in[np.repeat(np.arange(net.n_in), np.diff(net.row_ptr[:net.n_in + 1])), net.col] = net.val
            self.wt = np.ascontiguousarray(self.wt_in.T)
            self.dense_src = np.diff(net.row_ptr[:net.n_in + 1]) == n


_PLAN_LOCK = threading.Lock()
_GROUPED_CAPACITY = 1 << 22  # spikes the first output buffer of a block holds at most (64 MiB); it grows beyond
_LAST_PLAN: list = []  # [(w copy, params copies, plan)]: the last network simulated


def _plan_for(w_lsb, params) -> _Plan:
    """The plan of this network: the last one again if weights and parameters are bitwise those of the
    last call (a core or a training loop simulates one network many times; comparing costs ~10 us,
    preparing ~0.5 ms), else a new one (validated by prepare_network)."""
    if isinstance(params, NeuronParams) and isinstance(w_lsb, np.ndarray):
        with _PLAN_LOCK:
            last = _LAST_PLAN[0] if _LAST_PLAN else None
        if (last is not None and last[0].shape == w_lsb.shape and np.array_equal(last[0], w_lsb)
                and all(isinstance(a, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
                        for a, b in zip(params, last[1]))):
            return last[2]
    plan = _Plan(prepare_network(w_lsb, params))
    with _PLAN_LOCK:
        _LAST_PLAN[:] = [(np.array(w_lsb, np.float64), tuple(a.copy() for a in plan.net.p), plan)]
    return plan

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
    threads: int >= 1, most threads to share the samples between (contiguous blocks of at least 8
      samples, 32 for the layer-at-a-time kernel; the kernel releases the GIL). The result is the
      same for any value.

    Returns EventResult(spikes: SpikeRecord, v_probe_lsb or None). Deterministic: bit-identical on
    repeat, and each sample's result does not depend on the rest of the batch. Asking for probes may
    change spike times of an acyclic network by rounding (~1e-13 us): it selects the neuron-by-neuron
    kernels instead of the layer-at-a-time one.
    """
    plan = _plan_for(w_lsb, params)
    net, nc, theta0 = plan.net, plan.nc, plan.theta0
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
    col = plan.col
    src = inp.src.view(np.uint32)
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    v_probe = np.full((inp.n_samples, probe_t.size, probe_nrn.size), np.nan)

    n = net.n
    independent, layers = plan.independent, plan.layers
    # Without probes a layered network goes a whole layer at a time (equal to the queue up to rounding)
    # where that pays: when neurons fire about once a trial (a neuron that may fire again is redone
    # alone), and, for one layer, unless most neurons share their exp table with others (then the
    # neuron-by-neuron kernel computes one exp per input for all of them, and wins).
    grouped = ((probe_t.size == 0 or probe_nrn.size == 0) and plan.order is not None
               and np.count_nonzero(p.t_ref_us >= 0.5 * inp.t_end_us) >= 0.9 * n > 0
               and not (independent and np.count_nonzero(plan.group >= 0) >= 0.5 * n))
    order, layer_ptr, wt_all, fill, wl = plan.order, plan.layer_ptr, plan.wt_all, plan.fill, plan.wl
    if grouped:
        independent, layers = False, None
    if independent or layers is not None:
        pq_idx = np.argsort(probe_nrn, kind="stable")  # probe columns of neuron k: pq_idx[pq_ptr[k]:pq_ptr[k + 1]]
        pq_ptr = np.searchsorted(probe_nrn[pq_idx], np.arange(n + 1)).astype(np.int64)
    wt_in, wt, dense_src = plan.wt_in, plan.wt, plan.dense_src
    group, tab_inv, tab_ad = plan.group, plan.tab_inv, plan.tab_ad

    def block(lo: int, hi: int) -> SpikeRecord:
        # Samples [lo, hi): the kernel stops at the end of the offsets it is handed. Each sample
        # starts from rest, so a block computes exactly what one call over all samples would.
        offsets = inp.offsets[:hi + 1]
        cursor = np.zeros(7, np.int64)
        cursor[_C_SMP] = lo
        if grouped:
            def run(out_t, out_nrn, out_smp, status):
                _run_grouped(wt_all, wl, net.n_in, order, layer_ptr, fill, nc, p.v_leak_lsb, p.v_reset_lsb, theta0,
                             p.t_ref_us, off, use_off, inp.t_us, src, offsets, inp.t_end_us, max_spikes, cursor,
                             out_t, out_nrn, out_smp, status)
        elif independent:
            state = (np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, _INF), np.zeros(n, np.bool_), np.zeros(n),
                     np.zeros(n, np.bool_), np.zeros(n, np.int64))

            def run(out_t, out_nrn, out_smp, status):
                _run_ff(wt, wt_in, dense_src, nc, group, tab_inv, tab_ad, p.v_leak_lsb, p.v_reset_lsb, theta0, p.t_ref_us, off,
                        use_off, inp.t_us, src, offsets, inp.t_end_us, probe_t, pq_ptr, pq_idx, v_probe,
                        max_spikes, *state, cursor, out_t, out_nrn, out_smp, status)
        elif layers is not None:
            def run(out_t, out_nrn, out_smp, status):
                _run_layered(wt_all, net.n_in, order, layer_ptr, nc, p.v_leak_lsb, p.v_reset_lsb, theta0, p.t_ref_us,
                             off, use_off, inp.t_us, src, offsets, inp.t_end_us, probe_t, pq_ptr, pq_idx, v_probe,
                             max_spikes, cursor, out_t, out_nrn, out_smp, status)
        else:
            n_blocks = (n + (1 << _BLOCK_BITS) - 1) >> _BLOCK_BITS
            state = (np.zeros(n), np.zeros(n), np.zeros(n), np.full(n, _INF), np.zeros(n, np.bool_), np.zeros(n),
                     np.zeros(n, np.bool_), np.empty(n_blocks), np.zeros(n_blocks, np.int64),
                     np.ones(n_blocks, np.bool_))

            def run(out_t, out_nrn, out_smp, status):
                _run_events(net.row_ptr, col, net.val, net.n_in, nc, p.v_leak_lsb, p.v_reset_lsb, theta0,
                            p.t_ref_us, off, use_off, inp.t_us, src, offsets, inp.t_end_us, probe_t, probe_nrn,
                            v_probe, max_spikes, *state, cursor, out_t, out_nrn, out_smp, status)

        n_inputs = int(inp.offsets[hi] - inp.offsets[lo])
        if grouped:  # its neurons fire about once a trial: room for that saves regrowing the buffers
            capacity = min((hi - lo) * max_spikes, (hi - lo) * (n + n // 8) + 64, _GROUPED_CAPACITY)
        else:
            capacity = min((hi - lo) * max_spikes, 2 * n_inputs + 8 * n + 64)
        return collect_spikes_resumable(run, capacity, max_spikes)

    # a thread pays off from ~32 samples on with the layer-at-a-time kernel (~20-40 us a Yin-Yang sample)
    blocks = sample_blocks(inp.n_samples, int(threads), min_block=32 if grouped else 8)
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
