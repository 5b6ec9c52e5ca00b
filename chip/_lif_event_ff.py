"""Exact event-driven LIF integration of neurons that no neuron synapses onto: one neuron at a time.

When every neuron row of the weight matrix is zero, a neuron's trajectory depends only on the
external inputs and on its own spikes and releases, so the neurons can be integrated one after the
other (inputs in the inner loop) instead of through one event queue: no queue, no key bookkeeping,
and the inputs' times and weights stream through the cache. Every neuron sees the same operations in
the same order as in ``_lif_event._run_events`` (see ``_lif_closed_form``): a delivery is ``_u_at``
then ``I += w``, a spike sits at ``max(t0 + _next_crossing(...), t0 + _crossing_bound(...))``, its own
events at an input's time come before that input, probes after both. So the spikes and probes are
bit-identical to the queue integrator's; only the order in which the kernel writes the spikes
differs (neuron by neuron), and the collector sorts them.

Inputs are taken in chunks of ``_CHUNK``. Neurons that share their (slower time constant, expm1 rate)
share a table of exp (and expm1) per input of the chunk for the interval since the previous input:
a neuron last touched by that previous input (the common case in a dense layer) reads its factor from
the table, which holds exactly what it would compute, and any other calls exp itself.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._lif_closed_form import (_AD, _INF, _INV_SLOW, _INV_TM, _INV_TS, _SLOW_MEM, _TM, _crossing_bound, _next_crossing,
                               _stays_below, _u_at)
from ._spikes import BUFFER_FULL, CAP_EXCEEDED, DONE

_CHUNK = 1024  # inputs per chunk: a chunk's times, sources and tables stay in L1 while each neuron passes
_SEG = 32  # inputs delivered ahead to one neuron before looking for its next event
_LAYER_SEG = 16  # inputs delivered ahead to all neurons (layer mode): lay_u, lay_c stay in L2
_MAX_TABLES = 64  # at most this many shared exp tables (the largest groups of neurons with equal constants)

# Resumable kernel: cursor = [sample, first input of the chunk, first input of the segment (layer mode),
# next neuron, spikes written, first spike of the sample, whether the sample has been started].
_C_SMP, _C_IN, _C_SEG, _C_NRN, _C_OUT, _C_START, _C_LIVE = range(7)


def exp_tables(nc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(table of each neuron int64[n] (-1: none), 1/slower tau per table, expm1 rate per table).

    Neurons whose (1/slower tau, |1/tau_syn - 1/tau_mem|) are bitwise equal share a table; groups of one
    get none (a table costs one exp per input, as much as the neuron itself would).
    """
    n = nc.shape[1]
    pairs = np.ascontiguousarray(np.stack([nc[_INV_SLOW], nc[_AD]], axis=1)).view(np.int64)
    uniq, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    order = np.lexsort((np.arange(counts.size), -counts))  # largest groups first, ties by value
    keep = order[counts[order] >= 2][:_MAX_TABLES]
    table_of_group = np.full(counts.size, -1, np.int64)
    table_of_group[keep] = np.arange(keep.size)
    vals = uniq[keep].view(np.float64).reshape(keep.size, 2)
    group = table_of_group[np.asarray(inverse).reshape(n)] if n else np.zeros(0, np.int64)
    return group, np.ascontiguousarray(vals[:, 0]), np.ascontiguousarray(vals[:, 1])


@njit(cache=True, nogil=True)
def _flush_probes(k, t, incl, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx, v_probe, smp):
    """Write neuron k's probes at times < t (<= t if incl) from its state; returns the next probe."""
    while pk < probe_t.shape[0] and (probe_t[pk] < t or (incl and probe_t[pk] == t)):
        if rf:
            v = v_reset[k]
        else:
            s = probe_t[pk] - tl
            v = v_leak[k] + (_u_at(s, uk, ck, nc, k)[0] if s > 0.0 else uk)
        for q in range(pq_ptr[k], pq_ptr[k + 1]):
            v_probe[smp, pk, pq_idx[q]] = v
        pk += 1
    return pk


