"""The conformance suite and the test kit's scripted peer and message diff.

The suite passes against the in-process board and against a board server; boards broken on
purpose (transport wrappers built here) fail exactly the scenarios that cover their fault, and
the report names the divergence. The diff and the scripted peer are checked on their own first.
"""

from __future__ import annotations

import numpy as np
import pytest
import trio

from neurosplit.actors import memory_transport_pair, open_board, session_config
from neurosplit.actors.testing import (Divergence, ExchangeFailed, ScriptedPeer, StreamEnded, first_divergence,
                                       message_divergence)
from neurosplit.protocol import (Ack, Error, Hello, LearnResult, ReadWeights, RunComplete, Shutdown, SpikeBatch,
                                 Weights, WriteWeights, encode)

SESSION = {"seed": 1, "calibrate": 0}


# -- message_divergence / first_divergence -------------------------------------------------------

def _spikes(t, label=None, run_id=3, horizon=1000):
    t = np.asarray(t, np.int64)
    label = np.arange(t.size, dtype=np.uint16) if label is None else np.asarray(label, np.uint16)
    return SpikeBatch(run_id=run_id, t_ticks=t, label=label, sample=np.zeros(t.size, np.uint32), horizon_ticks=horizon)


def test_equal_messages_do_not_diverge():
    assert message_divergence(_spikes([1, 2, 3]), _spikes([1, 2, 3])) is None
    pair = [_spikes([1]), Ack(request_id=1, what="x")]
    assert first_divergence(pair, [_spikes([1]), Ack(request_id=1, what="x")]) is None
    assert first_divergence([], []) is None


def test_an_array_divergence_names_the_first_differing_index():
    d = message_divergence(_spikes([1, 2, 3, 4]), _spikes([1, 2, 3, 5]))
    assert (d.index, d.expected, d.received, d.field) == (0, "spike_batch", "spike_batch", "t_ticks[3]")
    assert (d.expected_value, d.received_value) == (4, 5) and type(d.received_value) is int
    w = np.zeros((4, 6), np.uint8)
    w2 = w.copy()
    w2[2, 5] = 9
    w2[3, 0] = 1
    d = message_divergence(Weights(request_id=1, row=np.arange(4), column=np.arange(6), weight=w),
                           Weights(request_id=1, row=np.arange(4), column=np.arange(6), weight=w2))
    assert d.field == "weight[2,5]" and (d.expected_value, d.received_value) == (0, 9)
    assert str(d) == "message 0 (weights).weight[2,5]: expected 0, received 9"


def test_arrays_compare_dtype_then_shape_and_nan_equals_nan():
    a = LearnResult(run_id=1, loss=float("nan"), n_correct=0, n_samples=2, spike_count=np.array([1, 2], np.uint32))
    assert message_divergence(a, a) is None  # a diverged loss is a value like any other
    d = message_divergence(_spikes([1, 2]), _spikes([1, 2, 3]))
    assert d.field == "t_ticks.shape" and (d.expected_value, d.received_value) == ((2,), (3,))
    # dtype: messages convert on construction, so compare bare arrays through a dataclass-free path
    from neurosplit.actors.testing._diff import _diff_arrays
    assert _diff_arrays(np.zeros(2, np.int64), np.zeros(2, np.int32), "x") == ("x.dtype", "int64", "int32")


def test_scalars_maps_and_ignored_fields():
    d = message_divergence(RunComplete(run_id=1, n_samples=2, events_in=5, events_out=7, dropped={"a": 1}),
                           RunComplete(run_id=1, n_samples=2, events_in=5, events_out=7, dropped={"a": 1, "b": 2}))
    assert d.field == "dropped.b" and repr(d.expected_value) == "<absent>" and d.received_value == 2
    e1 = Error(fault="remote", message="x", in_reply_to="frame")
    e2 = Error(fault="remote", message="y", in_reply_to="frame")
    assert message_divergence(e1, e2).field == "message"
    assert message_divergence(e1, e2, ignore=frozenset({"message"})) is None
    assert message_divergence(e1, e2, ignore=frozenset({"error.message"})) is None
    assert message_divergence(e1, e2, ignore=frozenset({"hello.message"})) is not None
    h1, h2 = Hello(protocol_version=1, role="board", chip_id=2), Hello(protocol_version=1, role="board", chip_id=3)
    assert message_divergence(h1, h2).field == "chip_id"
    lr = LearnResult(run_id=1, loss=0.5, n_correct=0, n_samples=2, spike_count=np.zeros(2, np.uint32),
                     metrics={"ppu_memory_bytes": 1.0, "x": 2.0})
    lr2 = LearnResult(run_id=1, loss=0.5, n_correct=0, n_samples=2, spike_count=np.zeros(2, np.uint32),
                      metrics={"ppu_memory_bytes": 1.0, "x": 3.0})
    assert message_divergence(lr, lr2).field == "metrics.x"
    assert message_divergence(lr, lr2, ignore=frozenset({"metrics.x"})) is None


