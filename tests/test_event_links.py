"""Event-lane admission (chip/_event_links.py) against its numpy twin, bit for bit, over runs cut
into batches: the kept events and each lane's remembered window and fill after every batch."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.chip import EventLaneModel, LaneState, admit_events
from reference import event_links_naive as ref


@pytest.mark.parametrize("seed", range(10))
def test_admit_events_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    model = EventLaneModel(n_lanes=int(rng.integers(1, 6)), window_ticks=int(rng.integers(1, 12)),
                           events_per_window=int(rng.integers(1, 10)))
    n = int(rng.integers(0, 3000))
    # bursts: many events on few ticks, so that windows overflow; and quiet stretches
    t = np.sort(np.concatenate([rng.integers(0, 400, n // 2), rng.integers(0, 20_000, n - n // 2)])).astype(np.int64)
    label = rng.integers(0, 40, n).astype(np.uint16)
    fast, slow = LaneState.empty(model.n_lanes), LaneState.empty(model.n_lanes)
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, n + 1, int(rng.integers(0, 8)))), n])
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        keep = admit_events(t[lo:hi], label[lo:hi], model, fast)
        np.testing.assert_array_equal(keep, ref.admit_events(t[lo:hi], label[lo:hi], model, slow))
        np.testing.assert_array_equal(fast.window, slow.window)
        np.testing.assert_array_equal(fast.used, slow.used)
    assert admit_events(t[:0], label[:0], model, fast).shape == (0,)


def test_admit_events_refuses_ticks_out_of_order_and_keeps_its_state():
    model, state = EventLaneModel(), LaneState.empty(4)
    admit_events(np.array([0, 1, 1], np.int64), np.array([0, 0, 0], np.uint16), model, state)
    before = (state.window.copy(), state.used.copy())
    with pytest.raises(ValueError, match="t_ticks must be non-decreasing, got 3 after 5 at index 2"):
        admit_events(np.array([4, 5, 3], np.int64), np.array([0, 1, 2], np.uint16), model, state)
    np.testing.assert_array_equal(state.window, before[0])
    np.testing.assert_array_equal(state.used, before[1])
