"""The layer-at-a-time integrator (chip/_lif_event_grouped.py), which simulate_events uses for layered
networks when no probes are asked for.

References: the slow event twin (tests/reference/lif_naive.py), the event queue (forced by a silent
neuron that closes a cycle) and the layered kernel (forced by probes, which never change spikes).
"""

from __future__ import annotations

import numpy as np
import pytest
from reference.lif_naive import simulate_events_naive
from test_lif_dynamics import assert_same_spikes

from neurosplit.chip import NeuronParams, SpikeLimitError, simulate_events

V_LEAK, V_RESET = 80.0, 70.0


def yinyang_like(seed, *, n_samples=6, n_hidden=24, n_out=3, duplicates=5, t_end=30.0, t_ref=None,
                 calibrated=False):
    """Inputs in groups at equal times (5 features x duplicates, the bias at 0), a hidden and an output
    layer, mismatched time constants, threshold noise; one spike per neuron unless t_ref is given."""
    rng = np.random.default_rng(seed)
    n_in = 5 * duplicates
    n = n_hidden + n_out
    if calibrated:
        tm = rng.normal(12.0, 0.3, n)
        ts = rng.normal(6.0, 0.15, n)
    else:
        tm, ts = rng.uniform(7, 18, n), rng.uniform(3, 12, n)
    tr = np.full(n, 2 * t_end) if t_ref is None else np.asarray(t_ref, float)
    p = NeuronParams(tm, ts, np.full(n, V_LEAK), np.full(n, V_RESET), rng.uniform(140, 160, n), tr)
    w = np.zeros((n_in + n, n))
    w[:n_in, :n_hidden] = rng.normal(12.0, 14.0, (n_in, n_hidden))
    w[n_in:n_in + n_hidden, n_hidden:] = rng.normal(30.0, 12.0, (n_hidden, n_out))
    x = rng.uniform(0, 1, (n_samples, 2))
    feat = np.column_stack([x, 1 - x, np.zeros(n_samples)]) * 12.0  # bias (last feature) at t = 0
    t = np.repeat(feat, duplicates, axis=1)  # [sample, feature * duplicates + copy]
    src = np.tile(np.arange(n_in), n_samples)
    smp = np.repeat(np.arange(n_samples), n_in)
    t = t.ravel()
    order = np.lexsort((src, t, smp))
    off = rng.normal(0, 2, (n_samples, n))
    return (w, p, t[order], src[order], smp[order], n_samples, t_end), dict(v_th_offset_lsb=off)


def with_silent_cycle(args, kw):
    """The same network plus one neuron that never fires but closes a cycle: the event queue runs it."""
    w, p, t, src, smp, ns, t_end = args
    n_in, n = w.shape[0] - w.shape[1], w.shape[1]
    w_q = np.zeros((n_in + n + 1, n + 1))
    w_q[:n_in + n, :n] = w
    w_q[n_in + n, 0] = 1.0
    w_q[n_in + n - 1, n] = -10.0  # inhibition only: the extra neuron stays silent
    p_q = NeuronParams(*(np.append(a, a[0]) for a in p))
    kw_q = dict(kw, v_th_offset_lsb=np.hstack([kw["v_th_offset_lsb"], np.zeros((ns, 1))]))
    return (w_q, p_q, t, src, smp, ns, t_end), kw_q


def probes_for(args):
    return dict(probe_t_us=[0.5 * args[6]], probe_neuron=[0])


def assert_close_spikes(a, b, tol=1e-11):
    assert a.n_spikes == b.n_spikes
    np.testing.assert_array_equal(a.sample, b.sample)
    np.testing.assert_array_equal(a.neuron, b.neuron)
    np.testing.assert_allclose(a.t_us, b.t_us, rtol=0, atol=tol)


