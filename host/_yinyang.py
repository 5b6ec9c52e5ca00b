"""The Yin-Yang dataset (Kriener, Göltz & Petrovici 2021) and its time-to-first-spike input code.

``yin_yang`` reproduces the reference generator (lkriener/yin_yang_data_set ``dataset.py``) draw for
draw: ``np.random.seed(seed)`` there, a private ``np.random.RandomState(seed)`` here (the same stream,
without touching global state). Labels are the reference's numbers: 0 yang, 1 yin, 2 dot
(eventprop.md §5: its class_names order does not match; keep the numbers).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["yin_yang", "yin_yang_class", "encode_ttfs", "YINYANG_SEEDS", "YINYANG_SIZES"]

YINYANG_SEEDS = {"train": 42, "validation": 41, "test": 40}
"""Reference seeds of the three splits (different seeds, or the splits overlap)."""

YINYANG_SIZES = {"train": 5000, "validation": 1000, "test": 1000}
"""Reference split sizes."""

_WORDS_PER_SAMPLE, _MIN_WORDS = 48, 4096  # raw generator words drawn ahead (a sample takes ~40 on average)


def yin_yang_class(x: float, y: float, *, r_small: float = 0.1, r_big: float = 0.5) -> int:
    """Class of a point inside the big circle: 2 in either dot, else 1 (yin) or 0 (yang)."""
    return int(_class_of(float(x), float(y), float(r_small), float(r_big)))


def yin_yang(size: int, seed: int, *, r_small: float = 0.1, r_big: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``size`` samples: x float64[size, 4] = (x, y, 1 - x, 1 - y) in [0, 2 r_big], label int64[size].

    Class-balanced by rejection: a goal class is drawn first (randint(3)), then points until one of that
    class lies inside the big circle, exactly as the reference generator. The draws are replayed in
    numba from the generator's raw 32-bit words (``RandomState.bytes``): randint(3) takes a word's low
    two bits and rejects 3, rand() takes two words, (a >> 5, b >> 6) / 2**53, as numpy's legacy
    generator does; the same numbers, ~100x faster than drawing through numpy (tested against
    ``yin_yang_reference``)."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not 0 < r_small < r_big:
        raise ValueError(f"need 0 < r_small < r_big, got r_small={r_small}, r_big={r_big}")
    rng = np.random.RandomState(seed)
    x_out = np.empty((size, 4))
    labels = np.empty(size, dtype=np.int64)
    words = np.zeros(0, np.uint32)
    i = pos = 0
    while i < size:
        # enough words for the rest at ~40 a sample; a sample that outruns the block is redone with more
        more = np.frombuffer(rng.bytes(4 * max(_MIN_WORDS, _WORDS_PER_SAMPLE * (size - i))), dtype="<u4")
        words = np.concatenate([words[pos:], more])
        i, pos = _draw_yin_yang(words, i, float(r_small), float(r_big), x_out, labels)
    return x_out, labels


@njit(cache=True)
def _draw_yin_yang(words, i, r_small, r_big, x_out, labels):
    """Samples i.. from the raw words; returns (next sample, words used) when done or when the words
    may run out within a sample (that sample is then redone from its first word with more of them)."""
    pos = 0
    size = labels.shape[0]
    n = words.shape[0]
    while i < size:
        start = pos
        while True:  # randint(3)
            if pos >= n:
                return i, start
            goal = words[pos] & 3
            pos += 1
            if goal <= 2:
                break
        while True:
            if pos + 4 > n:
                return i, start
            a, b = words[pos] >> 5, words[pos + 1] >> 6
            u = (a * 67108864.0 + b) / 9007199254740992.0
            a, b = words[pos + 2] >> 5, words[pos + 3] >> 6
            v = (a * 67108864.0 + b) / 9007199254740992.0
            pos += 4
            x, y = u * 2.0 * r_big, v * 2.0 * r_big
            if math.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            c = _class_of(x, y, r_small, r_big)
            if c == goal:
                break
        x_out[i, 0], x_out[i, 1], x_out[i, 2], x_out[i, 3] = x, y, 1.0 - x, 1.0 - y
        labels[i] = c
        i += 1
    return i, pos


@njit(cache=True)
def _class_of(x, y, r_small, r_big):
    """The reference's class rule (its criteria, in its order)."""
    d_right = math.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
    d_left = math.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
    c1 = d_right <= r_small
    c2 = r_small < d_left <= 0.5 * r_big
    c3 = y > r_big and d_right > 0.5 * r_big
    if d_right < r_small or d_left < r_small:
        return 2
    return 1 if (c1 or c2 or c3) else 0


def encode_ttfs(x, *, t_early_us: float, t_late_us: float, t_bias_us: float | None,
                duplicates: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-spike latency code: feature value v in [0, 1] spikes at t_early_us + v (t_late_us - t_early_us).

    x: float64[size, n_features], values in [0, 1]. A bias source spiking at t_bias_us is appended as the
    last feature unless t_bias_us is None. Every feature is repeated ``duplicates`` times as separate
    sources (BSS-2 used 5 x 5 = 25 rows): source = feature * duplicates + copy. Returns (in_t_us float64[m],
    in_src int32[m], in_sample int32[m]) sorted by (sample, t, source), m = size * n_sources; the number of
    sources is (n_features + bias) * duplicates."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-d [size, n_features], got shape {x.shape}")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("x must lie in [0, 1]")
    if duplicates < 1:
        raise ValueError(f"duplicates must be >= 1, got {duplicates}")
    if not 0.0 <= t_early_us <= t_late_us:
        raise ValueError(f"need 0 <= t_early_us <= t_late_us, got {t_early_us}, {t_late_us}")
    if t_bias_us is not None and not t_bias_us >= 0.0:
        raise ValueError(f"t_bias_us must be >= 0, got {t_bias_us}")
    size = x.shape[0]
    t = t_early_us + x * (t_late_us - t_early_us)
    if t_bias_us is not None:
        t = np.concatenate([t, np.full((size, 1), float(t_bias_us))], axis=1)
    t = np.repeat(t, duplicates, axis=1)  # [size, n_sources], source = feature * duplicates + copy
    size, n_src = t.shape
    # Each sample's sources sorted by time on their own (a stable sort keeps equal times in source
    # order): the same order as a lexsort of all events by (sample, t, source), without sorting
    # across samples.
    src = np.argsort(t, axis=1, kind="stable").astype(np.int32)
    t = np.take_along_axis(t, src, axis=1)
    sample = np.repeat(np.arange(size, dtype=np.int32), n_src)
    return t.ravel(), src.ravel(), sample
