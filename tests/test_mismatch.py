"""Die draws: reproducibility, statistics against the spec, CapMem transfers, trial noise."""

import dataclasses

import numpy as np
import pytest

from neurosplit.chip import _mismatch as mm
from neurosplit.chip._params import GENERIC_TARGETS, N_NEURONS, N_ROWS, YINYANG_TARGETS, uniform_params

ARRAYS = ("t_ref_offset_us", "synapse_gain", "cadc_offset_lsb")
TRANSFERS = ("v_leak", "v_reset", "v_th", "tau_mem", "tau_syn")


def die_arrays(die):
    out = {name: getattr(die, name) for name in ARRAYS}
    for t in TRANSFERS:
        out[f"{t}.gain_dev"], out[f"{t}.offset"] = getattr(die, t).gain_dev, getattr(die, t).offset
    out["madc"] = np.array([die.madc_gain_codes_per_lsb, die.madc_offset_codes])
    return out


def test_same_seed_same_die_bit_for_bit_and_other_seeds_differ():
    mm.draw_die.cache_clear()
    a = die_arrays(mm.draw_die(42))
    mm.draw_die.cache_clear()  # a fresh draw, not the cached object
    b = die_arrays(mm.draw_die(42))
    c = die_arrays(mm.draw_die(43))
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name
        assert not np.array_equal(a[name], c[name]), name


def test_die_is_frozen_and_covers_the_whole_chip():
    die = mm.draw_die(1)
    assert die.synapse_gain.shape == (N_ROWS, N_NEURONS)
    assert die.v_th.offset.shape == die.cadc_offset_lsb.shape == (N_NEURONS,)
    with pytest.raises(ValueError):
        die.synapse_gain[0, 0] = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        die.chip_seed = 3


@pytest.mark.parametrize("seed", [0, 9])
def test_fixed_pattern_statistics_match_the_spec(seed):
    spec = mm.MismatchSpec()
    die = mm.draw_die(seed, spec)
    n = N_NEURONS

    def check(x, mean, sd, n):  # sample mean and sd within 5 standard errors
        assert abs(x.mean() - mean) < 5 * sd / np.sqrt(n), (x.mean(), mean)
        assert abs(x.std() / sd - 1) < 5 / np.sqrt(2 * n), (x.std(), sd)

    for t in TRANSFERS:
        off_sd = getattr(spec, mm._OFFSET_FIELD[t])
        check(getattr(die, t).offset, 0.0, off_sd, n)
        check(1.0 + getattr(die, t).gain_dev, 1.0, getattr(spec, f"{t}_gain_cv"), n)
    check(die.t_ref_offset_us, 0.0, spec.t_ref_offset_us, n)
    check(die.cadc_offset_lsb, 0.0, spec.cadc_offset_lsb, n)
    check(die.synapse_gain.ravel(), 1.0, spec.synapse_gain_cv, die.synapse_gain.size)
    assert die.synapse_gain.min() > 0 and (1 + die.tau_syn.gain_dev).min() > 0  # log-normal gains stay positive


def test_uncalibrated_spread_is_several_times_the_calibrated_reference():
    spec = mm.MismatchSpec()
    die = mm.draw_die(5, spec)
    for targets in (YINYANG_TARGETS, GENERIC_TARGETS):
        t = uniform_params(N_NEURONS, **targets)
        p = mm.realised_params(die, mm.nominal_codes(t))
        assert p.v_leak_lsb.std() > 3 * spec.calibrated_v_leak_lsb
        assert p.v_reset_lsb.std() > 3 * spec.calibrated_v_reset_lsb
        assert p.v_th_lsb.std() > 3 * spec.calibrated_v_th_lsb
        for tau in ("tau_mem_us", "tau_syn_us"):
            assert (getattr(p, tau) / getattr(t, tau)).std() > 3 * spec.calibrated_tau_cv


def test_drawing_does_not_depend_on_the_neurons_used():
    die = mm.draw_die(3)
    t = uniform_params(N_NEURONS, **YINYANG_TARGETS)
    full = mm.realised_params(die, mm.nominal_codes(t))
    some = np.array([511, 0, 200, 17])
    part = mm.realised_params(die, mm.nominal_codes(t.take(some)), some)
    for a, b in zip(part, full):
        np.testing.assert_array_equal(a, b[some])