@njit(cache=True, nogil=True)
def _own_events(k, horizon, t_end, uk, ck, tl, kk, ex, rf, th, pk, probed, nc, u_reset, t_ref, v_leak, v_reset,
                probe_t, pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp):
    """Neuron k's own events (crossings found, spikes, releases) at times <= horizon and < t_end.

    Returns the new state, the next probe, spikes written and a status (DONE, or BUFFER_FULL /
    CAP_EXCEEDED at a spike that was not written).
    """
    while kk <= horizon and kk < t_end:
        t = kk
        if not ex:  # a lower bound: find the crossing (as _run_events)
            if horizon < t_end and _stays_below(uk, ck, th, horizon - tl, nc, k):
                # No crossing up to the horizon (the next event): skip the search; horizon is a lower
                # bound. The queue integrator would find the crossing, then lose it to the next event's
                # update (or, if that event leaves the neuron alone, find the same one again later).
                kk = horizon
                break
            kk = max(tl + _next_crossing(uk, ck, th, t_end - tl, nc, k), kk)
            ex = True
            continue
        if probed:
            pk = _flush_probes(k, t, False, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx,
                               v_probe, smp)
        if rf:  # refractory release
            ck *= math.exp(-(t - tl) * nc[_INV_TS, k])
            uk = u_reset[k]
            tl = t
            rf = False
            lb = _crossing_bound(uk, ck, th, nc[_TM, k])
            kk = t + lb
            ex = lb == _INF
            continue
        if n_out - out_start >= max_spikes:
            return uk, ck, tl, kk, ex, rf, pk, n_out, CAP_EXCEEDED
        if n_out >= out_t.shape[0]:
            return uk, ck, tl, kk, ex, rf, pk, n_out, BUFFER_FULL
        out_t[n_out], out_nrn[n_out], out_smp[n_out] = t, k, smp
        n_out += 1
        ck = _u_at(t - tl, uk, ck, nc, k)[1]
        uk = u_reset[k]
        tl = t
        if t_ref[k] > 0.0:
            rf = True
            kk = t + t_ref[k]
            ex = True
        else:
            lb = _crossing_bound(uk, ck, th, nc[_TM, k])
            kk = t + lb
            ex = lb == _INF
    return uk, ck, tl, kk, ex, rf, pk, n_out, DONE


@njit(cache=True, nogil=True)
def _propagate(s, uk, ck, w, shared, e_tab, x_tab, inv_slow, ad, inv_tm, mixed, slow):
    """(u, I) after s >= 0 us from (uk, ck) and then I += w: ``_u_at`` bit for bit (skipped when s == 0).

    shared: exp(-s inv_slow) and expm1(-s ad) are e_tab and x_tab (the neuron's exp table entry).
    """
    if shared:
        e_slow, x = e_tab, x_tab
    elif s > 0.0:
        e_slow = math.exp(-s * inv_slow)
        x = math.expm1(-s * ad) if mixed else 0.0
    else:
        e_slow, x = 1.0, 0.0
    e_fast = e_slow * (1.0 + x) if mixed else e_slow
    gk = e_slow * (-x / ad) * inv_tm if mixed else e_slow * s * inv_tm
    em, es = (e_slow, e_fast) if slow else (e_fast, e_slow)
    u_new, c_new = uk * em + ck * gk, ck * es
    # selects, not branches: simultaneous inputs (s == 0) come at random
    return (u_new if s > 0.0 else uk), (c_new if s > 0.0 else ck) + w


@njit(cache=True, nogil=True, error_model="numpy")
def _deliver_ahead(t_in, src, t_prev, e_tab, x_tab, has_tab, wk, uk, ck, tl, inv_slow, ad, inv_tm, mixed, slow,
                   seg_u, seg_c, seg_t):
    """Deliver inputs (t_in, src) to one free neuron without looking for its events: its state after
    each goes to seg_u, seg_c, seg_t (time of its last touch). t_prev, e_tab, x_tab: the exp table
    entries of these inputs. Returns the final state. The hot loop of the module."""
    for jj in range(t_in.shape[0]):
        w = wk[src[jj]]
        if w != 0.0:
            t = t_in[jj]
            shared = has_tab and tl == t_prev[jj]
            uk, ck = _propagate(t - tl, uk, ck, w, shared, e_tab[jj], x_tab[jj], inv_slow, ad, inv_tm, mixed, slow)
            tl = t
        seg_u[jj], seg_c[jj], seg_t[jj] = uk, ck, tl
    return uk, ck, tl


