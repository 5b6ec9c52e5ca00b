"""Replay: a recording's host side sent again to a fresh board; the first divergence of its replies."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import trio

from neurosplit import actors
from neurosplit.actors import testing as kit
from neurosplit.host._training import TrainConfig, train
from neurosplit.host.cli import main
from neurosplit.protocol import ReadWeights, Shutdown, WriteWeights, encode

SMALL = TrainConfig(epochs=1, n_train=40, n_test=20, batch_size=20, n_hidden=20, seed=3)
CONFIG = kit.quick_config(4, seed=3)


async def _recorded_training(learning: str) -> kit.Recording:
    rec = kit.FrameRecorder(meta={"chip_seed": 4})
    async with kit.running_system(CONFIG, recorder=rec) as system:
        await train(system.host, replace(SMALL, learning=learning))
    rec.close()
    return kit.Recording(rec.meta, rec.records)


def _with_weight_changed(recording: kit.Recording, row: int, column: int) -> tuple[kit.Recording, int, int]:
    """The recording with one code of its (first) host-link WriteWeights moved by 7; (recording, old, new)."""
    i = next(i for i, r in enumerate(recording.records) if r.link == "host" and r.tag == "write_weights")
    msg = recording.records[i].message()
    w = np.array(msg.weight)
    old, w[row, column] = int(w[row, column]), (int(w[row, column]) + 7) % 64
    changed = WriteWeights(request_id=msg.request_id, row=msg.row, column=msg.column, weight=w)
    records = list(recording.records)
    records[i] = replace(records[i], frame=encode(changed))
    return kit.Recording(recording.meta, records), old, int(w[row, column])


def _key(msg) -> tuple:
    for name in ("run_id", "request_id"):
        value = getattr(msg, name, -1)
        if value is not None and value >= 0:
            return (name, value)
    return ("none",)


async def _first_difference_by_hand(recording: kit.Recording, config) -> tuple[int, kit.Divergence] | None:
    """An independent reference: send the host's frames, each once as many replies have come as
    were recorded before it, keep every reply until the board closes, then walk the recorded
    replies in order and compare each with the reply of the same run/request at the same place."""
    host = recording.link("host")
    got = []
    async with kit.board_peer(config) as peer:
        for r in host:
            if r.direction == "down":
                while len(got) < sum(1 for x in host[:host.index(r)] if x.direction == "up"):
                    got.append(await peer.receive(30))
                await peer.send_frame(r.frame)
        while True:
            try:
                got.append(await peer.receive(30))
            except kit.StreamEnded:
                break
    recorded = [r.message() for r in host if r.direction == "up"]
    seen: dict[tuple, int] = {}
    for pos, want in enumerate(recorded):
        k = _key(want)
        same = [m for m in got if _key(m) == k]
        n = seen[k] = seen.get(k, -1) + 1
        d = kit.message_divergence(want, same[n] if n < len(same) else None)
        if d is not None:
            return pos, d
    return None


@pytest.mark.parametrize("learning", ["on-chip-eventprop", "host-eventprop"])
async def test_record_then_replay_of_a_short_training_reports_no_divergence(learning):
    recording = await _recorded_training(learning)
    report = await kit.replay(recording)
    host = recording.link("host")
    assert report.ok, report.verdict()
    assert report.compared == report.expected == sum(r.direction == "up" for r in host) > 3
    assert report.sent == sum(r.direction == "down" for r in host) and report.received == report.compared
    assert report.board == "in-process (chip 4)" and report.notes == []
    assert "no divergence" in report.verdict()


async def test_replay_after_changing_one_weight_names_the_first_diverging_reply():
    recording = await _recorded_training("on-chip-eventprop")
    changed, old, new = _with_weight_changed(recording, 0, 0)
    report = await kit.replay(changed)
    d = report.divergence
    assert d is not None, report.verdict()
    reference = await _first_difference_by_hand(changed, CONFIG)
    assert reference is not None
    pos, ref = reference
    assert (d.index, d.expected, d.received, d.field) == (pos, ref.expected, ref.received, ref.field)
    assert repr(d.expected_value) == repr(ref.expected_value) and repr(d.received_value) == repr(ref.received_value)
    # the record it names is that reply in the file, and every reply before it was as recorded
    ups = [i for i, r in enumerate(changed.records) if r.link == "host" and r.direction == "up"]
    assert report.record_index == ups[d.index]
    assert changed.records[report.record_index].tag == d.expected
    assert report.compared >= d.index
    assert f"message {d.index} ({d.expected}).{d.field}" in report.verdict()


async def test_a_changed_weight_shows_in_the_weights_read_back_field_and_values():
    rec = kit.FrameRecorder()
    rows, cols = np.array([0, 1, 2], np.uint16), np.array([3, 4], np.uint16)
    codes = np.array([[1, 2], [3, 4], [5, 6]], np.uint8)
    async with kit.board_peer(kit.quick_config(1), recorder=rec) as peer:
        await peer.hello({"calibrate": 0})
        await peer.send(WriteWeights(request_id=1, row=rows, column=cols, weight=codes))
        await peer.receive()
        await peer.send(ReadWeights(request_id=2, row=rows, column=cols))
        assert np.array_equal((await peer.receive()).weight, codes)
        await peer.send(Shutdown())
        await peer.expect_end()
    rec.close()
    recording = kit.Recording({"chip_seed": 1}, rec.records)
    assert (await kit.replay(recording)).ok
    changed, old, new = _with_weight_changed(recording, 2, 1)
    report = await kit.replay(changed)
    d = report.divergence
    assert (d.expected, d.received, d.field, d.expected_value, d.received_value) == ("weights", "weights",
                                                                                     "weight[2,1]", old, new)
    assert d.index == 2 and report.compared == 2  # hello and the write's ack came as recorded


async def test_replies_missing_or_unrecorded_are_divergences():
    recording = await _recorded_training("host-eventprop")
    records = recording.records
    last_up = max(i for i, r in enumerate(records) if r.link == "host" and r.direction == "up")
    without_reply = kit.Recording(recording.meta, records[:last_up] + records[last_up + 1:])
    report = await kit.replay(without_reply)
    assert report.divergence.expected is None and report.divergence.received == records[last_up].tag
    assert "no further reply" in report.divergence.note
    # a reply recorded twice, the second time after the Shutdown: the board closes the link without it
    twice = kit.Recording(recording.meta, records + [records[last_up]])
    report = await kit.replay(twice)
    d = report.divergence
    assert (d.expected, d.received, d.note) == (records[last_up].tag, None, "board: the board closed the link")
    assert report.record_index == len(records) and report.compared == report.expected - 1
    # twice before the Shutdown: the Shutdown waits for it, and the board's silence is named
    twice = kit.Recording(recording.meta, records[:last_up + 1] + records[last_up:])
    report = await kit.replay(twice, timeout_s=0.5)
    assert report.divergence.expected == records[last_up].tag and report.divergence.received is None
    assert "nothing received within 0.5 s" in report.divergence.note and report.record_index == last_up + 1
    # a recording cut before its Shutdown: checked as far as it goes, and said so
    shutdown = max(i for i, r in enumerate(records) if r.link == "host" and r.tag == "shutdown")
    cut = kit.Recording(recording.meta, records[:shutdown])
    report = await kit.replay(cut)
    assert report.ok and "without a Shutdown" in report.notes[0]


async def test_a_recording_of_the_host_end_replays_against_a_board_server():
    rec = kit.FrameRecorder(links=("host",), meta={"host_only": True})
    async with kit.serving_board(4) as address:
        async with actors.connect_board(address, CONFIG, wrap_transport=rec.end_wrapper("host", "a")) as system:
            await train(system.host, SMALL)
        rec.close()
        recording = kit.Recording(rec.meta, rec.records)
        assert {r.link for r in rec.records} == {"host"} and rec.records[-1].tag == "shutdown"
        there = await kit.replay(recording, address)
        assert there.ok and there.board == address, there.verdict()
    here = await kit.replay(recording)
    assert here.ok and here.compared == there.compared > 3
    async with kit.serving_board(5) as other:  # another die: its Hello already differs
        report = await kit.replay(recording, other)
    assert (report.divergence.expected, report.divergence.field) == ("hello", "chip_id")
    assert (report.divergence.expected_value, report.divergence.received_value) == (4, 5)


def test_replay_command_exit_status_and_report(tmp_path, capsys):
    path, out = tmp_path / "run.nsrec", tmp_path / "replay.json"
    plain, recorded = tmp_path / "plain.json", tmp_path / "recorded.json"
    assert main(["run", "--samples", "2", "--no-calibrate", "--report", str(plain)]) == 0
    assert main(["run", "--samples", "2", "--no-calibrate", "--record", str(path), "--report", str(recorded)]) == 0
    a, b = json.loads(plain.read_text()), json.loads(recorded.read_text())
    assert (a["weights_sha256"], a["spikes_sha256"]) == (b["weights_sha256"], b["spikes_sha256"])
    assert main(["replay", str(path), "--report", str(out)]) == 0
    assert "no divergence" in capsys.readouterr().out
    assert json.loads(out.read_text())["replay"]["ok"] is True
    changed, _, _ = _with_weight_changed(kit.read_recording(path), 0, 0)
    bad = tmp_path / "changed.nsrec"
    kit.write_recording(bad, changed)
    assert kit.read_recording(bad).records == changed.records  # stamps and frames as they were
    assert main(["replay", str(bad), "--report", str(out)]) == 1
    text = capsys.readouterr().out
    assert "divergence at message" in text and "expected:" in text
    assert json.loads(out.read_text())["replay"]["divergence"]["expected"] is not None
    bad.write_bytes(bad.read_bytes()[:-3])
    assert main(["replay", str(bad)]) == 2
    assert "truncated frame" in capsys.readouterr().err
    shutdown = next(r for r in kit.read_recording(path).records if r.link == "host" and r.tag == "shutdown")
    path.write_bytes(path.read_bytes()[:shutdown.offset + 30])  # as a killed job leaves it: the Shutdown cut short
    assert main(["replay", str(path), "--partial"]) == 0
    text = capsys.readouterr().out
    assert "no divergence" in text and "cut short at byte" in text and "without a Shutdown" in text


async def test_a_recording_under_host_link_faults_holds_the_actors_frames_and_replays():
    wrapping = actors.wrap_links({"host": kit.FaultSpec(drop=0.05, dup=0.05, reorder=0.05, corrupt=0.01)}, seed=1)
    rec = kit.FrameRecorder(meta={"chip_seed": 4})
    async with kit.running_system(CONFIG, wrap=wrapping.wrap, recorder=rec) as system:
        await train(system.host, SMALL)
    rec.close()
    assert wrapping.statistics()["faults"]["host"]["down"]["frames"] > 0  # the faults were under the recorder
    assert "link_frame" not in {r.tag for r in rec.records}  # above reliable delivery: the actors' own frames
    report = await kit.replay(kit.Recording(rec.meta, rec.records))
    assert report.ok, report.verdict()


async def test_ignored_fields_are_left_out_of_the_comparison():
    rec = kit.FrameRecorder()
    rows, cols = np.array([0], np.uint16), np.array([3, 4], np.uint16)
    async with kit.board_peer(kit.quick_config(1), recorder=rec) as peer:
        await peer.hello({"calibrate": 0})
        await peer.send(WriteWeights(request_id=1, row=rows, column=cols, weight=np.array([[1, 2]], np.uint8)))
        await peer.receive()
        await peer.send(ReadWeights(request_id=2, row=rows, column=cols))
        await peer.receive()
        await peer.send(Shutdown())
        await peer.expect_end()
    changed, _, _ = _with_weight_changed(kit.Recording({}, rec.records), 0, 1)
    assert (await kit.replay(changed)).divergence.field == "weight[0,1]"
    report = await kit.replay(changed, ignore=frozenset({"weights.weight"}))
    assert report.ok and report.compared == 3 and report.ignore == {"weights.weight"}


def test_record_and_replay_from_the_command_line_with_a_board_server(tmp_path, capsys):
    import subprocess
    import sys

    serve = [sys.executable, "-c", "import sys; from neurosplit.host.cli import main; sys.exit(main())",
             "chip", "serve", "--listen", "127.0.0.1:0", "--chip-seed", "5", "--log-level", "warning"]
    proc = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving chip 5 on"), line
        address = line.split(" on ")[1].split()[0]
        path = tmp_path / "remote.nsrec"
        assert main(["run", "--samples", "2", "--no-calibrate", "--board", address, "--record", str(path)]) == 0
        recording = kit.read_recording(path)
        assert recording.meta["links"] == ["host"] and recording.meta["host_only"] is True
        assert recording.meta["board"] == address and "only the host link" in recording.meta["note"]
        assert [r.tag for r in recording.records[:2]] == ["hello", "hello"] and recording.records[-1].tag == "shutdown"
        capsys.readouterr()
        assert main(["replay", str(path), "--board", address]) == 0  # the same server, a fresh board
        assert main(["replay", str(path)]) == 0  # in this process, chip 5 from the board's recorded Hello
        assert capsys.readouterr().out.count("no divergence") == 2
    finally:
        proc.kill()
        proc.wait(timeout=30)


async def test_chip_serve_records_each_session_at_the_boards_end(tmp_path):
    """``chip serve --record DIR``: the server records each admitted session, the host link from the
    board's end plus the board's own links; the host side of that recording replays against a
    board server with no divergence, and its host link holds exactly what the host's own recording
    of the same session holds."""
    from neurosplit.host.cli._chip import _session_recorder

    host_rec = kit.FrameRecorder(links=("host",))
    async with kit.serving_board(4, recorder=_session_recorder(str(tmp_path), 4)) as address:
        async with actors.connect_board(address, CONFIG, wrap_transport=host_rec.end_wrapper("host", "a")) as system:
            await train(system.host, SMALL)
        host_rec.close()
        path = tmp_path / "session-000.nsrec"
        with trio.fail_after(30):  # the server writes on until its session has ended
            while not path.exists() or len(kit.read_recording(path, partial=True).link("host")) < len(host_rec.records):
                await trio.sleep(0.05)
            await trio.sleep(0.2)
        board_side = kit.read_recording(path)
        assert board_side.meta["recorded_by"] == "chip serve" and board_side.meta["chip_seed"] == 4
        assert {r.link for r in board_side.records} == {"host", "chip", "ppu", "synram"}
        mine = [(r.direction, r.frame) for r in host_rec.records]
        theirs = [(r.direction, r.frame) for r in board_side.link("host")]
        assert sorted(theirs) == sorted(mine) and len(mine) > 10
        report = await kit.replay(board_side, address)
    assert report.ok, report.verdict()
