"""The test kit: frame recording (format, stamps, no effect on results), fixtures and the pytest plugin."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest

from neurosplit import actors
from neurosplit.actors import testing as kit
from neurosplit.chip import N_NEURONS, N_ROWS
from neurosplit.host._report import weights_sha256
from neurosplit.host._training import TrainConfig, train
from neurosplit.protocol import Ack, Hello, RunComplete, SpikeBatch, WriteWeights, decode, encode

SMALL = TrainConfig(epochs=1, n_train=40, n_test=20, batch_size=20, n_hidden=20, seed=3)
FILE_HEADER, RECORD_HEADER = 16, 24  # bytes, as docs/testing.md states the format


def _frames() -> list[tuple[str, str, bytes, int, str, bool]]:
    """A few frames of several types with stamps of every kind."""
    hello = encode(Hello(protocol_version=1, role="host", software="t", session={"seed": 1}))
    spikes = encode(SpikeBatch(run_id=3, t_ticks=[5, 9], label=[1, 2], sample=[0, 0], horizon_ticks=40))
    done = encode(RunComplete(run_id=3, n_samples=1, events_in=2, events_out=0, dropped={"x": 1}))
    w = encode(WriteWeights(request_id=1, row=[0, 1], column=[2], weight=np.array([[3], [63]], np.uint8)))
    ack = encode(Ack(request_id=1, what="write_weights"))
    return [("host", "down", hello, 812, "link", False), ("chip", "down", spikes, 40, "message", False),
            ("chip", "up", spikes, 1234, "link", True), ("ppu", "up", done, -1, "none", False),
            ("synram", "down", w, -1, "none", False), ("host", "up", ack, 2**40, "link", False)]


def _write(path, frames=None):
    with kit.FrameRecorder(path, keep=True, meta={"command": "test", "seed": 7}) as rec:
        for link, direction, frame, ticks, source, run_time in frames or _frames():
            rec.record(link, direction, frame, ticks, emulated_from=source, run_time=run_time)
    return rec


def test_recording_round_trips(tmp_path):
    path = tmp_path / "r.nsrec"
    rec = _write(path)
    back = kit.read_recording(path)
    assert back.records == rec.records and len(back.records) == 6
    assert back.meta == {"links": ["host", "chip", "ppu", "synram"], "command": "test", "seed": 7}
    for r, (link, direction, frame, ticks, source, run_time) in zip(back.records, _frames()):
        assert (r.link, r.direction, r.frame, r.emulated_ticks, r.emulated_from, r.run_time) == \
               (link, direction, frame, ticks, source, run_time)
        assert r.tag == decode(frame).TAG and r.message() == decode(frame)
    # offsets: after the header, each record is its 24-byte header and its frame
    meta_len = struct.unpack_from("<I", path.read_bytes(), 12)[0]
    offsets = FILE_HEADER + meta_len + np.cumsum([0] + [RECORD_HEADER + len(f[2]) for f in _frames()])[:-1]
    assert [r.offset for r in back.records] == offsets.tolist()
    assert path.stat().st_size == FILE_HEADER + meta_len + sum(RECORD_HEADER + len(f[2]) for f in _frames())
    wall = [r.wall_ns for r in back.records]
    assert wall == sorted(wall) and wall[0] >= 0
    again = kit.write_recording(tmp_path / "again.nsrec", back)  # rewritten with their own stamps
    assert kit.read_recording(again).records == back.records and kit.read_recording(again).meta == back.meta
    with kit.RecordingReader(path) as reader:  # lazily, record by record
        assert reader.links == ("host", "chip", "ppu", "synram") and next(iter(reader)) == rec.records[0]


def test_a_damaged_recording_names_the_record_and_its_offset(tmp_path):
    path = tmp_path / "r.nsrec"
    _write(path)
    data = path.read_bytes()
    offsets = [r.offset for r in kit.read_recording(path).records]
    cases = {
        "cut in a frame": (data[:offsets[3] + RECORD_HEADER + 5], 3, "truncated frame"),
        "cut in a record header": (data[:offsets[2] + 10], 2, "truncated record header: 10 of 24 bytes"),
        "unknown link": (_patch(data, offsets[1] + 4, 9), 1, "corrupt record header"),
        "unknown flags": (_patch(data, offsets[4] + 5, 0x80), 4, "corrupt record header"),
        "frame length disagrees": (_patch(data, offsets[5] + RECORD_HEADER, 0x55), 5, "corrupt frame"),
    }
    for name, (damaged, index, problem) in cases.items():
        path.write_bytes(damaged)
        with pytest.raises(kit.RecordingError) as info:
            kit.read_recording(path)
        text = str(info.value)
        assert f"record {index} at byte offset {offsets[index]}" in text and problem in text, (name, text)
        assert str(path) in text
    # partial: a file cut by a kill keeps its whole records; corruption is still refused
    for cut, n in ((offsets[3] + RECORD_HEADER + 5, 3), (offsets[2] + 10, 2), (len(data), 6)):
        path.write_bytes(data[:cut])
        partial = kit.read_recording(path, partial=True)
        assert len(partial.records) == n and partial.truncated_at == (None if n == 6 else offsets[n])
    path.write_bytes(_patch(data, offsets[1] + 4, 9))
    with pytest.raises(kit.RecordingError, match="record 1 at byte offset"):
        kit.read_recording(path, partial=True)
    path.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(kit.RecordingError, match="file header at byte offset 0: not a neurosplit recording"):
        kit.read_recording(path)
    path.write_bytes(data[:8] + struct.pack("<H", 9) + data[10:])
    with pytest.raises(kit.RecordingError, match="format version 9"):
        kit.read_recording(path)


def _patch(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1:]


async def _train(recorder=None, learning="on-chip-eventprop"):
    async with kit.running_system(kit.quick_config(4, seed=3), recorder=recorder) as system:
        report = await train(system.host, replace(SMALL, learning=learning))
        weights = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16),
                                                 np.arange(N_NEURONS, dtype=np.uint16))
    return report, weights_sha256(weights.weight), system  # read after the Shutdown: every frame counted


async def test_recording_changes_no_result_and_holds_every_frame(tmp_path):
    plain, plain_sha, _ = await _train()
    rec = kit.FrameRecorder(tmp_path / "t.nsrec", keep=True)
    recorded, recorded_sha, system = await _train(rec)
    rec.close()
    traffic = system.traffic()
    assert recorded_sha == plain_sha
    assert recorded["train_loss"] == plain["train_loss"] and recorded["test_accuracy"] == plain["test_accuracy"]
    back = kit.read_recording(tmp_path / "t.nsrec")
    assert back.records == rec.records
    # every frame the actors sent is there once, counted as the links count them
    for link in actors.LINK_NAMES:
        for direction in ("down", "up"):
            mine = [r for r in back.records if r.link == link and r.direction == direction]
            assert len(mine) == traffic[link][direction]["messages"], (link, direction)
            assert sum(len(r.frame) for r in mine) == traffic[link][direction]["bytes"]
    # stamps: the modelled links (host, chip) give emulated arrivals; ppu/synram frames their own ticks or -1
    host = back.link("host")
    assert [r.tag for r in host[:2]] == ["hello", "hello"] and host[-1].tag == "shutdown"
    assert all(r.emulated_from == "link" and r.emulated_ticks > 0 for r in back.records if r.link in ("host", "chip"))
    assert any(r.run_time for r in back.link("chip"))  # run frames on the event lanes: ticks since their run began
    for link in ("host", "chip"):  # the latest arrival each far end saw, as the link model counted it
        counters = system.links[link].timeline.counters
        for direction in ("down", "up"):
            arrivals = [r.emulated_ticks for r in back.link(link, direction) if not r.run_time]
            assert max(arrivals) == counters[direction].received_arrival_ticks, (link, direction)
    down = [r.emulated_ticks for r in back.link("host", "down")]
    assert down == sorted(down)  # a sender's emulated clock never goes back
    for r in back.records:
        if r.link in ("ppu", "synram"):
            msg = r.message()
            own = getattr(msg, "horizon_ticks", None)
            if own is None and getattr(msg, "t_ticks", np.zeros(0)).size:
                own = int(msg.t_ticks[-1])
            assert r.emulated_ticks == (-1 if own is None else own)


async def test_a_scripted_exchange_with_the_peer_fixture_helpers(tmp_path):
    rec = kit.FrameRecorder(keep=True, links=("host", "chip", "ppu", "synram"))
    async with kit.board_peer(kit.quick_config(2), recorder=rec) as peer:
        hello = await peer.hello({"calibrate": 0})
        assert hello.chip_id == 2 and hello.role == "board"
        await peer.send(WriteWeights(request_id=9, row=[0], column=[0, 1], weight=np.array([[5, 6]], np.uint8)))
        await peer.expect(Ack(request_id=9, what="write_weights"))
        with pytest.raises(kit.ExchangeFailed, match=r"request_id: expected 11, received 10"):
            await peer.send(WriteWeights(request_id=10, row=[0], column=[0], weight=np.array([[1]], np.uint8)))
            await peer.expect(Ack(request_id=11, what="write_weights"))
    tags = [(r.link, r.direction, r.tag) for r in rec.records]
    assert tags[:2] == [("host", "down", "hello"), ("host", "up", "hello")]
    assert ("synram", "down", "write_weights") not in tags  # the router writes the core over the chip link
    assert ("chip", "down", "write_weights") in tags


async def test_fault_wrapper_is_the_one_of_actors_faults():
    from neurosplit.actors import _faults

    assert kit.fault_wrapper is _faults.fault_wrapper and kit.FaultSpec is _faults.FaultSpec
    wrap, counts = kit.fault_wrapper("chip", kit.FaultSpec(drop=1.0, direction="down"), seed=1)
    async with kit.running_system(kit.quick_config(1), wrap={"chip": wrap}) as system:
        t = np.array([10, 20, 30]); label = np.array([0, 1, 2], np.uint16)
        result = await system.host.run(t, label, np.zeros(3, np.uint32), n_samples=1, sample_ticks=100)
    assert result.complete.dropped == {"chip_down_fault_drop": 3}
    assert counts.statistics()["down"]["drop"] >= 1


async def test_a_board_server_fixture_serves_connect_board():
    async with kit.serving_board(6) as address:
        async with actors.connect_board(address, kit.quick_config(0)) as system:
            assert system.chip_seed == 6


def test_record_option_with_board_records_the_host_link_only(tmp_path):
    from neurosplit.host.cli import _parser
    from neurosplit.host.cli._common import job_recorder

    path = tmp_path / "b.nsrec"
    args = _parser().parse_args(["run", "--board", "127.0.0.1:9", "--record", str(path)])
    rec = job_recorder(args)
    rec.close()
    meta = kit.read_recording(path).meta
    assert meta["links"] == ["host"] and meta["host_only"] is True and "only the host link" in meta["note"]
    assert meta["command"] == "run" and meta["session"]["seed"] == 0
    for command in (["run"], ["train", "yinyang"], ["demo"]):
        assert _parser().parse_args(command + ["--record", "x"]).record == "x"


PLUGIN_TEST = '''
import numpy as np
from neurosplit.protocol import Shutdown

async def test_system(neurosplit_system):
    r = await neurosplit_system.host.run(np.array([5]), np.array([0], np.uint16), np.zeros(1, np.uint32),
                                         n_samples=1, sample_ticks=50)
    assert r.complete.events_in == 1

async def test_peer(neurosplit_peer):
    hello = await neurosplit_peer.hello({"calibrate": 0})
    assert hello.role == "board"
    await neurosplit_peer.send(Shutdown())
    await neurosplit_peer.expect_end()

async def test_board(neurosplit_board):
    from neurosplit.actors import connect_board
    from neurosplit.actors.testing import quick_config
    async with connect_board(neurosplit_board, quick_config()) as system:
        assert system.chip_seed == 0

async def test_recorder(neurosplit_recorder, neurosplit_system):
    await neurosplit_system.host.run(np.array([5]), np.array([0], np.uint16), np.zeros(1, np.uint32),
                                     n_samples=1, sample_ticks=50)
    tags = [r.tag for r in neurosplit_recorder.records if r.link == "host"]
    assert tags[:2] == ["hello", "hello"] and "run_complete" in tags
    assert neurosplit_recorder.path.name == "neurosplit.nsrec"
'''

PLUGIN_FAULT_TEST = '''
import numpy as np
import pytest
from neurosplit.actors.testing import FaultSpec, fault_wrapper

@pytest.fixture
def neurosplit_wrap():
    return {"chip": fault_wrapper("chip", FaultSpec(drop=1.0, direction="down"), seed=2)[0]}

async def test_faulty_chip_link(neurosplit_system):
    r = await neurosplit_system.host.run(np.array([5, 6]), np.array([0, 1], np.uint16), np.zeros(2, np.uint32),
                                         n_samples=1, sample_ticks=50)
    assert r.complete.dropped == {"chip_down_fault_drop": 2}
'''


def test_the_pytest_plugin_gives_the_fixtures_to_a_plain_test_file(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (tmp_path / "test_uses_kit.py").write_text(textwrap.dedent(PLUGIN_TEST))
    (tmp_path / "test_uses_faults.py").write_text(textwrap.dedent(PLUGIN_FAULT_TEST))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "5 passed" in out.stdout


async def test_a_board_records_its_end_of_a_host_link_it_does_not_share():
    """open_board on a bare transport (as the board server runs it): the board's end records what it
    receives and sends on the host link, its own links as usual; the peer's view agrees."""
    from neurosplit.actors import memory_transport_pair, open_board
    from neurosplit.protocol import Shutdown

    rec = kit.FrameRecorder()
    peer_end, board_end = memory_transport_pair(4)
    peer = kit.ScriptedPeer(peer_end)
    config = kit.quick_config(3)
    async with open_board(config, rec.end_wrapper("host", "b")(board_end), wrap=rec.wrap()):
        await peer.hello({"calibrate": 0})
        await peer.send(WriteWeights(request_id=4, row=[1], column=[2], weight=np.array([[9]], np.uint8)))
        await peer.expect(Ack(request_id=4, what="write_weights"))
        await peer.send(Shutdown())
        await peer.expect_end()
    host = [r for r in rec.records if r.link == "host"]
    assert [(r.direction, r.tag) for r in host] == [("down", "hello"), ("up", "hello"), ("down", "write_weights"),
                                                   ("up", "ack"), ("down", "shutdown")]
    assert [r.message() for r in host if r.direction == "up"] == peer.received
    assert {r.link for r in rec.records} == {"host", "chip", "ppu", "synram"}
    # no PPU step: synram carries only the PPU's Shutdown to the core, after its (no) last write
    assert [(r.direction, r.tag) for r in rec.records if r.link == "synram"] == [("down", "shutdown")]
