"""Boards in their own processes: socket links, the board server and the host's connection to it.

Servers run inside the test's nursery on an ephemeral port, or as a subprocess (`neurosplit chip
serve --listen 127.0.0.1:0`) when the test needs a board in another process (death, stall, CLI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import asynccontextmanager

import numpy as np
import pytest
import trio

from neurosplit import actors
from neurosplit.actors import BoardError, BoardLost, BoardServer, connect_board, open_system, session_config
from neurosplit.chip import N_NEURONS, N_ROWS
from neurosplit.host._report import spikes_sha256, weights_sha256
from neurosplit.host.cli import main
from neurosplit.protocol import Error, FrameReader, Hello, RunRequest, decode, encode

from helpers import poisson_playback

SAMPLE_TICKS = 40 * 125
SESSION = {"seed": 1, "calibrate": 0}
SERVE = [sys.executable, "-c", "import sys; from neurosplit.host.cli import main; sys.exit(main())",
         "chip", "serve", "--listen", "127.0.0.1:0", "--log-level", "warning"]


@asynccontextmanager
async def board_here(chip_seed: int = 2, **kw):
    """A board server in this test's nursery; yields (server, "127.0.0.1:PORT")."""
    server = BoardServer(chip_seed, **kw)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, "127.0.0.1", 0)
        yield server, "127.0.0.1:%d" % listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def board_process(chip_seed: int = 2):
    """`neurosplit chip serve` in a subprocess; yields (process, "127.0.0.1:PORT")."""
    proc = await trio.lowlevel.open_process(SERVE + ["--chip-seed", str(chip_seed)], stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL)
    try:
        address = await _read_address(proc.stdout)
        yield proc, address
    finally:
        with trio.CancelScope(shield=True):
            proc.kill()
            os.kill(proc.pid, signal.SIGCONT) if proc.poll() is None else None
            await proc.wait()


async def _read_address(stdout) -> str:
    text = b""
    with trio.fail_after(60):
        while b"\n" not in text:
            chunk = await stdout.receive_some(4096)
            assert chunk, f"chip serve exited: {text!r}"
            text += chunk
    line = text.decode().splitlines()[0]
    assert line.startswith("serving chip"), line
    return line.split(" on ")[1].split()[0]


async def _job(system, placement, n_samples=4, runs=1):
    """Configure, write weights, play ``runs`` runs; spikes hash of the last and the weights."""
    await system.host.configure(placement.neurons, placement.rows)
    await system.host.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
    for seed in range(runs):
        playback = poisson_playback(16, n_samples, SAMPLE_TICKS, 0.01, seed=3 + seed)
        result = await system.host.run(*playback, n_samples=n_samples, sample_ticks=SAMPLE_TICKS)
    weights = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
    return spikes_sha256(*result.spike_arrays()), weights_sha256(weights.weight), result


def _counts(traffic: dict) -> dict:
    """What both ends of a link count alike (wall times and queue depths are local)."""
    return {d: {k: s[k] for k in ("messages", "bytes", "events", "by_type")} for d, s in traffic.items()}


async def _raw_exchange(address: str, frame: bytes) -> list:
    """Send one frame on a fresh connection; every message that comes back until the board closes."""
    host, port = actors.parse_address(address)
    stream = await trio.open_tcp_stream(host, port)
    reader, out = FrameReader(), []
    async with stream:
        await stream.send_all(frame)
        with trio.fail_after(30):
            while data := await stream.receive_some(65536):
                reader.feed(data)
                out += [decode(f) for f in reader.frames()]
    return out


# -- same bits ----------------------------------------------------------------------------------

async def test_a_run_over_a_socket_equals_the_run_in_one_process(small_placement):
    _, placement = small_placement
    config = session_config(2, SESSION)
    with trio.fail_after(60):
        async with open_system(config) as system:
            ref_spikes, ref_weights, ref = await _job(system, placement, runs=2)
            ref_traffic = system.traffic()["host"]
        async with board_here(2) as (server, address):
            async with connect_board(address, config, timeout_s=30) as remote:
                spikes, weights, got = await _job(remote, placement, runs=2)
                traffic = remote.traffic()["host"]
                assert remote.chip_seed == 2 and remote.dropped() == {}
    assert ref.complete.events_out > 20
    assert (spikes, weights) == (ref_spikes, ref_weights)
    # the host link counts the same frames and bytes over the socket as in one process
    assert _counts(traffic) == _counts(ref_traffic)
    assert server.sessions[-1].outcome == "done"
    assert _counts(server.sessions[-1].traffic["host"])["up"] == _counts(ref_traffic)["up"]


