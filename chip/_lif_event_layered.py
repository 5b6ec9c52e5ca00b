"""Exact event-driven LIF integration of a layered (acyclic) network: one layer, then one neuron, at a time.

When the neuron -> neuron synapses form no cycle, the neurons split into layers (a neuron's layer is one
more than the deepest layer that synapses onto it; layer 0 hears only external inputs). Then, per sample,
a neuron's trajectory depends only on the inputs and on the spikes of earlier layers: layer by layer,
each neuron runs alone through one time-ordered stream of those events, and the layer's spikes are
merged into the stream for the next layer. No event queue, no keys of other neurons: a delivery is a
weight lookup, the closed-form propagation and the crossing bound, and the trial is short work for a
neuron that hears a few dozen events (a Yin-Yang sample: 25 inputs, ~100 hidden spikes).

Per neuron the operations are those of ``_lif_event._run_events`` in the same order (see
``_lif_closed_form``): a delivery is ``_u_at`` then ``I += w``; own events due at or before an event's
time come first, then the event. The stream orders events at equal times as the queue does: spikes
before inputs, spikes by neuron index, inputs in input order. So the result is bit-identical to the
queue integrator's except where a neuron's own event falls at exactly the time of a spike it hears
from a lower-indexed neuron (the queue then delivers that spike first); with continuous spike times
that takes an exact floating-point tie.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._lif_closed_form import _INF, _INV_TS, _TM, _crossing_bound, _u_at
from ._lif_event_ff import _flush_probes, _own_events
from ._spikes import BUFFER_FULL, DONE

# Resumable kernel: cursor = [sample, spikes written]. A sample whose spikes do not fit is redone from
# its start with larger buffers (nothing of it is kept), so the cursor holds only sample boundaries.
_C_SMP, _C_OUT = range(2)


def neuron_layers(row_ptr: np.ndarray, col: np.ndarray, n_in: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(neurons in layer order int64[n], layer starts int64[L + 1]) or None if the synapses form a cycle.

    row_ptr, col: the CSR rows of the weight matrix (row n_in + j holds neuron j's targets). Within a
    layer neurons are in index order. A neuron without synapses onto it is in layer 0.
    """
    src = np.repeat(np.arange(n), np.diff(row_ptr[n_in:n_in + n + 1]))
    dst = col[row_ptr[n_in]:row_ptr[n_in + n]].astype(np.int64)
    layer = np.zeros(n, np.int64)
    for _ in range(n + 1):  # longest-path relaxation: settles within n rounds unless there is a cycle
        new = layer.copy()
        np.maximum.at(new, dst, layer[src] + 1)
        if np.array_equal(new, layer):
            order = np.lexsort((np.arange(n), layer))
            starts = np.searchsorted(layer[order], np.arange(int(layer.max(initial=0)) + 2))
            return order.astype(np.int64), starts.astype(np.int64)
        layer = new
        if layer.max(initial=0) >= n:
            return None
    return None


@njit(cache=True, nogil=True)
def _merge_spikes(ev_t, ev_r, m, sp_t, sp_r, n_in, out_t, out_r):
    """Merge the stream (ev_t, ev_r)[:m] with the spikes (sp_t, sp_r), both in stream order, into
    (out_t, out_r); returns the merged length. Stream order: by time; at equal times spikes (rows >=
    n_in) before inputs, spikes by row, inputs as given."""
    i, j, o = 0, 0, 0
    ns = sp_t.shape[0]
    while i < m or j < ns:
        if j < ns and (i >= m or sp_t[j] < ev_t[i] or (sp_t[j] == ev_t[i] and (ev_r[i] < n_in or sp_r[j] < ev_r[i]))):
            out_t[o], out_r[o] = sp_t[j], sp_r[j]
            j += 1
        else:
            out_t[o], out_r[o] = ev_t[i], ev_r[i]
            i += 1
        o += 1
    return o


