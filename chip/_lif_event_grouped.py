"""Exact event-driven LIF integration of a layered network, a whole layer at a time, interval by interval.

The neuron-by-neuron kernels (``_lif_event_ff``, ``_lif_event_layered``) pay two scalar exponentials per
delivery and a scalar root search per spike. A layer of a network like Yin-Yang's hears the same few
event times in every neuron (25 inputs at 5 distinct times; then ~100 hidden spikes), so here a layer
goes through the distinct times of its event stream together:

1. the propagation factors exp(-dt/tau_slow) and expm1(-dt |1/tau_syn - 1/tau_mem|) of every (neuron,
   interval between consecutive distinct times) are computed in one vectorised pass (``_vexp``); a
   wide layer (>= 8 neurons) stores them interval-major, so that the loops below run over its neurons;
2. the closed form of ``_lif_closed_form`` takes each neuron through its intervals (deliveries add
   the weights of all events at the interval's start; propagation is then a few multiply-adds) up to
   the first interval that may hold a crossing: u at the interval's end at or above theta, or u rising
   at the start, falling at the end and a cheap bound not ruling it out. A wide layer does this for
   all its neurons at once in one branch-free pass; then each neuron so marked goes on alone from
   there, where a peak is looked at exactly (is u at its critical point above theta?);
3. the crossings of the layer are then solved together (``_solve_crossings``: the safeguarded
   iteration of ``_lif_closed_form._root`` with Halley steps from a cubic Hermite start, in lock-step
   over all of them, its exponentials vectorised; while most are open a round is one branch-free
   pass over all of them).

A layer's spikes are sorted (counting sort) and merged into the stream for the next layer and into
the sample's spikes so far, which stay one sorted run, so no sample is sorted twice.

This path assumes what makes it fast: a neuron's first spike ends its trial (its refractory period
reaches past t_end) and theta > 0 (a neuron at rest is below threshold). A neuron where either fails
(its crossing is solved at once when its interval starts less than t_ref before t_end, to know) is
integrated alone by ``_lif_event_layered._neuron_through``, exactly as the layered kernel would. A layer
whose neurons hear few of the stream's events (a sparse layer) goes neuron by neuron too: the interval
pass costs neurons x intervals, the other one the deliveries.

Results: the same spikes as the event queue up to rounding (spike times agree to ~1e-13 us, tested);
not bit-identical, because propagations are grouped differently and the exponentials are ``_vexp``'s
(<= 1 ulp from libm's). Deterministic: a sample's spikes depend only on that sample's inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._lif_closed_form import _AD, _E, _INV_SLOW, _INV_TM, _INV_TS, _SLOW_MEM, _TM, _root, _s_critical, _u_at
from ._lif_event_layered import _add_layer_spikes, _grow, _load_sample, _merge_sorted_runs, _neuron_through, _sort_spikes
from ._spikes import BUFFER_FULL, CAP_EXCEEDED, DONE
from ._vexp import exp_into, expm1_into

# Resumable kernel: cursor = [sample, spikes written]; a sample that does not fit is redone from its start.
_C_SMP, _C_OUT = range(2)

_WIDE_LAYER = 8  # a layer of at least this many neurons keeps its tables interval-major
_GROUPED_ADVANTAGE = 3  # a layer goes interval by interval when neurons x intervals <= this x its deliveries


def layer_fill(wt: np.ndarray, order: np.ndarray, layer_ptr: np.ndarray) -> np.ndarray:
    """int64[L, rows]: how many neurons of each layer have a synapse from each source row (wt: [n, rows])."""
    fill = np.zeros((layer_ptr.size - 1, wt.shape[1]), np.int64)
    for lay in range(layer_ptr.size - 1):
        fill[lay] = np.count_nonzero(wt[order[layer_ptr[lay]:layer_ptr[lay + 1]]], axis=0)
    return fill


_MASKED_SHARE = 4  # lock-step rounds go over every crossing (no compaction) while more than 1/this are open


@njit(cache=True, nogil=True, error_model="numpy")
def _solve_crossings(nj, job_k, job_u, job_c, job_th, job_hi, job_flo, job_fhi, job_dhi, nc, res, buf):
    """res[q] = s in [0, job_hi[q]] with u(s) = theta for each crossing q < nj, from state (u, c);
    job_flo, job_fhi: u - theta at 0 and at job_hi; job_dhi: du/ds at job_hi (LSB/us).

    The safeguarded iteration of ``_lif_closed_form._root`` (steps inside a shrinking bracket,
    bisection when a step leaves it or converges too slowly; stop at |step| < 1e-14 (1 + s)), with
    three changes: it starts at the root of the cubic Hermite interpolant of u - theta on the bracket,
    takes Halley steps (u'' costs no exponential), and takes a Halley step below 1e-6 (1 + s) without
    evaluating its result (it lands within ~1e-18 relative): ~2.0 evaluations a crossing on Yin-Yang
    instead of ~5.1. All crossings go in lock-step, so each round's exponentials go through one
    vectorised call. While most crossings are open, a round is one branch-free pass over all of them
    (a settled one keeps its values through selects); the few left then move to the front and go on
    alone. Each crossing sees the same operations either way. buf: float64[>= 17 nj].
    """
    isl, ad, itm, its, slow = buf[0:nj], buf[nj:2 * nj], buf[2 * nj:3 * nj], buf[3 * nj:4 * nj], buf[4 * nj:5 * nj]
    lo, hi, x = buf[5 * nj:6 * nj], buf[6 * nj:7 * nj], buf[7 * nj:8 * nj]
    dx, dxo, uu, cc = buf[8 * nj:9 * nj], buf[9 * nj:10 * nj], buf[10 * nj:11 * nj], buf[11 * nj:12 * nj]
    a_s, a_m, e_s, x_m = buf[12 * nj:13 * nj], buf[13 * nj:14 * nj], buf[14 * nj:15 * nj], buf[15 * nj:16 * nj]
    opn = buf[16 * nj:17 * nj]
    th, inv_ad = np.empty(nj), np.empty(nj)
    idx = np.empty(nj, np.int64)
    for q in range(nj):
        k = job_k[q]
        isl[q], ad[q], itm[q], its[q], slow[q] = nc[_INV_SLOW, k], nc[_AD, k], nc[_INV_TM, k], nc[_INV_TS, k], \
            nc[_SLOW_MEM, k]
        uu[q], cc[q], th[q] = job_u[q], job_c[q], job_th[q]
    for q in range(nj):
        inv_ad[q] = 1.0 / ad[q] if ad[q] > 0.0 else 0.0
        lo[q], hi[q] = 0.0, job_hi[q]
        f_lo, f_hi = job_flo[q], job_fhi[q]
        # start at the root of the cubic Hermite interpolant of u - theta on [0, hi] (values and slopes
        # at both ends; Newton steps on the cubic from the regula falsi point): ~2.0 evaluations a
        # crossing instead of ~3.0 on Yin-Yang
        h = hi[q]
        m0 = (job_c[q] - job_u[q]) * itm[q] * h
        m1 = job_dhi[q] * h
        c3 = 2.0 * f_lo + m0 - 2.0 * f_hi + m1
        c2 = -3.0 * f_lo - 2.0 * m0 + 3.0 * f_hi - m1
        tq = -f_lo / (f_hi - f_lo)
        for _ in range(4):
            pv = ((c3 * tq + c2) * tq + m0) * tq + f_lo
            pd = (3.0 * c3 * tq + 2.0 * c2) * tq + m0
            tn = tq - pv / pd
            tq = tn if (tn > 0.0) & (tn < 1.0) else tq
        xq = tq * h
        x[q] = xq if (xq > lo[q]) & (xq < hi[q]) else 0.5 * (lo[q] + hi[q])
        dxo[q] = hi[q] - lo[q]
        dx[q] = dxo[q]
        opn[q] = 1.0
    na = nj
    rnd = 0
    while rnd < 201 and na * _MASKED_SHARE > nj:
        for p in range(nj):
            a_s[p] = -x[p] * isl[p]
            a_m[p] = -x[p] * ad[p]
        exp_into(a_s[:nj], e_s[:nj])
        expm1_into(a_m[:nj], x_m[:nj])
        later = rnd > 0
        na = 0
        for p in range(nj):
            xq, es_, xm, adq, itmq = x[p], e_s[p], x_m[p], ad[p], itm[p]
            mixed = adq > 0.0  # as _decay
            e_fast = es_ * (1.0 + xm) if mixed else es_
            g = es_ * (-xm * inv_ad[p]) * itmq if mixed else es_ * xq * itmq
            sl = slow[p] > 0.0
            em = es_ if sl else e_fast
            es = e_fast if sl else es_
            u = uu[p] * em + cc[p] * g
            i = cc[p] * es
            f = u - th[p]
            df = (i - u) * itmq
            # as _root: the bracket moves after each evaluation but the first
            lo_q = xq if later & (f < 0.0) else lo[p]
            hi_q = xq if later & (f > 0.0) else hi[p]
            exact = later & (f == 0.0)
            d2 = (-i * its[p] - df) * itmq
            r_df = 1.0 / df
            newton = f * r_df
            den = 1.0 - 0.5 * newton * d2 * r_df
            halley = den > 0.5
            step = newton / den if halley else newton
            nx = xq - step
            bisect = (not ((nx > lo_q) & (nx < hi_q))) | (abs(2.0 * f) > abs(dxo[p] * df))
            step = 0.5 * (hi_q - lo_q) if bisect else step
            nx = lo_q + step if bisect else nx
            halley = halley & (not bisect)
            # a Halley step from within 1e-6 (1 + s) of the root lands within ~(1e-6)**3 of it (u's scale is
            # tau_mem ~ 10 us), so that one needs no check of its own
            settled = (abs(step) < 1e-14 * (1.0 + nx)) | (halley & (abs(step) < 1e-6 * (1.0 + nx)))
            was_open = opn[p] > 0.0
            stays = was_open & (not exact) & (not settled)
            ends = was_open & (not stays)
            res[p] = (xq if exact else nx) if ends else res[p]
            lo[p] = lo_q if stays else lo[p]
            hi[p] = hi_q if stays else hi[p]
            x[p] = nx if stays else xq
            dxo[p] = dx[p] if stays else dxo[p]
            dx[p] = step if stays else dx[p]
            opn[p] = 1.0 if stays else 0.0
            na += 1 if stays else 0
        rnd += 1
    keep = 0
    for p in range(nj):  # the crossings still open to the front
        if opn[p] > 0.0:
            idx[keep] = p
            isl[keep], ad[keep], itm[keep], its[keep], slow[keep] = isl[p], ad[p], itm[p], its[p], slow[p]
            uu[keep], cc[keep], th[keep], inv_ad[keep] = uu[p], cc[p], th[p], inv_ad[p]
            lo[keep], hi[keep], x[keep], dxo[keep], dx[keep] = lo[p], hi[p], x[p], dxo[p], dx[p]
            keep += 1
    na = keep
    while rnd < 201 and na > 0:
        for p in range(na):
            a_s[p] = -x[p] * isl[p]
            a_m[p] = -x[p] * ad[p]
        exp_into(a_s[:na], e_s[:na])
        expm1_into(a_m[:na], x_m[:na])
        keep = 0
        for p in range(na):
            xq, es_, xm, adq, itmq = x[p], e_s[p], x_m[p], ad[p], itm[p]
            if adq > 0.0:  # as _decay
                e_fast = es_ * (1.0 + xm)
                g = es_ * (-xm * inv_ad[p]) * itmq
            else:
                e_fast = es_
                g = es_ * xq * itmq
            em, es = (es_, e_fast) if slow[p] > 0.0 else (e_fast, es_)
            u = uu[p] * em + cc[p] * g
            i = cc[p] * es
            f = u - th[p]
            df = (i - u) * itmq
            lo_q, hi_q = lo[p], hi[p]
            if rnd > 0:
                if f < 0.0:
                    lo_q = xq
                elif f > 0.0:
                    hi_q = xq
                else:
                    res[idx[p]] = xq
                    continue
            d2 = (-i * its[p] - df) * itmq
            r_df = 1.0 / df
            newton = f * r_df
            den = 1.0 - 0.5 * newton * d2 * r_df
            halley = den > 0.5
            step = newton / den if halley else newton
            nx = xq - step
            if not (nx > lo_q and nx < hi_q) or abs(2.0 * f) > abs(dxo[p] * df):
                step = 0.5 * (hi_q - lo_q)
                nx = lo_q + step
                halley = False
            if abs(step) < 1e-14 * (1.0 + nx) or (halley and abs(step) < 1e-6 * (1.0 + nx)):
                res[idx[p]] = nx
                continue
            idx[keep] = idx[p]
            isl[keep], ad[keep], itm[keep], its[keep], slow[keep] = isl[p], adq, itmq, its[p], slow[p]
            uu[keep], cc[keep], th[keep], inv_ad[keep] = uu[p], cc[p], th[p], inv_ad[p]
            lo[keep], hi[keep], x[keep] = lo_q, hi_q, nx
            dxo[keep], dx[keep] = dx[p], step
            keep += 1
        na = keep
        rnd += 1
    for p in range(na):  # not settled in 201 rounds: the last iterate (as _root)
        res[idx[p]] = x[p]


@njit(cache=True, nogil=True, error_model="numpy")
def _run_grouped(wt, wl, n_in, order, layer_ptr, fill, nc, v_leak, v_reset, theta0, t_ref, th_off, use_off, in_t, in_src,
                 in_off, t_end, max_spikes, cursor, out_t, out_nrn, out_smp, status):
    """Simulate from ``cursor`` on, sample by sample, layer by layer, each layer interval by interval.

    wt: float64[n, n_in + n], row k = the weights onto neuron k from each source row (0 = no synapse);
    wl: float64[n_in + n, n], its transpose with the neurons in layer order (wl[r, q] = wt[order[q], r]);
    order, layer_ptr: from ``neuron_layers``; fill: from ``layer_fill``. On a full output buffer it
    returns with the cursor at the start of the sample that did not fit (redone with larger buffers).
    """
    n = v_leak.shape[0]
    n_samples = in_off.shape[0] - 1
    n_layers = layer_ptr.shape[0] - 1
    u_reset = v_reset - v_leak
    no_probe_t = np.zeros(0)
    no_pq_ptr = np.zeros(n + 1, np.int64)
    no_pq_idx = np.zeros(0, np.int64)
    no_v_probe = np.zeros((0, 0, 0))
    ev_t, ev_r = np.empty(64), np.empty(64, np.int64)
    tmp_t, tmp_r = np.empty(64), np.empty(64, np.int64)
    g_start, g_t = np.empty(65, np.int64), np.empty(64)
    arg_s, arg_m, tab_e, tab_x, g_sum = np.empty(256), np.empty(256), np.empty(256), np.empty(256), np.empty(256)
    g_dt = np.empty(64)
    job_k, job_t0 = np.empty(64, np.int64), np.empty(64)
    job_u, job_c, job_th, job_hi, job_flo, job_fhi = np.empty(64), np.empty(64), np.empty(64), np.empty(64), \
        np.empty(64), np.empty(64)
    job_s, job_dhi, scratch = np.empty(64), np.empty(64), np.empty(17 * 64)
    s_cnt, s_t, s_n, s_r = np.empty(128, np.int64), np.empty(128), np.empty(128, out_nrn.dtype), np.empty(128, np.int64)
    # per-neuron constants in layer order (contiguous over a layer's neurons)
    l_isl, l_ad, l_itm, l_gmix, l_tm, l_e = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), \
        np.empty(n)
    l_mixed, l_slow = np.empty(n, np.bool_), np.empty(n, np.bool_)
    for q in range(n):
        k = order[q]
        ad, inv_tm = nc[_AD, k], nc[_INV_TM, k]
        l_isl[q], l_ad[q], l_itm[q], l_tm[q], l_e[q] = nc[_INV_SLOW, k], ad, inv_tm, nc[_TM, k], nc[_E, k]
        l_mixed[q], l_slow[q] = ad > 0.0, nc[_SLOW_MEM, k] > 0.0
        l_gmix[q] = inv_tm / ad if ad > 0.0 else 0.0
    s_th, s_u, s_c, s_hu, s_hc = np.empty(64), np.empty(64), np.empty(64), np.empty(64), np.empty(64)
    s_hit = np.empty(64, np.int64)
    smp, n_out = cursor[_C_SMP], cursor[_C_OUT]
    while smp < n_samples:
        out_start = n_out
        ev_t, ev_r, tmp_t, tmp_r, m = _load_sample(in_t, in_src, in_off[smp], in_off[smp + 1], ev_t, ev_r, tmp_t, tmp_r)
        for lay in range(n_layers):
            lay_start = n_out
            q0, q1 = layer_ptr[lay], layer_ptr[lay + 1]
            nb = q1 - q0
            # the distinct times of the stream: group j is events [g_start[j], g_start[j + 1]) at g_t[j]
            g_start = _grow(g_start, m + 1)
            g_t = _grow(g_t, m)
            n_g = 0
            for i in range(m):
                if i == 0 or ev_t[i] != ev_t[i - 1]:
                    g_start[n_g] = i
                    g_t[n_g] = ev_t[i]
                    n_g += 1
            g_start[n_g] = m
            touched = 0
            for i in range(m):
                touched += fill[lay, ev_r[i]]
            grouped = n_g > 0 and nb * n_g <= _GROUPED_ADVANTAGE * touched
            code = DONE
            n_jobs = 0
            if grouped:
                size = nb * n_g
                arg_s, arg_m, tab_e, tab_x = _grow(arg_s, size), _grow(arg_m, size), _grow(tab_e, size), \
                    _grow(tab_x, size)
                g_dt = _grow(g_dt, n_g)
                for j in range(n_g):
                    g_dt[j] = (g_t[j + 1] if j + 1 < n_g else t_end) - g_t[j]
                # 1. the propagation factors of every (interval, neuron), in two vectorised passes; stored
                # interval-major (table[j * nb + q]) when the layer is wide enough for the inner loops to run
                # over its neurons, else neuron-major (table[q * n_g + j])
                wide = nb >= _WIDE_LAYER
                sj, sq = (nb, 1) if wide else (1, n_g)
                if wide:
                    for j in range(n_g):
                        dtj = g_dt[j]
                        a_s, a_m = arg_s[j * nb:(j + 1) * nb], arg_m[j * nb:(j + 1) * nb]
                        for q in range(nb):
                            a_s[q] = -dtj * l_isl[q0 + q]
                            a_m[q] = -dtj * l_ad[q0 + q]
                else:
                    for q in range(nb):
                        isl, ad = l_isl[q0 + q], l_ad[q0 + q]
                        a_s, a_m = arg_s[q * n_g:(q + 1) * n_g], arg_m[q * n_g:(q + 1) * n_g]
                        for j in range(n_g):
                            a_s[j] = -g_dt[j] * isl
                            a_m[j] = -g_dt[j] * ad
                exp_into(arg_s[:size], tab_e[:size])
                expm1_into(arg_m[:size], tab_x[:size])
                # then (exp(-dt/tau_mem), exp(-dt/tau_syn), g(dt)) of each (interval, neuron), as _decay
                # computes them, in place of (arg_s, arg_m, tab_e): loops of selects that LLVM vectorises
                if wide:
                    for j in range(n_g):
                        dtj = g_dt[j]
                        e_sl, x_m = tab_e[j * nb:(j + 1) * nb], tab_x[j * nb:(j + 1) * nb]
                        t_em, t_es = arg_s[j * nb:(j + 1) * nb], arg_m[j * nb:(j + 1) * nb]
                        t_g = tab_e[j * nb:(j + 1) * nb]
                        for q in range(nb):
                            e_slow, xm = e_sl[q], x_m[q]
                            mixed, slow = l_mixed[q0 + q], l_slow[q0 + q]
                            e_fast = e_slow * (1.0 + xm) if mixed else e_slow
                            gk = e_slow * -xm * l_gmix[q0 + q] if mixed else e_slow * dtj * l_itm[q0 + q]
                            t_em[q] = e_slow if slow else e_fast
                            t_es[q] = e_fast if slow else e_slow
                            t_g[q] = gk
                else:
                    for q in range(nb):
                        mixed, slow = l_mixed[q0 + q], l_slow[q0 + q]
                        g_mix, inv_tm = l_gmix[q0 + q], l_itm[q0 + q]
                        e_sl, x_m = tab_e[q * n_g:(q + 1) * n_g], tab_x[q * n_g:(q + 1) * n_g]
                        t_em, t_es = arg_s[q * n_g:(q + 1) * n_g], arg_m[q * n_g:(q + 1) * n_g]
                        t_g = tab_e[q * n_g:(q + 1) * n_g]
                        for j in range(n_g):
                            e_slow, xm = e_sl[j], x_m[j]
                            e_fast = e_slow * (1.0 + xm) if mixed else e_slow
                            gk = e_slow * -xm * g_mix if mixed else e_slow * g_dt[j] * inv_tm
                            t_em[j] = e_slow if slow else e_fast
                            t_es[j] = e_fast if slow else e_slow
                            t_g[j] = gk
                # the weight each neuron receives at each distinct time (rows of wl are contiguous per layer)
                g_sum = _grow(g_sum, size)
                g_sum[:size] = 0.0
                for j in range(n_g):
                    acc = g_sum[j * nb:(j + 1) * nb]
                    for i in range(g_start[j], g_start[j + 1]):
                        row = wl[ev_r[i], q0:q1]
                        for q in range(nb):
                            acc[q] += row[q]
                job_k, job_t0, job_u, job_c = _grow(job_k, nb), _grow(job_t0, nb), _grow(job_u, nb), _grow(job_c, nb)
                job_th, job_hi, job_flo, job_fhi = _grow(job_th, nb), _grow(job_hi, nb), _grow(job_flo, nb), \
                    _grow(job_fhi, nb)
                job_dhi = _grow(job_dhi, nb)
                s_th, s_u, s_c, s_hu, s_hc = _grow(s_th, nb), _grow(s_u, nb), _grow(s_c, nb), _grow(s_hu, nb), \
                    _grow(s_hc, nb)
                s_hit = _grow(s_hit, nb)
                # 2. all neurons through the intervals together (branch-free), each keeping its state at the
                # start of the first interval that may hold a crossing: u at the end at or above theta, or
                # u rising, then falling within the interval, and the bound I(s) <= c not keeping it below
                for q in range(nb):
                    k = order[q0 + q]
                    s_th[q] = theta0[k] + th_off[smp, k] if use_off else theta0[k]
                    s_u[q], s_c[q], s_hit[q] = 0.0, 0.0, -1 if wide else 0
                if wide:
                    for j in range(n_g):
                        em_j, es_j = arg_s[j * nb:(j + 1) * nb], arg_m[j * nb:(j + 1) * nb]
                        g_j, gs_j = tab_e[j * nb:(j + 1) * nb], g_sum[j * nb:(j + 1) * nb]
                        for q in range(nb):
                            u, em = s_u[q], em_j[q]
                            c = s_c[q] + gs_j[q]
                            u1 = u * em + c * g_j[q]
                            c1 = c * es_j[q]
                            th = s_th[q]
                            may = (u1 >= th) | ((c > u) & (c > th) & (c1 < u1) & (c + (u - c) * em >= th))
                            first = may & (s_hit[q] < 0)
                            s_hit[q] = j if first else s_hit[q]
                            s_hu[q] = u if first else s_hu[q]
                            s_hc[q] = c if first else s_hc[q]
                            s_u[q], s_c[q] = u1, c1
                # 3. each neuron with such an interval from there on alone, up to the first real crossing
                for q in range(nb):
                    k = order[q0 + q]
                    th = s_th[q]
                    alone = not th > 0.0
                    j0 = s_hit[q]
                    if not alone and j0 >= 0:
                        inv_tm, tmk, ek = l_itm[q0 + q], l_tm[q0 + q], l_e[q0 + q]
                        # from the scan c holds the deliveries at the interval's start; else from rest
                        u, c = (s_hu[q], s_hc[q]) if wide else (0.0, 0.0)
                        for j in range(j0, n_g):
                            if j > j0 or not wide:
                                c += g_sum[j * nb + q]
                            t0 = g_t[j]
                            dt = g_dt[j]
                            em, es, gk = arg_s[j * sj + q * sq], arg_m[j * sj + q * sq], tab_e[j * sj + q * sq]
                            u1, c1 = u * em + c * gk, c * es
                            hi, f_hi, d_hi = -1.0, 0.0, 0.0
                            if u1 >= th:
                                hi, f_hi, d_hi = dt, u1 - th, (c1 - u1) * inv_tm
                            elif c > u and c > th and c1 < u1 and c + (u - c) * em >= th:
                                # u rises, then falls within the interval, and the bound I(s) <= c does
                                # not keep it below theta: look at the peak
                                sc = _s_critical(u, c, tmk, ek)
                                if sc > 0.0 and sc < dt:
                                    up = _u_at(sc, u, c, nc, k)[0]
                                    if up >= th:
                                        hi, f_hi, d_hi = sc, up - th, 0.0
                            if hi >= 0.0:
                                if t0 + t_ref[k] < t_end:
                                    # a release within the trial is possible: find out now
                                    t = t0 + _root(0.0, hi, u - th, f_hi, u, c, th, nc, k)
                                    if t + t_ref[k] < t_end:  # it may spike again: the general path
                                        alone = True
                                    elif t < t_end:
                                        if n_out - out_start >= max_spikes:
                                            code = CAP_EXCEEDED
                                        elif n_out >= out_t.shape[0]:
                                            code = BUFFER_FULL
                                        else:
                                            out_t[n_out], out_nrn[n_out], out_smp[n_out] = t, k, smp
                                            n_out += 1
                                else:
                                    job_k[n_jobs], job_t0[n_jobs], job_u[n_jobs], job_c[n_jobs] = k, t0, u, c
                                    job_th[n_jobs], job_hi[n_jobs] = th, hi
                                    job_flo[n_jobs], job_fhi[n_jobs], job_dhi[n_jobs] = u - th, f_hi, d_hi
                                    n_jobs += 1
                                break
                            u, c = u1, c1
                    if code != DONE:
                        break
                    if alone:
                        n_out, code = _neuron_through(k, ev_t, ev_r, m, wt[k], th, t_end, nc, u_reset, t_ref, v_leak,
                                                      v_reset, no_probe_t, no_pq_ptr, no_pq_idx, no_v_probe, smp,
                                                      n_out, out_start, max_spikes, out_t, out_nrn, out_smp)
                        if code != DONE:
                            break
                # 4. the crossings, solved together
                if code == DONE and n_jobs > 0:
                    job_s = _grow(job_s, n_jobs)
                    scratch = _grow(scratch, 17 * n_jobs)
                    _solve_crossings(n_jobs, job_k, job_u, job_c, job_th, job_hi, job_flo, job_fhi, job_dhi, nc, job_s,
                                     scratch)
                    for q in range(n_jobs):
                        t = job_t0[q] + job_s[q]
                        if not t < t_end:
                            continue
                        if n_out - out_start >= max_spikes:
                            code = CAP_EXCEEDED
                            break
                        if n_out >= out_t.shape[0]:
                            code = BUFFER_FULL
                            break
                        out_t[n_out], out_nrn[n_out], out_smp[n_out] = t, job_k[q], smp
                        n_out += 1
            else:
                for q in range(q0, q1):
                    k = order[q]
                    th = theta0[k] + th_off[smp, k] if use_off else theta0[k]
                    n_out, code = _neuron_through(k, ev_t, ev_r, m, wt[k], th, t_end, nc, u_reset, t_ref, v_leak,
                                                  v_reset, no_probe_t, no_pq_ptr, no_pq_idx, no_v_probe, smp, n_out,
                                                  out_start, max_spikes, out_t, out_nrn, out_smp)
                    if code != DONE:
                        break
            if code != DONE:
                if code == BUFFER_FULL:
                    cursor[_C_SMP], cursor[_C_OUT] = smp, out_start
                status[0], status[1], status[2] = smp, out_start, code
                return
            n_new = n_out - lay_start
            s_cnt, s_t, s_n = _grow(s_cnt, n_out - out_start + 1), _grow(s_t, n_out - out_start), \
                _grow(s_n, n_out - out_start)
            s_r = _grow(s_r, n_new)
            if lay + 1 < n_layers and n_new > 0:
                # the layer's spikes in record order, then into the stream for the next layer
                ev_t, ev_r, tmp_t, tmp_r, m = _add_layer_spikes(out_t, out_nrn, lay_start, n_out, n_in, t_end, ev_t,
                                                                ev_r, tmp_t, tmp_r, m, s_cnt, s_t, s_n, s_r)
            elif n_new > 1:
                _sort_spikes(out_t, out_nrn, lay_start, n_out, t_end, s_cnt, s_t, s_n)
            # the sample's spikes so far are one run in record order: merge the layer's run into it
            if lay_start > out_start and n_new > 0:
                _merge_sorted_runs(out_t, out_nrn, out_start, lay_start, n_out, s_t, s_n)
        smp += 1
    cursor[_C_SMP], cursor[_C_OUT] = smp, n_out
    status[0], status[1], status[2] = n_samples, n_out, DONE
