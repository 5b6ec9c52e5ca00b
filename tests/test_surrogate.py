"""Surrogate-gradient backward pass (chip/_surrogate.py) against independent references.

- a forward-mode twin (tests/reference/surrogate_naive.py) on arbitrary recordings, incl. recurrence,
  refractory holds, reset without hold, non-spiking read-outs and count seeds;
- when the recording is the time-stepped model's own (``simulate_steps``, no mismatch, no noise):
  the spikes are H(V_pre - v_th) at free grid points, and the gradient w.r.t. the read-out weights is
  the exact derivative of the model's loss (central differences; spikes upstream do not move);
- the read-out losses and regularisers against central differences of their own values.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference.lif_naive import simulate_steps_naive
from reference.surrogate_naive import surrogate_grad_forward_mode

from neurosplit.chip import NeuronParams, simulate_steps, uniform_params
from neurosplit.chip._surrogate import (
    count_regulariser,
    readout_cross_entropy,
    spike_raster,
    superspike,
    surrogate_backward,
)


def layered_case(seed, *, n_in=4, n_hidden=5, n_out=3, n_samples=3, t_end=30.0, recurrent=False, t_ref=2.0):
    """Inputs -> spiking hidden -> non-spiking outputs (threshold out of reach), mismatched constants."""
    rng = np.random.default_rng(seed)
    n = n_hidden + n_out
    tm = rng.uniform(6, 14, n)
    ts = rng.uniform(3, 8, n)
    ts[0] = tm[0]  # the tau_mem == tau_syn propagator
    params = NeuronParams(tm, ts, np.full(n, 80.0), np.full(n, 70.0),
                          np.r_[np.full(n_hidden, 110.0), np.full(n_out, 1e4)],
                          np.r_[rng.choice([0.0, t_ref, 3 * t_ref], n_hidden), np.zeros(n_out)])
    w = np.zeros((n_in + n, n))
    w[:n_in, :n_hidden] = rng.normal(40.0, 40.0, (n_in, n_hidden))
    w[n_in:n_in + n_hidden, n_hidden:] = rng.normal(5.0, 20.0, (n_hidden, n_out))
    if recurrent:
        w[n_in:n_in + n_hidden, :n_hidden] = rng.normal(0.0, 15.0, (n_hidden, n_hidden))
        np.fill_diagonal(w[n_in:n_in + n_hidden, :n_hidden], 0.0)
    m = 6 * n_samples
    smp = np.sort(rng.integers(0, n_samples, m))
    t = rng.uniform(0, t_end * 0.6, m)
    order = np.lexsort((t, smp))
    return w, params, t[order], rng.integers(0, n_in, m)[order], smp[order], n_samples, t_end


def recorded(case, dt):
    w, params, t, src, smp, n_samples, t_end = case
    res = simulate_steps(w, params, t, src, smp, n_samples, t_end, dt, record_pre=True)
    n_steps = res.v_pre_lsb.shape[1]
    return res, spike_raster(res.spikes, n_samples, n_steps, params.n, dt), res.v_pre_lsb


def test_pre_threshold_record_matches_naive_twin():
    case = layered_case(3, recurrent=True)
    w, params, t, src, smp, n_samples, t_end = case
    res, raster, v_pre = recorded(case, 0.5)
    spikes, _, _, v_ref = simulate_steps_naive(w, params, t, src, smp, n_samples, t_end, 0.5, with_pre=True)
    np.testing.assert_allclose(v_pre, v_ref, rtol=1e-10, atol=1e-9)
    assert raster.sum() == len(spikes) > 0


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("seed", range(2))
def test_backward_matches_forward_mode_twin(seed, recurrent):
    case = layered_case(seed, recurrent=recurrent)
    w, params, t, src, smp, n_samples, t_end = case
    dt = 0.5
    _, raster, v_rec = recorded(case, dt)
    assert raster[:, :, :5].sum() > 3  # hidden neurons spike
    rng = np.random.default_rng(seed + 100)
    v_rec = v_rec + rng.normal(0.0, 3.0, v_rec.shape)  # any recording: the twin takes the same values
    dl_dv = rng.normal(0.0, 1.0, v_rec.shape)
    dl_dc = rng.normal(0.0, 1.0, (n_samples, params.n))
    spiking = np.r_[np.ones(5, bool), np.zeros(3, bool)]
    got = surrogate_backward(w, params, t, src, smp, raster, v_rec, dl_dv, dl_dc, dt, beta_per_lsb=0.2,
                             spiking=spiking)
    ref = surrogate_grad_forward_mode(w, params, t, src, smp, raster, v_rec, dl_dv, dl_dc, dt, 0.2, spiking)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def model_loss(w, case, dt, labels, readout, n_hidden=5):
    """The time-stepped model's own read-out loss (no surrogate anywhere)."""
    _, params, t, src, smp, n_samples, t_end = case
    res = simulate_steps(w, params, t, src, smp, n_samples, t_end, dt, record_pre=True)
    return readout_cross_entropy(res.v_pre_lsb[:, :, n_hidden:], labels, params.v_leak_lsb[n_hidden:],
                                 readout=readout, scale_lsb=5.0, rho_max=0.01)


