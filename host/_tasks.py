"""Classification tasks the training loops know: their data and their spike encodings.

A task is its data (``load_task``) and its input code (``encode_task``): features to input spikes
(times in hardware microseconds since the start of each sample). The timing of the code is the
learning scheme's choice (EventProp and the surrogate scheme use different time grids).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._digits import DIGITS_PIXELS, encode_latency, load_digits_split
from ._yinyang import YINYANG_SEEDS, encode_ttfs, yin_yang

__all__ = ["TASKS", "TaskData", "load_task", "encode_task", "n_sources"]

TASKS = ("yinyang", "digits")


class TaskData(NamedTuple):
    name: str
    x_train: np.ndarray  # float64[n_train, n_features] in [0, 1]
    y_train: np.ndarray  # int64[n_train]
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def load_task(name: str, *, n_train: int | None = None, n_test: int | None = None) -> TaskData:
    """The train and test sets of ``name`` (Yin-Yang: the reference generator's seeds; digits: the
    fixed stratified split), the first n_train / n_test samples of each if given."""
    if name == "yinyang":
        x_tr, y_tr = yin_yang(5000 if n_train is None else n_train, YINYANG_SEEDS["train"])
        x_te, y_te = yin_yang(1000 if n_test is None else n_test, YINYANG_SEEDS["test"])
        return TaskData(name, x_tr, y_tr, x_te, y_te, 3)
    if name == "digits":
        x_tr, y_tr, x_te, y_te = load_digits_split()
        return TaskData(name, x_tr[:n_train], y_tr[:n_train], x_te[:n_test], y_te[:n_test], 10)
    raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")


def n_sources(name: str, *, duplicates: int = 1, bias: bool = True) -> int:
    """Input sources of the task's code: Yin-Yang (4 features + bias) x duplicates; digits 64 pixels (+ bias)."""
    if name == "yinyang":
        return 5 * duplicates
    if name == "digits":
        return DIGITS_PIXELS + int(bias)
    raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")


def encode_task(name: str, x, *, t_early_us: float, t_late_us: float, t_bias_us: float | None,
                duplicates: int = 1, v_min: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input spikes of a batch, (in_t_us float64[m], in_src int32[m], in_sample int32[m]) sorted by
    (sample, t, source). Yin-Yang: every feature (and the bias) spikes (encode_ttfs; t_bias_us None
    means 0 here, the bias is part of the task); digits: encode_latency (bias only if t_bias_us given)."""
    if name == "yinyang":
        return encode_ttfs(x, t_early_us=t_early_us, t_late_us=t_late_us,
                           t_bias_us=0.0 if t_bias_us is None else t_bias_us, duplicates=duplicates)
    if name == "digits":
        return encode_latency(x, t_early_us=t_early_us, t_late_us=t_late_us, v_min=v_min, t_bias_us=t_bias_us)
    raise ValueError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