def test_type_mismatch_and_lengths():
    err = Error(fault="remote", message="weights: refused", in_reply_to="read_weights")
    d = message_divergence(Ack(request_id=1, what="write_weights"), err)
    assert (d.expected, d.received, d.field) == ("ack", "error", None) and d.received_value is err
    assert "expected ack, received error" in str(d) and "weights: refused" in str(d)
    seq = [Ack(request_id=i, what="x") for i in range(3)]
    d = first_divergence(seq, seq[:2])
    assert (d.index, d.expected, d.received) == (2, "ack", None) and "received nothing" in str(d)
    d = first_divergence(seq[:1], seq)
    assert (d.index, d.expected, d.received) == (1, None, "ack") and "expected nothing" in str(d)
    d = first_divergence(seq, [seq[0], Ack(request_id=9, what="x"), seq[2]])
    assert (d.index, d.field, d.expected_value, d.received_value) == (1, "request_id", 1, 9)
    assert d.as_dict()["text"] == str(d) == "message 1 (ack).request_id: expected 1, received 9"


def test_nested_plain_values():
    assert message_divergence({"a": [1, {"b": 2.0}]}, {"a": [1, {"b": 2}]}).field == "a[1].b"  # float vs int
    assert message_divergence([1, 2], [1, 2, 3]).field == "[2]"
    assert message_divergence(True, 1).received_value == 1


# -- ScriptedPeer ---------------------------------------------------------------------------------

async def _with_board(script):
    host_side, board_side = memory_transport_pair(4)
    with trio.fail_after(30):
        async with open_board(session_config(2, SESSION), board_side):
            peer = ScriptedPeer(host_side, name="test host")
            await script(peer)
            await peer.send(Shutdown(reason="test"))
            await peer.expect_end()


async def test_a_scripted_peer_talks_to_a_board():
    async def script(peer):
        hello = await peer.hello(SESSION)
        assert hello.role == "board" and hello.chip_id == 2
        w = np.full((2, 3), 17, np.uint8)
        await peer.send(WriteWeights(request_id=5, row=[1, 2], column=[0, 1, 2], weight=w))
        await peer.expect(Ack(request_id=5, what="write_weights"))
        await peer.send(ReadWeights(request_id=6, row=[1, 2], column=[0, 1, 2]))
        got = await peer.expect(Weights(request_id=6, row=np.array([1, 2], np.uint16),
                                        column=np.arange(3, dtype=np.uint16), weight=w))
        assert got.weight.sum() == 17 * 6
        await peer.send(ReadWeights(request_id=7, row=[1], column=[0]))
        with pytest.raises(ExchangeFailed) as info:
            await peer.expect(Weights(request_id=7, row=np.array([1], np.uint16), column=np.array([0], np.uint16),
                                      weight=np.array([[16]], np.uint8)))
        assert info.value.divergence.field == "weight[0,0]" and info.value.divergence.index == 3
        assert str(info.value) == "message 3 (weights).weight[0,0]: expected 16, received 17"
        # a class, a predicate
        await peer.send(ReadWeights(request_id=8, row=[1], column=[0]))
        await peer.expect(Weights)
        await peer.send(ReadWeights(request_id=9, row=[1], column=[0]))
        with pytest.raises(ExchangeFailed, match="request 9 is not 10"):
            await peer.expect(lambda m: Divergence(0, "weights", m.TAG, "request_id", 10, m.request_id,
                                                   note="request 9 is not 10") if m.request_id != 10 else None)
        await peer.send(ReadWeights(request_id=10, row=[1], column=[0]))
        with pytest.raises(ExchangeFailed, match="expected ack, received weights"):
            await peer.expect(Ack)
        # a raw frame: a bad CRC is answered with an error
        frame = bytearray(encode(ReadWeights(request_id=11, row=[1], column=[0])))
        frame[4] ^= 1
        await peer.send_frame(bytes(frame))
        err = await peer.expect(Error)
        assert err.in_reply_to == "frame" and "crc32" in err.message
        with pytest.raises(ExchangeFailed, match="nothing received within 0.05 s"):
            await peer.receive(timeout_s=0.05)
        assert [type(m).__name__ for m in peer.received] == ["Hello", "Ack", "Weights", "Weights", "Weights",
                                                              "Weights", "Weights", "Error"]
        assert len(peer.sent) == 8 and isinstance(peer.sent[-1], bytes)

    await _with_board(script)


