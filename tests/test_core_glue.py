"""The analog core's numba glue (chip/_core_kernels.py) against its numpy twin, bit for bit: playback
into kernel inputs (labels no row answers, samples before, inside and after the block) and spikes
into the tick-ordered stream (ties on a tick, ticks past the sample's end, records out of order)."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.chip._core_kernels import playback_inputs, spike_stream
from reference import core_glue_naive as ref

SAMPLE_TICKS = 3750


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("seed", range(6))
def test_playback_inputs_match_numpy(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(0, 400))
    sample = rng.integers(0, 12, m).astype(np.uint32)
    if seed % 2:
        sample = np.sort(sample)
    t = sample.astype(np.int64) * SAMPLE_TICKS + rng.integers(0, SAMPLE_TICKS, m)
    label = rng.choice(np.array([0, 3, 4, 9, 17, 8192, 8200, 65535], np.uint16), m)
    input_labels = np.array([3, 4, 17, 65535], np.int64)
    lut = np.full(1 << 16, -1, np.int32)
    lut[input_labels] = np.arange(input_labels.size)
    first, stop = sorted(int(x) for x in rng.integers(0, 13, 2))
    _assert_same(playback_inputs(t, label, sample, first, stop, lut, SAMPLE_TICKS),
                 ref.playback_inputs(t, label, sample, first, stop, input_labels, SAMPLE_TICKS))


def _record(rng, k, n_samples, n, tie_rate):
    """A spike record sorted by (sample, tick, neuron), with about ``tie_rate`` of spikes sharing a tick."""
    sample = np.sort(rng.integers(0, n_samples, k)).astype(np.int32)
    tick = rng.integers(0, SAMPLE_TICKS + 40, k)  # some past the sample's end: clipped to its last tick
    tie = rng.random(k) < tie_rate
    tick[1:][tie[1:]] = tick[:-1][tie[1:]]
    neuron = rng.integers(0, n, k).astype(np.int32)
    order = np.lexsort((neuron, tick, sample))
    return tick[order].astype(np.int64), neuron[order], sample[order]


@pytest.mark.parametrize("seed", range(8))
def test_spike_stream_matches_lexsort(seed):
    rng = np.random.default_rng(100 + seed)
    circuits = np.sort(rng.choice(512, 20, replace=False)).astype(np.int64)
    if seed % 3 == 0:
        circuits = rng.permutation(circuits)  # label order differs from neuron order: ties must be re-sorted
    tick, neuron, sample = _record(rng, int(rng.integers(0, 3000)), 30, circuits.size, tie_rate=[0.0, 0.2, 0.9][seed % 3])
    first = int(rng.integers(0, 50))
    _assert_same(spike_stream(tick, neuron, sample, first, SAMPLE_TICKS, circuits),
                 ref.spike_stream(tick, neuron, sample, first, SAMPLE_TICKS, circuits))


def test_spike_stream_sorts_a_record_out_of_order():
    rng = np.random.default_rng(7)
    circuits = np.arange(40, 80, dtype=np.int64)
    tick, neuron, sample = _record(rng, 500, 10, circuits.size, tie_rate=0.3)
    p = rng.permutation(tick.size)
    tick, neuron, sample = tick[p], neuron[p], sample[p]
    _assert_same(spike_stream(tick, neuron, sample, 3, SAMPLE_TICKS, circuits),
                 ref.spike_stream(tick, neuron, sample, 3, SAMPLE_TICKS, circuits))
    empty = np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    _assert_same(spike_stream(*empty, 0, SAMPLE_TICKS, circuits), ref.spike_stream(*empty, 0, SAMPLE_TICKS, circuits))