@pytest.mark.parametrize("readout", ["max", "mean"])
def test_readout_weight_gradient_is_the_models_exact_derivative(readout):
    """With the model's own recording, dL/dw of hidden -> output weights is exact: central differences
    of the time-stepped model's loss (outputs do not spike or feed back, so no spike moves)."""
    case = layered_case(7)
    w, params, t, src, smp, n_samples, t_end = case
    dt, n_hidden = 0.5, 5
    labels = np.array([0, 2, 1])
    _, raster, v_rec = recorded(case, dt)
    out = model_loss(w, case, dt, labels, readout)
    dl_dv = np.zeros_like(v_rec)
    dl_dv[:, :, n_hidden:] = out.dl_dv
    grad = surrogate_backward(w, params, t, src, smp, raster, v_rec, dl_dv, np.zeros((n_samples, params.n)), dt,
                              spiking=np.arange(params.n) < n_hidden)
    rows = range(4, 4 + n_hidden)
    eps = 1e-5
    for r in rows:
        for c in range(n_hidden, params.n):
            wp, wm = w.copy(), w.copy()
            wp[r, c] += eps
            wm[r, c] -= eps
            fd = (model_loss(wp, case, dt, labels, readout).loss - model_loss(wm, case, dt, labels, readout).loss) / (2 * eps)
            np.testing.assert_allclose(grad[r, c], fd, rtol=1e-5, atol=1e-9)


def test_spikes_of_the_models_own_recording_are_threshold_crossings():
    case = layered_case(5, recurrent=True)
    _, params, *_ = case
    res, raster, v_pre = recorded(case, 0.5)
    crossed = v_pre >= params.v_th_lsb
    spiked = raster > 0
    assert np.all(crossed[spiked])  # every spike is a crossing ...
    # ... and a crossing without a spike is a neuron held after its own spike
    t_ref_steps = np.ceil(params.t_ref_us / 0.5 - 1e-9).astype(int)
    for s, k, j in zip(*np.nonzero(crossed & ~spiked)):
        assert spiked[s, max(k - t_ref_steps[j], 0):k, j].any()


def test_readout_loss_gradient_matches_central_differences():
    rng = np.random.default_rng(4)
    v = rng.normal(100.0, 20.0, (4, 7, 3))
    labels = np.array([0, 1, 2, 1])
    for readout in ("max", "mean"):
        res = readout_cross_entropy(v, labels, [80.0, 82.0, 78.0], readout=readout, scale_lsb=8.0, rho_max=0.05)
        eps = 1e-6
        for idx in [(0, 3, 1), (2, 0, 2), (3, 6, 0)] + [tuple(np.argwhere(res.dl_dv != 0)[0])]:
            vp, vm = v.copy(), v.copy()
            vp[idx] += eps
            vm[idx] -= eps
            fd = (readout_cross_entropy(vp, labels, [80.0, 82.0, 78.0], readout=readout, scale_lsb=8.0, rho_max=0.05).loss
                  - readout_cross_entropy(vm, labels, [80.0, 82.0, 78.0], readout=readout, scale_lsb=8.0,
                                          rho_max=0.05).loss) / (2 * eps)
            np.testing.assert_allclose(res.dl_dv[idx], fd, rtol=1e-6, atol=1e-10)


def test_count_regulariser_gradient_matches_central_differences():
    c = np.array([[0.0, 2.0, 5.0], [1.0, 7.0, 3.0]])
    value, grad = count_regulariser(c, rho_upper=0.3, nu_upper=2.5, rho_lower=0.7, nu_lower=1.5)
    for idx in np.ndindex(c.shape):
        cp, cm = c.copy(), c.copy()
        cp[idx] += 1e-6
        cm[idx] -= 1e-6
        fd = (count_regulariser(cp, rho_upper=0.3, nu_upper=2.5, rho_lower=0.7, nu_lower=1.5)[0]
              - count_regulariser(cm, rho_upper=0.3, nu_upper=2.5, rho_lower=0.7, nu_lower=1.5)[0]) / 2e-6
        np.testing.assert_allclose(grad[idx], fd, rtol=1e-6, atol=1e-10)
    assert value > 0