@njit(cache=True, nogil=True, error_model="numpy")
def _first_event(m, seg_u, seg_c, seg_t, seg_next, th, tm, t_end):
    """The first jj < m at which the neuron (state seg_u, seg_c, last touched at seg_t) has its next event
    due at or before seg_next[jj], the next input's time, by the test of the general path (its lower
    bound ``t_last + _crossing_bound``, before t_end); m if at none. Branch-free, so LLVM vectorises it
    (error_model="numpy": the division is not checked for zero; where it would be, lb is a constant)."""
    first = m
    for jj in range(m):
        uj, cj = seg_u[jj], seg_c[jj]
        i_max = cj if cj > 0.0 else 0.0
        lb = _INF if i_max <= th else tm * (th - uj) / (i_max - uj)
        lb = 0.0 if uj >= th else lb
        key = seg_t[jj] + lb
        hit = key <= seg_next[jj] and key < t_end
        first = min(first, jj if hit else m)
    return first


@njit(cache=True, nogil=True, error_model="numpy")
def _neuron_run(k, j0, j1, horizon, c0, ie, t_end, in_t, in_src, wt, nc, group, etab, xtab, t_prev, u_reset, t_ref,
                v_leak, v_reset, probe_t, pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes,
                u, cur, t_last, key, exact, theta, refr, ppos, seg_u, seg_c, seg_t, seg_next, out_t, out_nrn, out_smp):
    """Neuron k through inputs [j0, j1) of the chunk starting at c0, then its own events up to horizon.

    Its state is read from and, when done, written back to the state arrays. Returns (spikes written,
    status): on BUFFER_FULL / CAP_EXCEEDED nothing is written back (the caller redoes or gives up).
    """
    uk, ck, tl, kk, ex, rf, th, pk = u[k], cur[k], t_last[k], key[k], exact[k], refr[k], theta[k], ppos[k]
    probed = pq_ptr[k + 1] > pq_ptr[k]
    g = group[k]
    gt = max(g, 0)  # a valid table row (unused when g < 0)
    wk = wt[k]
    tmk, itm, its, isl, adk = nc[_TM, k], nc[_INV_TM, k], nc[_INV_TS, k], nc[_INV_SLOW, k], nc[_AD, k]
    mixed, slow, ts_is_slow = adk > 0.0, nc[_SLOW_MEM, k] > 0.0, its == isl
    code = DONE
    i = j0
    while i < j1:
        t = in_t[i]
        if not (rf or probed or (kk <= t and kk < t_end)):
            # Fast stretch: deliver inputs i.. without looking for events, then find the first input
            # after which an own event may come before the next input and keep the state there (what
            # follows it is delivered again).
            m = min(_SEG, j1 - i)
            jt = i - c0
            uk, ck, tl = _deliver_ahead(in_t[i:i + m], in_src[i:i + m], t_prev[jt:jt + m], etab[gt, jt:jt + m],
                                        xtab[gt, jt:jt + m], g >= 0, wk, uk, ck, tl, isl, adk, itm, mixed, slow,
                                        seg_u, seg_c, seg_t)
            seg_next[:m - 1] = in_t[i + 1:i + m]
            seg_next[m - 1] = in_t[i + m] if i + m < ie else t_end
            first = _first_event(m, seg_u, seg_c, seg_t, seg_next, th, tmk, t_end)
            last = first if first < m else m - 1
            uk, ck, tl = seg_u[last], seg_c[last], seg_t[last]
            lb = _crossing_bound(uk, ck, th, tmk)
            kk = tl + lb
            ex = lb == _INF
            i += last + 1
            continue
        # General step (own events due, refractory or probed): one input.
        i += 1
        if kk <= t and kk < t_end:
            uk, ck, tl, kk, ex, rf, pk, n_out, code = _own_events(
                k, t, t_end, uk, ck, tl, kk, ex, rf, th, pk, probed, nc, u_reset, t_ref, v_leak, v_reset, probe_t,
                pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp)
            if code != DONE:
                return n_out, code
        w = wk[in_src[i - 1]]
        if w == 0.0:  # no synapse: the queue integrator does not touch the neuron either
            continue
        if probed:
            pk = _flush_probes(k, t, False, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx,
                               v_probe, smp)
        s = t - tl
        jt = i - 1 - c0
        shared = g >= 0 and tl == t_prev[jt]  # then s is the table's interval, bit for bit
        tl = t
        if rf:
            if s > 0.0:
                ck *= etab[gt, jt] if shared and ts_is_slow else math.exp(-s * its)
            ck += w
            continue  # key stays the release time
        uk, ck = _propagate(s, uk, ck, w, shared, etab[gt, jt], xtab[gt, jt], isl, adk, itm, mixed, slow)
        lb = _crossing_bound(uk, ck, th, tmk)
        kk = t + lb
        ex = lb == _INF
    if kk <= horizon and kk < t_end:
        uk, ck, tl, kk, ex, rf, pk, n_out, code = _own_events(
            k, horizon, t_end, uk, ck, tl, kk, ex, rf, th, pk, probed, nc, u_reset, t_ref, v_leak, v_reset, probe_t,
            pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes, out_t, out_nrn, out_smp)
        if code != DONE:
            return n_out, code
    if probed and horizon == t_end:  # the trial's end: the remaining probes
        pk = _flush_probes(k, t_end, True, pk, uk, ck, tl, rf, nc, v_leak, v_reset, probe_t, pq_ptr, pq_idx,
                           v_probe, smp)
    u[k], cur[k], t_last[k], key[k], exact[k], refr[k], ppos[k] = uk, ck, tl, kk, ex, rf, pk
    return n_out, DONE


