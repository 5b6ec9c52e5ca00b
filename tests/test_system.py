"""The running system end to end: determinism, flow control, accounting, faults, failures."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from neurosplit import actors
from neurosplit.actors import ActorFailed, BoardError, SystemConfig, open_system
from neurosplit.chip import EventLaneModel
from neurosplit.host._report import spikes_sha256
from neurosplit.protocol import RunRequest, SpikeBatch, encode

from helpers import FAST_CORE, poisson_playback

SAMPLE_TICKS = 40 * 125  # 40 us per sample


async def _run_once(placement, config: SystemConfig, playback, n_samples: int, **run_kw):
    async with open_system(config) as system:
        await system.host.configure(placement.neurons, placement.rows)
        await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        result = await system.host.run(*playback, n_samples=n_samples, sample_ticks=SAMPLE_TICKS, **run_kw)
        return result, system.traffic(), system.dropped(), system


@pytest.mark.parametrize("buffer", [0, 1, 4])
@pytest.mark.parametrize("chunk_events", [7, 4096])
async def test_same_seeds_give_identical_spikes_for_any_buffer_and_chunking(small_placement, buffer, chunk_events):
    _, placement = small_placement
    playback = poisson_playback(16, 6, SAMPLE_TICKS, 0.01, seed=3)
    reference_cfg = SystemConfig(seed=1, chip_seed=2, core=FAST_CORE)
    cfg = SystemConfig(seed=1, chip_seed=2, core=FAST_CORE, link_buffer=buffer, chunk_events=chunk_events)
    with trio.fail_after(120):  # a deadlock would hang here; real seconds because the core computes in a thread
        ref, *_ = await _run_once(placement, reference_cfg, playback, 6)
        got, *_ = await _run_once(placement, cfg, playback, 6)
    assert ref.complete.events_out > 50  # the network is actually active
    assert spikes_sha256(*got.spike_arrays()) == spikes_sha256(*ref.spike_arrays())


async def test_other_chip_seed_gives_other_spikes(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.01, seed=3)
    a, *_ = await _run_once(placement, SystemConfig(chip_seed=1, core=FAST_CORE), playback, 4)
    b, *_ = await _run_once(placement, SystemConfig(chip_seed=2, core=FAST_CORE), playback, 4)
    assert spikes_sha256(*a.spike_arrays()) != spikes_sha256(*b.spike_arrays())


async def test_every_input_event_is_delivered_or_dropped_with_a_reason(small_placement):
    _, placement = small_placement
    # A lane that carries 1 event per 64 ticks cannot keep up with bursts: some must drop.
    lanes = EventLaneModel(n_lanes=2, window_ticks=64, events_per_window=1)
    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.05, seed=4)
    result, traffic, dropped, _ = await _run_once(placement, SystemConfig(core=FAST_CORE, lanes=lanes), playback, 4)
    n_sent = playback[0].size
    assert dropped.get("chip_lane_overflow", 0) > 0
    assert result.complete.events_in == n_sent
    assert traffic["chip"]["down"]["events"] + sum(dropped.values()) == n_sent
    assert result.complete.dropped == dropped


async def test_traffic_counters_equal_the_frames_sent():
    link = actors.open_link("test", buffer=16)
    msgs = [RunRequest(run_id=1, n_samples=2, sample_ticks=10),
            SpikeBatch(run_id=1, t_ticks=np.arange(5), label=np.arange(5), sample=np.zeros(5, np.uint32), horizon_ticks=10)]
    for m in msgs:
        await link.a.send(m)
    raw = [await link.b.transport.receive_frame() for _ in msgs]
    stats = link.stats["down"]
    assert stats.bytes == sum(len(f) for f in raw) == sum(len(encode(m)) for m in msgs)
    assert stats.messages == 2 and stats.events == 5
    assert stats.by_tag["spike_batch"] == [1, len(raw[1]), 5]


async def test_bad_frame_on_the_host_link_is_answered_and_nothing_accepted_is_lost(small_placement):
    _, placement = small_placement
    playback = poisson_playback(16, 3, SAMPLE_TICKS, 0.01, seed=6)
    async with open_system(SystemConfig(core=FAST_CORE, link_buffer=1)) as system:
        host = system.host
        await host.configure(placement.neurons, placement.rows)
        await host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
        good = encode(RunRequest(run_id=77, n_samples=1, sample_ticks=SAMPLE_TICKS))
        for bad in (b"", b"\x00" * 3, good[:-1], good[:20] + b"\xff" + good[21:], b"\x10\x00\x00\x00" + b"x" * 12):
            await host.board.send_frame(bad)
        with trio.fail_after(60):
            while len(host.unmatched_errors) < 5:
                await trio.sleep(0.01)
        assert all(e.fault == "remote" for e in host.unmatched_errors)
        assert "frame" in host.unmatched_errors[0].message
        # configuration accepted before the bad frames still holds, and the board still serves
        result = await host.run(*playback, n_samples=3, sample_ticks=SAMPLE_TICKS)
        assert result.complete.events_in == playback[0].size
        assert system.links["host"].stats["down"].rejected_frames == 5  # counted where they were refused
        assert system.router.bad_frames == 5


async def test_spikes_for_an_unknown_run_get_an_error_naming_the_field(small_placement):
    _, placement = small_placement
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        await system.host.board.send(SpikeBatch(run_id=5, t_ticks=[1], label=[1], sample=[0], horizon_ticks=2))
        with trio.fail_after(30):
            while not system.host.unmatched_errors:
                await trio.sleep(0.01)
    assert system.host.unmatched_errors[0].run_id == 5
    assert "spike_batch.run_id" in system.host.unmatched_errors[0].message


async def test_chip_limit_is_reported_as_such(small_placement):
    _, placement = small_placement
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        with pytest.raises(BoardError, match="chip-limit"):
            await system.host.write_weights(np.array([300], np.uint16), np.array([0], np.uint16),
                                            np.zeros((1, 1), np.uint8))


async def test_a_failing_actor_stops_the_system_and_is_named(small_placement, monkeypatch):
    _, placement = small_placement
    from neurosplit.chip import AnalogCore

    def explode(self, batch):
        raise RuntimeError("capacitor on fire")

    monkeypatch.setattr(AnalogCore, "feed", explode)
    playback = poisson_playback(16, 1, SAMPLE_TICKS, 0.01, seed=1)
    with pytest.raises(BaseException) as info:
        with trio.fail_after(60):
            await _run_once(placement, SystemConfig(core=FAST_CORE), playback, 1)
    failed = actors.first_actor_failure(info.value)
    assert isinstance(failed, ActorFailed) and failed.actor == "core"
    assert "capacitor on fire" in str(failed)


async def test_membrane_samples_and_trace_come_up_quantised(small_placement):
    net, placement = small_placement
    playback = poisson_playback(16, 2, SAMPLE_TICKS, 0.01, seed=2)
    result, *_ = await _run_once(placement, SystemConfig(core=FAST_CORE), playback, 2,
                                 cadc_period_ticks=250, madc_neuron=3)
    (samples,) = result.membrane
    assert samples.adc_lsb.dtype == np.uint8
    assert samples.adc_lsb.shape == (2 * SAMPLE_TICKS // 250, net.n)
    # at rest the membrane sits near the leak potential (80 LSB +- mismatch, offsets, noise)
    assert 50 < np.median(samples.adc_lsb[0]) < 110
    assert len(result.traces) == 2 and all(t.neuron == 3 and t.adc_lsb.max() <= 1023 for t in result.traces)