def test_superspike_and_raster():
    np.testing.assert_allclose(superspike([150.0, 160.0], 150.0, 0.1), [1.0, 0.25])
    from neurosplit.chip import SpikeRecord

    rec = SpikeRecord(np.array([0.0, 0.5, 0.51, 0.9, 9.9]), np.array([0, 1, 1, 0, 0], np.int32),
                      np.array([0, 0, 0, 1, 1], np.int32))
    r = spike_raster(rec, 2, 3, 2, 0.5)
    assert r[0, 0, 0] == 1 and r[0, 1, 1] == 1 and r[0, 2, 1] == 1 and r[1, 2, 0] == 1 and r.sum() == 4


def test_backward_argument_errors():
    p = uniform_params(2, tau_mem_us=10, tau_syn_us=5, v_leak_lsb=80, v_reset_lsb=70, v_th_lsb=120, t_ref_us=1)
    w = np.zeros((3, 2))
    v = np.zeros((1, 4, 2))
    s = np.zeros((1, 4, 2), np.uint8)
    with pytest.raises(ValueError, match="spikes_k"):
        surrogate_backward(w, p, [], [], [], s.astype(np.int64), v, v, np.zeros((1, 2)), 0.5)
    with pytest.raises(ValueError, match="dl_dcount"):
        surrogate_backward(w, p, [], [], [], s, v, v, np.zeros((2, 2)), 0.5)
    with pytest.raises(ValueError, match="dt_us"):
        surrogate_backward(w, p, [], [], [], s, v, v, np.zeros((1, 2)), -1.0)


# ---------------------------------------------------------------- the core's time-stepped runs

def _stepped_core(spec):
    from neurosplit.chip import AnalogCore, CoreConfig
    from neurosplit.host._network import feedforward, place

    net = feedforward(3, 4, 2, dict(tau_mem_us=10.0, tau_syn_us=5.0, v_leak_lsb=80.0, v_reset_lsb=80.0, v_th_lsb=110.0,
                                    t_ref_us=1.7), np.random.default_rng(2), hidden_init=(30.0, 10.0),
                      output_init=(10.0, 10.0))
    pl = place(net)
    core = AnalogCore(CoreConfig(mismatch=spec, calibrate=False), chip_seed=3, seed=5)
    core.configure_neurons(pl.neurons)
    core.configure_rows(pl.rows)
    from neurosplit.protocol import WriteWeights

    core.write_weights(WriteWeights(request_id=1, row=pl.weight_rows, column=pl.weight_columns, weight=pl.weight_block))
    return core, net


def test_core_stepped_run_samples_the_pre_threshold_membrane_on_its_grid():
    """An ideal die (no mismatch, no noise): spikes on grid ticks and CADC codes equal simulate_steps'
    own spikes and rounded pre-threshold membranes."""
    from neurosplit.chip import MismatchSpec
    from neurosplit.protocol import MembraneSamples, RunRequest, SpikeBatch

    core, net = _stepped_core(MismatchSpec.ideal())
    period, step, sample_ticks, n_samples = 426, 213, 426 * 12, 3
    t_in = np.array([0, 30, 500, 5112 + 7, 5112 + 900, 2 * 5112 + 213], np.int64)
    src = np.array([0, 1, 2, 0, 2, 1])
    smp = (t_in // sample_ticks).astype(np.uint32)
    core.start_run(RunRequest(run_id=4, n_samples=n_samples, sample_ticks=sample_ticks, cadc_period_ticks=period,
                              step_ticks=step))
    out = core.feed(SpikeBatch(run_id=4, t_ticks=t_in, label=net.input_label[src], sample=smp,
                               horizon_ticks=n_samples * sample_ticks))
    spikes = [m for m in out if isinstance(m, SpikeBatch)][0]
    cadc = [m for m in out if isinstance(m, MembraneSamples)][0]
    assert spikes.t_ticks.size > 0 and np.all(spikes.t_ticks % step == 0)
    ref = simulate_steps(core.weights_lsb(), core.realised(), (t_in - smp * sample_ticks) / 125, src, smp.astype(int),
                         n_samples, sample_ticks / 125, step / 125, record_pre=True)
    codes = np.clip(np.rint(ref.v_pre_lsb[:, ::period // step, :]), 0, 255).reshape(-1, net.n)
    np.testing.assert_array_equal(cadc.adc_lsb, codes)
    ref_ticks = np.sort(ref.spikes.sample * sample_ticks + np.rint(ref.spikes.t_us * 125).astype(int))
    np.testing.assert_array_equal(spikes.t_ticks, ref_ticks)


def test_core_refuses_a_cadc_period_off_the_step_grid():
    from neurosplit.chip import MismatchSpec
    from neurosplit.protocol import RunRequest

    core, _ = _stepped_core(MismatchSpec.ideal())
    with pytest.raises(ValueError, match="step_ticks"):
        core.start_run(RunRequest(run_id=0, n_samples=1, sample_ticks=2000, cadc_period_ticks=300, step_ticks=213))
