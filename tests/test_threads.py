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


def _yinyang_core(threads: int):
    from neurosplit.chip import AnalogCore, CoreConfig
    from neurosplit.host._network import place
    from neurosplit.host._training import TrainConfig, build_network
    from neurosplit.protocol import WriteWeights

    cfg = TrainConfig(n_hidden=30)
    placement = place(build_network(cfg))
    core = AnalogCore(CoreConfig(calibrate=False, threads=threads), chip_seed=3, seed=11)
    core.configure_neurons(placement.neurons)
    core.configure_rows(placement.rows)
    core.write_weights(WriteWeights(request_id=0, row=placement.weight_rows, column=placement.weight_columns,
                                    weight=placement.weight_block))
    return core, cfg, build_network(cfg)


@pytest.mark.parametrize("threads", [2, 3])
def test_a_core_shares_a_spikes_only_run_between_threads_with_the_same_stream(threads):
    """The core hands each thread a block of samples from trial noise to output labels: the stream
    equals one thread's and the serial composition of the same steps (noise, integrator, ticks, labels)."""
    from neurosplit.chip._core_kernels import playback_inputs, spike_stream
    from neurosplit.chip._mismatch import threshold_jitter
    from neurosplit.host._training import encode_batch
    from neurosplit.host._yinyang import yin_yang
    from neurosplit.protocol import TICKS_PER_US, RunRequest, SpikeBatch

    streams = []
    for n_threads in (1, threads):
        core, cfg, net = _yinyang_core(n_threads)
        x, _ = yin_yang(150, 5)
        t, lab, smp = encode_batch(x, cfg, net.input_label)
        core.start_run(RunRequest(run_id=4, n_samples=150, sample_ticks=cfg.sample_ticks))
        out = core.feed(SpikeBatch(run_id=4, t_ticks=t, label=lab, sample=smp, horizon_ticks=150 * cfg.sample_ticks))
        streams.append(next(m for m in out if isinstance(m, SpikeBatch)))
    one, many = streams
    assert one.t_ticks.size > 150
    for f in ("t_ticks", "label", "sample"):
        assert np.array_equal(getattr(one, f), getattr(many, f)) and getattr(one, f).dtype == getattr(many, f).dtype
    # the same steps composed by hand, one block
    t_us, src, in_smp, _ = playback_inputs(t, lab, smp, 0, 150, core._src_of_label(), cfg.sample_ticks)
    jitter = threshold_jitter(11, 4, 150, core._circuits, core.die.spec)
    spikes = simulate_events(core.weights_lsb(), core.realised(), t_us, src, in_smp, 150,
                             cfg.sample_ticks / TICKS_PER_US, v_th_offset_lsb=jitter).spikes
    ref = spike_stream(np.floor(spikes.t_us * TICKS_PER_US).astype(np.int64), spikes.neuron, spikes.sample, 0,
                       cfg.sample_ticks, core._circuits)
    for a, b in zip(ref, (many.t_ticks, many.label, many.sample)):
        assert np.array_equal(a, b)