@njit(cache=True, nogil=True, error_model="numpy")
def _neuron_through(k, ev_t, ev_r, m, wk, th, t_end, nc, u_reset, t_ref, v_leak, v_reset, probe_t, pq_ptr, pq_idx,
                    v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp):
    """Neuron k from rest through the stream's first m events (weights wk over stream rows) to t_end,
    writing its spikes; returns (spikes written, status)."""
    tmk, its = nc[_TM, k], nc[_INV_TS, k]
    uk, ck, tl, rf, pk = 0.0, 0.0, 0.0, False, 0
    lb = _crossing_bound(0.0, 0.0, th, tmk)
    kk, ex = lb, lb == _INF
    probed = pq_ptr[k + 1] > pq_ptr[k]
    for i in range(m):
        w = wk[ev_r[i]]
        if w == 0.0:  # no synapse: the queue integrator does not touch the neuron either
            continue
        t = ev_t[i]
        if kk <= t and kk < t_end:
            uk, ck, tl, kk, ex, rf, pk, n_out, code = _own_events(
                k, t, t_end, uk, ck, tl, kk, ex, rf, th, pk, probed, nc, u_reset, t_ref, v_leak, v_reset, probe_t,
                pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp)
            if code != DONE:
                return n_out, code
        if probed:
            pk = _flush_probes(k, t, False, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx,
                               v_probe, smp)
        s = t - tl
        tl = t
        if rf:
            if s > 0.0:
                ck *= math.exp(-s * its)
            ck += w
            continue  # the key stays the release time
        if s > 0.0:
            uk, ck = _u_at(s, uk, ck, nc, k)
        ck += w
        lb = _crossing_bound(uk, ck, th, tmk)
        kk = t + lb
        ex = lb == _INF
    if kk < t_end:
        uk, ck, tl, kk, ex, rf, pk, n_out, code = _own_events(
            k, t_end, t_end, uk, ck, tl, kk, ex, rf, th, pk, probed, nc, u_reset, t_ref, v_leak, v_reset, probe_t,
            pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp)
        if code != DONE:
            return n_out, code
    if probed:
        _flush_probes(k, t_end, True, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx, v_probe, smp)
    return n_out, DONE


@njit(cache=True, nogil=True, error_model="numpy")
def _sort_spikes(t, nrn, lo, hi, t_end, cnt, buf_t, buf_n):
    """Put spikes [lo, hi) of one sample in record order (t, neuron): a counting sort into hi - lo
    buckets of equal width in [0, t_end), then an insertion sort of the nearly sorted result (~15 ns a
    spike for a Yin-Yang sample, where numba's argsort takes ~70). cnt, buf_t, buf_n: >= hi - lo + 1."""
    m = hi - lo
    if m < 2:
        return
    scale = m / t_end
    cnt[:m + 1] = 0
    for i in range(lo, hi):
        b = min(max(int(t[i] * scale), 0), m - 1)
        cnt[b + 1] += 1
    for b in range(m):
        cnt[b + 1] += cnt[b]
    for i in range(lo, hi):
        b = min(max(int(t[i] * scale), 0), m - 1)
        j = cnt[b]
        cnt[b] = j + 1
        buf_t[j], buf_n[j] = t[i], nrn[i]
    for i in range(1, m):
        ti, ni = buf_t[i], buf_n[i]
        j = i - 1
        while j >= 0 and (buf_t[j] > ti or (buf_t[j] == ti and buf_n[j] > ni)):
            buf_t[j + 1], buf_n[j + 1] = buf_t[j], buf_n[j]
            j -= 1
        buf_t[j + 1], buf_n[j + 1] = ti, ni
    for i in range(m):
        t[lo + i], nrn[lo + i] = buf_t[i], buf_n[i]



@njit(cache=True, nogil=True)
def _load_sample(in_t, in_src, ib, ie, ev_t, ev_r, tmp_t, tmp_r):
    """Inputs [ib, ie) into the stream (ev_t, ev_r), the buffers grown if need be; returns them and the
    stream's length."""
    m = ie - ib
    if m > ev_t.shape[0]:
        ev_t, ev_r, tmp_t, tmp_r = np.empty(2 * m), np.empty(2 * m, np.int64), np.empty(2 * m), np.empty(2 * m, np.int64)
    for i in range(m):
        ev_t[i], ev_r[i] = in_t[ib + i], in_src[ib + i]
    return ev_t, ev_r, tmp_t, tmp_r, m


@njit(cache=True, nogil=True)
def _add_layer_spikes(out_t, out_nrn, lay_start, n_out, n_in, t_end, ev_t, ev_r, tmp_t, tmp_r, m, s_cnt, s_t, s_n, sp_r):
    """Put a layer's spikes [lay_start, n_out) of the output in record order (in place) and merge them
    into the stream (ev_t, ev_r)[:m] as rows n_in + neuron; returns the grown or swapped buffers and
    the stream's new length. s_cnt, s_t, s_n, sp_r: scratch of >= n_out - lay_start + 1 elements."""
    n_new = n_out - lay_start
    _sort_spikes(out_t, out_nrn, lay_start, n_out, t_end, s_cnt, s_t, s_n)
    for i in range(n_new):
        sp_r[i] = out_nrn[lay_start + i] + n_in
    if m + n_new > ev_t.shape[0]:
        cap = 2 * (m + n_new)
        grown_t, grown_r = np.empty(cap), np.empty(cap, np.int64)
        grown_t[:m], grown_r[:m] = ev_t[:m], ev_r[:m]
        ev_t, ev_r, tmp_t, tmp_r = grown_t, grown_r, np.empty(cap), np.empty(cap, np.int64)
    m = _merge_spikes(ev_t, ev_r, m, out_t[lay_start:n_out], sp_r[:n_new], n_in, tmp_t, tmp_r)
    return tmp_t, tmp_r, ev_t, ev_r, m