@pytest.mark.parametrize("seed, calibrated", [(0, False), (1, False), (2, True), (3, True)])
def test_matches_naive_twin_queue_and_layered_kernel(seed, calibrated):
    args, kw = yinyang_like(seed, calibrated=calibrated)
    grouped = simulate_events(*args, **kw).spikes
    n_hidden = 24
    assert grouped.n_spikes > 40 and (grouped.neuron >= n_hidden).sum() >= 4  # both layers fire
    ref, _ = simulate_events_naive(*args, kw["v_th_offset_lsb"])
    assert_same_spikes(grouped, ref, tol=1e-9)
    layered = simulate_events(*args, **kw, **probes_for(args)).spikes
    assert_close_spikes(grouped, layered)
    q_args, q_kw = with_silent_cycle(args, kw)
    queue = simulate_events(*q_args, **q_kw).spikes
    assert_close_spikes(grouped, queue)


def test_short_refractoriness_and_threshold_below_leak_fall_back_to_the_layered_bits():
    """Neurons that can fire again within the trial, or fire at rest (theta <= 0), are integrated alone
    by the layered kernel's per-neuron routine: their spikes are that kernel's, bit for bit; the other
    neurons still go interval by interval (the spikes of the two kernels differ by rounding, so a
    bitwise match of the others would mean the layer-at-a-time kernel was not used)."""
    n = 27
    short = np.array([0, 3])  # few enough that the layer-at-a-time kernel is still chosen
    t_ref = np.where(np.isin(np.arange(n), short), 0.5, 60.0)
    args, kw = yinyang_like(4, t_ref=t_ref)
    p = args[1]
    v_th = p.v_th_lsb.copy()
    v_th[3] = V_LEAK - 5.0  # fires at t = 0, and again after each release
    args = (args[0], p._replace(v_th_lsb=v_th), *args[2:])
    grouped = simulate_events(*args, **kw, max_spikes_per_sample=10_000).spikes
    layered = simulate_events(*args, **kw, **probes_for(args), max_spikes_per_sample=10_000).spikes
    assert_close_spikes(grouped, layered)
    counts = grouped.counts(args[5], n)
    assert counts[:, 3].min() >= 2  # several spikes where allowed
    assert np.delete(counts, short, axis=1).max() == 1
    # these hidden neurons hear only the inputs, so the per-neuron routine gives the layered kernel's bits
    fallback = np.isin(grouped.neuron, short)
    assert grouped.t_us[fallback].tobytes() == layered.t_us[fallback].tobytes()
    assert grouped.t_us[~fallback].tobytes() != layered.t_us[~fallback].tobytes()
    ref, _ = simulate_events_naive(*args, kw["v_th_offset_lsb"])
    assert_same_spikes(grouped, ref, tol=1e-9)


def test_sparse_layer_goes_neuron_by_neuron():
    """A layer whose neurons hear few of the stream's many distinct event times takes the per-neuron
    routine: the layered kernel's bits."""
    args, kw = yinyang_like(5, n_samples=3)
    w, p, t, src, smp, ns, t_end = args
    rng = np.random.default_rng(0)
    t = t + rng.uniform(0, 0.5, t.size)  # 25 distinct times per sample
    order = np.lexsort((src, t, smp))
    args = (w.copy(), p, t[order], src[order], smp[order], ns, t_end)
    w = args[0]
    w[:25, :24] *= rng.random((25, 24)) < 0.1  # each hidden neuron hears ~2 of 25 inputs
    w[:25, :24] += 60.0 * (rng.random((25, 24)) < 0.05)
    grouped = simulate_events(*args, **kw).spikes
    layered = simulate_events(*args, **kw, **probes_for(args)).spikes
    assert grouped.n_spikes > 0
    hidden = grouped.neuron < 24
    assert grouped.t_us[hidden].tobytes() == layered.t_us[hidden].tobytes()
    assert_close_spikes(grouped, layered)


