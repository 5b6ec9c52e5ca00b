"""The learner's per-step glue as plain numpy (what chip/_learner_kernels.py replaces); tests only."""

from __future__ import annotations

import numpy as np

WEIGHT_MAX = 63


def spikes_from_ticks(src_of_label, n_in, t_ticks, label, sample, sample_ticks):
    """(inputs (t_us, src int32, sample int32), spikes (t_us, neuron int32, sample int32)), each sorted
    by (sample, t_us, source) with np.lexsort."""
    t_ticks = np.asarray(t_ticks, np.int64)
    sample = np.asarray(sample, np.int64)
    src = src_of_label[np.asarray(label, np.int64)]
    t_us = (t_ticks - sample * sample_ticks) / 125
    is_in = (src >= 0) & (src < n_in)
    is_neuron = src >= n_in
    inputs = (t_us[is_in], src[is_in].astype(np.int32), sample[is_in].astype(np.int32))
    order = np.lexsort((src[is_neuron], t_us[is_neuron], sample[is_neuron]))
    spikes = (t_us[is_neuron][order], (src[is_neuron][order] - n_in).astype(np.int32),
              sample[is_neuron][order].astype(np.int32))
    in_order = np.lexsort((inputs[1], inputs[0], inputs[2]))
    return tuple(a[in_order] for a in inputs), spikes


def first_spike_times(t, neuron, sample, output_neuron, n_samples):
    """(first_t float64[n_samples, n_out] inf where silent, first_i int64 index, -1 where silent)."""
    out = np.asarray(output_neuron, np.int64)
    first_t = np.full((n_samples, out.size), np.inf)
    first_i = np.full((n_samples, out.size), -1, np.int64)
    for k in range(len(t)):
        hit = np.flatnonzero(out == neuron[k])
        if hit.size == 0:
            continue
        s, c = int(sample[k]), int(hit[0])
        if first_i[s, c] < 0 or t[k] < first_t[s, c]:
            first_t[s, c], first_i[s, c] = t[k], k
    return first_t, first_i


def clip_mask_changed(old, new, mask):
    """(clipped and masked new shadow, its signed codes, bool per row: codes differ from old's)."""
    shadow = np.where(mask, np.clip(new, -WEIGHT_MAX - 0.5, WEIGHT_MAX + 0.5), 0.0)
    before = np.clip(np.rint(old), -WEIGHT_MAX, WEIGHT_MAX)
    after = np.clip(np.rint(shadow), -WEIGHT_MAX, WEIGHT_MAX)
    return shadow, after, np.any(before != after, axis=1)


def rows_of(exc_row, inh_row, changed, signed):
    """Synapse rows (ascending, stable) and uint8 codes of the changed sources."""
    exc, inh, s = exc_row[changed], inh_row[changed], signed[changed]
    rows = np.concatenate([exc[exc >= 0], inh[inh >= 0]])
    codes = np.concatenate([np.clip(s[exc >= 0], 0, None), np.clip(-s[inh >= 0], 0, None)])
    order = np.argsort(rows, kind="stable")
    return rows[order], codes[order].astype(np.uint8)
