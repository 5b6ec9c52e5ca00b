"""Yin-Yang generator against a transcription of the reference and its label rule; TTFS encoding."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.host._yinyang import YINYANG_SEEDS, YINYANG_SIZES, encode_ttfs, yin_yang


def reference_yin_yang(size, seed, r_small=0.1, r_big=0.5):
    """lkriener/yin_yang_data_set dataset.py, transcribed (global np.random -> a RandomState, same stream)."""
    rs = np.random.RandomState(seed)

    def which_class(x, y):
        d_right = np.sqrt((x - 1.5 * r_big) ** 2 + (y - r_big) ** 2)
        d_left = np.sqrt((x - 0.5 * r_big) ** 2 + (y - r_big) ** 2)
        criterion1 = d_right <= r_small
        criterion2 = d_left > r_small and d_left <= 0.5 * r_big
        criterion3 = y > r_big and d_right > 0.5 * r_big
        is_yin = criterion1 or criterion2 or criterion3
        is_circles = d_right < r_small or d_left < r_small
        if is_circles:
            return 2
        return int(is_yin)

    vals, cs = [], []
    for _ in range(size):
        goal_class = rs.randint(3)
        while True:
            x, y = rs.rand(2) * 2.0 * r_big
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) > r_big:
                continue
            c = which_class(x, y)
            if c == goal_class:
                break
        vals.append(np.array([x, y, 1.0 - x, 1.0 - y]))
        cs.append(c)
    return np.array(vals), np.array(cs)


@pytest.mark.parametrize("seed", [YINYANG_SEEDS["test"], 7])
def test_generator_reproduces_the_reference(seed):
    x, label = yin_yang(300, seed)
    rx, rl = reference_yin_yang(300, seed)
    assert np.array_equal(x, rx) and np.array_equal(label, rl)
    assert x.dtype == np.float64 and label.dtype == np.int64 and x.shape == (300, 4)


def test_generator_reproduces_the_reference_on_a_full_split_other_radii_and_short_word_blocks(monkeypatch):
    """The compiled generator replays the raw words: the whole training split, other radii, and blocks
    of words so short that samples outrun them and are redone give the reference's numbers."""
    import neurosplit.host._yinyang as yy
    x, label = yin_yang(5000, YINYANG_SEEDS["train"])
    rx, rl = reference_yin_yang(5000, YINYANG_SEEDS["train"])
    assert np.array_equal(x, rx) and np.array_equal(label, rl)
    x, label = yin_yang(200, 3, r_small=0.2, r_big=0.6)
    rx, rl = reference_yin_yang(200, 3, r_small=0.2, r_big=0.6)
    assert np.array_equal(x, rx) and np.array_equal(label, rl)
    monkeypatch.setattr(yy, "_WORDS_PER_SAMPLE", 1)
    monkeypatch.setattr(yy, "_MIN_WORDS", 6)
    x, label = yin_yang(100, 11)
    rx, rl = reference_yin_yang(100, 11)
    assert np.array_equal(x, rx) and np.array_equal(label, rl)
    assert yin_yang(0, 1)[0].shape == (0, 4)


def test_first_samples_are_pinned():
    """Regression pin of the first training samples (seed 42), so a change of generator cannot pass silently."""
    x, label = yin_yang(3, YINYANG_SEEDS["train"])
    expect = [[0.6803075385877797, 0.450499251969543], [0.09767211400638387, 0.6842330265121569],
              [0.7553614103176525, 0.4251558744912447]]
    np.testing.assert_array_equal(x[:, :2], expect)
    np.testing.assert_array_equal(label, [2, 1, 2])


def test_label_rule_mirror_features_and_balance():
    x, label = yin_yang(YINYANG_SIZES["train"], YINYANG_SEEDS["train"])
    px, py = x[:, 0], x[:, 1]
    np.testing.assert_array_equal(x[:, 2], 1.0 - px)
    np.testing.assert_array_equal(x[:, 3], 1.0 - py)
    assert np.all(np.hypot(px - 0.5, py - 0.5) <= 0.5)
    d_right = np.hypot(px - 0.75, py - 0.5)
    d_left = np.hypot(px - 0.25, py - 0.5)
    dot = (d_right < 0.1) | (d_left < 0.1)
    yin = (d_right <= 0.1) | ((d_left > 0.1) & (d_left <= 0.25)) | ((py > 0.5) & (d_right > 0.25))
    np.testing.assert_array_equal(label, np.where(dot, 2, yin.astype(int)))
    counts = np.bincount(label, minlength=3)
    n = label.size
    sigma = np.sqrt(n * (1 / 3) * (2 / 3))
    assert np.all(np.abs(counts - n / 3) < 4 * sigma), counts