def test_ideal_die_realises_the_nominal_transfers():
    die = mm.draw_die(8, mm.MismatchSpec.ideal())
    codes = mm.NeuronCodes(*(np.array([0, 214, 1023, 382]),) * 5, np.array([0, 250, 255, 7]), np.array([0, 0, 15, 3]))
    p = mm.realised_params(die, codes, np.arange(4))
    np.testing.assert_allclose(p.v_leak_lsb, 20.0 + (codes.v_leak_code - 70.0) * 200.0 / 480.0, rtol=1e-15, atol=1e-12)
    np.testing.assert_allclose(p.tau_mem_us, 400.0 / (codes.tau_mem_code + 1.0), rtol=1e-15)
    np.testing.assert_allclose(p.t_ref_us, codes.t_ref_counter * 2.0 ** (codes.t_ref_clock + 1) / 250.0)
    assert np.all(die.synapse_gain == 1.0) and np.all(die.cadc_offset_lsb == 0.0)


def test_offsets_and_gains_enter_the_transfer_as_documented():
    spec = mm.MismatchSpec.ideal()
    die = mm.draw_die(2, dataclasses.replace(spec, v_th_offset_lsb=5.0, tau_syn_gain_cv=0.2))
    codes = mm.nominal_codes(uniform_params(N_NEURONS, **GENERIC_TARGETS))
    p = mm.realised_params(die, codes)
    nominal = mm.realised_params(mm.draw_die(2, spec), codes)
    np.testing.assert_allclose(p.v_th_lsb - nominal.v_th_lsb, die.v_th.offset, atol=1e-12)
    np.testing.assert_allclose(nominal.tau_syn_us / p.tau_syn_us, 1 + die.tau_syn.gain_dev, rtol=1e-12)
    np.testing.assert_array_equal(p.v_leak_lsb, nominal.v_leak_lsb)


def test_scaled_spec_scales_one_fixed_pattern():
    spec = mm.MismatchSpec()
    a, b = mm.draw_die(4, spec), mm.draw_die(4, spec.scaled(2.0))
    np.testing.assert_allclose(b.v_leak.offset, 2 * a.v_leak.offset, rtol=1e-14)
    np.testing.assert_allclose(b.cadc_offset_lsb, 2 * a.cadc_offset_lsb, rtol=1e-14)
    assert b.spec.cadc_noise_lsb == spec.cadc_noise_lsb  # trial noise is not fixed pattern


def test_transfer_inverses_round_trip_every_code():
    codes = np.arange(mm.CAPMEM_MAX + 1)
    np.testing.assert_array_equal(mm.potential_code(mm.nominal_potential_lsb(codes)), codes)
    np.testing.assert_array_equal(mm.tau_code(mm.nominal_tau_us(codes)), codes)
    counter, clock = mm.refractory_codes([0.0, 2.0, 1.0, 30.0])
    np.testing.assert_array_equal(counter, [0, 250, 125, 234])
    np.testing.assert_array_equal(clock, [0, 0, 0, 4])
    # always the finest clock that fits: error at most half a step of that clock
    t = np.linspace(0.01, 1000, 997)
    counter, clock = mm.refractory_codes(t)
    step = 2.0 ** (clock + 1) / 250.0
    assert np.all(np.abs(mm.refractory_period_us(counter, clock) - t) <= 0.5 * step + 1e-12)
    assert np.all((clock == 0) | (t / (step / 2) > 255.5))


