"""Spike-time losses against hand-computed values and finite differences; Adam and fixed-point rounding
against hand-rolled references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neurosplit.chip._losses import first_spike_times, spike_time_mse, ttfs_cross_entropy
from neurosplit.chip._optim import AdamState, adam_init, adam_step, to_fixed_point
from reference.eventprop_naive import Spikes

OUT = np.array([5, 7, 9])
T_END = 20.0


def record(rows):
    """rows: (sample, t, neuron), any order -> Spikes sorted by (sample, t, neuron)."""
    s, t, n = (np.array(c) for c in zip(*rows))
    order = np.lexsort((n, t, s))
    return Spikes(t[order].astype(float), n[order].astype(np.int32), s[order].astype(np.int32))


# sample 0: outputs 5 and 7 fire (5 twice), 9 silent; sample 1: only output 9; sample 2: no output fires.
REC = record([(0, 3.0, 5), (0, 4.0, 5), (0, 2.0, 7), (0, 1.0, 0), (1, 10.0, 9), (1, 0.5, 0), (2, 3.0, 1)])
LABEL = np.array([0, 1, 2])


def index_of(sample, t, neuron):
    hit = np.flatnonzero((REC.sample == sample) & (REC.t_us == t) & (REC.neuron == neuron))
    assert hit.size == 1
    return int(hit[0])


def test_first_spike_times_ignores_later_spikes_and_other_neurons():
    first_t, first_i = first_spike_times(REC, OUT, 3)
    expect = np.array([[3.0, 2.0, np.inf], [np.inf, np.inf, 10.0], [np.inf, np.inf, np.inf]])
    np.testing.assert_array_equal(first_t, expect)
    assert first_i[0, 0] == index_of(0, 3.0, 5) and first_i[1, 2] == index_of(1, 10.0, 9)
    assert (first_i[2] == -1).all()


def test_ttfs_cross_entropy_hand_computed():
    tau0, tau1, alpha = 2.0, 10.0, 0.1
    res = ttfs_cross_entropy(REC, OUT, LABEL, 3, tau0_us=tau0, tau1_us=tau1, alpha=alpha, t_end_us=T_END)
    # sample 0: t = (3, 2, silent -> 20), label 0
    e = [math.exp(-3.0 / tau0), math.exp(-2.0 / tau0), math.exp(-20.0 / tau0)]
    p0 = [x / sum(e) for x in e]
    l0 = -math.log(p0[0]) + alpha * (math.exp(3.0 / tau1) - 1.0)
    # sample 1: t = (20, 20, 10), label 1 (silent label: loss counted, no gradient on it)
    e1 = [math.exp(-20.0 / tau0), math.exp(-20.0 / tau0), math.exp(-10.0 / tau0)]
    p1 = [x / sum(e1) for x in e1]
    l1 = -math.log(p1[1]) + alpha * (math.exp(20.0 / tau1) - 1.0)
    # sample 2: everything silent: uniform softmax
    l2 = math.log(3.0) + alpha * (math.exp(20.0 / tau1) - 1.0)
    assert res.loss == pytest.approx((l0 + l1 + l2) / 3, rel=1e-14)
    expect = np.zeros(REC.t_us.size)
    expect[index_of(0, 3.0, 5)] = ((1.0 - p0[0]) / tau0 + alpha / tau1 * math.exp(3.0 / tau1)) / 3
    expect[index_of(0, 2.0, 7)] = -p0[1] / tau0 / 3
    expect[index_of(1, 10.0, 9)] = -p1[2] / tau0 / 3
    np.testing.assert_allclose(res.dl_dt, expect, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(res.prediction, [1, 2, -1])
    np.testing.assert_array_equal(res.correct, [False, False, False])
    assert res.first_t_us.shape == (3, 3) and res.dl_dt.dtype == np.float64


def test_spike_time_mse_hand_computed():
    tc, tw, tn = 4.0, 8.0, 5.0
    res = spike_time_mse(REC, OUT, LABEL, 3, t_correct_us=tc, t_wrong_us=tw, tau_norm_us=tn, t_end_us=T_END)
    l0 = ((3 - tc) / tn) ** 2 + ((2 - tw) / tn) ** 2 + ((20 - tw) / tn) ** 2
    l1 = ((20 - tw) / tn) ** 2 + ((20 - tc) / tn) ** 2 + ((10 - tw) / tn) ** 2
    l2 = ((20 - tw) / tn) ** 2 * 2 + ((20 - tc) / tn) ** 2
    assert res.loss == pytest.approx((l0 + l1 + l2) / 3, rel=1e-14)
    expect = np.zeros(REC.t_us.size)
    expect[index_of(0, 3.0, 5)] = 2 * (3 - tc) / tn**2 / 3
    expect[index_of(0, 2.0, 7)] = 2 * (2 - tw) / tn**2 / 3
    expect[index_of(1, 10.0, 9)] = 2 * (10 - tw) / tn**2 / 3
    np.testing.assert_allclose(res.dl_dt, expect, rtol=1e-14, atol=0)


def test_correct_needs_the_label_to_fire_first():
    rec = record([(0, 2.0, 5), (0, 3.0, 7), (1, 2.0, 5), (1, 3.0, 7), (2, 4.0, 9), (2, 4.0, 5)])
    res = ttfs_cross_entropy(rec, OUT, np.array([0, 1, 2]), 3, tau0_us=1.0, tau1_us=5.0, alpha=0.0, t_end_us=T_END)
    np.testing.assert_array_equal(res.prediction, [0, 0, 0])  # a tie goes to the lowest output index
    np.testing.assert_array_equal(res.correct, [True, False, False])


@pytest.mark.parametrize("which", ["ttfs", "mse"])
def test_dl_dt_matches_finite_differences_of_the_loss(which):
    rng = np.random.default_rng(0)
    rows = [(s, float(rng.uniform(0, 15)), int(nrn)) for s in range(4) for nrn in rng.choice([0, 5, 7, 9], 5)]
    rec = record(rows)
    label = rng.integers(0, 3, 4)

    def run(r):
        if which == "ttfs":
            return ttfs_cross_entropy(r, OUT, label, 4, tau0_us=1.5, tau1_us=6.0, alpha=0.02, t_end_us=T_END)
        return spike_time_mse(r, OUT, label, 4, t_correct_us=5.0, t_wrong_us=7.0, tau_norm_us=6.0, t_end_us=T_END)

    g = run(rec).dl_dt
    h = 1e-6
    for k in range(rec.t_us.size):
        up, dn = rec.t_us.copy(), rec.t_us.copy()
        up[k] += h
        dn[k] -= h
        fd = (run(rec._replace(t_us=up)).loss - run(rec._replace(t_us=dn)).loss) / (2 * h)
        assert fd == pytest.approx(g[k], abs=1e-8)


def test_loss_argument_checks():
    with pytest.raises(ValueError, match="label must have shape"):
        ttfs_cross_entropy(REC, OUT, np.array([0, 1]), 3, tau0_us=1.0, tau1_us=5.0, alpha=0.0, t_end_us=T_END)
    with pytest.raises(ValueError, match="label must lie in"):
        spike_time_mse(REC, OUT, np.array([0, 1, 3]), 3, t_correct_us=1.0, t_wrong_us=2.0, tau_norm_us=1.0,
                       t_end_us=T_END)
    with pytest.raises(ValueError, match="tau0_us and tau1_us must be > 0"):
        ttfs_cross_entropy(REC, OUT, LABEL, 3, tau0_us=0.0, tau1_us=5.0, alpha=0.0, t_end_us=T_END)


# ------------------------------------------------------------------------------------------------
# optimiser


def test_adam_matches_hand_rolled_steps():
    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(4)]
    lr, b1, b2, eps = 0.01, 0.8, 0.99, 1e-6
    w, state = w0.copy(), adam_init(w0.shape)
    for g in grads:
        w, state = adam_step(w, g, state, lr=lr, beta1=b1, beta2=b2, eps=eps)
    for idx in np.ndindex(w0.shape):  # scalar reference, element by element
        x, m, v = w0[idx], 0.0, 0.0
        for t, g in enumerate(grads, start=1):
            m = b1 * m + (1 - b1) * g[idx]
            v = b2 * v + (1 - b2) * g[idx] ** 2
            x -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
        assert w[idx] == pytest.approx(x, rel=1e-13)
    assert state.step == 4 and isinstance(state, AdamState)


def test_adam_first_step_moves_each_weight_by_lr():
    g = np.array([3.0, -0.5, 1e-3])
    w, _ = adam_step(np.zeros(3), g, adam_init(3), lr=0.1)
    np.testing.assert_allclose(w, -0.1 * np.sign(g), rtol=1e-4)


def test_adam_does_not_modify_its_inputs():
    w, g, st = np.ones(3), np.ones(3), adam_init(3)
    adam_step(w, g, st, lr=0.5)
    assert np.array_equal(w, np.ones(3)) and not st.m.any() and st.step == 0


def test_adam_argument_checks():
    with pytest.raises(ValueError, match="lr must be > 0"):
        adam_step(np.ones(2), np.ones(2), adam_init(2), lr=0.0)
    with pytest.raises(ValueError, match="shape of w"):
        adam_step(np.ones(2), np.ones(3), adam_init(2), lr=0.1)


def test_to_fixed_point_rounds_half_up_and_saturates():
    x = np.array([0.3, 0.375, -0.375, 0.124, 5.0, -5.0, 1.75, -2.0, 1.8749])
    got = to_fixed_point(x, frac_bits=2, total_bits=4)  # grid k/4, k in [-8, 7]
    np.testing.assert_array_equal(got, [0.25, 0.5, -0.25, 0.0, 1.75, -2.0, 1.75, -2.0, 1.75])
    y = np.random.default_rng(2).normal(0, 100, 1000)
    q = to_fixed_point(y, frac_bits=5, total_bits=16)
    assert np.all(q * 32 == np.round(q * 32))
    inside = np.abs(y) < 1000
    assert np.all(np.abs(q - y)[inside] <= 1 / 64 + 1e-12)
    with pytest.raises(ValueError, match="NaN"):
        to_fixed_point(np.array([np.nan]), frac_bits=2, total_bits=8)