def test_splits_do_not_overlap():
    train, _ = yin_yang(1000, YINYANG_SEEDS["train"])
    test, _ = yin_yang(1000, YINYANG_SEEDS["test"])
    val, _ = yin_yang(1000, YINYANG_SEEDS["validation"])
    seen = {tuple(r) for r in train[:, :2]}
    assert not any(tuple(r) in seen for r in test[:, :2]) and not any(tuple(r) in seen for r in val[:, :2])


def test_encode_ttfs_times_sources_bias_and_order():
    x = np.array([[0.0, 0.5, 1.0, 0.25], [1.0, 0.2, 0.0, 0.8]])
    t, src, smp = encode_ttfs(x, t_early_us=2.0, t_late_us=12.0, t_bias_us=1.0, duplicates=3)
    n_src = (4 + 1) * 3
    assert t.shape == src.shape == smp.shape == (2 * n_src,)
    assert src.dtype == np.int32 and smp.dtype == np.int32 and t.dtype == np.float64
    for s in range(2):
        sel = smp == s
        assert sorted(src[sel]) == list(range(n_src))
        by_src = dict(zip(src[sel], t[sel]))
        for f in range(5):
            expect = 1.0 if f == 4 else 2.0 + x[s, f] * 10.0
            for copy in range(3):
                assert by_src[f * 3 + copy] == pytest.approx(expect, abs=1e-14)
    key = np.lexsort((src, t, smp))
    assert np.array_equal(key, np.arange(t.size))  # already sorted by (sample, t, source)


def test_encode_ttfs_without_bias_and_argument_checks():
    x = np.array([[0.1, 0.9]])
    t, src, smp = encode_ttfs(x, t_early_us=0.0, t_late_us=10.0, t_bias_us=None)
    np.testing.assert_allclose(t, [1.0, 9.0])
    np.testing.assert_array_equal(src, [0, 1])
    with pytest.raises(ValueError, match="x must lie in"):
        encode_ttfs(np.array([[1.5]]), t_early_us=0.0, t_late_us=1.0, t_bias_us=None)
    with pytest.raises(ValueError, match="duplicates must be >= 1"):
        encode_ttfs(x, t_early_us=0.0, t_late_us=1.0, t_bias_us=None, duplicates=0)
    with pytest.raises(ValueError, match="t_early_us <= t_late_us"):
        encode_ttfs(x, t_early_us=2.0, t_late_us=1.0, t_bias_us=None)


@pytest.mark.parametrize("duplicates, t_bias_us", [(1, None), (5, 0.0), (3, 4.0)])
def test_encode_ttfs_and_encode_batch_match_one_global_sort(duplicates, t_bias_us):
    """Each sample sorted on its own gives the bits of one lexsort over all events, equal times
    (copies, the bias, repeated values) included; encode_batch also when spikes pass a sample's end."""
    from types import SimpleNamespace

    from neurosplit.host._training import encode_batch
    from reference import encoding_naive as ref

    rng = np.random.default_rng(duplicates)
    x = rng.choice(np.array([0.0, 0.25, 0.5, 1.0, 0.3]), (200, 4)) if duplicates == 3 else rng.random((200, 4))
    kw = dict(t_early_us=2.0, t_late_us=12.0, t_bias_us=t_bias_us, duplicates=duplicates)
    for a, b in zip(encode_ttfs(x, **kw), ref.encode_ttfs(x, **kw)):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    labels = np.arange(100, 100 + 5 * duplicates, dtype=np.int64)
    for sample_ticks in (1875, 1000):  # 1000 ticks = 8 us: spikes pass the sample's end (TrainConfig forbids it)
        c = SimpleNamespace(sample_ticks=sample_ticks, **kw)
        for a, b in zip(encode_batch(x, c, labels), ref.encode_batch(x, c, labels)):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    empty = np.zeros((0, 4))
    for a, b in zip(encode_ttfs(empty, **kw), ref.encode_ttfs(empty, **kw)):
        assert a.dtype == b.dtype and a.shape == b.shape
