"""The analog core's per-run glue as plain numpy (what chip/_core_kernels.py replaces); tests only."""

from __future__ import annotations

import numpy as np

NEURON_LABEL_BASE = 8192


def playback_inputs(t_ticks, label, sample, first, stop, input_labels, sample_ticks):
    """(in_t_us, in_src int32, in_smp int32, later bool) with masks and a searchsorted over the
    ascending input labels, as AnalogCore._simulate did."""
    t, sample = np.asarray(t_ticks, np.int64), np.asarray(sample).astype(np.int64)
    later = sample >= stop
    now = (sample >= first) & (sample < stop)
    t, label, sample = t[now], np.asarray(label)[now], sample[now]
    src = np.searchsorted(input_labels, label.astype(np.int64))
    routed = src < input_labels.size
    routed[routed] = input_labels[src[routed]] == label[routed]
    t_us = (t[routed] - sample[routed] * sample_ticks) / 125
    return t_us, src[routed].astype(np.int32), (sample[routed] - first).astype(np.int32), later


def spike_stream(tick_in_sample, neuron, sample, first, sample_ticks, circuits):
    """(t_ticks, label uint16, sample uint32) ordered by np.lexsort((label, t))."""
    s_abs = np.asarray(sample).astype(np.int64) + first
    tick = np.minimum(np.asarray(tick_in_sample, np.int64), sample_ticks - 1)
    out_t = s_abs * sample_ticks + tick
    out_label = (NEURON_LABEL_BASE + np.asarray(circuits)[neuron]).astype(np.uint16)
    order = np.lexsort((out_label, out_t))
    return out_t[order], out_label[order], s_abs[order].astype(np.uint32)
