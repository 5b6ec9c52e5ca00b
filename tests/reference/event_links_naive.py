"""The event lanes' admission as plain numpy (what chip/_event_links.py's numba pass replaces); tests only."""

from __future__ import annotations

import numpy as np


def admit_events(t_ticks: np.ndarray, label: np.ndarray, model, state) -> np.ndarray:
    """Which events of a tick-ordered batch the lanes carry: bool[n]. Updates ``state`` in place.

    t_ticks int64[n] non-decreasing, at or after every tick of earlier batches; label uint16[n].
    """
    n = t_ticks.shape[0]
    if n == 0:
        return np.ones(0, dtype=bool)
    lane = (label.astype(np.int64) % model.n_lanes)
    window = t_ticks // model.window_ticks
    # Rank of each event within its (lane, window) group, in arrival order (stable sort).
    key = lane * (window.max() + 2) + window
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    group_size = np.diff(np.r_[starts, n])
    rank_sorted = np.arange(n) - np.repeat(starts, group_size)
    rank = np.empty(n, np.int64)
    rank[order] = rank_sorted
    # Events in the window a lane was already filling in an earlier batch start after its fill.
    carried = np.where(window == state.window[lane], state.used[lane], 0)
    keep = rank + carried < model.events_per_window
    # Remember each lane's last window and how full it is (a loop over lanes, not events).
    for ln in range(model.n_lanes):
        in_lane = lane == ln
        if not in_lane.any():
            continue
        w_last = window[in_lane].max()
        fill = int(np.count_nonzero(in_lane & (window == w_last)))
        if w_last == state.window[ln]:
            fill += int(state.used[ln])
        state.window[ln], state.used[ln] = w_last, min(fill, model.events_per_window)
    return keep
