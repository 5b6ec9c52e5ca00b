"""The analog core's per-run glue in numba: playback events into kernel inputs, spikes into the
tick-ordered stream the core sends.

``AnalogCore._simulate`` did both with numpy masks, gathers and a lexsort of all output spikes
(~8 us a Yin-Yang sample, 95 spikes each). The integrators hand spikes sorted by (sample, t_us,
neuron), so the ticks come out non-decreasing already and only spikes that share a tick may need
reordering by label: one pass that sorts each such tie as it goes. Same bits as the numpy version
(tests/reference/core_glue_naive.py, compared in tests/test_core_glue.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..protocol import TICKS_PER_US
from ._params import NEURON_LABEL_BASE

__all__ = ["playback_inputs", "spike_stream"]

@njit(cache=True, nogil=True)
def _playback_inputs(t, label, sample, first, stop, src_of_label, sample_ticks, ticks_per_us,
                     in_t_us, in_src, in_smp, later):
    """Events of samples [first, stop) that a row answers -> in_t_us/in_src/in_smp (first n entries);
    later[i] = event i belongs to a sample >= stop. Returns n."""
    n = 0
    for i in range(t.shape[0]):
        s = np.int64(sample[i])
        later[i] = s >= stop
        if s < first or s >= stop:
            continue
        src = src_of_label[label[i]]
        if src < 0:
            continue  # no synapse row answers this label: the event reaches no neuron
        in_t_us[n] = np.float64(t[i] - s * sample_ticks) / ticks_per_us
        in_src[n] = src
        in_smp[n] = s - first
        n += 1
    return n


def playback_inputs(t_ticks: np.ndarray, label: np.ndarray, sample: np.ndarray, first: int, stop: int,
                    src_of_label: np.ndarray, sample_ticks: int):
    """Kernel inputs of samples [first, stop) from a run's playback, and which events are for later.

    t_ticks int64[m] (ticks since the run's start), label uint16[m], sample uint32[m] (any order);
    src_of_label int32[65536]: input row of each label, -1 for labels no row answers.
    Returns (in_t_us float64[k] (us since the sample's start), in_src int32[k], in_smp int32[k]
    (sample - first), later bool[m]), the kept events in their playback order."""
    m = t_ticks.shape[0]
    in_t_us, in_src, in_smp = np.empty(m), np.empty(m, np.int32), np.empty(m, np.int32)
    later = np.empty(m, np.bool_)
    n = _playback_inputs(np.ascontiguousarray(t_ticks, np.int64), np.ascontiguousarray(label, np.uint16),
                         np.ascontiguousarray(sample, np.uint32), int(first), int(stop), src_of_label,
                         int(sample_ticks), float(TICKS_PER_US), in_t_us, in_src, in_smp, later)
    return in_t_us[:n], in_src[:n], in_smp[:n], later


@njit(cache=True, nogil=True)
def _spike_stream(tick_in_sample, neuron, sample, first, sample_ticks, circuits, label_base,
                  out_t, out_label, out_sample):
    """Fill the outputs in record order; a spike on the tick of the one before it moves back past the
    spikes of that tick with larger labels (insertion sort of each tie: stable, and ties are rare and
    short, at most one spike per neuron and tick). Returns False, leaving the outputs unfinished,
    when the ticks are not non-decreasing."""
    last = np.int64(-1)
    for i in range(tick_in_sample.shape[0]):
        s = np.int64(sample[i]) + first
        t = s * sample_ticks + min(tick_in_sample[i], sample_ticks - 1)
        if t < last:
            return False
        lab = label_base + circuits[neuron[i]]
        j = i
        if t == last:
            while j > 0 and out_t[j - 1] == t and out_label[j - 1] > lab:
                out_label[j], out_sample[j] = out_label[j - 1], out_sample[j - 1]
                j -= 1
        out_t[i] = t
        out_label[j] = lab
        out_sample[j] = s
        last = t
    return True


def spike_stream(tick_in_sample: np.ndarray, neuron: np.ndarray, sample: np.ndarray, first: int, sample_ticks: int,
                 circuits: np.ndarray):
    """The core's output stream of a block of samples: (t_ticks int64[k], label uint16[k], sample uint32[k])
    ordered by (tick, label), ties kept in record order (what ``np.lexsort((label, t))`` gives).

    tick_in_sample int64[k]: each spike's tick since its sample's start (clipped here to the sample's
    last tick); neuron int32[k]: index into circuits (int64[n], the configured circuits); sample
    int32[k]: block-relative sample (absolute = first + sample)."""
    k = tick_in_sample.shape[0]
    out_t, out_label, out_sample = np.empty(k, np.int64), np.empty(k, np.uint16), np.empty(k, np.uint32)
    tick_in_sample = np.ascontiguousarray(tick_in_sample, np.int64)
    neuron, sample = np.ascontiguousarray(neuron, np.int32), np.ascontiguousarray(sample, np.int32)
    circuits = np.ascontiguousarray(circuits, np.int64)
    if _spike_stream(tick_in_sample, neuron, sample, int(first), int(sample_ticks), circuits, NEURON_LABEL_BASE,
                     out_t, out_label, out_sample):
        return out_t, out_label, out_sample
    # not in record order (no integrator hands such a record today): the general sort
    s_abs = sample.astype(np.int64) + first
    t = s_abs * sample_ticks + np.minimum(tick_in_sample, sample_ticks - 1)
    label = (NEURON_LABEL_BASE + circuits[neuron]).astype(np.uint16)
    order = np.lexsort((label, t))
    return t[order], label[order], s_abs[order].astype(np.uint32)
