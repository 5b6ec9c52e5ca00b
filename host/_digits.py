"""The 8x8 handwritten digits of scikit-learn as spike latencies: a small stand-in for Cramer et al.'s MNIST.

``load_digits`` (1797 images of 8x8 pixels, intensities 0..16, ten classes; scikit-learn's copy of
the UCI optical digits test set) is split once into train and test with a fixed seed, stratified
by class, by our own seeded permutation (so the split never depends on the scikit-learn version).
scikit-learn is an optional extra: ``pip install neurosplit[digits]``.

Encoding (Cramer et al. 2022's latency code, linear instead of logarithmic): pixel value v = x / 16
spikes once at t_early_us + (1 - v) (t_late_us - t_early_us), bright pixels first; pixels with
v <= v_min do not spike. Each pixel is one input source (64 sources), plus an optional bias source.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["DIGITS_SPLIT_SEED", "DIGITS_TEST_FRACTION", "DIGITS_PIXELS", "load_digits_split", "encode_latency"]

DIGITS_SPLIT_SEED = 20220415
"""Seed of the train/test split (fixed, independent of the training seed, so every run tests on the same images)."""

DIGITS_TEST_FRACTION = 0.2
"""Fraction of each class held out for testing (1438 train / 359 test images)."""

DIGITS_PIXELS = 64


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # an optional extra: say how to get it
        raise ImportError("the digits task needs scikit-learn: pip install 'neurosplit[digits]'") from exc
    d = load_digits()
    x = np.asarray(d.data, np.float64) / 16.0
    x.flags.writeable = False
    y = np.asarray(d.target, np.int64)
    y.flags.writeable = False
    return x, y


def load_digits_split(*, seed: int = DIGITS_SPLIT_SEED, test_fraction: float = DIGITS_TEST_FRACTION
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train float64[n, 64] in [0, 1], y_train int64[n], x_test, y_test).

    Stratified: round(test_fraction * class size) images of each class go to the test set, picked by
    ``np.random.default_rng(seed)`` (one permutation per class, classes in order); both sets keep the
    original image order."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    x, y = _digits()
    rng = np.random.default_rng(seed)
    test = np.zeros(y.size, bool)
    for c in range(10):
        idx = np.flatnonzero(y == c)
        test[rng.permutation(idx)[:int(round(test_fraction * idx.size))]] = True
    return x[~test].copy(), y[~test].copy(), x[test].copy(), y[test].copy()


def encode_latency(x, *, t_early_us: float, t_late_us: float, v_min: float = 0.0,
                   t_bias_us: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Latency code of a batch: x float64[size, n_features] in [0, 1] -> (in_t_us float64[m],
    in_src int32[m], in_sample int32[m]) sorted by (sample, t, source).

    Feature f of a sample spikes once at t_early_us + (1 - v) (t_late_us - t_early_us) if v > v_min.
    A bias source (index n_features) spiking at t_bias_us is added to every sample unless t_bias_us is None."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-d [size, n_features], got shape {x.shape}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("x must lie in [0, 1]")
    if not 0.0 <= t_early_us <= t_late_us:
        raise ValueError(f"need 0 <= t_early_us <= t_late_us, got {t_early_us}, {t_late_us}")
    if not 0.0 <= v_min < 1.0:
        raise ValueError(f"v_min must lie in [0, 1), got {v_min}")
    if t_bias_us is not None and not t_bias_us >= 0.0:
        raise ValueError(f"t_bias_us must be >= 0, got {t_bias_us}")
    size, n_f = x.shape
    t = t_early_us + (1.0 - x) * (t_late_us - t_early_us)
    on = x > v_min
    if t_bias_us is not None:
        t = np.concatenate([t, np.full((size, 1), float(t_bias_us))], axis=1)
        on = np.concatenate([on, np.ones((size, 1), bool)], axis=1)
    sample, src = np.nonzero(on)
    tt = t[sample, src]
    order = np.lexsort((src, tt, sample))
    return (np.ascontiguousarray(tt[order]), src[order].astype(np.int32), sample[order].astype(np.int32))
