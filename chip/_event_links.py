"""Capacity of the FPGA-to-chip event lanes: events beyond it are dropped and counted.

Each event travels on lane ``label % n_lanes``. A lane carries at most ``events_per_window`` events
in each window of ``window_ticks`` FPGA ticks (default 8 events per 8 ticks: one event per 8 ns,
the 125 MEvent/s a synapse driver accepts, bss2_facts.md §1); the rest of that window's events
are dropped. The per-lane rate of the real FPGA-chip links is unconfirmed (bss2_facts.md §11).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True)
def _admit(t_ticks, label, n_lanes, window_ticks, per_window, state_window, state_used, keep):
    """One pass in arrival order: each lane counts the events of its current window (starting from
    the fill it had if that is the window it was filling before this batch). Returns the index of
    the first event whose tick goes backwards (-1 if none); the state is updated only when none."""
    cur_w = state_window.copy()
    count = state_used.copy()
    for i in range(t_ticks.shape[0]):
        if i and t_ticks[i] < t_ticks[i - 1]:
            return i
        ln = np.int64(label[i]) % n_lanes
        w = t_ticks[i] // window_ticks
        if w != cur_w[ln]:
            cur_w[ln] = w
            count[ln] = state_used[ln] if w == state_window[ln] else 0
        keep[i] = count[ln] < per_window
        count[ln] += 1
    for ln in range(n_lanes):
        state_window[ln] = cur_w[ln]
        state_used[ln] = min(count[ln], per_window)
    return -1


def admit_events(t_ticks: np.ndarray, label: np.ndarray, model: EventLaneModel, state: LaneState) -> np.ndarray:
    """Which events of a tick-ordered batch the lanes carry: bool[n]. Updates ``state`` in place.

    t_ticks int64[n] non-decreasing, at or after every tick of earlier batches; label uint16[n].
    (A numba pass, ~2 ns an event; the numpy twin with a stable sort by (lane, window) is
    tests/reference/event_links_naive.py.)
    """
    keep = np.empty(t_ticks.shape[0], dtype=bool)
    if keep.size == 0:
        return keep
    bad = _admit(np.ascontiguousarray(t_ticks, np.int64), np.ascontiguousarray(label, np.uint16),
                 int(model.n_lanes), int(model.window_ticks), int(model.events_per_window),
                 state.window, state.used, keep)
    if bad >= 0:
        raise ValueError(f"t_ticks must be non-decreasing, got {t_ticks[bad]} after {t_ticks[bad - 1]} at index {bad}")
    return keep
