"""Link models: emulated arrival times as the model predicts them, drops only with a reason,
results unchanged unless a queue overflows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio

from neurosplit.actors import LinkModel, SystemConfig, open_link, open_system
from neurosplit.chip import EventLaneModel
from neurosplit.host._report import spikes_sha256
from neurosplit.protocol import (Ack, RunComplete, RunRequest, SpikeBatch, TICKS_PER_US, WriteWeights, encode)

from helpers import FAST_CORE, poisson_playback

SAMPLE_TICKS = 40 * 125


def _write(n_rows: int, request_id: int = 1) -> WriteWeights:
    return WriteWeights(request_id=request_id, row=np.arange(n_rows, dtype=np.uint16),
                        column=np.arange(100, dtype=np.uint16), weight=np.zeros((n_rows, 100), np.uint8))


async def test_latency_of_a_known_message_on_an_idle_host_link_is_what_the_model_predicts():
    model = LinkModel.host_1gbe()
    link = open_link("host", buffer=8, model=model)
    msg = _write(40)  # 4 kB: several packets
    await link.a.send(msg)
    await link.b.receive()
    frame_bytes = len(encode(msg))
    packets = math.ceil(frame_bytes / 1440)
    wire_bytes = frame_bytes + 66 * packets
    # 1 GbE moves 125 MB/s, one byte per 8 ns tick; then 50 us of fixed latency
    expected = math.ceil(wire_bytes * 125e6 / 125e6) + 50 * TICKS_PER_US
    down = link.timeline.counters["down"]
    assert packets > 1
    assert down.frames == 1 and down.wire_bytes == wire_bytes
    assert list(down.latencies_ticks) == [expected]


async def test_frames_serialise_and_a_reply_leaves_after_its_request_arrived():
    model = LinkModel(bandwidth_bytes_per_s=125e6, latency_us=2.0)  # 1 byte per tick, 250 ticks latency
    link = open_link("x", buffer=8, model=model)
    first, second = _write(10, 1), _write(20, 2)
    await link.a.send(first)
    await link.a.send(second)
    b1, b2 = len(encode(first)), len(encode(second))
    assert list(link.timeline.counters["down"].latencies_ticks) == [b1 + 250, b1 + b2 + 250]  # second waits
    for _ in range(2):
        await link.b.receive()
    ack = Ack(request_id=2, what="write_weights")
    await link.b.send(ack)
    up = link.timeline.counters["up"]
    # the Ack is sent when request 2 arrived (b1 + b2 + 250) and takes its own bytes plus latency
    assert up.latency_sum_ticks == len(encode(ack)) + 250
    await link.a.receive()
    assert link.timeline.counters["up"].received_arrival_ticks == b1 + b2 + 250 + len(encode(ack)) + 250


async def test_runs_start_one_after_another_and_results_leave_after_their_samples_ran():
    model = LinkModel(bandwidth_bytes_per_s=125e6, latency_us=1.0)  # one byte per tick, 125 ticks latency
    link = open_link("host", buffer=8, model=model)
    for run_id in (0, 1):
        await link.a.send(RunRequest(run_id=run_id, n_samples=2, sample_ticks=50_000))
    r0, r1 = link.timeline.origin_ticks(0), link.timeline.origin_ticks(1)
    assert r0 == len(encode(RunRequest(run_id=0, n_samples=2, sample_ticks=50_000))) + 125  # its arrival
    assert r1 == r0 + 100_000  # the board is busy with run 0 until then
    spikes = SpikeBatch(run_id=1, t_ticks=[10, 70_000], label=[1, 2], sample=[0, 1], horizon_ticks=100_000)
    await link.b.send(spikes)
    up = link.timeline.counters["up"]
    # sent when its horizon has passed on the board (r1 + 100_000), then its bytes and the latency
    assert up.latency_sum_ticks == len(encode(spikes)) + 125
    await link.a.receive()  # (the two RunRequests are still queued towards b; this end got the spikes)
    assert up.received_arrival_ticks == r1 + 100_000 + len(encode(spikes)) + 125


async def test_a_streamed_batch_arrives_after_its_last_event_or_its_transmission():
    model = LinkModel(event_rate_per_s=125e6, latency_us=1.0, streams_in_time=True, queue_depth=4, lossy=True)
    link = open_link("chip", buffer=8, model=model)  # one event per tick
    await link.a.send(RunRequest(run_id=3, n_samples=1, sample_ticks=10_000))
    sparse = SpikeBatch(run_id=3, t_ticks=[100, 900], label=[1, 2], sample=[0, 0], horizon_ticks=1000)
    dense = SpikeBatch(run_id=3, t_ticks=np.full(500, 1000), label=np.arange(500), sample=np.zeros(500, np.uint32),
                       horizon_ticks=2000)
    await link.a.send(sparse)
    t_sparse = link.timeline.counters["down"].latencies_ticks[-1]
    await link.a.send(dense)
    t_dense = link.timeline.counters["down"].latencies_ticks[-1]
    # run time: the sparse batch leaves at tick 100 and ends with its last event (tick 901), +125 latency
    assert t_sparse == 901 + 125 - 100
    # the dense one leaves at 1000 and needs 500 ticks for its 500 events
    assert t_dense == 500 + 125


async def test_overflow_on_a_lossy_link_drops_events_with_a_reason_and_reports_them_in_run_complete():
    model = LinkModel(event_rate_per_s=125e6 / 100, streams_in_time=True, queue_depth=1, lossy=True)
    link = open_link("chip", buffer=16, model=model)  # one event per 100 ticks, one frame of queue
    await link.a.send(RunRequest(run_id=0, n_samples=1, sample_ticks=10_000))
    for k in range(3):  # three batches of 10 events each at ticks 0..9: the second and third overflow
        await link.a.send(SpikeBatch(run_id=0, t_ticks=np.arange(10) + k * 10, label=np.arange(10),
                                     sample=np.zeros(10, np.uint32), horizon_ticks=(k + 1) * 10))
    received = [await link.b.receive() for _ in range(4)]
    assert [m.n_events() for m in received[1:]] == [10, 0, 0]
    assert [m.horizon_ticks for m in received[1:]] == [10, 20, 30]  # the horizon still travels
    assert link.stats["down"].events == 10  # counters hold what was encoded
    assert link.timeline.dropped_total == {"chip_down_queue_overflow": 20}
    await link.b.send(RunComplete(run_id=0, n_samples=1, events_in=10, events_out=0))
    done = await link.a.receive()
    assert done.dropped == {"chip_down_queue_overflow": 20}


async def test_overflow_on_a_reliable_link_stalls_and_drops_nothing():
    model = LinkModel(bandwidth_bytes_per_s=125e6 / 10, queue_depth=2)  # 10 ticks per byte
    link = open_link("host", buffer=16, model=model)
    for k in range(5):
        await link.a.send(_write(5, k))
    down = link.timeline.counters["down"]
    assert down.stalls == 3 and down.stall_ticks > 0 and down.peak_queue == 2
    assert link.timeline.dropped_total == {}
    assert link.stats["down"].messages == 5


def _tight_lanes():
    lanes = EventLaneModel(n_lanes=2, window_ticks=64, events_per_window=1)
    chip = LinkModel(event_rate_per_s=125e6 / 128, streams_in_time=True, queue_depth=1, lossy=True)
    return lanes, {"host": LinkModel.host_1gbe(), "chip": chip}


async def _run(placement, config, playback, n_samples):
    async with open_system(config) as system:
        await system.host.configure(placement.neurons, placement.rows)
        await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        result = await system.host.run(*playback, n_samples=n_samples, sample_ticks=SAMPLE_TICKS)
        return result, system.traffic(), system.dropped(), system.link_models()


async def test_in_a_system_every_event_is_delivered_or_dropped_with_a_reason(small_placement):
    _, placement = small_placement
    lanes, models = _tight_lanes()
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.05, seed=4)
    config = SystemConfig(core=FAST_CORE, lanes=lanes, link_models=models, chunk_events=16)
    with trio.fail_after(120):
        result, traffic, dropped, emulated = await _run(placement, config, playback, 4)
    n_sent = playback[0].size
    assert dropped.get("chip_lane_overflow", 0) > 0 and dropped.get("chip_down_queue_overflow", 0) > 0
    assert set(dropped) <= {"chip_lane_overflow", "chip_down_queue_overflow", "chip_up_queue_overflow"}
    assert traffic["chip"]["down"]["events"] + dropped["chip_lane_overflow"] + dropped["chip_down_queue_overflow"] == n_sent
    # the host learns of every drop, with its reason, in the run's RunComplete
    assert result.complete.dropped == dropped
    assert emulated["chip"]["dropped"] == {k: v for k, v in dropped.items() if "queue" in k}


async def test_drops_do_not_depend_on_scheduling(small_placement):
    _, placement = small_placement
    lanes, models = _tight_lanes()
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.05, seed=4)
    got = []
    for buffer, window in ((0, 1), (7, 4)):
        config = SystemConfig(core=FAST_CORE, lanes=lanes, link_models=models, chunk_events=16, link_buffer=buffer,
                              window=window)
        with trio.fail_after(120):
            result, _, dropped, _ = await _run(placement, config, playback, 4)
        got.append((spikes_sha256(*result.spike_arrays()), dropped))
    assert got[0] == got[1]


@pytest.mark.parametrize("models", [{}, None])
async def test_models_without_overflow_change_no_spike(small_placement, models):
    _, placement = small_placement
    playback = poisson_playback(16, 6, SAMPLE_TICKS, 0.01, seed=3)
    ideal, *_ = await _run(placement, SystemConfig(seed=1, chip_seed=2, core=FAST_CORE, link_models={}), playback, 6)
    got, _, dropped, emulated = await _run(placement, SystemConfig(seed=1, chip_seed=2, core=FAST_CORE,
                                                                   link_models=models), playback, 6)
    assert dropped == {}
    assert spikes_sha256(*got.spike_arrays()) == spikes_sha256(*ideal.spike_arrays())
    assert set(emulated) == (set() if models == {} else {"host", "chip"})


async def test_default_models_report_emulated_latency_of_both_modelled_links(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 3, SAMPLE_TICKS, 0.01, seed=3)
    _, traffic, _, emulated = await _run(placement, SystemConfig(core=FAST_CORE), playback, 3)
    for name in ("host", "chip"):
        for d in ("down", "up"):
            c = emulated[name][d]
            assert c["frames"] == traffic[name][d]["messages"] > 0
            assert c["latency_max_ticks"] >= c["latency_p50_ticks"] >= LinkModel.host_1gbe().latency_ticks * (name == "host")
    # the host link's latency includes its 50 us; recorded spikes go up only after their samples ran
    assert emulated["host"]["up"]["latency_p50_ticks"] >= 50 * TICKS_PER_US


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="bandwidth_bytes_per_s must be > 0"):
        LinkModel(bandwidth_bytes_per_s=0)
    with pytest.raises(ValueError, match="queue_depth must be >= 1"):
        LinkModel(queue_depth=0)
    lanes = LinkModel.chip_lanes(EventLaneModel(n_lanes=4, window_ticks=8, events_per_window=8))
    assert lanes.event_rate_per_s == 4 * 125e6  # four lanes of 125 MEvent/s
