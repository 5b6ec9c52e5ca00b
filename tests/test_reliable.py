"""Reliable delivery on the host link: every frame exactly once and in order through any fault mix;
training through a faulty host link ends bit-identical to the fault-free run; a link cut longer
than the timeout stops the run with an error that says what was confirmed last."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import trio

from neurosplit.actors import (ActorFailed, FaultSpec, LinkDownError, ReliableConfig, SystemConfig, first_actor_failure,
                               open_system, wrap_links)
from neurosplit.actors._faults import fault_wrapper
from neurosplit.actors._reliable import ReliableTransport, describe_frame, reliable_wrapper
from neurosplit.actors._transport import memory_transport_pair
from neurosplit.chip import N_NEURONS, N_ROWS
from neurosplit.host._report import weights_sha256
from neurosplit.host._training import TrainConfig, train
from neurosplit.protocol import Ack, LinkFrame, RunRequest, encode

from helpers import FAST_CORE

HEAVY = FaultSpec(drop=0.2, dup=0.1, reorder=0.1, corrupt=0.05, delay=0.05)
ISSUE_MIX = FaultSpec(drop=0.01, dup=0.01, reorder=0.01, corrupt=0.001)  # the mix the issue names


def _frames(n: int, base: int) -> list[bytes]:
    return [encode(Ack(request_id=base + i, what="x" * (i % 37))) for i in range(n)]


async def _exchange(n: int, spec: FaultSpec, buffer: int, config: ReliableConfig = ReliableConfig(), seed: int = 1):
    """n frames each way at once through faults and reliable delivery; returns what arrived, in order."""
    fault_wrap, faults = fault_wrapper("host", spec, seed=seed)
    rel_wrap, stats = reliable_wrapper(config)
    a, b = rel_wrap(*fault_wrap(*memory_transport_pair(buffer)))
    sent = {"a": _frames(n, 0), "b": _frames(n, 1 << 20)}
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    async def pump(end, key):
        while True:
            got[key].append(await end.receive_frame())

    async def send(end, key):
        for frame in sent[key]:
            await end.send_frame(frame)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, a, "a")
        nursery.start_soon(pump, b, "b")
        nursery.start_soon(send, a, "a")
        nursery.start_soon(send, b, "b")
        while not (len(got["a"]) == len(got["b"]) == n and a._next == a._base == n and b._next == b._base == n):
            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    return sent, got, faults.statistics(), stats


@pytest.mark.parametrize("buffer", [0, 3])
async def test_every_frame_arrives_once_and_in_order_through_heavy_faults(buffer, autojump_clock):
    sent, got, faults, stats = await _exchange(400, HEAVY, buffer)
    assert got["b"] == sent["a"] and got["a"] == sent["b"]
    for direction in ("down", "up"):  # the faults did happen, every kind of them
        assert all(faults[direction][k] > 0 for k in ("drop", "dup", "reorder", "delay", "corrupt")), faults
    for end in stats.values():
        assert end.retransmissions > 0 and end.duplicates_discarded > 0 and end.out_of_order > 0
        assert end.delivered == 400 and end.data_frames == 400
        assert end.peak_in_flight <= ReliableConfig().window
    # the CRC caught every corrupted frame (twice where a corrupted frame was also duplicated)
    for end, direction in (("host_side", "up"), ("board_side", "down")):
        assert faults[direction]["corrupt"] <= stats[end].corrupt_discarded <= 2 * faults[direction]["corrupt"]


async def test_hardware_sized_sequence_numbers_wrap_around_correctly(autojump_clock):
    """8-bit sequence numbers (as HostARQ) wrap many times; a window of half the space stays unambiguous."""
    config = ReliableConfig(seq_bits=8, window=64)
    sent, got, _, stats = await _exchange(500, FaultSpec(drop=0.1, dup=0.1, corrupt=0.02, reorder=0.05), 2, config)
    assert got["b"] == sent["a"] and got["a"] == sent["b"]
    assert stats["host_side"].peak_in_flight <= 64


async def _through_faults(spec: FaultSpec, seed: int, frames: list[bytes]) -> tuple[list[bytes], dict]:
    """What the down direction of a faulty host link delivers for ``frames``, and its counters."""
    wrap, faults = fault_wrapper("host", spec, seed=seed)
    a, b = wrap(*memory_transport_pair(len(frames) + 1))
    for frame in frames:
        await a.send_frame(frame)
    await a.aclose()
    out = []
    with pytest.raises(trio.EndOfChannel):
        while True:
            out.append(await b.receive_frame())
    return out, faults.statistics()


async def test_fault_decisions_repeat_with_the_seed(autojump_clock):
    frames = _frames(300, 0)
    first = await _through_faults(HEAVY, 5, frames)
    assert first == await _through_faults(HEAVY, 5, frames)
    assert first != await _through_faults(HEAVY, 6, frames)
    out, counts = first
    down = counts["down"]
    assert len(out) == 300 - down["drop"] + down["dup"]
    assert sum(f not in frames for f in out) >= down["corrupt"]  # corrupted copies differ from every original


async def test_frames_that_are_not_envelopes_are_discarded_not_delivered(autojump_clock):
    a, b = memory_transport_pair(8)
    rb = ReliableTransport(b, ReliableConfig(), "board side")
    for junk in (b"", b"\x00" * 12, encode(Ack(request_id=1, what="raw")),
                 encode(LinkFrame(seq=70000, ack=0, payload=np.zeros(3, np.uint8), sack=np.zeros(0, np.uint8)))):
        await a.send_frame(junk)
    await a.send_frame(encode(LinkFrame(seq=0, ack=0, payload=np.frombuffer(b"hello", np.uint8),
                                        sack=np.zeros(0, np.uint8))))
    with trio.fail_after(5):
        assert await rb.receive_frame() == b"hello"
    assert rb.stats.corrupt_discarded == 2 and rb.stats.invalid_discarded == 2


async def test_a_peer_cannot_make_an_end_hold_more_than_its_byte_budget(autojump_clock):
    a, b = memory_transport_pair(16)
    rb = ReliableTransport(b, ReliableConfig(max_early_bytes=100), "board side")

    def env(seq):
        return encode(LinkFrame(seq=seq, ack=0, payload=np.full(50, seq, np.uint8), sack=np.zeros(0, np.uint8)))

    for seq in (1, 2, 3, 0, 3):  # 3 finds the budget full and is dropped; the sender's retry gets through
        await a.send_frame(env(seq))
    with trio.fail_after(5):
        got = [await rb.receive_frame() for _ in range(4)]
    assert got == [bytes([k]) * 50 for k in range(4)]
    assert rb.stats.early_discarded == 1 and rb.stats.out_of_order == 2


async def test_a_cut_longer_than_the_timeout_names_the_last_confirmed_frame(autojump_clock):
    config = ReliableConfig(link_timeout_s=2.0)
    # the link dies after the third frame down and stays dead far beyond the timeout
    fault_wrap, _ = fault_wrapper("host", FaultSpec(cut_at=2, cut_s=1000.0), seed=0)
    a, b = reliable_wrapper(config)[0](*fault_wrap(*memory_transport_pair(4)))
    frames = [encode(RunRequest(run_id=i, n_samples=1, sample_ticks=10)) for i in range(6)]

    async def pump(end):
        while True:
            await end.receive_frame()

    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, b)
            nursery.start_soon(pump, a)
            for frame in frames:
                await a.send_frame(frame)
                await trio.sleep(0.1)
    (error,) = info.value.exceptions
    assert isinstance(error, LinkDownError)
    text = str(error)
    assert "host link, host side" in text and "longer than the link timeout of 2 s" in text
    assert "last confirmed: frame 1 (run_request, run 1)" in text
    assert "from frame 2 (run_request, run 2" in text


def test_describe_frame_names_type_and_ids():
    assert describe_frame(encode(Ack(request_id=7, what="x"))) == "ack, request 7"
    assert describe_frame(b"junk") == "4 bytes that do not decode"


def test_config_refuses_an_ambiguous_window():
    with pytest.raises(ValueError, match="window must lie in"):
        ReliableConfig(seq_bits=8, window=200)
    with pytest.raises(ValueError, match="ack_delay_s"):
        ReliableConfig(rto_s=0.01, ack_delay_s=0.05)


def test_host_faults_that_lose_frames_need_reliable_delivery():
    with pytest.raises(ValueError, match="need reliable delivery"):
        wrap_links({"host": FaultSpec(drop=0.1)}, reliable=False)
    assert wrap_links({"host": FaultSpec(drop=0.1)}).reliable  # turned on by itself
    assert not wrap_links({"host": FaultSpec(delay=0.5)}).reliable  # a delay loses nothing


# -- the running system --------------------------------------------------------------------
SMALL = TrainConfig(epochs=1, n_train=120, n_test=60, batch_size=40, n_hidden=30, seed=3)
SYSTEM = SystemConfig(core=FAST_CORE, chip_seed=4)


async def _train(cfg: TrainConfig, faults=None, seed: int = 7, reliable=None):
    wrapping = wrap_links(faults or {}, seed=seed, reliable=reliable)
    async with open_system(SYSTEM, wrap=wrapping.wrap) as system:
        report = await train(system.host, cfg)
        weights = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
        return report, weights_sha256(weights.weight), wrapping.statistics(), system.dropped()


@pytest.mark.parametrize("learning", ["on-chip-eventprop", "host-eventprop"])
async def test_training_through_a_faulty_host_link_is_bit_identical(learning):
    cfg = replace(SMALL, learning=learning)
    clean, clean_sha, _, _ = await _train(cfg)
    for spec, seed in ((ISSUE_MIX, 7), (HEAVY, 7), (HEAVY, 8)):
        with trio.fail_after(120):
            faulty, sha, stats, dropped = await _train(cfg, {"host": spec}, seed)
        assert sha == clean_sha
        assert faulty["train_loss"] == clean["train_loss"]
        assert faulty["train_accuracy"] == clean["train_accuracy"]
        assert faulty["test_accuracy_per_epoch"] == clean["test_accuracy_per_epoch"]
        assert dropped == {}  # the host link lost nothing for good
        if spec is HEAVY:
            injected = sum(n for d in stats["faults"]["host"].values() for k, n in d.items() if k != "frames")
            assert injected > 5 and sum(e["retransmissions"] for e in stats["reliable"]["host"].values()) > 0


async def test_a_short_cut_of_the_host_link_is_survived_bit_identically():
    clean, clean_sha, _, _ = await _train(SMALL)
    with trio.fail_after(120):
        _, sha, stats, _ = await _train(SMALL, {"host": FaultSpec(cut_at=5, cut_s=0.3)},
                                        reliable=ReliableConfig(link_timeout_s=5.0))
    assert sha == clean_sha
    assert stats["faults"]["host"]["down"]["cut"] + stats["faults"]["host"]["up"]["cut"] > 0


async def test_a_long_cut_stops_the_run_with_a_clear_error():
    with pytest.raises(BaseException) as info:
        with trio.fail_after(60):
            await _train(SMALL, {"host": FaultSpec(cut_at=5, cut_s=60.0)},
                         reliable=ReliableConfig(link_timeout_s=0.5, max_rto_s=0.1))
    failed = first_actor_failure(info.value)
    assert isinstance(failed, ActorFailed) and isinstance(failed.__cause__, LinkDownError)
    assert "no acknowledgement" in str(failed) and "last confirmed: frame" in str(failed)