async def test_a_peer_sees_the_end_of_the_stream():
    host_side, board_side = memory_transport_pair(2)
    peer = ScriptedPeer(host_side)
    await board_side.aclose()
    with pytest.raises(StreamEnded) as info:
        await peer.expect(Ack, timeout_s=1)
    assert info.value.divergence.expected == "ack" and "closed the link" in str(info.value)
    assert peer.closed


# -- the conformance suite ------------------------------------------------------------------------

from neurosplit.actors.conformance import (FAIL, NOT_APPLICABLE, PASS, SCENARIOS, InProcessTarget,  # noqa: E402
                                           junit_xml, report, run_suite, select, serving_target, table)
from neurosplit.protocol import RemoteProtocolError, decode  # noqa: E402

ALL = {s.name for s in SCENARIOS}
RELIABLE = {n for n in ALL if n.startswith("reliable.")}


def _by_outcome(results) -> dict[str, set[str]]:
    out = {PASS: set(), FAIL: set(), NOT_APPLICABLE: set()}
    for r in results:
        out[r.outcome].add(r.name)
    return out


def test_the_catalogue_covers_what_the_protocol_defines():
    groups = {s.group for s in SCENARIOS}
    assert groups == {"handshake", "exchange", "malformed", "ordering", "flow", "reliable", "session", "training"}
    assert {f"malformed.{k}" for k in ("bad-crc", "truncated", "bad-msgpack", "unknown-tag", "missing-field",
                                       "wrong-dtype", "weight-out-of-range", "oversize")} <= ALL
    assert {"reliable.drop", "reliable.duplicate", "reliable.reorder", "reliable.corrupt"} == RELIABLE
    assert all(len(s.checks) > 80 for s in SCENARIOS), [s.name for s in SCENARIOS if len(s.checks) <= 80]
    assert [s.name for s in select("malformed.*,not oversize")] == [f"malformed.{k}" for k in (
        "bad-crc", "truncated", "bad-msgpack", "unknown-tag", "missing-field", "wrong-dtype", "weight-out-of-range",
        "unchecked")]
    assert {s.name for s in select("reliable")} == RELIABLE


async def test_the_suite_passes_against_the_in_process_board():
    with trio.fail_after(600):  # a hang guard: the first run may compile kernels
        results = await run_suite(InProcessTarget(chip_seed=2, session_map=SESSION))
    got = _by_outcome(results)
    assert got[FAIL] == set(), table(results)
    assert got[NOT_APPLICABLE] == {"session.reconnect"}
    assert len(results) == len(SCENARIOS)
    details = {r.name: r.details for r in results}
    assert details["training.step"]["rows_changed"] > 0 and details["exchange.run-spikes"]["spikes"] > 0
    assert all(details[n]["injected"] > 0 for n in RELIABLE)
    assert details["flow.slow-reader"]["held_while_stalled"] <= 4


async def test_the_suite_passes_against_a_board_server():
    with trio.fail_after(600):  # a hang guard: the first run may compile kernels
        async with serving_target(3, session_map=SESSION) as target:
            results = await run_suite(target)
            outcomes = [s.outcome.split(":")[0] for s in target.server.sessions]
    got = _by_outcome(results)
    assert got[FAIL] == set(), table(results)
    assert got[NOT_APPLICABLE] == {"malformed.truncated"} | RELIABLE
    assert "refused" in outcomes and "disconnected" in outcomes and outcomes[-1] == "done"


# -- boards broken on purpose ---------------------------------------------------------------------

