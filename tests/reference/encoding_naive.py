"""Time-to-first-spike encoding with one lexsort of all events (what host/_yinyang.encode_ttfs and
host/_training.encode_batch did before sorting each sample on its own); tests only."""

from __future__ import annotations

import numpy as np


def encode_ttfs(x, *, t_early_us, t_late_us, t_bias_us, duplicates=1):
    x = np.asarray(x, dtype=np.float64)
    size = x.shape[0]
    t = t_early_us + x * (t_late_us - t_early_us)
    if t_bias_us is not None:
        t = np.concatenate([t, np.full((size, 1), float(t_bias_us))], axis=1)
    t = np.repeat(t, duplicates, axis=1)
    src = np.broadcast_to(np.arange(t.shape[1], dtype=np.int32), t.shape)
    sample = np.broadcast_to(np.arange(size, dtype=np.int32)[:, None], t.shape)
    order = np.lexsort((src.ravel(), t.ravel(), sample.ravel()))
    return t.ravel()[order], src.ravel()[order], sample.ravel()[order]


def encode_batch(x, cfg, input_label):
    t_us, src, sample = encode_ttfs(x, t_early_us=cfg.t_early_us, t_late_us=cfg.t_late_us,
                                    t_bias_us=cfg.t_bias_us, duplicates=cfg.duplicates)
    ticks = sample.astype(np.int64) * cfg.sample_ticks + np.floor(t_us * 125).astype(np.int64)
    order = np.argsort(ticks, kind="stable")
    return ticks[order], input_label[src[order]].astype(np.uint16), sample[order].astype(np.uint32)