@njit(cache=True, nogil=True, error_model="numpy")
def _layer_ahead(i, m, ie, t_end, in_t, in_src, wt_in, e_slow, x, t_prev, mixed, slow, ad, u, cur, inv_tm, theta, tm,
                 lay_u, lay_c, first):
    """Layer mode: deliver inputs i .. i + m - 1 to every neuron at once, input by input, as if all were
    free and last touched at the previous input (the state after input jj goes to lay_u[jj], lay_c[jj]),
    and note in first[k] the first jj after which neuron k's next event may come before the next input
    (m if none). Every neuron shares the exp table (e_slow, x: its entries for these inputs) and the
    rows are dense, so a delivery is the same multiply-add for all: plain loops over neurons that LLVM
    vectorises, with the arithmetic of _propagate and the test of _first_event, bit for bit. Entries
    of neurons that were not free or not touched at the previous input are meaningless; the caller
    does not use them.
    """
    n = u.shape[0]
    first[:] = m
    for jj in range(m):
        j = i + jj
        t = in_t[j]
        s = t - t_prev[jj]
        w = wt_in[in_src[j]]
        pu = u if jj == 0 else lay_u[jj - 1]
        pc = cur if jj == 0 else lay_c[jj - 1]
        nu, ncur = lay_u[jj], lay_c[jj]
        if s > 0.0:  # as _propagate
            e_fast = e_slow[jj] * (1.0 + x[jj]) if mixed else e_slow[jj]
            gp = e_slow[jj] * (-x[jj] / ad) if mixed else e_slow[jj] * s
            em, es = (e_slow[jj], e_fast) if slow else (e_fast, e_slow[jj])
            for k in range(n):
                nu[k] = pu[k] * em + pc[k] * (gp * inv_tm[k])
            for k in range(n):
                ncur[k] = pc[k] * es + w[k]
        else:
            for k in range(n):
                nu[k] = pu[k]
            for k in range(n):
                ncur[k] = pc[k] + w[k]
        nx = in_t[j + 1] if j + 1 < ie else t_end
        for k in range(n):  # as _first_event
            uj, cj, th = nu[k], ncur[k], theta[k]
            i_max = cj if cj > 0.0 else 0.0
            lb = _INF if i_max <= th else tm[k] * (th - uj) / (i_max - uj)
            lb = 0.0 if uj >= th else lb
            key = t + lb
            hit = key <= nx and key < t_end
            first[k] = min(first[k], jj if hit else m)


@njit(cache=True, nogil=True)
def _stop(code, cursor, status, smp, c0, seg, k, n_out_k, out_start):
    """Leave _run_ff on BUFFER_FULL (cursor at neuron k of the segment starting at input seg of the
    chunk starting at c0, spikes kept up to n_out_k: a call with larger buffers resumes there) or
    CAP_EXCEEDED (the sample is over its spike cap)."""
    if code == BUFFER_FULL:
        cursor[_C_SMP], cursor[_C_IN], cursor[_C_SEG], cursor[_C_NRN] = smp, c0, seg, k
        cursor[_C_OUT], cursor[_C_START], cursor[_C_LIVE] = n_out_k, out_start, 1
        status[0], status[1], status[2] = smp, n_out_k, BUFFER_FULL
    else:
        status[0], status[1], status[2] = smp, out_start, CAP_EXCEEDED