@pytest.fixture(scope="module")
def served_chip():
    """One `chip serve` subprocess (chip seed 5) for the command-line tests of this module."""
    proc = subprocess.Popen(SERVE + ["--chip-seed", "5"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving chip 5 on"), line
        yield line.split(" on ")[1].split()[0]
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("argv", [
    ["run", "--samples", "3", "--seed", "2"],
    ["train", "yinyang", "--learning", "on-chip-eventprop", "--epochs", "1", "--n-train", "80", "--n-test", "40",
     "--hidden", "16", "--seed", "3"],
    ["train", "yinyang", "--learning", "host-eventprop", "--epochs", "1", "--n-train", "80", "--n-test", "40",
     "--hidden", "16", "--seed", "3", "--ideal-chip"],
], ids=["run", "train-on-chip", "train-host-ideal"])
def test_commands_give_the_same_bits_on_a_board_in_another_process(served_chip, tmp_path, argv):
    here, there = tmp_path / "here.json", tmp_path / "there.json"
    assert main(argv + ["--no-calibrate", "--chip-seed", "5", "--report", str(here)]) == 0
    assert main(argv + ["--no-calibrate", "--board", served_chip, "--report", str(there)]) == 0
    a, b = json.loads(here.read_text()), json.loads(there.read_text())
    assert b["board"] == served_chip and b["chip_seed"] == a["chip_seed"] == 5
    for key in ("weights_sha256", "spikes_sha256", "test_accuracy", "train_loss", "train_accuracy", "dropped"):
        assert a.get(key) == b.get(key), key
    assert _counts(b["traffic"]["host"]) == _counts(a["traffic"]["host"])


def test_a_chip_seed_that_is_not_the_boards_is_one_clear_line(served_chip, capsys):
    assert main(["run", "--samples", "1", "--no-calibrate", "--chip-seed", "6", "--board", served_chip]) == 2
    err = capsys.readouterr().err
    assert "--chip-seed 6 does not match the board" in err and "chip 5" in err and "Traceback" not in err


# -- one host at a time, and a clean board for the next -----------------------------------------

async def test_a_second_host_is_refused_and_the_first_goes_on(small_placement):
    _, placement = small_placement
    config = session_config(2, SESSION)
    with trio.fail_after(60):
        async with board_here(2) as (server, address):
            async with connect_board(address, config, timeout_s=30) as first:
                with pytest.raises(BaseException) as info:
                    async with connect_board(address, config, timeout_s=30):
                        pass
                refusal = _leaf(info.value)
                assert isinstance(refusal, BoardError)
                assert "board busy" in str(refusal) and "one host at a time" in str(refusal)
                # on the wire: an Error, then the board closes the connection
                replies = await _raw_exchange(address, encode(Hello(protocol_version=1, role="host")))
                assert [type(m) for m in replies] == [Error] and "board busy" in replies[0].message
                spikes, _, result = await _job(first, placement)
            assert result.complete.events_in > 0
    assert [s.outcome.split(":")[0] for s in server.sessions] == ["refused", "refused", "done"]


async def test_a_host_that_disconnects_mid_run_leaves_a_fresh_board_for_the_next(small_placement):
    _, placement = small_placement
    config = session_config(2, SESSION)
    with trio.fail_after(60):
        async with open_system(config) as system:
            ref = await _job(system, placement)
        async with board_here(2) as (server, address):
            with trio.CancelScope() as scope:  # the host goes away while a run is on the board
                async with connect_board(address, config, timeout_s=30) as first:
                    await first.host.configure(placement.neurons, placement.rows)
                    await first.host.write_weights(placement.weight_rows, placement.weight_columns,
                                                   placement.weight_block)
                    playback = poisson_playback(16, 40, SAMPLE_TICKS, 0.02, seed=9)
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(lambda: first.host.run(*playback, n_samples=40, sample_ticks=SAMPLE_TICKS))
                        await trio.sleep(0.05)
                        scope.cancel()
            while len(server.sessions) < 1:
                await trio.sleep(0.01)
            async with connect_board(address, config, timeout_s=30) as second:
                blank = await second.host.read_weights(np.arange(N_ROWS, dtype=np.uint16),
                                                       np.arange(N_NEURONS, dtype=np.uint16))
                assert not blank.weight.any()  # nothing of the first host's session is left
                got = await _job(second, placement)
    assert got[:2] == ref[:2]
    assert [s.outcome for s in server.sessions] == ["disconnected", "done"]


# -- refusals at the handshake ------------------------------------------------------------------

async def test_another_protocol_version_is_refused_with_an_error_then_close(monkeypatch):
    from neurosplit.protocol import _codec

    monkeypatch.setattr(_codec, "PROTOCOL_VERSION", 2)
    future_hello = encode(Hello(protocol_version=2, role="host"))
    monkeypatch.undo()
    with trio.fail_after(30):
        async with board_here(2) as (server, address):
            replies = await _raw_exchange(address, future_hello)
            assert [type(m) for m in replies] == [Error]
            assert replies[0].message == "frame.v: protocol version 2 is not spoken here (we speak 1)"
            # a version-1 frame whose Hello claims another version, and a peer that is not a host
            replies = await _raw_exchange(address, encode(Hello(protocol_version=2, role="host")))
            assert replies[0].message == "hello.protocol_version: 2 is not spoken here (we speak 1)"
            replies = await _raw_exchange(address, encode(Hello(protocol_version=1, role="board")))
            assert replies[0].message == "hello.role: a board serves role 'host', got 'board'"
            replies = await _raw_exchange(address, encode(RunRequest(run_id=0, n_samples=1, sample_ticks=10)))
            assert replies[0].message == "run_request: a host must open with hello"
            replies = await _raw_exchange(address, encode(Hello(protocol_version=1, role="host", session={"sed": 1})))
            assert replies[0].message.startswith("hello.session: session keys ['sed'] are unknown")
            assert all(r.fault == "remote" and r.in_reply_to == "hello" for r in replies)
            # and the board still serves a proper host afterwards
            async with connect_board(address, session_config(2, SESSION)) as remote:
                assert remote.chip_seed == 2
    assert [s.outcome.split(":")[0] for s in server.sessions] == ["refused"] * 5 + ["done"]


async def test_no_board_at_the_address_is_a_clear_error():
    with trio.fail_after(30):
        async with board_here(2) as (_, address):
            pass  # the port is free again
        with pytest.raises(BoardLost, match=f"no board at {address}"):
            async with connect_board(address, session_config(2, SESSION)):
                pass


# -- a board that dies or stalls ----------------------------------------------------------------

async def test_a_board_that_dies_mid_session_names_the_last_confirmed_step(small_placement):
    _, placement = small_placement
    with trio.fail_after(90):
        async with board_process(2) as (proc, address):
            with pytest.raises(BoardLost) as info:
                async with connect_board(address, session_config(2, SESSION), timeout_s=30) as remote:
                    await _job(remote, placement)  # run 0 completes, then the weights are read
                    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.01, seed=4)
                    proc.kill()
                    await remote.host.run(*playback, n_samples=4, sample_ticks=SAMPLE_TICKS)
    message = str(info.value)
    assert f"the board at {address} closed the connection" in message
    assert message.endswith("last confirmed step: weights of request 2")


async def test_a_board_that_stalls_mid_run_times_out_naming_the_last_confirmed_step(small_placement):
    _, placement = small_placement
    with trio.fail_after(90):
        async with board_process(2) as (proc, address):
            with pytest.raises(BoardLost) as info:
                async with connect_board(address, session_config(2, SESSION), timeout_s=30) as remote:
                    await remote.host.configure(placement.neurons, placement.rows)
                    await remote.host.write_weights(placement.weight_rows, placement.weight_columns,
                                                    placement.weight_block)
                    playback = poisson_playback(16, 4, SAMPLE_TICKS, 0.01, seed=4)
                    await remote.host.run(*playback, n_samples=4, sample_ticks=SAMPLE_TICKS)  # loads the kernels
                    remote.timeout_s = 1.0
                    os.kill(proc.pid, signal.SIGSTOP)  # alive, connected, silent
                    await remote.host.run(*playback, n_samples=4, sample_ticks=SAMPLE_TICKS)
    message = str(info.value)
    assert "sent nothing for" in message and "(timeout 1 s)" in message
    assert message.endswith("last confirmed step: run 0 complete")


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def test_a_board_whose_actor_fails_tells_the_host_and_serves_the_next(small_placement, monkeypatch):
    _, placement = small_placement
    from neurosplit.chip import AnalogCore

    def explode(self, batch):
        raise RuntimeError("capacitor on fire")

    config = session_config(2, SESSION)
    with trio.fail_after(60):
        async with board_here(2) as (server, address):
            monkeypatch.setattr(AnalogCore, "feed", explode)
            with pytest.raises(BaseException) as info:
                async with connect_board(address, config, timeout_s=30) as remote:
                    await _job(remote, placement)
            error = _leaf(info.value)
            assert isinstance(error, BoardError)
            assert "board failed: actor 'core' failed: RuntimeError: capacitor on fire" in str(error)
            monkeypatch.undo()
            async with connect_board(address, config, timeout_s=30) as remote:
                _, _, result = await _job(remote, placement)
            assert result.complete.events_in > 0
    assert [s.outcome.split(":")[0] for s in server.sessions] == ["failed", "done"]
