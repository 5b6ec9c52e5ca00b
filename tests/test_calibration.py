"""Calibration: the search and fit parts against closed forms; whole runs against the die's truth."""

import dataclasses

import numpy as np
import pytest

from neurosplit.chip import _calibration as cal
from neurosplit.chip import _mismatch as mm
from neurosplit.chip._params import YINYANG_TARGETS, NeuronParams, uniform_params
from neurosplit.chip._spikes import SpikeRecord
from neurosplit.protocol import ChipLimitError


# --- parts that need no simulator -----------------------------------------------------------------

@pytest.mark.parametrize("increasing", [True, False])
def test_search_finds_the_nearest_code_of_a_monotone_measurement(increasing):
    rng = np.random.default_rng(0)
    n = 300
    slope = rng.uniform(0.2, 0.6, n) * (1 if increasing else -1)
    offset = rng.uniform(-20, 20, n)
    target = rng.uniform(40, 160, n)
    lo, hi = np.full(n, 100), np.full(n, 400)
    calls = []

    def measure(code, step):
        calls.append(step)
        return offset + slope * (code - 100) + (0 if increasing else 120)

    code, m, edge = cal._search(measure, target, lo, hi, increasing)
    every = np.arange(100, 401)
    values = offset[:, None] + slope[:, None] * (every[None, :] - 100) + (0 if increasing else 120)
    best = every[np.argmin(np.abs(values - target[:, None]), axis=1)]
    best_err = np.abs(values - target[:, None]).min(axis=1)
    np.testing.assert_allclose(np.abs(m - target), best_err, atol=1e-9)  # nearest, ties either way
    np.testing.assert_array_equal(np.abs(m - target) <= best_err + 1e-9, True)
    assert np.array_equal(code, best) or np.all(np.abs(m - target) <= best_err + 1e-9)
    np.testing.assert_array_equal(edge, (code == 100) | (code == 400))
    assert len(calls) == 9 + 2  # ceil(log2(301)) halvings, then the two final candidates


def test_fit_recovers_the_time_constant_of_a_noisy_madc_decay():
    rng = np.random.default_rng(1)
    t = np.arange(1.0, 45.0, 0.128)
    tau = np.repeat([4.0, 8.0, 12.0, 20.0], 50)
    base = rng.uniform(230, 270, tau.size)
    y = base + np.where(t[:, None] >= 5.0, 150.0 * np.exp(-(t[:, None] - 5.0) / tau), 0.0)
    y = np.clip(np.rint(y + rng.normal(0, 2.0, y.shape)), 0, 1023)
    err = (cal._fit_decay_tau(t, y, t < 4.9, 9.0, np.minimum(2 * tau, 35.0), 2.0) / tau - 1).reshape(4, 50)
    assert np.all(np.abs(err.mean(axis=1)) < 0.015), err.mean(axis=1)  # unbiased within the fit noise
    assert np.all(err.std(axis=1) < 0.04), err.std(axis=1)
    flat = cal._fit_decay_tau(t, np.full((t.size, 1), 300.0), t < 4.9, 9.0, np.array([10.0]), 2.0)
    assert flat[0] == 0.0  # nothing above the noise: a decay too fast to see


def test_refractory_windows_match_a_loop():
    rng = np.random.default_rng(2)
    probe = np.arange(1.0, 80.0, 2.0)
    k = 40
    spikes = SpikeRecord(np.sort(rng.uniform(0, 80, k)), rng.integers(0, 5, k).astype(np.int32),
                         rng.integers(0, 3, k).astype(np.int32))
    got = cal._in_windows(spikes, probe, 3, 5, 0.3, 25.1)
    want = np.zeros_like(got)
    for t, j, s in zip(spikes.t_us, spikes.neuron, spikes.sample):
        for i, p in enumerate(probe):
            if t + 0.3 <= p <= t + 25.1:
                want[s, i, j] = True
    np.testing.assert_array_equal(got, want)


def test_targets_beyond_what_can_be_measured_are_chip_limits():
    die = mm.draw_die(0)
    with pytest.raises(ChipLimitError, match=r"v_th_lsb targets must lie in 10..245 LSB"):
        cal.calibrate(die, dict(YINYANG_TARGETS, v_th_lsb=300.0), [0])
    with pytest.raises(ChipLimitError, match=r"tau_syn_us targets must lie in 1..200 us"):
        cal.calibrate(die, dict(YINYANG_TARGETS, tau_syn_us=0.5), [0])
    with pytest.raises(ChipLimitError, match=r"neuron circuits must lie in 0..511"):
        cal.calibrate(die, YINYANG_TARGETS, [512])
    with pytest.raises(ValueError, match="neurons has 2 entries but targets has 1"):
        cal.calibrate(die, uniform_params(1, **YINYANG_TARGETS), [0, 1])


def test_residuals_are_absolute_for_potentials_and_relative_for_time_constants():
    t = uniform_params(2, **YINYANG_TARGETS)
    p = t._replace(v_th_lsb=np.array([151.0, 147.0]), tau_mem_us=np.array([12.6, 12.0]))
    r = cal.residuals(p, t)
    assert r["v_th_lsb"] == cal.ParamResidual(-1.0, 2.0, 3.0)
    assert r["tau_mem_us"].mean == pytest.approx(0.025) and r["tau_mem_us"].max_abs == pytest.approx(0.05)