@njit(cache=True, nogil=True, error_model="numpy")
def _run_ff(wt, wt_in, dense_src, nc, group, tab_inv, tab_ad, v_leak, v_reset, theta0, t_ref, th_off, use_off,
            in_t, in_src, in_off, t_end, probe_t, pq_ptr, pq_idx, v_probe, max_spikes,
            u, cur, t_last, key, exact, theta, refr, ppos, cursor, out_t, out_nrn, out_smp, status):
    """Simulate from ``cursor`` on, sample by sample, chunk by chunk.

    wt: float64[n, n_in], the input weights transposed, and wt_in = its transpose (0 = no synapse);
    dense_src: bool[n_in], input rows without zeros. A chunk goes neuron by neuron (_neuron_run), or, when
    every neuron shares one exp table and the chunk's rows are all dense, in layer mode: segments of
    _LAYER_SEG inputs delivered to all neurons at once (_layer_ahead), then neuron by neuron the state
    is kept up to the segment's end, or up to the input after which an event may come and the rest
    redone by _neuron_run (neurons are independent, so one can go back without the others).
    On a full output buffer it returns with the cursor at the neuron that did not fit (its state and its
    spikes of the chunk / segment are dropped, its probes rewritten on resume): called again with larger
    buffers it carries on exactly there. error_model="numpy": no zero-division checks (divisors are > 0).
    """
    n = v_leak.shape[0]
    n_samples = in_off.shape[0] - 1
    n_tab = tab_inv.shape[0]
    tm, inv_tm, slow_mem, ad = nc[_TM], nc[_INV_TM], nc[_SLOW_MEM], nc[_AD]
    u_reset = v_reset - v_leak
    etab, xtab, t_prev = np.ones((max(n_tab, 1), _CHUNK)), np.zeros((max(n_tab, 1), _CHUNK)), np.empty(_CHUNK)
    seg_u, seg_c, seg_t, seg_next = np.empty(_SEG), np.empty(_SEG), np.empty(_SEG), np.empty(_SEG)
    lay_u, lay_c, first = np.empty((_LAYER_SEG, n)), np.empty((_LAYER_SEG, n)), np.empty(n, np.int64)
    one_table = n > 0 and n_tab == 1
    for k in range(n):
        one_table = one_table and group[k] == 0
    if one_table:
        for k in range(n):
            one_table = one_table and pq_ptr[k + 1] == pq_ptr[k] and ad[k] == ad[0] and slow_mem[k] == slow_mem[0]
    mixed, slow = (ad[0] > 0.0, slow_mem[0] > 0.0) if n > 0 else (False, False)
    smp, c0, i0, k0 = cursor[_C_SMP], cursor[_C_IN], cursor[_C_SEG], cursor[_C_NRN]
    n_out, out_start = cursor[_C_OUT], cursor[_C_START]
    live = cursor[_C_LIVE] != 0
    while smp < n_samples:
        ib, ie = in_off[smp], in_off[smp + 1]
        if not live:
            for j in range(n):
                theta[j] = theta0[j] + th_off[smp, j] if use_off else theta0[j]
                u[j], cur[j], t_last[j], refr[j], ppos[j] = 0.0, 0.0, 0.0, False, 0
                key[j] = _crossing_bound(0.0, 0.0, theta[j], tm[j])
                exact[j] = key[j] == _INF
            c0, i0, k0, out_start, live = ib, ib, 0, n_out, True
        while True:  # chunks [c0, c1) of this sample's inputs; the last one also runs out the trial
            c1 = min(c0 + _CHUNK, ie)
            for i in range(c0, c1):  # the shared exp tables: interval since the previous input
                tp = in_t[i - 1] if i > ib else 0.0
                t_prev[i - c0] = tp
                s = in_t[i] - tp
                for g in range(n_tab):
                    if s > 0.0:
                        etab[g, i - c0] = math.exp(-s * tab_inv[g])
                        xtab[g, i - c0] = math.expm1(-s * tab_ad[g]) if tab_ad[g] > 0.0 else 0.0
                    else:  # not propagated; just keep the entries finite
                        etab[g, i - c0], xtab[g, i - c0] = 1.0, 0.0
            layer = one_table and c1 > c0
            for i in range(c0, c1):
                layer = layer and dense_src[in_src[i]]
            if layer:
                i = max(i0, c0)
                while i < c1:  # segments [i, i1)
                    i1 = min(i + _LAYER_SEG, c1)
                    m = i1 - i
                    horizon = in_t[i1] if i1 < ie else t_end
                    tp = t_prev[i - c0]
                    _layer_ahead(i, m, ie, t_end, in_t, in_src, wt_in, etab[0, i - c0:i1 - c0],
                                 xtab[0, i - c0:i1 - c0], t_prev[i - c0:i1 - c0], mixed, slow, ad[0], u, cur, inv_tm,
                                 theta, tm, lay_u, lay_c, first)
                    for k in range(k0, n):
                        n_out_k = n_out
                        saved = u[k], cur[k], t_last[k], key[k], exact[k]  # the segment is redone from here
                        t_i = in_t[i]
                        free = not refr[k] and t_last[k] == tp and not (key[k] <= t_i and key[k] < t_end)
                        if free and first[k] == m:
                            # no event in the segment: keep its end state (the bound as in _neuron_run)
                            uk, ck = lay_u[m - 1, k], lay_c[m - 1, k]
                            lb = _crossing_bound(uk, ck, theta[k], tm[k])
                            u[k], cur[k], t_last[k], key[k], exact[k] = uk, ck, in_t[i1 - 1], in_t[i1 - 1] + lb, lb == _INF
                            if not (key[k] <= horizon and key[k] < t_end):
                                continue
                            j_from = i1
                        elif free:  # keep the state after the input where an event may come, redo the rest
                            f = min(first[k], m - 1)
                            uk, ck = lay_u[f, k], lay_c[f, k]
                            lb = _crossing_bound(uk, ck, theta[k], tm[k])
                            u[k], cur[k], t_last[k], key[k], exact[k] = uk, ck, in_t[i + f], in_t[i + f] + lb, lb == _INF
                            j_from = i + f + 1
                        else:
                            j_from = i
                        n_out, code = _neuron_run(
                            k, j_from, i1, horizon, c0, ie, t_end, in_t, in_src, wt, nc, group, etab, xtab, t_prev,
                            u_reset, t_ref, v_leak, v_reset, probe_t, pq_ptr, pq_idx, v_probe, smp, n_out, out_start,
                            max_spikes, u, cur, t_last, key, exact, theta, refr, ppos, seg_u, seg_c, seg_t, seg_next,
                            out_t, out_nrn, out_smp)
                        if code != DONE:
                            if code == BUFFER_FULL:  # redo this segment from neuron k (the others are done)
                                u[k], cur[k], t_last[k], key[k], exact[k] = saved
                            _stop(code, cursor, status, smp, c0, i, k, n_out_k, out_start)
                            return
                    k0 = 0
                    i = i1
            else:
                horizon = in_t[c1] if c1 < ie else t_end  # events after the chunk's last input up to here
                for k in range(k0, n):
                    n_out_k = n_out
                    n_out, code = _neuron_run(
                        k, c0, c1, horizon, c0, ie, t_end, in_t, in_src, wt, nc, group, etab, xtab, t_prev, u_reset,
                        t_ref, v_leak, v_reset, probe_t, pq_ptr, pq_idx, v_probe, smp, n_out, out_start, max_spikes,
                        u, cur, t_last, key, exact, theta, refr, ppos, seg_u, seg_c, seg_t, seg_next, out_t, out_nrn,
                        out_smp)
                    if code != DONE:
                        # BUFFER_FULL: this neuron's chunk is dropped and redone from its saved state
                        _stop(code, cursor, status, smp, c0, c0, k, n_out_k, out_start)
                        return
                k0 = 0
            if c1 == ie:
                break
            c0 = c1
            i0 = c0
        smp += 1
        live = False
    cursor[_C_SMP], cursor[_C_OUT], cursor[_C_LIVE] = smp, n_out, 0
    status[0], status[1], status[2] = n_samples, n_out, DONE
