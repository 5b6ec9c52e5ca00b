"""Neuron dynamics of the analog core: the exact event-driven and the time-stepped integrators.

References: the PSP kernel and its peak, the tau_mem = 2 tau_syn and tau_mem = tau_syn closed-form
first spike times (eventprop.md §1.2), slow float64 twins in tests/reference/lif_naive.py, and the
convergence of the time-stepped integrator to the event-driven one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from reference.lif_naive import simulate_events_naive, simulate_steps_naive
from scipy.special import lambertw

from neurosplit.chip import (
    NeuronParams,
    SpikeLimitError,
    SpikeRecord,
    simulate_events,
    simulate_steps,
    uniform_params,
)

V_LEAK, V_RESET, V_TH = 80.0, 70.0, 150.0


def one_neuron(tau_mem_us, tau_syn_us, v_th_lsb=1e9, t_ref_us=1.0, v_reset_lsb=V_RESET):
    return uniform_params(1, tau_mem_us=tau_mem_us, tau_syn_us=tau_syn_us, v_leak_lsb=V_LEAK,
                          v_reset_lsb=v_reset_lsb, v_th_lsb=v_th_lsb, t_ref_us=t_ref_us)


def psp(s, w, tm, ts):
    """The PSP kernel above leak (0 before the input)."""
    s = np.asarray(s, float)
    pos = np.maximum(s, 0.0)
    if tm == ts:
        v = w * pos / tm * np.exp(-pos / tm)
    else:
        v = w * ts / (tm - ts) * (np.exp(-pos / tm) - np.exp(-pos / ts))
    return np.where(s > 0, v, 0.0)


def psp_peak(w, tm, ts):
    """(time, height) of the PSP maximum."""
    if tm == ts:
        return tm, w / math.e
    t_p = tm * ts / (tm - ts) * math.log(tm / ts)
    return t_p, float(psp(t_p, w, tm, ts))


def random_case(seed, *, n=6, n_in=3, n_samples=2, m=40, t_end=60.0, w_mu=30.0, w_sd=60.0, probes=True):
    """Mismatched neurons (one with tau_mem == tau_syn), signed input and recurrent weights, refractory
    periods 0 / short / long, threshold noise and probes."""
    rng = np.random.default_rng(seed)
    tm = rng.uniform(5, 15, n)
    ts = rng.uniform(3, 8, n)
    ts[0] = tm[0]
    params = NeuronParams(tm, ts, rng.uniform(70, 90, n), rng.uniform(55, 75, n), rng.uniform(110, 140, n),
                          rng.choice([0.0, 0.5, 3.0], n))
    w = rng.normal(w_mu, w_sd, (n_in + n, n))
    w[n_in:][np.eye(n, dtype=bool)] = 0.0
    smp = rng.integers(0, n_samples, m)
    t = rng.uniform(0, t_end, m)
    order = np.lexsort((t, smp))
    kw = dict(v_th_offset_lsb=rng.normal(0, 2, (n_samples, n)))
    if probes:
        kw.update(probe_t_us=np.sort(rng.uniform(0, t_end, 25)), probe_neuron=np.array([0, 2, n - 1]))
    return (w, params, t[order], rng.integers(0, n_in, m), smp[order], n_samples, t_end), kw


# ---------------------------------------------------------------- single PSP, closed forms

@pytest.mark.parametrize("tm, ts", [(10.0, 4.0), (4.0, 10.0), (6.0, 6.0)])
def test_psp_shape_and_peak(tm, ts):
    w, t0 = 30.0, 2.0
    t_p, h = psp_peak(w, tm, ts)
    probe = np.sort(np.concatenate([np.linspace(0, 59.9, 300), t0 + t_p + np.array([-1e-3, 0.0, 1e-3])]))
    res = simulate_events(np.array([[w], [0.0]]), one_neuron(tm, ts), [t0], [0], [0], 1, 60.0,
                          probe_t_us=probe, probe_neuron=[0])
    assert res.spikes.n_spikes == 0
    v = res.v_probe_lsb[0, :, 0]
    np.testing.assert_allclose(v - V_LEAK, psp(probe - t0, w, tm, ts), rtol=1e-12, atol=1e-12)
    i_peak = int(np.flatnonzero(probe == t0 + t_p)[0])
    assert abs(v[i_peak] - V_LEAK - h) < 1e-12 * h
    assert v[i_peak - 1] < v[i_peak] > v[i_peak + 1]


@pytest.mark.parametrize("tm, ts", [(10.0, 4.0), (4.0, 10.0), (6.0, 6.0)])
def test_threshold_at_psp_peak(tm, ts):
    """A threshold a hair below the peak is crossed near the peak time, a hair above never is."""
    w, t0 = 30.0, 2.0
    t_p, h = psp_peak(w, tm, ts)
    below = simulate_events(np.array([[w], [0.0]]), one_neuron(tm, ts, V_LEAK + h - 1e-9), [t0], [0], [0], 1, 60.0)
    above = simulate_events(np.array([[w], [0.0]]), one_neuron(tm, ts, V_LEAK + h + 1e-9), [t0], [0], [0], 1, 60.0)
    assert below.spikes.n_spikes == 1 and above.spikes.n_spikes == 0
    # V(t_p + x) ~ h - c x^2 with c = |V''(t_p)| / 2 of order h / tau^2: a 1e-9 dip is ~1e-4 tau away.
    assert abs(below.spikes.t_us[0] - (t0 + t_p)) < 1e-3 * max(tm, ts)


def test_nearly_equal_time_constants_match_degenerate_kernel():
    tau, w = 6.0, 30.0
    probe = np.linspace(0, 59, 200)
    v = [simulate_events(np.array([[w], [0.0]]), one_neuron(tau * (1 + eps), tau), [0.0], [0], [0], 1, 60.0,
                         probe_t_us=probe, probe_neuron=[0]).v_probe_lsb[0, :, 0] for eps in (0.0, 1e-12, -1e-9)]
    np.testing.assert_allclose(v[1], v[0], rtol=1e-11)
    np.testing.assert_allclose(v[2], v[0], rtol=1e-8)


def test_first_spike_tau_mem_twice_tau_syn_closed_form():
    """With k = 1 and x = exp(-t/tau_mem), V - v_leak = a2 x - a1 x^2 once inputs 0..k-1 have arrived
    (a1 = sum w e^{t_i/tau_syn}, a2 = sum w e^{t_i/tau_mem}); the first spike is the earliest root
    t* = tau_mem ln(2 a1 / (a2 + sqrt(a2^2 - 4 a1 theta))) that falls between the k-th input and the next."""
    tm, ts = 12.0, 6.0
    theta = V_TH - V_LEAK  # the closed form measures the threshold above the leak
    rng = np.random.default_rng(3)
    n_fired, n_early = 0, 0
    for _ in range(200):
        t_in = np.sort(rng.uniform(0, 20, 3))
        w = rng.uniform(20, 200, 3)
        expected, ambiguous = math.inf, False
        for k in range(1, 4):
            a1, a2 = np.sum(w[:k] * np.exp(t_in[:k] / ts)), np.sum(w[:k] * np.exp(t_in[:k] / tm))
            disc = a2 * a2 - 4 * a1 * theta
            if disc < 0:
                continue
            t_star = tm * math.log(2 * a1 / (a2 + math.sqrt(disc)))
            if t_star < t_in[k - 1]:  # a root of the sum extrapolated before input k: skip the draw
                ambiguous = True
                break
            if t_star < (t_in[k] if k < 3 else 60.0):
                expected = t_star
                break
        if ambiguous:
            continue
        res = simulate_events(np.r_[w, 0.0][:, None], one_neuron(tm, ts, V_TH, t_ref_us=100.0), t_in, [0, 1, 2],
                              [0, 0, 0], 1, 60.0)
        if expected == math.inf:
            assert res.spikes.n_spikes == 0
            continue
        assert res.spikes.n_spikes == 1
        assert abs(res.spikes.t_us[0] - expected) < 1e-10
        n_fired += 1
        n_early += expected < t_in[-1]
    assert n_fired >= 50 and n_early >= 10  # crossings between inputs as well as after the last one


def test_first_spike_equal_time_constants_lambert_w():
    tau, theta = 6.0, V_TH - V_LEAK
    for w in (200.0, 250.0, 400.0):  # a single input at 0: theta = w x e^-x, x = -W0(-theta / w)
        t_star = -tau * lambertw(-theta / w, 0).real
        res = simulate_events(np.array([[w], [0.0]]), one_neuron(tau, tau, V_TH), [0.0], [0], [0], 1, 60.0)
        assert abs(res.spikes.t_us[0] - t_star) < 1e-10


# ---------------------------------------------------------------- against the slow event twin

def assert_same_spikes(res_spikes, ref_list, tol=1e-9):
    ref = sorted(ref_list)
    assert res_spikes.n_spikes == len(ref)
    if ref:
        smp, t, nrn = (np.array(x) for x in zip(*ref))
        np.testing.assert_array_equal(res_spikes.sample, smp)
        np.testing.assert_array_equal(res_spikes.neuron, nrn)
        np.testing.assert_allclose(res_spikes.t_us, t, rtol=0, atol=tol)


@pytest.mark.parametrize("seed", range(6))
def test_events_match_naive_twin(seed):
    args, kw = random_case(seed)
    res = simulate_events(*args, **kw, max_spikes_per_sample=10_000)
    ref, v_ref = simulate_events_naive(*args, kw["v_th_offset_lsb"], kw["probe_t_us"], kw["probe_neuron"])
    assert_same_spikes(res.spikes, ref)
    np.testing.assert_allclose(res.v_probe_lsb, v_ref, rtol=1e-10, atol=1e-9)
    counts = res.spikes.counts(args[5], args[1].n)
    assert counts.max() >= 3  # several spikes per neuron are exercised


def test_refractory_hold_inhibition_and_recurrence():
    """Neuron 0 fires repeatedly (held at v_reset for t_ref each time), drives neuron 1 through a
    recurrent synapse; an inhibitory input silences neuron 2 that the same excitation would fire."""
    p = NeuronParams(np.array([10.0, 8.0, 10.0]), np.array([30.0, 8.0, 5.0]), np.full(3, V_LEAK),
                     np.full(3, V_RESET), np.full(3, V_TH), np.array([4.0, 2.0, 4.0]))
    w = np.zeros((2 + 3, 3))
    w[0] = [400.0, 0.0, 400.0]  # input 0: strong excitation of neurons 0 and 2
    w[1, 2] = -500.0  # input 1: inhibition of neuron 2 only
    w[2 + 0, 1] = 90.0  # neuron 0 -> neuron 1
    t_in, src = np.array([1.0, 1.0]), np.array([0, 1])
    probe = np.arange(0.0, 40.0, 0.05)
    res = simulate_events(w, p, t_in, src, [0, 0], 1, 40.0, probe_t_us=probe, probe_neuron=[0, 1, 2])
    ref, v_ref = simulate_events_naive(w, p, t_in, src, [0, 0], 1, 40.0, None, probe, [0, 1, 2])
    assert_same_spikes(res.spikes, ref)
    np.testing.assert_allclose(res.v_probe_lsb, v_ref, rtol=1e-10, atol=1e-9)
    c = res.spikes.counts(1, 3)[0]
    assert c[0] >= 3 and c[1] >= 1 and c[2] == 0
    alone = simulate_events(w, p, t_in[:1], src[:1], [0], 1, 40.0)
    assert alone.spikes.counts(1, 3)[0, 2] >= 1  # without the inhibitory input neuron 2 fires
    for t_sp in res.spikes.t_us[res.spikes.neuron == 0]:
        held = (probe >= t_sp) & (probe < t_sp + 4.0)
        assert np.all(res.v_probe_lsb[0, held, 0] == V_RESET)


def test_threshold_below_leak_fires_at_start_and_after_release():
    """v_th below v_leak: the resting neuron fires at t = 0; after each release it rises from v_reset
    (the monotone rise after a minimum) and crosses again."""
    p = NeuronParams(np.array([10.0]), np.array([5.0]), np.array([V_LEAK]), np.array([60.0]), np.array([75.0]),
                     np.array([5.0]))
    res = simulate_events(np.zeros((1, 1)), p, [], [], [], 1, 60.0)
    ref, _ = simulate_events_naive(np.zeros((1, 1)), p, [], [], [], 1, 60.0)
    assert res.spikes.t_us[0] == 0.0 and res.spikes.n_spikes > 3
    assert_same_spikes(res.spikes, ref)


def test_runaway_raises_spike_limit():
    p = uniform_params(2, tau_mem_us=10, tau_syn_us=5, v_leak_lsb=80, v_reset_lsb=130, v_th_lsb=125, t_ref_us=0)
    w = np.array([[200.0, 0.0], [0, 0], [0, 0]])
    with pytest.raises(SpikeLimitError, match="max_spikes_per_sample"):
        simulate_events(w, p, [1.0], [0], [0], 1, 50.0)
    p_ok = p._replace(v_reset_lsb=np.full(2, 70.0), t_ref_us=np.full(2, 0.5))
    w[0, 0] = 2000.0
    with pytest.raises(SpikeLimitError, match="sample 1 exceeded max_spikes_per_sample=2"):
        simulate_events(w, p_ok, [1.0, 1.0], [0, 0], [0, 1], 2, 50.0, max_spikes_per_sample=2,
                        v_th_offset_lsb=np.array([[1e6, 1e6], [0, 0]]))


# ---------------------------------------------------------------- time-stepped integrator

@pytest.mark.parametrize("seed", range(3))
def test_steps_match_naive_twin(seed):
    args, kw = random_case(seed + 10, probes=False)
    res = simulate_steps(*args, 0.05, **kw, record=True)
    ref, v_ref, i_ref = simulate_steps_naive(*args, 0.05, kw["v_th_offset_lsb"])
    assert_same_spikes(res.spikes, ref, tol=1e-12)
    np.testing.assert_allclose(res.v_lsb, v_ref, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(res.i_lsb, i_ref, rtol=1e-10, atol=1e-9)


def test_steps_converge_to_events():
    """Every event acts up to one step late, so the mean spike-time error halves with dt."""
    args, kw = random_case(21, n=4, n_samples=8, m=40, w_mu=30.0, w_sd=40.0, probes=False)
    exact = simulate_events(*args, **kw).spikes
    assert exact.n_spikes > 40
    by_neuron = lambda r: np.lexsort((r.t_us, r.neuron, r.sample))  # noqa: E731  k-th spike of each neuron
    errors = []
    for dt in (0.02, 0.01, 0.005, 0.0025):
        stepped = simulate_steps(*args, dt, **kw).spikes
        np.testing.assert_array_equal(stepped.counts(8, 4), exact.counts(8, 4))
        err = stepped.t_us[by_neuron(stepped)] - exact.t_us[by_neuron(exact)]
        errors.append(np.mean(np.abs(err)))
    ratios = np.array(errors[1:]) / np.array(errors[:-1])
    assert np.all((ratios > 0.3) & (ratios < 0.7)), (errors, ratios)


def test_steps_grid_conventions():
    """An input at t enters at grid point ceil(t/dt); V is recorded after that point's jumps; a spike
    at grid k resets V there and holds it ceil(t_ref/dt) steps; targets feel it from the next step."""
    dt = 0.5
    p = uniform_params(2, tau_mem_us=10, tau_syn_us=5, v_leak_lsb=80, v_reset_lsb=70, v_th_lsb=125, t_ref_us=1.2)
    w = np.array([[1000.0, 0.0], [0.0, 0.0], [0.0, 50.0], [0.0, 0.0]])  # input 1 unused, neuron 0 -> neuron 1
    res = simulate_steps(w, p, [0.7], [0], [0], 1, 10.0, dt, record=True)
    i0 = res.i_lsb[0, :, 0]
    assert i0[1] == 0.0 and i0[2] == 1000.0  # 0.7 us -> grid point 2 (1.0 us)
    k_sp = int(round(res.spikes.t_us[0] / dt))
    assert res.spikes.neuron[0] == 0 and res.v_lsb[0, k_sp, 0] == 70.0
    # held at grid points k_sp .. k_sp + 2 (ceil(1.2 / 0.5) = 3 steps), free from k_sp + 3 on
    assert np.all(res.v_lsb[0, k_sp:k_sp + 4, 0] == 70.0) and res.v_lsb[0, k_sp + 4, 0] > 70.0
    assert res.i_lsb[0, k_sp - 1, 1] == 0.0 and res.i_lsb[0, k_sp, 1] == 50.0
    assert res.v_lsb[0, k_sp, 1] == 80.0 and res.v_lsb[0, k_sp + 1, 1] > 80.0
    assert res.v_lsb.shape == (1, 21, 2)


# ---------------------------------------------------------------- determinism, batching, edge cases

def test_bit_identical_repeat_and_probes_do_not_change_spikes():
    args, kw = random_case(5)
    a, b = simulate_events(*args, **kw), simulate_events(*args, **kw)
    for x, y in zip((*a.spikes, a.v_probe_lsb), (*b.spikes, b.v_probe_lsb)):
        assert x.tobytes() == y.tobytes()
    no_probe = simulate_events(*args, v_th_offset_lsb=kw["v_th_offset_lsb"])
    assert no_probe.v_probe_lsb is None
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a.spikes, no_probe.spikes))
    s1, s2 = simulate_steps(*args, 0.1, record=True), simulate_steps(*args, 0.1, record=True)
    assert s1.v_lsb.tobytes() == s2.v_lsb.tobytes() and s1.spikes.t_us.tobytes() == s2.spikes.t_us.tobytes()


def test_batch_is_concatenation_of_single_samples():
    """Also drives the output buffer past its first size (many spikes, few inputs), so the resume path
    of the spike collector is exercised."""
    rng = np.random.default_rng(8)
    n, n_in, ns, t_end = 3, 2, 5, 200.0
    p = NeuronParams(rng.uniform(8, 12, n), rng.uniform(20, 30, n), np.full(n, V_LEAK), np.full(n, V_RESET),
                     np.full(n, 125.0), np.full(n, 0.2))
    w = np.vstack([rng.uniform(300, 600, (n_in, n)), rng.normal(0, 20, (n, n))])
    t = np.tile([0.0, 50.0, 120.0], ns)
    smp = np.repeat(np.arange(ns), 3)
    src = rng.integers(0, n_in, t.size)
    off = rng.normal(0, 3, (ns, n))
    probe = np.linspace(0, t_end - 1, 50)
    kw = dict(probe_t_us=probe, probe_neuron=[1, 2], max_spikes_per_sample=5000)
    batch = simulate_events(w, p, t, src, smp, ns, t_end, v_th_offset_lsb=off, **kw)
    steps = simulate_steps(w, p, t, src, smp, ns, t_end, 0.05, v_th_offset_lsb=off, record=True)
    assert batch.spikes.n_spikes > 2 * (2 * t.size + 8 * n + 64)
    for s in range(ns):
        sel = smp == s
        one = simulate_events(w, p, t[sel], src[sel], np.zeros(sel.sum(), int), 1, t_end,
                              v_th_offset_lsb=off[s:s + 1], **kw)
        mine = batch.spikes.of_sample(s)
        assert mine.t_us.tobytes() == one.spikes.t_us.tobytes()
        assert mine.neuron.tobytes() == one.spikes.neuron.tobytes()
        assert batch.v_probe_lsb[s].tobytes() == one.v_probe_lsb[0].tobytes()
        one_st = simulate_steps(w, p, t[sel], src[sel], np.zeros(sel.sum(), int), 1, t_end, 0.05,
                                v_th_offset_lsb=off[s:s + 1], record=True)
        assert steps.spikes.of_sample(s).t_us.tobytes() == one_st.spikes.t_us.tobytes()
        assert steps.v_lsb[s].tobytes() == one_st.v_lsb[0].tobytes()


def test_zero_inputs_no_spikes_and_rest():
    args, kw = random_case(2)
    w, p = args[0], args[1]
    p = p._replace(v_th_lsb=np.maximum(p.v_th_lsb, p.v_leak_lsb + 10))
    res = simulate_events(w, p, [], [], [], 3, 50.0, probe_t_us=[0.0, 10.0, 49.0], probe_neuron=[0, 1])
    assert res.spikes.n_spikes == 0
    np.testing.assert_array_equal(res.v_probe_lsb, np.broadcast_to(p.v_leak_lsb[[0, 1]], (3, 3, 2)))
    st = simulate_steps(w, p, [], [], [], 3, 50.0, 0.5, record=True)
    assert st.spikes.n_spikes == 0 and np.all(st.v_lsb == p.v_leak_lsb) and np.all(st.i_lsb == 0)
    empty = simulate_events(w, p, [], [], [], 0, 50.0)
    assert empty.spikes.n_spikes == 0


def _good():
    p = uniform_params(2, tau_mem_us=10, tau_syn_us=5, v_leak_lsb=80, v_reset_lsb=70, v_th_lsb=125, t_ref_us=1)
    return dict(w_lsb=np.ones((3, 2)), params=p, in_t_us=np.array([1.0, 2.0]), in_src=np.array([0, 0]),
                in_sample=np.array([0, 1]), n_samples=2, t_end_us=10.0)


@pytest.mark.parametrize("change, name", [
    (dict(w_lsb=np.ones((3, 3))), "w_lsb"),
    (dict(w_lsb=np.ones((1, 2))), "w_lsb"),
    (dict(w_lsb=np.full((3, 2), np.nan)), "w_lsb"),
    (dict(params="nope"), "params"),
    (dict(in_t_us=np.array([1.0, 10.0])), "in_t_us"),
    (dict(in_t_us=np.array([-1.0, 2.0])), "in_t_us"),
    (dict(in_t_us=np.array([1.0])), "in_t_us"),
    (dict(in_src=np.array([0, 1])), "in_src"),
    (dict(in_src=np.array([0.0, 0.0])), "in_src"),
    (dict(in_sample=np.array([0, 2])), "in_sample"),
    (dict(in_sample=np.array([1, 0])), "sorted"),
    (dict(n_samples=-1), "n_samples"),
    (dict(t_end_us=0.0), "t_end_us"),
    (dict(v_th_offset_lsb=np.zeros((1, 2))), "v_th_offset_lsb"),
])
def test_bad_arguments_name_the_argument(change, name):
    args = _good() | change
    for fn, extra in ((simulate_events, {}), (simulate_steps, dict(dt_us=0.1))):
        with pytest.raises(ValueError, match=name):
            fn(**args, **extra)


def test_bad_parameters_and_event_only_arguments():
    good = _good()
    for field, value in (("tau_mem_us", 0.0), ("tau_syn_us", -1.0), ("t_ref_us", -1.0)):
        params = good["params"]._replace(**{field: np.full(2, value)})
        with pytest.raises(ValueError, match=f"params.{field}"):
            simulate_events(**(good | dict(params=params)))
    with pytest.raises(ValueError, match="params.v_th_lsb"):
        simulate_events(**(good | dict(params=good["params"]._replace(v_th_lsb=np.ones(3)))))
    for kw, name in ((dict(probe_t_us=[1.0]), "probe_neuron"),
                     (dict(probe_t_us=[2.0, 1.0], probe_neuron=[0]), "probe_t_us"),
                     (dict(probe_t_us=[10.0], probe_neuron=[0]), "probe_t_us"),
                     (dict(probe_t_us=[1.0], probe_neuron=[2]), "probe_neuron"),
                     (dict(max_spikes_per_sample=-1), "max_spikes_per_sample")):
        with pytest.raises(ValueError, match=name):
            simulate_events(**good, **kw)
    for dt in (0.0, -1.5, float("nan")):
        with pytest.raises(ValueError, match="dt_us"):
            simulate_steps(**good, dt_us=dt)


def test_spike_record_helpers():
    rec = SpikeRecord.from_unsorted([3.0, 1.0, 2.0, 0.5, 4.0], [1, 1, 0, 2, 1], [0, 0, 0, 1, 1])
    assert rec.sample.tolist() == [0, 0, 0, 1, 1] and rec.t_us.tolist() == [1.0, 2.0, 3.0, 0.5, 4.0]
    np.testing.assert_array_equal(rec.counts(2, 3), [[1, 2, 0], [0, 1, 1]])
    np.testing.assert_array_equal(rec.first_spike_times(2, [1, 2, 0]), [[1.0, np.inf, 2.0], [4.0, 0.5, np.inf]])
    assert rec.of_sample(1).n_spikes == 2 and SpikeRecord.empty().n_spikes == 0
    assert SpikeRecord.empty().first_spike_times(2, [0]).shape == (2, 1)


# ---------------------------------------------------------------- the one-neuron-at-a-time path

def feedforward_case(seed, *, n=16, n_in=12, n_samples=2, m=2400, t_end=400.0, shared_taus=True):
    """A layer without recurrent synapses (simulate_events integrates it neuron by neuron): dense and
    sparse input rows, groups of neurons with bitwise-equal time constants (shared exp tables), more
    inputs per sample than one chunk, several spikes per neuron, refractoriness, noise and probes."""
    rng = np.random.default_rng(seed)
    tm = rng.choice([6.0, 10.0, 10.0], n) if shared_taus else rng.uniform(5, 15, n)
    ts = rng.choice([4.0, 10.0], n) if shared_taus else rng.uniform(3, 8, n)
    params = NeuronParams(tm, ts, rng.uniform(70, 90, n), rng.uniform(55, 75, n), rng.uniform(110, 140, n),
                          rng.choice([0.0, 0.5, 3.0], n))
    w = np.zeros((n_in + n, n))
    w[:n_in] = rng.normal(6.0, 20.0, (n_in, n))
    w[:n_in // 2][rng.random((n_in // 2, n)) < 0.5] = 0.0  # sparse rows beside dense ones
    smp = rng.integers(0, n_samples, m)
    t = rng.uniform(0, t_end, m)
    order = np.lexsort((t, smp))
    kw = dict(v_th_offset_lsb=rng.normal(0, 2, (n_samples, n)),
              probe_t_us=np.sort(rng.uniform(0, t_end, 30)), probe_neuron=np.array([0, 3, n - 1, 3]))
    return (w, params, t[order], rng.integers(0, n_in, m), smp[order], n_samples, t_end), kw


@pytest.mark.parametrize("seed, shared", [(0, True), (1, True), (2, False)])
def test_feedforward_path_matches_naive_twin(seed, shared):
    args, kw = feedforward_case(seed, shared_taus=shared)
    res = simulate_events(*args, **kw, max_spikes_per_sample=100_000)
    ref, v_ref = simulate_events_naive(*args, kw["v_th_offset_lsb"], kw["probe_t_us"], kw["probe_neuron"])
    assert_same_spikes(res.spikes, ref)
    np.testing.assert_allclose(res.v_probe_lsb, v_ref, rtol=1e-10, atol=1e-9)
    assert res.spikes.counts(args[5], args[1].n).max() >= 3


@pytest.mark.parametrize("seed", [3, 4])
def test_feedforward_path_bit_identical_to_event_queue(seed):
    """Add a neuron that never receives input (so never fires) but synapses onto every other neuron:
    the network is no longer feed-forward, so the event-queue integrator runs it, and its dynamics are
    the same. Spikes and probes must agree bit for bit with the neuron-by-neuron path."""
    (w, p, t, src, smp, ns, t_end), kw = feedforward_case(seed)
    kw["max_spikes_per_sample"] = 100_000
    n_in, n = w.shape[0] - w.shape[1], w.shape[1]
    silent = n
    w_q = np.zeros((n_in + n + 1, n + 1))
    w_q[:n_in, :n] = w[:n_in]
    w_q[n_in + silent, :n] = 50.0
    p_q = NeuronParams(*(np.append(a, a[0]) for a in p))
    kw_q = dict(kw, v_th_offset_lsb=np.hstack([kw["v_th_offset_lsb"], np.zeros((ns, 1))]))
    ff = simulate_events(w, p, t, src, smp, ns, t_end, **kw)
    queue = simulate_events(w_q, p_q, t, src, smp, ns, t_end, **kw_q)
    assert ff.spikes.n_spikes > 100 and silent not in queue.spikes.neuron
    for x, y in zip(ff.spikes, queue.spikes):
        assert x.tobytes() == y.tobytes()
    assert ff.v_probe_lsb.tobytes() == queue.v_probe_lsb.tobytes()
    threaded = simulate_events(w, p, t, src, smp, ns, t_end, **kw, threads=2)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(ff.spikes, threaded.spikes))


def layered_case(seed, *, n_in=6, sizes=(12, 6, 3), n_samples=3, m=90, t_end=60.0):
    """Three layers (inputs -> 12 -> 6 -> 3, plus skip synapses from inputs and layer 1 to the last layer),
    mismatched neurons, signed weights, refractory periods 0 / short / long, noise and probes."""
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    tm = rng.uniform(5, 15, n)
    ts = rng.uniform(3, 8, n)
    ts[0] = tm[0]
    params = NeuronParams(tm, ts, rng.uniform(70, 90, n), rng.uniform(55, 75, n), rng.uniform(110, 140, n),
                          rng.choice([0.0, 0.5, 3.0], n))
    w = np.zeros((n_in + n, n))
    starts = np.cumsum((0,) + sizes)
    w[:n_in] = rng.normal(40.0, 60.0, (n_in, n)) * (rng.random((n_in, n)) < 0.7)
    for a, b, c in zip(starts[:-2], starts[1:-1], starts[2:]):
        w[n_in + a:n_in + b, b:c] = rng.normal(30.0, 50.0, (b - a, c - b))
    w[n_in:n_in + sizes[0], starts[2]:] = rng.normal(10.0, 30.0, (sizes[0], sizes[2]))  # skip layer 2
    smp = rng.integers(0, n_samples, m)
    t = rng.uniform(0, t_end, m)
    order = np.lexsort((t, smp))
    kw = dict(v_th_offset_lsb=rng.normal(0, 2, (n_samples, n)),
              probe_t_us=np.sort(rng.uniform(0, t_end, 25)), probe_neuron=np.array([0, 13, n - 1]),
              max_spikes_per_sample=100_000)
    return (w, params, t[order], rng.integers(0, n_in, m), smp[order], n_samples, t_end), kw


@pytest.mark.parametrize("seed", range(4))
def test_layered_path_matches_naive_twin_and_event_queue(seed):
    """A network without cycles runs layer by layer; it must match the naive twin, and bit for bit the
    event queue (forced by one synapse from the last neuron back to the first, silent: weight on a
    neuron that never fires)."""
    args, kw = layered_case(seed)
    w, p, t, src, smp, ns, t_end = args
    res = simulate_events(*args, **kw)
    ref, v_ref = simulate_events_naive(*args, kw["v_th_offset_lsb"], kw["probe_t_us"], kw["probe_neuron"])
    assert_same_spikes(res.spikes, ref)
    np.testing.assert_allclose(res.v_probe_lsb, v_ref, rtol=1e-10, atol=1e-9)
    n_in, n = w.shape[0] - w.shape[1], w.shape[1]
    assert len(set(res.spikes.neuron.tolist()) & set(range(12, n))) >= 3  # deeper layers fire
    # A silent extra neuron that synapses onto layer 0 and is synapsed onto by the last layer: a cycle.
    w_q = np.zeros((n_in + n + 1, n + 1))
    w_q[:n_in, :n] = w[:n_in]
    w_q[n_in:n_in + n, :n] = w[n_in:]
    w_q[n_in + n, 0] = 50.0
    w_q[n_in + n - 1, n] = -10.0  # inhibition only: the extra neuron never fires
    p_q = NeuronParams(*(np.append(a, a[0]) for a in p))
    kw_q = dict(kw, v_th_offset_lsb=np.hstack([kw["v_th_offset_lsb"], np.zeros((ns, 1))]))
    queue = simulate_events(w_q, p_q, t, src, smp, ns, t_end, **kw_q)
    assert n not in queue.spikes.neuron
    for x, y in zip(res.spikes, queue.spikes):
        assert x.tobytes() == y.tobytes()
    assert res.v_probe_lsb.tobytes() == queue.v_probe_lsb[:, :, :].tobytes()


def test_neuron_layers_and_cycles():
    from neurosplit.chip._lif_event_layered import neuron_layers
    from neurosplit.chip._lif_inputs import prepare_network
    (w, p, *_), _ = layered_case(0)
    net = prepare_network(w, p)
    order, starts = neuron_layers(net.row_ptr, net.col, net.n_in, net.n)
    layer = np.empty(net.n, int)
    for i in range(starts.size - 1):
        layer[order[starts[i]:starts[i + 1]]] = i
    np.testing.assert_array_equal(layer, [0] * 12 + [1] * 6 + [2] * 3)
    w[6 + 20, 3] = 1.0  # last layer -> first: a cycle
    net = prepare_network(w, p)
    assert neuron_layers(net.row_ptr, net.col, net.n_in, net.n) is None


@pytest.mark.parametrize("layers", [1, 2])
def test_one_neuron_at_a_time_paths_resume_after_a_full_spike_buffer(layers):
    """Few inputs, many spikes (short refractoriness, strong drive): the spikes of the neuron-by-neuron
    (one layer) and layered (two) kernels outgrow the first buffer (2 inputs + 8 n + 64) and the run
    resumes with a larger one; the batch must equal its samples run alone, bit for bit, probes included."""
    rng = np.random.default_rng(12)
    n_in, n_hidden, n_out, ns, t_end = 2, 4, 2, 4, 300.0
    n = n_hidden + n_out
    p = NeuronParams(rng.uniform(8, 12, n), rng.uniform(20, 30, n), np.full(n, V_LEAK), np.full(n, V_RESET),
                     np.full(n, 125.0), np.full(n, 0.2))
    w = np.zeros((n_in + n, n))
    w[:n_in, :n_hidden] = rng.uniform(300, 600, (n_in, n_hidden))
    if layers == 2:
        w[n_in:n_in + n_hidden, n_hidden:] = rng.uniform(20, 40, (n_hidden, n_out))
    else:
        w[:n_in, n_hidden:] = rng.uniform(300, 600, (n_in, n_out))
    t = np.tile([0.0, 100.0], ns)
    smp = np.repeat(np.arange(ns), 2)
    src = rng.integers(0, n_in, t.size)
    kw = dict(probe_t_us=np.linspace(0, t_end - 1, 40), probe_neuron=[0, n - 1], max_spikes_per_sample=100_000)
    batch = simulate_events(w, p, t, src, smp, ns, t_end, **kw)
    assert batch.spikes.n_spikes > 2 * (2 * t.size + 8 * n + 64)
    assert set(batch.spikes.neuron.tolist()) >= {n_hidden, n - 1}  # the output layer fires too
    for s in range(ns):
        sel = smp == s
        one = simulate_events(w, p, t[sel], src[sel], np.zeros(sel.sum(), int), 1, t_end, **kw)
        mine = batch.spikes.of_sample(s)
        assert mine.t_us.tobytes() == one.spikes.t_us.tobytes()
        assert mine.neuron.tobytes() == one.spikes.neuron.tobytes()
        assert batch.v_probe_lsb[s].tobytes() == one.v_probe_lsb[0].tobytes()