def test_threshold_jitter_is_per_run_and_per_sample():
    spec = mm.MismatchSpec(threshold_jitter_lsb=1.5)
    a = mm.threshold_jitter(1, 7, 400, np.arange(N_NEURONS), spec)
    assert a.shape == (400, N_NEURONS) and a.dtype == np.float64 and a.flags.c_contiguous
    assert abs(a.std() / spec.threshold_jitter_lsb - 1) < 5 / np.sqrt(2 * a.size)
    # a circuit's value does not depend on which others are asked for, nor on their order
    np.testing.assert_array_equal(mm.threshold_jitter(1, 7, 400, [5, 3], spec), a[:, [5, 3]])
    np.testing.assert_array_equal(mm.threshold_jitter(1, 7, 400, 511, spec), a[:, [511]])
    # nor on how the run's samples are split into calls
    parts = [mm.threshold_jitter(1, 7, hi - lo, np.arange(N_NEURONS), spec, first_sample=lo)
             for lo, hi in ((0, 1), (1, 150), (150, 151), (151, 400))]
    np.testing.assert_array_equal(np.concatenate(parts), a)
    np.testing.assert_array_equal(mm.threshold_jitter(1, 7, 400, np.arange(N_NEURONS), spec), a)  # repeatable
    for other in (mm.threshold_jitter(1, 8, 400, np.arange(N_NEURONS), spec),
                  mm.threshold_jitter(2, 7, 400, np.arange(N_NEURONS), spec)):
        assert not np.any(other == a)
        assert abs(np.corrcoef(other.ravel(), a.ravel())[0, 1]) < 5 / np.sqrt(a.size)
    assert mm.threshold_jitter(1, 7, 0, [1, 2], spec).shape == (0, 2)
    assert mm.threshold_jitter(1, 7, 3, [], spec).shape == (3, 0)
    assert np.all(np.isfinite(mm.threshold_jitter(2**64 - 1, 2**64 - 1, 2, [0], spec)))  # the largest keys
    np.testing.assert_array_equal(mm.threshold_jitter(1, 7, 4, [3], mm.MismatchSpec.ideal()), np.zeros((4, 1)))
    for kwargs, match in (({"seed": -1}, "seed must be an integer in \\[0, 2\\*\\*64\\), got -1"),
                          ({"run_id": 2**64}, "run_id must be an integer"), ({"n_samples": -1}, "n_samples must be >= 0"),
                          ({"first_sample": -2}, "first_sample must be >= 0"), ({"neurons": [512]}, "neurons must lie in 0..511")):
        args = {"seed": 1, "run_id": 7, "n_samples": 2, "neurons": [0], "spec": spec, **kwargs}
        with pytest.raises(ValueError, match=match):
            mm.threshold_jitter(**args)


def test_threshold_jitter_is_standard_normal():
    """1.2e5 values over many samples and circuits: mean, std, higher moments, KS, the tails beyond
    the ziggurat's base layer (r = 3.654) and the wedges (pairs of neighbouring values independent)."""
    from scipy import stats

    z = mm.threshold_jitter(3, 11, 240, np.arange(N_NEURONS), mm.MismatchSpec(threshold_jitter_lsb=1.0)).ravel()
    n = z.size
    assert abs(z.mean()) < 4.5 / np.sqrt(n)
    assert abs(z.std() - 1) < 4.5 / np.sqrt(2 * n)
    assert abs(stats.skew(z)) < 4.5 * np.sqrt(6 / n) and abs(stats.kurtosis(z)) < 4.5 * np.sqrt(24 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # beyond the base layer: P(|z| > r) = 2.6e-4, ~32 of 1.2e5; the tail's shape by KS on exact draws
    r = 3.6541528853610088
    expected = n * 2 * stats.norm.sf(r)
    assert abs(np.count_nonzero(np.abs(z) > r) - expected) < 5 * np.sqrt(expected)
    tail = mm.threshold_jitter(5, 1, 4000, np.arange(N_NEURONS), mm.MismatchSpec(threshold_jitter_lsb=1.0)).ravel()
    tail = np.abs(tail[np.abs(tail) > r])
    assert stats.kstest(tail, lambda x: 1 - stats.norm.sf(x) / stats.norm.sf(r)).pvalue > 1e-3
    # neighbouring circuits and samples are uncorrelated
    grid = z.reshape(240, N_NEURONS)
    for a, b in ((grid[:, 1:], grid[:, :-1]), (grid[1:], grid[:-1])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 4.5 / np.sqrt(a.size)


def test_spec_and_codes_validation():
    with pytest.raises(ValueError, match="MismatchSpec.v_th_offset_lsb must be a finite number >= 0, got -1"):
        mm.MismatchSpec(v_th_offset_lsb=-1.0)
    with pytest.raises(ValueError, match="chip_seed must be an int >= 0"):
        mm.draw_die(-1)
    with pytest.raises(ValueError, match=r"NeuronCodes.v_th_code\[0\] must lie in 0..1023, got 1024"):
        mm.NeuronCodes(*(np.array([0]),) * 2, np.array([1024]), *(np.array([0]),) * 4)
    with pytest.raises(ValueError, match="neurons has 2 entries but codes has 1"):
        mm.realised_params(mm.draw_die(0), mm.NeuronCodes(*(np.array([0]),) * 7), [0, 1])