def test_deterministic_batch_is_concatenation_and_threads():
    args, kw = yinyang_like(6, n_samples=70)  # two blocks of >= 32 samples for two threads
    w, p, t, src, smp, ns, t_end = args
    batch = simulate_events(*args, **kw).spikes
    assert batch.t_us.tobytes() == simulate_events(*args, **kw).spikes.t_us.tobytes()
    threaded = simulate_events(*args, **kw, threads=3).spikes
    assert all(x.tobytes() == y.tobytes() for x, y in zip(batch, threaded))
    for s in (0, 34, 35, 69):
        sel = smp == s
        one = simulate_events(w, p, t[sel], src[sel], np.zeros(sel.sum(), int), 1, t_end,
                              v_th_offset_lsb=kw["v_th_offset_lsb"][s:s + 1]).spikes
        mine = batch.of_sample(s)
        assert mine.t_us.tobytes() == one.t_us.tobytes() and mine.neuron.tobytes() == one.neuron.tobytes()


def test_full_buffer_resumes_and_cap_raises():
    """Many samples with every neuron firing outgrow the first output buffer (2 x inputs + 8 n + 64):
    the run resumes with a larger one and gives what the samples give alone; a cap below the
    activity raises SpikeLimitError."""
    args, kw = yinyang_like(7, n_samples=30, n_hidden=150)
    w = args[0].copy()
    w[:25, :150] = np.abs(w[:25, :150]) + 15.0  # every hidden neuron fires
    args = (w, *args[1:])
    res = simulate_events(*args, **kw).spikes
    n = w.shape[1]
    assert res.n_spikes > 2 * 25 * 30 + 8 * n + 64
    layered = simulate_events(*args, **kw, **probes_for(args)).spikes
    assert_close_spikes(res, layered)
    with pytest.raises(SpikeLimitError):
        simulate_events(*args, **kw, max_spikes_per_sample=10)


def test_kernel_choice_follows_the_cost():
    """Layer at a time where neurons fire about once a trial; neuron by neuron (the layered kernel's
    bits) where most neurons may fire again, or, in one layer, share their exp tables."""
    args, kw = yinyang_like(8)
    w, p, *rest = args
    probed = dict(kw, **probes_for(args))

    def bits(res):
        return res.spikes.t_us.tobytes()

    assert bits(simulate_events(*args, **kw)) != bits(simulate_events(*args, **probed))
    short = (w, p._replace(t_ref_us=np.full(p.n, 0.5)), *rest)
    assert bits(simulate_events(*short, **kw)) == bits(simulate_events(*short, **probed))
    one_layer = w.copy()
    one_layer[25:] = 0.0
    one_layer[:25, 24:] = 30.0
    same_taus = p._replace(tau_mem_us=np.full(p.n, 12.0), tau_syn_us=np.full(p.n, 6.0))
    shared = (one_layer, same_taus, *rest)
    assert bits(simulate_events(*shared, **kw)) == bits(simulate_events(*shared, **probed))
    mismatched = (one_layer, p, *rest)
    assert bits(simulate_events(*mismatched, **kw)) != bits(simulate_events(*mismatched, **probed))


def test_network_changed_in_place_is_not_served_from_the_last_plan():
    """simulate_events reuses what it derived from the last network only while weights and parameters
    are bitwise the same: a weight or a parameter changed in place gives the new network's spikes."""
    args, kw = yinyang_like(9, n_samples=4)
    w, p, *rest = args
    w, p = w.copy(), NeuronParams(*(a.copy() for a in p))
    before = simulate_events(w, p, *rest, **kw).spikes
    w[:25, :24] += 10.0
    stronger = simulate_events(w, p, *rest, **kw).spikes
    fresh = simulate_events(w.copy(), NeuronParams(*(a.copy() for a in p)), *rest, **kw).spikes
    assert stronger.t_us.tobytes() == fresh.t_us.tobytes() != before.t_us.tobytes()
    p.v_th_lsb[:] += 20.0
    higher = simulate_events(w, p, *rest, **kw).spikes
    fresh = simulate_events(w.copy(), NeuronParams(*(a.copy() for a in p)), *rest, **kw).spikes
    assert higher.t_us.tobytes() == fresh.t_us.tobytes() and higher.n_spikes < stronger.n_spikes
