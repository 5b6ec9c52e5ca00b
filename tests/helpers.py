"""Small builders shared by the system tests."""

from __future__ import annotations

import numpy as np

from neurosplit.chip import CoreConfig
from neurosplit.chip._mismatch import MismatchSpec


def poisson_playback(n_inputs: int, n_samples: int, sample_ticks: int, rate_per_tick: float, seed: int):
    """Input events (t_ticks, label, sample) of independent Poisson trains, in tick order."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_per_tick * n_samples * sample_ticks)
    t = np.sort(rng.integers(0, n_samples * sample_ticks, n))
    label = rng.integers(0, n_inputs, n).astype(np.uint16)
    return t, label, (t // sample_ticks).astype(np.uint32)


FAST_CORE = CoreConfig(mismatch=MismatchSpec(), calibrate=False)