# --- whole calibrations (need the event-driven integrator) ----------------------------------------

pytest.importorskip("neurosplit.chip._lif_event")

N = 128
NEURONS = np.arange(0, 2 * N, 2)  # every other circuit


def varied_targets() -> NeuronParams:
    t = uniform_params(N, **YINYANG_TARGETS)
    return t._replace(v_th_lsb=np.linspace(130.0, 170.0, N), tau_mem_us=np.linspace(8.0, 14.0, N))


@pytest.fixture(scope="module")
def calibrated():
    cal.clear_calibration_cache()
    return cal.calibrate(mm.draw_die(3), varied_targets(), NEURONS)


def test_calibration_cuts_every_spread_to_near_the_calibrated_reference(calibrated):
    spec = mm.MismatchSpec()
    reference = {"v_leak_lsb": spec.calibrated_v_leak_lsb, "v_reset_lsb": spec.calibrated_v_reset_lsb,
                 "v_th_lsb": spec.calibrated_v_th_lsb}
    r, u = calibrated.residual, calibrated.uncalibrated
    for name in ("v_leak_lsb", "v_reset_lsb", "v_th_lsb", "tau_mem_us", "tau_syn_us"):
        assert r[name].std < u[name].std / 3, name  # calix asks for 0.2..0.45 of the uncalibrated spread
        assert calibrated.at_limit[name] == 0
    for name, ref in reference.items():  # left: mostly the CADC channel offsets the calibration cannot see
        assert 0.5 * ref < r[name].std < 1.5 * ref, (name, r[name])
        assert abs(r[name].mean) < 1.5, (name, r[name])
    for name in ("tau_mem_us", "tau_syn_us"):  # left: CapMem steps (~3 % apart near 10 us) and fit error
        assert 0.002 < r[name].std <= spec.calibrated_tau_cv, (name, r[name])
        assert abs(r[name].mean) < 0.015, (name, r[name])
    # the residual is measured against the die's truth, which the calibration never saw
    truth = mm.realised_params(mm.draw_die(3), calibrated.codes, NEURONS)
    for a, b in zip(truth, calibrated.params):
        np.testing.assert_array_equal(a, b)


def test_leak_and_reset_residuals_are_the_cadc_channel_offsets(calibrated):
    offset = mm.draw_die(3).cadc_offset_lsb[NEURONS]
    for name in ("v_leak_lsb", "v_reset_lsb"):
        err = getattr(calibrated.params, name) - getattr(calibrated.targets, name)
        # the calibration makes the reading (V + offset) hit the target, so V misses it by -offset
        assert np.corrcoef(err, -offset)[0, 1] > 0.9, name
        assert np.sqrt(np.mean((err + offset) ** 2)) < 0.8, name


def test_calibration_is_deterministic_cached_and_per_neuron(calibrated):
    assert cal.calibrate(mm.draw_die(3), varied_targets(), NEURONS) is calibrated
    cal.clear_calibration_cache()
    pick = np.array([77, 5, 100])
    alone = cal.calibrate(mm.draw_die(3), varied_targets().take(pick), NEURONS[pick])
    for f in dataclasses.fields(mm.NeuronCodes):
        np.testing.assert_array_equal(getattr(alone.codes, f.name), getattr(calibrated.codes, f.name)[pick])
    other = cal.calibrate(mm.draw_die(3), varied_targets().take(pick), NEURONS[pick], seed=99)
    assert not all(np.array_equal(getattr(other.codes, f.name), getattr(alone.codes, f.name))
                   for f in dataclasses.fields(mm.NeuronCodes))  # other measurement noise, other codes
    summary = calibrated.summary()
    assert summary["n_neurons"] == N and set(summary["residual"]) == set(NeuronParams._fields)


def test_ideal_chip_calibrates_to_within_code_and_adc_steps():
    die = mm.draw_die(0, mm.MismatchSpec.ideal())
    targets = uniform_params(8, **dict(YINYANG_TARGETS, v_leak_lsb=80.3, v_th_lsb=149.6, tau_mem_us=11.0))
    r = cal.calibrate(die, targets, np.arange(8))
    p = r.params
    # a noise-free CADC rounds to 1 LSB, a CapMem step is 0.42 LSB
    assert np.all(np.abs(p.v_leak_lsb - 80.3) <= 0.5 + 0.21)
    assert np.all(np.abs(p.v_reset_lsb - 80.0) <= 0.5 + 0.21)
    assert np.all(np.abs(p.v_th_lsb - 149.6) <= 1.5)  # the largest sample sits just below threshold
    # time constants: half a CapMem step (tau = 400 / (code + 1)) plus the fit error
    for name, target in (("tau_mem_us", 11.0), ("tau_syn_us", 6.0)):
        code = 400.0 / target - 1
        half_step = 0.5 / (code + 1)
        assert np.all(np.abs(getattr(p, name) / target - 1) <= half_step + 0.01), name
    np.testing.assert_array_equal(r.codes.v_leak_code, r.codes.v_leak_code[0])  # identical circuits
