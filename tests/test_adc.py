"""CADC and MADC models: quantisation, clipping, noise statistics, sampling grids, chip limits."""

import numpy as np
import pytest

from neurosplit.chip import _adc as adc
from neurosplit.protocol import ChipLimitError


def test_cadc_without_noise_rounds_adds_offset_and_clips():
    v = np.array([[-5.0, 0.4, 80.0, 80.5, 81.5, 254.6, 300.0]])
    got = adc.cadc_read(v, 0.0, np.random.default_rng(0), noise_lsb=0.0)
    assert got.dtype == np.uint8
    # half to even at .5, saturation at both ends
    np.testing.assert_array_equal(got, [[0, 0, 80, 80, 82, 255, 255]])
    offset = np.array([1.0, 2.0, -3.0, 0.0, 0.0, 0.0, -100.0])
    got = adc.cadc_read(v, offset, np.random.default_rng(0), noise_lsb=0.0)
    np.testing.assert_array_equal(got, [[0, 2, 77, 80, 82, 255, 200]])


def test_cadc_noise_statistics():
    n = 200_000
    v = np.full((n, 2), [100.3, 37.0])
    codes = adc.cadc_read(v, np.array([1.5, -2.0]), np.random.default_rng(1), noise_lsb=2.0).astype(float)
    # Gaussian noise of 2 LSB dithers the rounding: mean unbiased, variance 4 + 1/12 (quantisation)
    se_mean = np.sqrt(4 + 1 / 12) / np.sqrt(n)
    np.testing.assert_allclose(codes.mean(axis=0), [101.8, 35.0], atol=5 * se_mean)
    np.testing.assert_allclose(codes.std(axis=0), np.sqrt(4 + 1 / 12), rtol=0.02)


def test_cadc_is_deterministic_given_the_rng():
    v = np.linspace(0, 255, 64)
    a = adc.cadc_read(v, 0.0, np.random.default_rng(7))
    b = adc.cadc_read(v, 0.0, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_cadc_argument_errors():
    with pytest.raises(ValueError, match="noise_lsb must be >= 0, got -1.0"):
        adc.cadc_read(np.zeros(3), 0.0, np.random.default_rng(0), noise_lsb=-1.0)
    with pytest.raises(ValueError, match="offset_lsb"):
        adc.cadc_read(np.zeros((2, 3)), np.zeros(4), np.random.default_rng(0))


def test_cadc_sample_grid_and_minimum_period():
    t = adc.cadc_sample_ticks(1000)
    np.testing.assert_array_equal(t, [0, 250, 500, 750])
    assert adc.CADC_PERIOD_TICKS == 250 and adc.CADC_MIN_PERIOD_TICKS == 213  # 2 us, 1.7 us rounded up
    np.testing.assert_array_equal(adc.cadc_sample_ticks(500, period_ticks=213, t_start_ticks=10), [10, 223, 436])
    with pytest.raises(ChipLimitError, match="must be >= 213"):
        adc.cadc_sample_ticks(1000, period_ticks=212)


def test_madc_gain_offset_clipping_and_inverse():
    v = np.array([0.0, 10.0, 100.0, 340.0, 400.0])
    got = adc.madc_read(v, np.random.default_rng(0), noise_codes=0.0)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, [0, 30, 300, 1020, 1023])
    got = adc.madc_read(v, np.random.default_rng(0), gain_codes_per_lsb=2.9, offset_codes=12.0, noise_codes=0.0)
    np.testing.assert_array_equal(got, np.clip(np.rint(v * 2.9 + 12.0), 0, 1023))
    back = adc.madc_to_lsb(got[:3], gain_codes_per_lsb=2.9, offset_codes=12.0)
    np.testing.assert_allclose(back, v[:3], atol=0.5 / 2.9)


def test_madc_noise_statistics():
    n = 100_000
    codes = adc.madc_read(np.full(n, 50.2), np.random.default_rng(3), noise_codes=2.0).astype(float)
    np.testing.assert_allclose(codes.mean(), 150.6, atol=5 * 2.03 / np.sqrt(n))
    np.testing.assert_allclose(codes.std(), np.sqrt(4 + 1 / 12), rtol=0.02)


def test_madc_grid_rate_and_limits():
    t = adc.madc_sample_ticks(100, 120)
    np.testing.assert_array_equal(t, [100, 104, 108, 112, 116])
    assert 1e3 / (adc.MADC_PERIOD_TICKS * 8) == pytest.approx(31.25)  # MS/s, nearest tick-aligned to ~30
    with pytest.raises(ChipLimitError, match="madc period_ticks must be >= 4"):
        adc.madc_sample_ticks(0, 100, period_ticks=3)
    np.testing.assert_array_equal(adc.check_madc_neurons([3, 400]), [3, 400])
    with pytest.raises(ChipLimitError, match=r"at most 2 neurons per run, got 3 \(1 too many\)"):
        adc.check_madc_neurons([1, 2, 3])
