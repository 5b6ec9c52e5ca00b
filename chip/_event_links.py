"""Capacity of the FPGA-to-chip event lanes: events beyond it are dropped and counted.

Each event travels on lane ``label % n_lanes``. A lane carries at most ``events_per_window`` events
in each window of ``window_ticks`` FPGA ticks (default 8 events per 8 ticks: one event per 8 ns,
the 125 MEvent/s a synapse driver accepts, bss2_facts.md §1); the rest of that window's events
are dropped. The per-lane rate of the real FPGA-chip links is unconfirmed (bss2_facts.md §11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EventLaneModel", "LaneState", "admit_events"]


@dataclass(frozen=True)
class EventLaneModel:
    """Lane count and per-lane capacity. events_per_window / window_ticks is events per tick."""

    n_lanes: int = 4
    window_ticks: int = 8
    events_per_window: int = 8

    def __post_init__(self) -> None:
        for name in ("n_lanes", "window_ticks", "events_per_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class LaneState:
    """What a lane remembers between batches of one run: its current window and its fill."""

    window: np.ndarray  # int64[n_lanes], index of the last window seen, -1 before any
    used: np.ndarray  # int64[n_lanes], events admitted in that window

    @classmethod
    def empty(cls, n_lanes: int) -> "LaneState":
        return cls(np.full(n_lanes, -1, np.int64), np.zeros(n_lanes, np.int64))


def admit_events(t_ticks: np.ndarray, label: np.ndarray, model: EventLaneModel, state: LaneState) -> np.ndarray:
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
