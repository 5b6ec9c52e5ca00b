"""Hostile input at the actors: random, truncated, oversized, deeply nested and type-confused frames
are answered with the protocol's Error and the board goes on serving; no request makes the board
allocate beyond its limits. The decoder itself is fuzzed in test_protocol_malformed.py; the long
runs here carry the ``fuzz`` marker (budget: NEUROSPLIT_FUZZ_EXAMPLES, default small)."""

from __future__ import annotations

import os
import struct
import tracemalloc

import msgpack
import numpy as np
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from strategies import frame_around, rebuild, reference_body
from neurosplit.actors import BoardError, SystemConfig, open_system
from neurosplit.protocol import (Error, LearnResult, LinkFrame, Message, MembraneSamples, ReadWeights, RemoteProtocolError,
                                 RunComplete, RunRequest, SpikeBatch, TrainStep, WriteWeights, decode, encode)

from helpers import FAST_CORE, poisson_playback

SAMPLE_TICKS = 40 * 125
FUZZ_EXAMPLES = int(os.environ.get("NEUROSPLIT_FUZZ_EXAMPLES", "150"))
"""Inputs per fuzz test: small by default (CI); set NEUROSPLIT_FUZZ_EXAMPLES=100000 for a long run."""


def bad_frames(seed: int = 0) -> list[bytes]:
    """One of each kind of hostile frame: random, truncated, oversized, deeply nested, type-confused."""
    rng = np.random.default_rng(seed)
    good = encode(RunRequest(run_id=77, n_samples=1, sample_ticks=SAMPLE_TICKS))
    nested = reference_body({"v": 1, "t": "shutdown", "f": {"reason": "NEST"}, "a": []}, [])
    return [
        rng.integers(0, 256, 40, dtype=np.uint8).tobytes(),  # random bytes
        frame_around(rng.integers(0, 256, 300, dtype=np.uint8).tobytes()),  # random body, valid CRC
        good[:-3],  # truncated
        good[:5],  # truncated inside the frame header
        struct.pack("<II", 0xFFFFFFF0, 0) + b"\0" * 16,  # claims a 4 GiB body
        frame_around(nested.replace(b"\xa4NEST", b"\x91" * 50_000 + b"\xc0")),  # nested 50 000 deep
        rebuild(good, lambda h: h["f"].update(run_id="77")),  # type-confused field
        rebuild(good, lambda h: h.update(t="run_reqest")),  # unknown message type
        rebuild(good, lambda h: h["a"].append(["x", "<i8", [2**39]])),  # arrays that are not there
    ]


def confused_messages() -> list[Message]:
    """Valid messages that the host may not send to the board."""
    return [RunComplete(run_id=1, n_samples=1, events_in=0, events_out=0),
            LearnResult(run_id=1, loss=0.0, n_correct=0, n_samples=0, spike_count=np.zeros(0, np.uint32)),
            MembraneSamples(run_id=1, t_ticks=[0], neuron=[0], adc_lsb=[[0]]),
            LinkFrame(seq=0, ack=0, payload=np.zeros(4, np.uint8), sack=np.zeros(0, np.uint8))]


async def _wait_for_errors(host, n: int) -> None:
    with trio.fail_after(60):
        while len(host.unmatched_errors) < n:
            await trio.sleep(0.01)


async def _setup(system, placement):
    await system.host.configure(placement.neurons, placement.rows)
    await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)


async def _still_serves(system, seed: int = 6):
    playback = poisson_playback(16, 2, SAMPLE_TICKS, 0.01, seed=seed)
    result = await system.host.run(*playback, n_samples=2, sample_ticks=SAMPLE_TICKS)
    assert result.complete.events_in == playback[0].size and result.complete.events_out > 0


async def test_the_router_answers_every_hostile_frame_and_goes_on(small_placement):
    _, placement = small_placement
    frames = bad_frames()
    confused = confused_messages()
    async with open_system(SystemConfig(core=FAST_CORE, link_buffer=1)) as system:
        await _setup(system, placement)
        for frame in frames:
            await system.host.board.send_frame(frame)
        for msg in confused:
            await system.host.board.send(msg)
        await _wait_for_errors(system.host, len(frames) + len(confused))
        errors = system.host.unmatched_errors
        assert all(e.fault == "remote" for e in errors)
        assert [e.in_reply_to for e in errors] == ["frame"] * len(frames) + [m.TAG for m in confused]
        assert system.router.bad_frames == len(frames)
        assert system.links["host"].stats["down"].rejected_frames == len(frames)
        assert any("exceeds the maximum" in e.message for e in errors)
        assert any("nest" in e.message.lower() or "stack" in e.message.lower() or "header" in e.message for e in errors)
        await _still_serves(system)


async def test_the_core_and_the_ppu_answer_hostile_frames_too(small_placement):
    """Frames that reach the core and the PPU from a misbehaving router: answered, passed up as errors."""
    _, placement = small_placement
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        await _setup(system, placement)
        sent = 0
        for link, confused in (("chip", TrainStep(run_id=1, label=[0])),
                               ("ppu", WriteWeights(request_id=1, row=[0], column=[0], weight=[[1]]))):
            for frame in bad_frames(seed=len(link)):
                await system.links[link].a.send_frame(frame)
                sent += 1
            await system.links[link].a.send(confused)
            sent += 1
        await _wait_for_errors(system.host, sent)
        assert system.core.bad_frames == system.ppu.bad_frames == len(bad_frames())
        assert {e.in_reply_to for e in system.host.unmatched_errors} == {"frame", "train_step", "write_weights"}
        await _still_serves(system)