class _Rewriting:
    """The board's end of the host link, with what the board sends (up) or receives (down) rewritten."""

    def __init__(self, inner, up=None, down=None):
        self.inner, self._up, self._down = inner, up, down

    async def send_frame(self, frame):
        if self._up is not None:
            try:
                frame = self._up(frame)
            except RemoteProtocolError:
                pass
        await self.inner.send_frame(frame)

    async def receive_frame(self):
        frame = await self.inner.receive_frame()
        return self._down(frame) if self._down is not None else frame

    async def aclose(self):
        await self.inner.aclose()

    def buffer_used(self):
        return self.inner.buffer_used()


def _rewrite_message(kind, fn):
    def up(frame):
        msg = decode(frame)
        return encode(fn(msg)) if isinstance(msg, kind) else frame
    return up


def _wrong_run_id(msg):
    return RunComplete(run_id=msg.run_id + 1, n_samples=msg.n_samples, events_in=msg.events_in,
                       events_out=msg.events_out, dropped=dict(msg.dropped))


def _error_without_in_reply_to(frame):
    from neurosplit.actors.conformance._frames import rebuild

    msg = decode(frame)
    return rebuild(frame, lambda h, d: h["f"].pop("in_reply_to")) if isinstance(msg, Error) else frame


def _fix_the_crc(frame):
    """A board that skips the CRC check: whatever the body, it is taken as sent."""
    import struct
    import zlib

    if len(frame) >= 8:
        length = struct.unpack_from("<I", frame)[0]
        if length == len(frame) - 8:
            return frame[:4] + struct.pack("<I", zlib.crc32(frame[8:])) + frame[8:]
    return frame


RUN_STREAMS = {"exchange.run-spikes", "exchange.observables", "exchange.learning", "ordering.duplicate-run-id",
               "ordering.horizon-back", "ordering.interleaved-runs", "ordering.duplicate-train-step",
               "flow.slow-reader", "training.step", "exchange.shutdown-while-learning", "exchange.shutdown-cuts-a-run",
               "exchange.refused-learning-run"}
ERRORS_NAMING_THE_REQUEST = {"handshake.unknown-version-frame", "handshake.unknown-version-hello",
                             "handshake.wrong-role",
                             "handshake.hello-first", "ordering.duplicate-run-id", "ordering.unknown-run",
                             "ordering.duplicate-train-step", "exchange.wrong-direction", "exchange.shutdown-cuts-a-run",
                             "exchange.refused-learning-run"} | {
    n for n in ALL if n.startswith("malformed.")}


@pytest.mark.parametrize("broken, fails, mentions", [
    (lambda t: _Rewriting(t, up=_rewrite_message(RunComplete, _wrong_run_id)), RUN_STREAMS,
     {"exchange.run-spikes": "(run_complete).run_id: expected 0, received 1"}),
    (lambda t: _Rewriting(t, up=_error_without_in_reply_to), ERRORS_NAMING_THE_REQUEST,
     {"malformed.bad-crc": "(error).in_reply_to: expected 'frame', received ''"}),
    (lambda t: _Rewriting(t, down=_fix_the_crc), {"malformed.bad-crc"},
     {"malformed.bad-crc": "expected error, received weights"}),
], ids=["wrong-run-id", "drops-a-field", "accepts-a-bad-crc"])
async def test_a_broken_board_fails_exactly_the_scenarios_that_cover_its_fault(broken, fails, mentions, tmp_path):
    target = InProcessTarget(chip_seed=2, session_map=SESSION, wrap_board=broken)
    with trio.fail_after(600):  # a hang guard: the first run may compile kernels
        results = await run_suite(target, select("not reliable"))
    got = _by_outcome(results)
    assert got[FAIL] == fails, table(results)
    by_name = {r.name: r for r in results}
    for name, text in mentions.items():
        assert text in by_name[name].text, by_name[name].text
    # the report and the JUnit XML name the divergence
    rep = report(results, target.as_dict())
    assert rep["failed"] == len(fails) and rep["passed"] + rep["failed"] + rep["not_applicable"] == len(results)
    first = next(s for s in rep["scenarios"] if s["name"] == sorted(mentions)[0])
    assert first["result"] == FAIL and text in first["divergence"]["text"]
    import xml.etree.ElementTree as ET

    root = ET.fromstring(junit_xml(results, target=target.description))
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [r.name for r in results]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failed) == fails and text in failed[sorted(mentions)[0]].get("message")
    assert {c.get("name") for c in cases if c.find("skipped") is not None} == got[NOT_APPLICABLE]
    assert root.find("testsuite").get("failures") == str(len(fails))