@njit(cache=True, nogil=True)
def _merge_sorted_runs(t, nrn, lo, mid, hi, buf_t, buf_n):
    """Merge [lo, mid) and [mid, hi) of (t, nrn), each in record order (t, neuron), into one run in
    place: the same order a sort of [lo, hi) gives (no two spikes share both keys). buf_t, buf_n: >= hi - lo."""
    i, j, o = lo, mid, 0
    while i < mid and j < hi:
        if t[j] < t[i] or (t[j] == t[i] and nrn[j] < nrn[i]):
            buf_t[o], buf_n[o] = t[j], nrn[j]
            j += 1
        else:
            buf_t[o], buf_n[o] = t[i], nrn[i]
            i += 1
        o += 1
    while i < mid:
        buf_t[o], buf_n[o] = t[i], nrn[i]
        i += 1
        o += 1
    for p in range(o):  # what is left of [mid, hi) is in place already
        t[lo + p], nrn[lo + p] = buf_t[p], buf_n[p]


@njit(cache=True, nogil=True)
def _grow(a, need):
    """a, or a new array of at least need elements (same dtype) when a is shorter."""
    if a.shape[0] >= need:
        return a
    return np.empty(max(need, 2 * a.shape[0]), a.dtype)


@njit(cache=True, nogil=True, error_model="numpy")
def _run_layered(wt, n_in, order, layer_ptr, nc, v_leak, v_reset, theta0, t_ref, th_off, use_off, in_t, in_src,
                 in_off, t_end, probe_t, pq_ptr, pq_idx, v_probe, max_spikes, cursor, out_t, out_nrn, out_smp, status):
    """Simulate from ``cursor`` on, sample by sample, layer by layer, neuron by neuron.

    wt: float64[n, n_in + n], row k = the weights onto neuron k from each source row (0 = no synapse).
    order, layer_ptr: from neuron_layers. On a full output buffer it returns with the cursor at the
    start of the sample that did not fit; called again with larger buffers it redoes that sample.
    """
    n_samples = in_off.shape[0] - 1
    n_layers = layer_ptr.shape[0] - 1
    u_reset = v_reset - v_leak
    ev_t, ev_r = np.empty(64), np.empty(64, np.int64)
    tmp_t, tmp_r = np.empty(64), np.empty(64, np.int64)
    s_cnt, s_t, s_n, s_r = np.empty(128, np.int64), np.empty(128), np.empty(128, out_nrn.dtype), np.empty(128, np.int64)
    smp, n_out = cursor[_C_SMP], cursor[_C_OUT]
    while smp < n_samples:
        out_start = n_out
        ev_t, ev_r, tmp_t, tmp_r, m = _load_sample(in_t, in_src, in_off[smp], in_off[smp + 1], ev_t, ev_r, tmp_t, tmp_r)
        for lay in range(n_layers):
            lay_start = n_out
            for q in range(layer_ptr[lay], layer_ptr[lay + 1]):
                k = order[q]
                th = theta0[k] + th_off[smp, k] if use_off else theta0[k]
                n_out, code = _neuron_through(k, ev_t, ev_r, m, wt[k], th, t_end, nc, u_reset, t_ref, v_leak, v_reset,
                                              probe_t, pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes,
                                              out_t, out_nrn, out_smp)
                if code != DONE:
                    if code == BUFFER_FULL:
                        cursor[_C_SMP], cursor[_C_OUT] = smp, out_start
                    status[0], status[1], status[2] = smp, out_start, code
                    return
            n_new = n_out - lay_start
            s_cnt, s_t, s_r = _grow(s_cnt, n_out - out_start + 1), _grow(s_t, n_out - out_start), _grow(s_r, n_new)
            s_n = _grow(s_n, n_out - out_start)
            if lay + 1 < n_layers and n_new > 0:
                ev_t, ev_r, tmp_t, tmp_r, m = _add_layer_spikes(out_t, out_nrn, lay_start, n_out, n_in, t_end, ev_t, ev_r,
                                                                tmp_t, tmp_r, m, s_cnt, s_t, s_n, s_r)
            elif n_new > 1:
                _sort_spikes(out_t, out_nrn, lay_start, n_out, t_end, s_cnt, s_t, s_n)
            if lay_start > out_start and n_new > 0:  # the sample's spikes so far are one run in record order
                _merge_sorted_runs(out_t, out_nrn, out_start, lay_start, n_out, s_t, s_n)
        smp += 1
    cursor[_C_SMP], cursor[_C_OUT] = smp, n_out
    status[0], status[1], status[2] = n_samples, n_out, DONE
