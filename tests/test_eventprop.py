"""EventProp reverse sweep: against central finite differences through an exact float64 forward, against its
plain-python twin, and against structural invariants (eventprop.md §6.2)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest

from neurosplit.chip._params import NeuronParams, uniform_params
from neurosplit.chip._eventprop import DENOM_MIN_LSB, Adjoint, adjoint_sweep, loss_and_grad
from neurosplit.chip._losses import spike_time_mse, ttfs_cross_entropy
from reference import eventprop_naive as ref

TICK_US = 0.008


class Case(NamedTuple):
    w: np.ndarray  # float64[n_in + n, n]
    params: NeuronParams
    in_t: np.ndarray
    in_src: np.ndarray
    in_smp: np.ndarray
    n_samples: int
    t_end: float
    trainable: np.ndarray  # bool[n_in + n, n]: structurally present synapses
    outputs: np.ndarray  # neuron indices of the read-out


def _inputs(rng, n_in, n_samples, per_sample, t_max):
    t, src, smp = [], [], []
    for s in range(n_samples):
        tt = np.sort(rng.uniform(0.0, t_max, per_sample))
        t.append(tt)
        src.append(rng.integers(0, n_in, per_sample))
        smp.append(np.full(per_sample, s))
    return np.concatenate(t), np.concatenate(src).astype(np.int32), np.concatenate(smp).astype(np.int32)


def _params(n, t_ref, rng=None, v_reset=60.0):
    p = uniform_params(n, tau_mem_us=12.0, tau_syn_us=6.0, v_leak_lsb=80.0, v_reset_lsb=v_reset,
                       v_th_lsb=150.0, t_ref_us=t_ref)
    if rng is None:
        return p
    # heterogeneous neurons (mismatch-like), one with tau_mem == tau_syn (degenerate propagator)
    tm = p.tau_mem_us * rng.uniform(0.8, 1.2, n)
    ts = p.tau_syn_us * rng.uniform(0.8, 1.2, n)
    tm[0] = ts[0]
    return NeuronParams(tm, ts, p.v_leak_lsb + rng.normal(0, 3, n), p.v_reset_lsb + rng.normal(0, 3, n),
                        p.v_th_lsb + rng.normal(0, 3, n), p.t_ref_us)


def feedforward_case(seed, *, t_ref, n_in=4, hidden=5, n_out=3, n_samples=2, v_reset=60.0,
                     w_hidden=(70.0, 50.0), w_out=(60.0, 40.0), t_end=30.0):
    """Two LIF layers; with t_ref = 0 and v_reset below the leak the hidden neurons spike repeatedly."""
    rng = np.random.default_rng(seed)
    n = hidden + n_out
    w = np.zeros((n_in + n, n))
    w[:n_in, :hidden] = rng.normal(*w_hidden, (n_in, hidden))
    w[n_in:n_in + hidden, hidden:] = rng.normal(*w_out, (hidden, n_out))
    trainable = w != 0
    t, src, smp = _inputs(rng, n_in, n_samples, 6, 15.0)
    return Case(w, _params(n, t_ref, v_reset=v_reset), t, src, smp, n_samples, t_end, trainable,
                np.arange(hidden, n))


def recurrent_case(seed, *, t_ref, n_in=3, n=6, n_samples=2, t_end=25.0):
    """A fully recurrent population (zero diagonal) of heterogeneous neurons."""
    rng = np.random.default_rng(seed)
    w = np.zeros((n_in + n, n))
    w[:n_in] = rng.normal(80.0, 40.0, (n_in, n))
    w[n_in:] = rng.normal(0.0, 30.0, (n, n))
    np.fill_diagonal(w[n_in:], 0.0)
    t, src, smp = _inputs(rng, n_in, n_samples, 5, 12.0)
    return Case(w, _params(n, t_ref, rng), t, src, smp, n_samples, t_end, w != 0, np.arange(n - 2, n))


SINGLE_SPIKE = feedforward_case(6, t_ref=100.0, v_reset=80.0, w_hidden=(90.0, 50.0), w_out=(120.0, 40.0))
"""Every neuron fires exactly once per sample (the Yin-Yang regime)."""


def simulate(case, w=None, in_t=None):
    return ref.simulate(case.w if w is None else w, case.params, case.in_t if in_t is None else in_t,
                        case.in_src, case.in_smp, case.n_samples, case.t_end)


def min_denominator(case, spikes):
    """Smallest tau_mem dV/dt^- over the spikes (rebuilt independently by direct sums)."""
    p = case.params
    n_in = case.w.shape[0] - case.w.shape[1]
    dens = [np.inf]
    for k in range(spikes.t_us.size):
        s, j = spikes.sample[k], spikes.neuron[k]
        sel_in, sel_sp = case.in_smp == s, spikes.sample == s
        t_pre = list(case.in_t[sel_in]) + list(spikes.t_us[sel_sp])
        src_pre = list(case.in_src[sel_in]) + list(n_in + spikes.neuron[sel_sp])
        i_now = ref.synaptic_current(case.w, p, t_pre, src_pre, j, spikes.t_us[k])
        dens.append(p.v_leak_lsb[j] - p.v_th_lsb[j] + i_now)
    return min(dens)


def same_pattern(a, b):
    return a.t_us.size == b.t_us.size and np.array_equal(a.neuron, b.neuron) and np.array_equal(a.sample, b.sample)


def linear_loss(c):
    """L = sum_k c_k t_k: a generic spike-time loss touching every spike, dL/dt_k = c_k."""
    return lambda spikes: float(np.dot(c, spikes.t_us)), lambda spikes: c


def check_against_fd(case, loss, dl_dt_of, *, max_entries=40, eps_w=1e-4, eps_t=1e-6, seed=0, rtol=2e-5):
    base = simulate(case)
    assert base.t_us.size > 0
    assert min_denominator(case, base) > 2 * DENOM_MIN_LSB, "grazing configuration: pick another seed"
    adj = adjoint_sweep(case.w, case.params, case.in_t, case.in_src, case.in_smp, base, dl_dt_of(base),
                        case.n_samples, case.t_end)
    assert adj.n_grazing == 0
    rng = np.random.default_rng(seed)
    entries = np.argwhere(case.trainable)
    entries = entries[rng.permutation(len(entries))[:max_entries]]
    fd, an = [], []
    for i, j in entries:
        vals = []
        for sign in (1.0, -1.0):
            w = case.w.copy()
            w[i, j] += sign * eps_w
            sp = simulate(case, w=w)
            if not same_pattern(sp, base):
                break
            vals.append(loss(sp))
        if len(vals) == 2:
            fd.append((vals[0] - vals[1]) / (2 * eps_w))
            an.append(adj.grad_w[i, j])
    assert len(fd) >= 0.7 * len(entries), "too many entries change the spike pattern"
    fd, an = np.array(fd), np.array(an)
    assert np.abs(fd).max() > 0
    np.testing.assert_allclose(an, fd, rtol=0, atol=rtol * np.abs(fd).max())
    fd_t, an_t = [], []
    for k in range(case.in_t.size):
        vals = []
        for sign in (1.0, -1.0):
            t = case.in_t.copy()
            t[k] += sign * eps_t
            sp = simulate(case, in_t=t)
            if not same_pattern(sp, base):
                break
            vals.append(loss(sp))
        if len(vals) == 2:
            fd_t.append((vals[0] - vals[1]) / (2 * eps_t))
            an_t.append(adj.grad_in_t[k])
    fd_t, an_t = np.array(fd_t), np.array(an_t)
    assert fd_t.size >= 0.7 * case.in_t.size and np.abs(fd_t).max() > 0
    np.testing.assert_allclose(an_t, fd_t, rtol=0, atol=1e-4 * np.abs(fd_t).max())
    return base, adj


# ------------------------------------------------------------------------------------------------
# finite differences


@pytest.mark.parametrize("name, case, min_spikes_per_neuron", [
    ("feedforward multi-spike, t_ref 0", feedforward_case(3, t_ref=0.0), 2),
    ("recurrent multi-spike, t_ref 0", recurrent_case(5, t_ref=0.0), 2),
    ("feedforward single-spike, t_ref > t_end", SINGLE_SPIKE, 1),
    ("recurrent, finite t_ref with several spikes", recurrent_case(7, t_ref=2.5), 2),
    ("feedforward, finite t_ref", feedforward_case(18, t_ref=3.0, v_reset=80.0, w_out=(80.0, 40.0)), 3),
])
def test_gradients_match_central_differences(name, case, min_spikes_per_neuron):
    base = simulate(case)
    counts = np.bincount(base.neuron * case.n_samples + base.sample, minlength=case.params.n * case.n_samples)
    assert counts.max() >= min_spikes_per_neuron, f"{name}: the case should exercise repeated spikes"
    assert np.isin(case.outputs, base.neuron).all() or name.startswith("recurrent"), "outputs should fire"
    c = np.random.default_rng(1).normal(size=base.t_us.size)
    check_against_fd(case, *linear_loss(c))


def test_refractory_release_inside_trial_is_exercised():
    case = recurrent_case(7, t_ref=2.5)
    sp = simulate(case)
    released = sp.t_us + case.params.t_ref_us[sp.neuron] < case.t_end
    assert released.sum() >= 3


@pytest.mark.parametrize("loss_name", ["ttfs", "mse"])
def test_loss_gradients_through_the_network(loss_name):
    """The full chain: first output spikes -> loss -> dl_dt -> sweep, against FD of the loss value."""
    case = feedforward_case(3, t_ref=0.0)

    def lres(spikes):
        if loss_name == "ttfs":
            return ttfs_cross_entropy(spikes, case.outputs, np.array([0, 2]), case.n_samples, tau0_us=1.0,
                                      tau1_us=8.0, alpha=0.01, t_end_us=case.t_end)
        return spike_time_mse(spikes, case.outputs, np.array([0, 2]), case.n_samples, t_correct_us=8.0,
                              t_wrong_us=12.0, tau_norm_us=6.0, t_end_us=case.t_end)

    base = simulate(case)
    assert np.isfinite(lres(base).first_t_us).all(), "every output should fire in this case"
    check_against_fd(case, lambda sp: lres(sp).loss, lambda sp: lres(sp).dl_dt)


def test_single_spike_input_time_gradient_against_closed_form():
    """One input of weight w at t0 into one neuron with tau_mem = 2 tau_syn: the spike time has a closed
    form (eventprop.md §1.2), so dt*/dt0 = 1 and dt*/dw follow analytically."""
    tm, ts, theta = 12.0, 6.0, 70.0
    p = uniform_params(1, tau_mem_us=tm, tau_syn_us=ts, v_leak_lsb=80.0, v_reset_lsb=80.0, v_th_lsb=80.0 + theta,
                       t_ref_us=100.0)
    w0 = 400.0

    def t_star(w):  # x = exp(-s/tm): V = w (x - x^2) = theta
        x = (1.0 + np.sqrt(1.0 - 4.0 * theta / w)) / 2.0
        return -tm * np.log(x)

    t0 = 2.0
    spikes = ref.Spikes(np.array([t0 + t_star(w0)]), np.array([0], np.int32), np.array([0], np.int32))
    adj = adjoint_sweep(np.array([[w0], [0.0]]), p, np.array([t0]), np.array([0]), np.array([0]), spikes,
                        np.array([1.0]), 1, 40.0)
    dt_dw = (t_star(w0 + 1e-4) - t_star(w0 - 1e-4)) / 2e-4
    np.testing.assert_allclose(adj.grad_w[0, 0], dt_dw, rtol=1e-7)
    np.testing.assert_allclose(adj.grad_in_t[0], 1.0, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# the naive twin and the fast forward


def _quantised(spikes):
    """Spike times rounded to FPGA ticks, as the plasticity processor sees them (ties appear)."""
    t = np.round(spikes.t_us / TICK_US) * TICK_US
    order = np.lexsort((spikes.neuron, t, spikes.sample))
    return ref.Spikes(t[order], spikes.neuron[order], spikes.sample[order])


@pytest.mark.parametrize("case", [
    feedforward_case(3, t_ref=0.0), recurrent_case(5, t_ref=0.0), recurrent_case(7, t_ref=2.5),
    SINGLE_SPIKE, feedforward_case(11, t_ref=0.0, n_samples=4),
])
@pytest.mark.parametrize("quantise", [False, True])
def test_kernel_matches_naive_twin(case, quantise):
    spikes = simulate(case)
    in_t = case.in_t
    if quantise:
        spikes = _quantised(spikes)
        in_t = np.round(case.in_t / TICK_US) * TICK_US
    c = np.random.default_rng(2).normal(size=spikes.t_us.size)
    adj = adjoint_sweep(case.w, case.params, in_t, case.in_src, case.in_smp, spikes, c, case.n_samples, case.t_end)
    gw, gi, ng = ref.adjoint(case.w, case.params, in_t, case.in_src, case.in_smp, spikes, c, case.n_samples,
                             case.t_end, denom_min_lsb=DENOM_MIN_LSB)
    scale = np.abs(gw).max()
    np.testing.assert_allclose(adj.grad_w, gw, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(adj.grad_in_t, gi, rtol=0, atol=1e-11 * np.abs(gi).max())
    assert adj.n_grazing == ng


def test_ties_between_inputs_spikes_and_releases():
    """Hand-made record with an input, a spike of another neuron and a release all at one instant."""
    case = feedforward_case(3, t_ref=0.0)
    p = case.params._replace(t_ref_us=np.full(case.params.n, 2.0))
    spikes = simulate(case._replace(params=p))
    t = spikes.t_us.copy()
    # move the first spike onto an earlier input time, and a spike of another neuron onto its release
    t0 = case.in_t[case.in_smp == spikes.sample[0]]
    t[0] = t0[np.searchsorted(t0, t[0]) - 1]
    other = np.flatnonzero((spikes.sample == spikes.sample[0]) & (spikes.neuron != spikes.neuron[0]))[0]
    t[other] = t[0] + 2.0
    order = np.lexsort((spikes.neuron, t, spikes.sample))
    rec = ref.Spikes(t[order], spikes.neuron[order], spikes.sample[order])
    c = np.random.default_rng(3).normal(size=t.size)
    adj = adjoint_sweep(case.w, p, case.in_t, case.in_src, case.in_smp, rec, c, case.n_samples, case.t_end)
    gw, gi, ng = ref.adjoint(case.w, p, case.in_t, case.in_src, case.in_smp, rec, c, case.n_samples, case.t_end,
                             denom_min_lsb=DENOM_MIN_LSB)
    np.testing.assert_allclose(adj.grad_w, gw, rtol=0, atol=1e-11 * np.abs(gw).max())
    np.testing.assert_allclose(adj.grad_in_t, gi, rtol=0, atol=1e-11 * np.abs(gi).max())
    assert adj.n_grazing == ng


@pytest.mark.parametrize("case", [feedforward_case(3, t_ref=0.0), recurrent_case(5, t_ref=0.0),
                                  recurrent_case(7, t_ref=2.5), SINGLE_SPIKE])
def test_simulate_events_agrees_with_naive_forward(case):
    lif_event = pytest.importorskip("neurosplit.chip._lif_event")
    ours = simulate(case)
    theirs = lif_event.simulate_events(case.w, case.params, case.in_t, case.in_src, case.in_smp, case.n_samples,
                                       case.t_end).spikes
    assert same_pattern(ours, theirs)
    np.testing.assert_allclose(theirs.t_us, ours.t_us, rtol=0, atol=1e-9)


def test_loss_and_grad_composes_forward_loss_and_sweep():
    lif_event = pytest.importorskip("neurosplit.chip._lif_event")
    case = feedforward_case(3, t_ref=0.0, n_samples=3)
    label = np.array([0, 1, 2])
    kw = dict(tau0_us=1.0, tau1_us=8.0, alpha=0.01)
    lres, adj, spikes = loss_and_grad(case.w, case.params, case.in_t, case.in_src, case.in_smp, case.n_samples,
                                      case.t_end, label, case.outputs, loss="ttfs", loss_params=kw)
    sp = lif_event.simulate_events(case.w, case.params, case.in_t, case.in_src, case.in_smp, case.n_samples,
                                   case.t_end).spikes
    ref_l = ttfs_cross_entropy(sp, case.outputs, label, case.n_samples, t_end_us=case.t_end, **kw)
    ref_a = adjoint_sweep(case.w, case.params, case.in_t, case.in_src, case.in_smp, sp, ref_l.dl_dt,
                          case.n_samples, case.t_end)
    assert lres.loss == ref_l.loss and np.array_equal(adj.grad_w, ref_a.grad_w)
    assert np.array_equal(adj.grad_in_t, ref_a.grad_in_t) and np.array_equal(spikes.t_us, sp.t_us)


def test_batch_gradient_is_mean_of_per_sample_gradients():
    pytest.importorskip("neurosplit.chip._lif_event")
    case = feedforward_case(3, t_ref=0.0, n_samples=3)
    label = np.array([2, 0, 1])
    kw = dict(t_correct_us=8.0, t_wrong_us=12.0, tau_norm_us=6.0)
    lres, adj, _ = loss_and_grad(case.w, case.params, case.in_t, case.in_src, case.in_smp, case.n_samples,
                                 case.t_end, label, case.outputs, loss="mse", loss_params=kw)
    losses, grads, grads_t = [], [], []
    for s in range(case.n_samples):
        sel = case.in_smp == s
        l1, a1, _ = loss_and_grad(case.w, case.params, case.in_t[sel], case.in_src[sel], np.zeros(sel.sum(), int),
                                  1, case.t_end, label[s:s + 1], case.outputs, loss="mse", loss_params=kw)
        losses.append(l1.loss)
        grads.append(a1.grad_w)
        grads_t.append(a1.grad_in_t / case.n_samples)
    np.testing.assert_allclose(lres.loss, np.mean(losses), rtol=1e-14)
    np.testing.assert_allclose(adj.grad_w, np.mean(grads, axis=0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(adj.grad_in_t, np.concatenate(grads_t), rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------------------------
# structural invariants


def _sweep(case, spikes, c, **kw):
    return adjoint_sweep(case.w, case.params, case.in_t, case.in_src, case.in_smp, spikes, c, case.n_samples,
                         case.t_end, **kw)


def test_silent_sources_and_silent_neurons_get_zero_gradient():
    case = feedforward_case(3, t_ref=0.0)
    w = case.w.copy()
    w[:, 1] = 0.0  # hidden neuron 1 never fires
    case = case._replace(w=w)
    sp = simulate(case)
    assert 1 not in sp.neuron
    c = np.random.default_rng(4).normal(size=sp.t_us.size)
    adj = _sweep(case, sp, c)
    n_in = case.w.shape[0] - case.w.shape[1]
    assert np.all(adj.grad_w[n_in + 1] == 0.0)  # outgoing weights of a silent neuron
    assert np.all(adj.grad_w[:, 1] == 0.0)  # incoming weights of a silent neuron: EventProp cannot create spikes
    unused = np.setdiff1d(np.arange(n_in), case.in_src)
    assert np.all(adj.grad_w[unused] == 0.0)


def test_zero_loss_gradient_and_zero_weights_give_zero_gradient():
    case = feedforward_case(3, t_ref=0.0)
    sp = simulate(case)
    adj = _sweep(case, sp, np.zeros(sp.t_us.size))
    assert not adj.grad_w.any() and not adj.grad_in_t.any()
    zero = case._replace(w=np.zeros_like(case.w))
    sp0 = simulate(zero)
    assert sp0.t_us.size == 0
    adj0 = _sweep(zero, sp0, np.zeros(0))
    assert not adj0.grad_w.any() and not adj0.grad_in_t.any()


def test_sweep_is_linear_in_dl_dt_and_deterministic():
    case = recurrent_case(5, t_ref=0.0)
    sp = simulate(case)
    rng = np.random.default_rng(5)
    c1, c2 = rng.normal(size=sp.t_us.size), rng.normal(size=sp.t_us.size)
    a1, a2, a12 = _sweep(case, sp, c1), _sweep(case, sp, c2), _sweep(case, sp, 2.0 * c1 + c2)
    np.testing.assert_allclose(a12.grad_w, 2.0 * a1.grad_w + a2.grad_w, rtol=0, atol=1e-12 * np.abs(a12.grad_w).max())
    again = _sweep(case, sp, c1)
    assert np.array_equal(again.grad_w, a1.grad_w) and np.array_equal(again.grad_in_t, a1.grad_in_t)


def test_samples_are_independent():
    """The sum over a batch equals the sum of single-sample sweeps."""
    case = feedforward_case(11, t_ref=0.0, n_samples=4)
    sp = simulate(case)
    c = np.random.default_rng(6).normal(size=sp.t_us.size)
    full = _sweep(case, sp, c)
    total = np.zeros_like(full.grad_w)
    for s in range(case.n_samples):
        sel_in, sel_sp = case.in_smp == s, sp.sample == s
        one = ref.Spikes(sp.t_us[sel_sp], sp.neuron[sel_sp], np.zeros(sel_sp.sum(), np.int32))
        a = adjoint_sweep(case.w, case.params, case.in_t[sel_in], case.in_src[sel_in], np.zeros(sel_in.sum(), int),
                          one, c[sel_sp], 1, case.t_end)
        total += a.grad_w
        np.testing.assert_array_equal(full.grad_in_t[sel_in], a.grad_in_t)
    np.testing.assert_allclose(full.grad_w, total, rtol=0, atol=1e-13 * np.abs(total).max())


def test_degenerate_time_constants_are_continuous():
    """tau_mem == tau_syn takes the degenerate propagator; a hair away must give nearly the same gradient."""
    case = feedforward_case(3, t_ref=0.0)
    sp = simulate(case)
    c = np.random.default_rng(7).normal(size=sp.t_us.size)
    grads = []
    for tm in (6.0, 6.0 * (1 + 1e-9), 6.0 * (1 + 1e-3), 6.0 * (1 - 1e-3)):
        p = case.params._replace(tau_mem_us=np.full(case.params.n, tm))
        grads.append(adjoint_sweep(case.w, p, case.in_t, case.in_src, case.in_smp, sp, c, case.n_samples,
                                   case.t_end).grad_w)
    scale = np.abs(grads[0]).max()
    np.testing.assert_allclose(grads[1], grads[0], rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(grads[2], grads[0], rtol=0, atol=2e-2 * scale)
    np.testing.assert_allclose(grads[3], grads[0], rtol=0, atol=2e-2 * scale)


def test_grazing_denominators_are_clamped_and_counted():
    case = feedforward_case(3, t_ref=0.0)
    sp = simulate(case)
    c = np.random.default_rng(8).normal(size=sp.t_us.size)
    clean = _sweep(case, sp, c)
    assert clean.n_grazing == 0
    # A spike moved to just after the sample start sees almost no current: the rebuilt dV/dt is negative.
    t = sp.t_us.copy()
    t[0] = 1e-3
    order = np.lexsort((sp.neuron, t, sp.sample))
    moved = ref.Spikes(t[order], sp.neuron[order], sp.sample[order])
    adj = _sweep(case, moved, c[order])
    assert adj.n_grazing >= 1 and np.all(np.isfinite(adj.grad_w))
    gw, gi, ng = ref.adjoint(case.w, case.params, case.in_t, case.in_src, case.in_smp, moved, c[order],
                             case.n_samples, case.t_end, denom_min_lsb=DENOM_MIN_LSB)
    assert ng == adj.n_grazing
    np.testing.assert_allclose(adj.grad_w, gw, rtol=0, atol=1e-11 * np.abs(gw).max())
    every = _sweep(case, sp, c, denom_min_lsb=1e9)
    assert every.n_grazing == sp.t_us.size


def test_result_type_and_shapes():
    case = recurrent_case(5, t_ref=0.0)
    sp = simulate(case)
    adj = _sweep(case, sp, np.ones(sp.t_us.size))
    assert isinstance(adj, Adjoint)
    assert adj.grad_w.shape == case.w.shape and adj.grad_w.dtype == np.float64
    assert adj.grad_in_t.shape == case.in_t.shape and isinstance(adj.n_grazing, int)


@pytest.mark.parametrize("change, match", [
    (dict(w=np.zeros((3, 4))), "w_lsb must have shape"),
    (dict(dl_dt="short"), "dl_dt must have shape"),
    (dict(t_end=-1.0), "t_end_us must be > 0"),
    (dict(in_src="bad"), "in_src must lie in"),
    (dict(unsorted=True), "inputs must be sorted"),
    (dict(n_samples=1), "in_sample must lie in"),
])
def test_invalid_arguments_name_the_argument(change, match):
    case = feedforward_case(3, t_ref=0.0)
    sp = simulate(case)
    w = change.get("w", case.w)
    c = np.ones(sp.t_us.size - (1 if change.get("dl_dt") else 0))
    src = case.in_src.copy()
    if change.get("in_src"):
        src[0] = 99
    t = case.in_t.copy()
    if change.get("unsorted"):
        t[0], t[1] = t[1] + 1.0, t[0]
    with pytest.raises(ValueError, match=match):
        adjoint_sweep(w, case.params, t, src, case.in_smp, sp, c, change.get("n_samples", case.n_samples),
                      change.get("t_end", case.t_end))