def _wrong_sequence_numbers(frame):
    """A board whose reliable link numbers its data frames one too high."""
    from neurosplit.protocol import LinkFrame

    msg = decode(frame)
    if isinstance(msg, LinkFrame) and msg.seq >= 0:
        return encode(LinkFrame(seq=msg.seq + 1, ack=msg.ack, payload=msg.payload, sack=msg.sack))
    return frame


async def test_a_board_with_wrong_sequence_numbers_fails_the_reliable_link_scenarios():
    from neurosplit.actors import ReliableConfig

    target = InProcessTarget(chip_seed=2, session_map=SESSION,
                             wrap_board_wire=lambda t: _Rewriting(t, up=_wrong_sequence_numbers),
                             reliable_config=ReliableConfig(rto_s=0.01, max_rto_s=0.05, link_timeout_s=1.0))
    with trio.fail_after(600):
        results = await run_suite(target, select("reliable,exchange,handshake.hello"))
    got = _by_outcome(results)
    assert got[FAIL] == RELIABLE, table(results)
    for r in results:
        if r.outcome == FAIL:  # not even the board's Hello got through: its frames never closed the gap
            d = r.divergence
            assert (d.index, d.expected, d.received) == (0, "hello", None), r.text
            assert "LinkDownError" in r.text and "no acknowledgement" in r.text, r.text


# -- the command line -----------------------------------------------------------------------------

def test_the_command_writes_table_json_and_junit(tmp_path, capsys):
    import json
    import xml.etree.ElementTree as ET

    from neurosplit.host.cli import main

    rep, junit = tmp_path / "c.json", tmp_path / "c.xml"
    assert main(["conformance", "-k", "handshake,malformed.bad-crc,session", "--chip-seed", "4", "--report", str(rep),
                 "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert "handshake.wrong-role" in out and "pass" in out and "session.reconnect" in out and "n/a" in out
    data = json.loads(rep.read_text())
    assert data["command"] == "conformance" and data["failed"] == 0 and data["target"]["chip_seed"] == 4
    assert {s["name"] for s in data["scenarios"]} == {s.name for s in select("handshake,malformed.bad-crc,session")}
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(cases) == len(data["scenarios"])
    assert main(["conformance", "--list", "-k", "flow"]) == 0
    assert "flow.slow-reader" in capsys.readouterr().out
    assert main(["conformance", "-k", "no-such-scenario"]) == 2


def test_the_command_exits_non_zero_when_a_scenario_fails(monkeypatch, capsys):
    from neurosplit.chip import AnalogCore
    from neurosplit.host.cli import main

    real = AnalogCore.read_weights

    def off_by_one(self, msg):  # a board that reads back what it was not told to hold
        w = real(self, msg)
        return Weights(request_id=w.request_id, row=w.row, column=w.column, weight=(w.weight + 1) % 64)

    monkeypatch.setattr(AnalogCore, "read_weights", off_by_one)
    assert main(["conformance", "--server", "-k", "exchange.configure-weights,handshake.hello"]) == 1
    out = capsys.readouterr().out
    assert "exchange.configure-weights" in out and "fail" in out and "(weights).weight[0,0]" in out


def test_docs_name_every_scenario():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    section = text[text.index("## Conformance suite"):]
    assert [n for n in sorted(ALL) if f"`{n}`" not in section] == []


def test_the_command_against_chip_serve_in_another_process(capsys):
    import subprocess
    import sys

    from neurosplit.host.cli import main

    serve = [sys.executable, "-c", "import sys; from neurosplit.host.cli import main; sys.exit(main())",
             "chip", "serve", "--listen", "127.0.0.1:0", "--chip-seed", "6", "--log-level", "error"]
    proc = subprocess.Popen(serve, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving chip 6 on"), line
        address = line.split(" on ")[1].split()[0]
        assert main(["conformance", "--board", address, "--chip-seed", "6", "-k",
                     "handshake,session,malformed.oversize,exchange.run-spikes"]) == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)
    out = capsys.readouterr().out
    assert f"board server at {address}" in out and "session.reconnect" in out and "0 failed" in out
