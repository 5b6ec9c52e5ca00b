"""Numba kernels for the per-step glue of the learner (what the PPU runs around the adjoint sweep).

Each replaces a handful of numpy calls whose fixed cost (~5-20 us each) dominated at the batch
sizes the PPU sees (16 samples, ~2,000 events): splitting the recorded stream, first output
spikes, the weight update and its changed rows. Every kernel computes the same bits as the numpy
expressions it replaces (tests/test_learner_kernels.py compares them with their numpy twins in
tests/reference/learner_naive.py); where numpy would sort, the kernel only checks that the data is
already in order and the caller sorts when it is not (a stable sort of sorted keys is the identity).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["split_events", "first_spikes", "clip_mask_changed", "gather_codes"]


@njit(cache=True, nogil=True)
def split_events(t_ticks, label, sample, sample_ticks, ticks_per_us, src_of_label, n_in,
                 in_t, in_src, in_smp, sp_t, sp_n, sp_smp, out):
    """Split a stream of events into inputs and neuron spikes, in stream order.

    t_ticks, label, sample: int64[m]; src_of_label: int64[65536] source of each label (-1: none; inputs
    0..n_in-1, neurons n_in..). Writes t_us = (t_ticks - sample * sample_ticks) / ticks_per_us (float64,
    numpy's true division), the input's source / the neuron index (int32) and the sample (int32) into
    the first out[0] entries of
    the in_* and out[1] entries of the sp_* arrays (each of length m). out[2], out[3]: 1 when the
    inputs / spikes are already sorted by (sample, t_us, source), else 0.
    """
    ni = 0
    ns = 0
    in_ok = 1
    sp_ok = 1
    for i in range(t_ticks.shape[0]):
        src = src_of_label[label[i]]
        if src < 0:
            continue
        s = sample[i]
        t = (t_ticks[i] - s * sample_ticks) / ticks_per_us
        if src < n_in:
            if ni and in_ok:
                ps, pt, pn = in_smp[ni - 1], in_t[ni - 1], in_src[ni - 1]
                if not (ps < s or (ps == s and (pt < t or (pt == t and pn <= src)))):
                    in_ok = 0
            in_t[ni] = t
            in_src[ni] = src
            in_smp[ni] = s
            ni += 1
        else:
            j = src - n_in
            if ns and sp_ok:
                ps, pt, pn = sp_smp[ns - 1], sp_t[ns - 1], sp_n[ns - 1]
                if not (ps < s or (ps == s and (pt < t or (pt == t and pn <= j)))):
                    sp_ok = 0
            sp_t[ns] = t
            sp_n[ns] = j
            sp_smp[ns] = s
            ns += 1
    out[0] = ni
    out[1] = ns
    out[2] = in_ok
    out[3] = sp_ok


@njit(cache=True, nogil=True)
def first_spikes(t, neuron, sample, col_of_neuron, first_t, first_i) -> bool:
    """First spike of each output in each sample, into first_t float64[n_samples, n_out] (inf) and
    first_i int64[n_samples, n_out] (-1): the earliest time, ties to the lowest index (what a stable
    sort by (sample, output, t) puts first). col_of_neuron: int64 output column of each neuron (-1:
    not an output). Returns False, having written nothing meaningful, if a neuron or sample index
    lies outside the tables (the caller then takes the numpy path and its errors)."""
    n_samples = first_t.shape[0]
    for k in range(t.shape[0]):
        nk = neuron[k]
        if nk < 0 or nk >= col_of_neuron.shape[0]:
            return False
        c = col_of_neuron[nk]
        if c < 0:
            continue
        s = sample[k]
        if s < 0 or s >= n_samples:
            return False
        tk = t[k]
        ft = first_t[s, c]
        if first_i[s, c] < 0 or tk < ft or (ft != ft and tk == tk):
            first_t[s, c] = tk
            first_i[s, c] = k
    return True


@njit(cache=True, nogil=True)
def clip_mask_changed(old, new, mask, lim, code_max, after, changed):
    """new := where(mask, clip(new, -lim, lim), 0) in place; after := its signed codes
    clip(rint(new), -code_max, code_max); changed[r] := 1 where row r's codes differ from old's
    (old, new, after float64[r, c], mask bool[r, c]; np.clip's and np.rint's bits)."""
    for r in range(new.shape[0]):
        flag = 0
        for c in range(new.shape[1]):
            if mask[r, c]:
                v = new[r, c]
                v = max(v, -lim) if v == v else v
                v = min(v, lim) if v == v else v
            else:
                v = 0.0
            new[r, c] = v
            a = np.rint(old[r, c])
            a = min(max(a, -code_max), code_max) if a == a else a
            b = np.rint(v)
            b = min(max(b, -code_max), code_max) if b == b else b
            after[r, c] = b
            if a != b:
                flag = 1
        changed[r] = flag


@njit(cache=True, nogil=True)
def gather_codes(signed, src, sign, codes):
    """codes[k] := the uint8 synapse codes max(sign[k] * signed[src[k]], 0) (signed float64[r, c] whole
    codes, sign +1 for an excitatory row, -1 for an inhibitory one; codes uint8[m, c])."""
    for k in range(src.shape[0]):
        for c in range(signed.shape[1]):
            v = sign[k] * signed[src[k], c]
            codes[k, c] = np.uint8(v) if v > 0 else np.uint8(0)