@pytest.mark.parametrize("request_factory", [
    lambda: RunRequest(run_id=5, n_samples=10**9, sample_ticks=SAMPLE_TICKS),  # trial noise for 1e9 samples
    lambda: RunRequest(run_id=5, n_samples=1, sample_ticks=2**39, cadc_period_ticks=250),  # 2e9 CADC samples
    lambda: RunRequest(run_id=5, n_samples=2**30, sample_ticks=2**30),  # beyond the longest run
    lambda: ReadWeights(request_id=5, row=np.zeros(60_000, np.uint16), column=np.zeros(60_000, np.uint16)),
], ids=["many-samples", "cadc-flood", "too-long", "read-amplification"])
async def test_small_requests_cannot_make_the_board_allocate_much(small_placement, request_factory):
    _, placement = small_placement
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        await _setup(system, placement)
        tracemalloc.start()
        try:
            await system.host.board.send(request_factory())
            await _wait_for_errors(system.host, 1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        (error,) = system.host.unmatched_errors
        assert error.fault == "chip-limit" and ("beyond" in error.message or "larger than" in error.message)
        assert peak < 32 << 20, f"refusing the request allocated {peak} bytes"
        await _still_serves(system)


async def test_a_refused_run_fails_its_caller_with_a_board_error(small_placement):
    _, placement = small_placement
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        await _setup(system, placement)
        with pytest.raises(BoardError, match="chip-limit"):
            await system.host.run(np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint32),
                                  n_samples=10**9, sample_ticks=SAMPLE_TICKS)
        await _still_serves(system)


@pytest.mark.parametrize("depth", [900, 1000, 1023, 1100])
@pytest.mark.parametrize("where", ["t", "v", "dtype", "shape", "field"])
def test_values_nested_about_as_deep_as_python_recurses_are_refused(depth, where):
    """Found by benchmarks/fuzz_decoder.py: a value nested ~1000 deep (msgpack unpacks up to 1024)
    made the error text itself fail (repr hits Python's recursion limit)."""
    good = encode(SpikeBatch(run_id=1, t_ticks=[1], label=[1], sample=[0], horizon_ticks=2))
    marker = "NEST-HERE"
    edit = {"t": lambda h: h.update(t=marker), "v": lambda h: h.update(v=marker),
            "dtype": lambda h: h["a"][0].__setitem__(1, marker), "shape": lambda h: h["a"][0].__setitem__(2, marker),
            "field": lambda h: h["f"].update(run_id=marker)}[where]
    body = rebuild(good, edit)[8:]
    body = body.replace(msgpack.packb(marker), b"\x91" * depth + b"\xc0")  # [[[...[nil]...]]], depth deep
    with pytest.raises(RemoteProtocolError):
        decode(frame_around(body))


# -- longer fuzzing ---------------------------------------------------------------------------
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_mutation = strategies.byte_mutations(("flip", "set", "insert", "delete", "truncate"))
_mutate = strategies.mutate


class _Tally:
    tried = 0
    refused = 0
    decoded = 0
    crashes: list = []


@pytest.mark.fuzz
@FUZZ
@given(msg=strategies.messages(max_n=6), mutations=st.lists(_mutation, min_size=1, max_size=6),
       recompute_crc=st.booleans())
def test_fuzz_the_decoder_longer(msg, mutations, recompute_crc):
    """Mutated frames (CRC recomputed or not): a valid message or RemoteProtocolError, never anything else."""
    frame = encode(msg)
    body = _mutate(bytearray(frame[8:]), mutations)
    data = frame_around(body) if recompute_crc else frame[:8] + body
    _Tally.tried += 1
    try:
        decoded = decode(data)
    except RemoteProtocolError:
        _Tally.refused += 1
        return
    except Exception as exc:  # a crash: record it with the input that caused it, then fail
        _Tally.crashes.append((data, exc))
        raise
    _Tally.decoded += 1
    assert decode(encode(decoded)) == decoded


@pytest.mark.fuzz
def test_fuzz_report():
    """Inputs tried and crashes found by the longer fuzz run (shown with -s or -rA)."""
    print(f"\ndecoder fuzz: {_Tally.tried} inputs tried, {_Tally.refused} refused, {_Tally.decoded} decoded, "
          f"{len(_Tally.crashes)} crashes")
    assert not _Tally.crashes


@pytest.mark.fuzz
async def test_fuzz_the_running_board(small_placement):
    """Mutated frames sent to a live board: each one that does not decode is answered; it still serves."""
    _, placement = small_placement
    rng = np.random.default_rng(12)
    seeds = [encode(m) for m in confused_messages()] + bad_frames() + [
        encode(SpikeBatch(run_id=1, t_ticks=[1, 2], label=[1, 2], sample=[0, 0], horizon_ticks=3)),
        encode(TrainStep(run_id=3, label=[1, 2])), encode(Error(fault="remote", message="x"))]
    n = max(FUZZ_EXAMPLES // 3, 20)
    async with open_system(SystemConfig(core=FAST_CORE)) as system:
        await _setup(system, placement)
        sent = 0
        for _ in range(n):
            base = bytearray(seeds[rng.integers(len(seeds))])
            ops = [(str(rng.choice(["flip", "set", "insert", "delete", "truncate"])), int(rng.integers(1 << 20)),
                    int(rng.integers(256))) for _ in range(int(rng.integers(1, 4)))]
            frame = _mutate(base[8:], ops)
            frame = frame_around(frame) if rng.random() < 0.7 else bytes(base[:8]) + frame
            try:
                decode(frame)
                continue  # a valid message: it may well be obeyed (a Shutdown would end the board)
            except RemoteProtocolError:
                pass
            await system.host.board.send_frame(frame)
            sent += 1
        await _wait_for_errors(system.host, sent)
        assert system.router.bad_frames == sent
        await _still_serves(system)
