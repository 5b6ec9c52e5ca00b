"""Samples shared between threads give bit-identical spikes and probes (samples are independent)."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.chip import GENERIC_TARGETS, simulate_events
from neurosplit.chip._params import NeuronParams
from neurosplit.chip._spikes import sample_blocks


def _case(n_samples: int, seed: int = 7):
    rng = np.random.default_rng(seed)
    n_in, n = 12, 20
    w = np.zeros((n_in + n, n))
    w[:n_in] = rng.uniform(0, 40, (n_in, n))
    w[n_in:] = rng.uniform(-10, 10, (n, n)) * (rng.random((n, n)) < 0.2)
    np.fill_diagonal(w[n_in:], 0.0)
    p = NeuronParams(*(np.full(n, float(GENERIC_TARGETS[f])) for f in NeuronParams._fields))
    per = rng.poisson(8, n_samples)
    sample = np.repeat(np.arange(n_samples), per)
    t = rng.uniform(0, 40.0, sample.size)
    order = np.lexsort((t, sample))
    src = rng.integers(0, n_in, sample.size)
    jitter = rng.normal(0, 2.0, (n_samples, n))
    return (w, p, t[order], src[order].astype(np.int32), sample[order].astype(np.int32), n_samples, 50.0), jitter


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_threads_give_the_same_spikes_and_probes(threads):
    args, jitter = _case(130)
    kw = dict(v_th_offset_lsb=jitter, probe_t_us=np.array([3.0, 17.5, 41.0]), probe_neuron=np.array([0, 5, 19]))
    one = simulate_events(*args, **kw)
    many = simulate_events(*args, threads=threads, **kw)
    assert one.spikes.n_spikes > 100
    for a, b in zip(one.spikes, many.spikes):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(one.v_probe_lsb, many.v_probe_lsb, equal_nan=True)


def test_sample_blocks_cover_every_sample_once():
    for n, threads in ((0, 4), (10, 4), (64, 2), (100, 3), (1000, 7)):
        blocks = sample_blocks(n, threads)
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:]))
        assert len(blocks) <= max(threads, 1) and (len(blocks) == 1 or min(hi - lo for lo, hi in blocks) >= 8)


def test_threads_must_be_positive():
    args, _ = _case(4)
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        simulate_events(*args, threads=0)
