"""Replay: the host side of a recording, sent again to a fresh board, and the board's replies compared.

``replay`` takes the host link's down frames of a recording (what the host sent: Hello,
configuration, weights, runs, learning steps, Shutdown) and sends them, byte for byte, to a new
board: in this process (built from the recording's chip seed and the session its Hello asked
for) or the board server at ``HOST:PORT``. It reads the board's replies and compares them with
the up frames of the recording, message by message (actors/testing/_diff.py), and reports the
first divergence: which message, which field, expected and received values.

Pacing. A host sends some frames only after it has seen replies (the next batch after the last
result). Replay keeps that order: a down frame goes once every up frame recorded before it has
come back. The board cannot need the later down frames to produce those, so this never waits
for ever on a deterministic board, and the board sees its input in the recorded order.

Ordering. With several runs in flight (the host's credit window), replies of different runs may
interleave differently from one run to the next; a deterministic board produces each run's
replies, and each request's reply, in one order. So replies are matched per key (the run id, or
the request id, or neither: Hello, Error without a run) in the order the recording has them.

Ignored fields: none by default, since no message carries a wall-clock value (times on the wire
are emulated ticks); ``ignore`` names fields to leave out (``hello.software`` for another board
implementation), as for message_divergence.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import trio

from ...protocol import Message, RemoteProtocolError, Shutdown, decode
from .._board import session_config
from .._link import Link
from .._socket import StreamTransport, parse_address
from .._system import SystemConfig, open_board
from .._transport import memory_transport_pair
from ._diff import Divergence, message_divergence
from ._harness import ScriptEnd
from ._peer import ExchangeFailed, ScriptedPeer, StreamEnded
from ._recording import FrameRecord, Recording, read_recording

__all__ = ["replay", "ReplayReport", "reply_key", "replay_config"]


@dataclass
class ReplayReport:
    """What a replay found. divergence: the first difference (None: the board answered as
    recorded); record_index: that message's position among all records of the recording (-1 when
    none or unknown). sent: down frames sent; received: up messages received; compared: replies
    that matched their recorded counterpart; expected: up frames in the recording's host link.
    wall_s: the replay's wall seconds; recorded_wall_s: the recorded host link's span.
    board: where it ran; notes: anything that qualifies the verdict."""

    divergence: Divergence | None
    sent: int
    received: int
    compared: int
    expected: int
    wall_s: float
    recorded_wall_s: float
    board: str
    record_index: int = -1
    ignore: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.divergence is None

    def verdict(self) -> str:
        """One line: no divergence, or where the first one is."""
        if self.ok:
            return (f"no divergence: {self.compared} of {self.expected} replies as recorded "
                    f"({self.sent} frames sent, {self.wall_s:.2f} s, recorded {self.recorded_wall_s:.2f} s)")
        where = f" (record {self.record_index})" if self.record_index >= 0 else ""
        return f"divergence at {self.divergence}{where}; {self.compared} replies matched before it"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "divergence": None if self.divergence is None else self.divergence.as_dict(),
                "record_index": self.record_index, "sent": self.sent, "received": self.received,
                "compared": self.compared, "expected": self.expected, "wall_s": self.wall_s,
                "recorded_wall_s": self.recorded_wall_s, "board": self.board, "ignore": sorted(self.ignore),
                "notes": list(self.notes)}


def reply_key(msg: Message) -> tuple:
    """Replies with the same key come in one order from a deterministic board: per run, per request."""
    run_id = getattr(msg, "run_id", None)
    if run_id is not None and run_id >= 0:
        return ("run", run_id)
    request_id = getattr(msg, "request_id", None)
    if request_id is not None:
        return ("request", request_id)
    return ("other",)


def replay_config(records: Sequence[FrameRecord], meta: dict | None = None) -> SystemConfig:
    """The configuration of a board like the recorded one: its die from the board's recorded
    Hello (else meta ``chip_seed``), everything else from the session the host's Hello asked for."""
    meta = meta or {}
    chip_seed, session = meta.get("chip_seed") or 0, {}  # null in a host-only recording's header
    for r in records:
        if r.link != "host" or r.tag != "hello":
            continue
        msg = r.message()
        if r.direction == "down" and not session:
            session = dict(msg.session)
        elif r.direction == "up":
            chip_seed = msg.chip_id
            break
    return session_config(int(chip_seed), session)


async def replay(recording: str | Path | Recording | Sequence[FrameRecord],
                 board: str | SystemConfig | None = None, *, ignore: frozenset[str] = frozenset(),
                 timeout_s: float = 60.0, link: str = "host") -> ReplayReport:
    """Send the host side of ``recording`` to a fresh board and compare its replies with the recording.

    recording: a ``.nsrec`` path, a Recording, or FrameRecords. board: None (a board in this
    process, configured as the recorded one, see replay_config), a SystemConfig (a board in this
    process with that configuration) or ``"HOST:PORT"`` of a board server. ignore: fields left
    out of the comparison (message_divergence). timeout_s: longest the board may stay silent
    while a reply is awaited (a divergence, with a note, when it does).
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    if isinstance(recording, (str, Path)):
        recording = read_recording(recording)
    meta, records = ((recording.meta, recording.records) if isinstance(recording, Recording)
                     else ({}, list(recording)))
    exchange = [(i, r) for i, r in enumerate(records) if r.link == link]
    if not any(r.direction == "down" for _, r in exchange):
        raise ValueError(f"the recording holds no down frames on the {link!r} link: nothing to replay")
    ignore = frozenset(ignore)
    t0 = time.perf_counter()
    if isinstance(board, str):
        host, port = parse_address(board)
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError as exc:
            raise ValueError(f"no board at {board}: {exc}") from None
        transport = StreamTransport(stream)
        try:
            report = await _exchange(ScriptedPeer(transport, name=f"board at {board}"), exchange, ignore, timeout_s)
        finally:
            with trio.CancelScope(shield=True):
                await transport.aclose()
        report.board = board
    else:
        config = board if isinstance(board, SystemConfig) else replay_config(records, meta)
        a, b = memory_transport_pair(config.link_buffer)
        a = ScriptEnd(a)
        host_link = Link(link, config.link_buffer, transports=(a, b), model=config.models().get(link))
        with trio.CancelScope() as scope:
            async with open_board(config, host_link.b):
                report = await _exchange(ScriptedPeer(a, name="board"), exchange, ignore, timeout_s)
                scope.cancel()  # a replay that diverged early leaves the board running
        report.board = f"in-process (chip {config.chip_seed})"
    report.wall_s = time.perf_counter() - t0
    faults = meta.get("faults") or {}
    if any(name != "host" for name in faults):
        report.notes.append(f"recorded with faults on {', '.join(sorted(faults))}; the replay board has none")
    return report


class _Expected:
    """The recorded replies, queued per key, and how far the matching has come."""

    def __init__(self, ups: list[tuple[int, int, Message]]) -> None:
        self.by_key: dict[tuple, deque] = defaultdict(deque)
        for pos, rec_index, msg in ups:
            self.by_key[reply_key(msg)].append((pos, rec_index, msg))
        self.matched = [False] * len(ups)
        self.prefix = 0  # up frames 0..prefix-1 have all been matched
        self.progress = trio.Event()

    def match(self, pos: int) -> None:
        self.matched[pos] = True
        while self.prefix < len(self.matched) and self.matched[self.prefix]:
            self.prefix += 1
        self.progress.set()
        self.progress = trio.Event()

    def first_missing(self) -> tuple[int, int, Message] | None:
        """(position, record index, message) of the earliest recorded reply not yet come."""
        return min((q[0] for q in self.by_key.values() if q), key=lambda entry: entry[0], default=None)


async def _exchange(peer: ScriptedPeer, exchange: list[tuple[int, FrameRecord]], ignore: frozenset[str],
                    timeout_s: float) -> ReplayReport:
    downs, ups = [], []
    for rec_index, r in exchange:
        if r.direction == "down":
            downs.append((len(ups), r.frame))  # the up frames recorded before it must come back first
        else:
            try:
                ups.append((len(ups), rec_index, r.message()))
            except RemoteProtocolError as exc:
                raise ValueError(f"record {rec_index} (host link, up) does not decode: {exc}") from None
    ends = _ends_with_shutdown(downs)
    expected = _Expected(ups)
    found: list[tuple[int, Divergence, int]] = []  # (position among the replies, divergence, record index)
    state = {"sent": 0, "received": 0, "compared": 0, "senders_done": False}
    recorded = [r.wall_ns for _, r in exchange]

    async def send_all(cancel: trio.CancelScope) -> None:
        for need, frame in downs:
            while expected.prefix < need:
                await expected.progress.wait()
            try:
                await peer.send_frame(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break  # the board went; the receiver says what was missing
            state["sent"] += 1
        state["senders_done"] = True
        expected.progress.set()

    async def receive_all(cancel: trio.CancelScope) -> None:
        # A divergence found, the replay goes on until every reply recorded before it has come, so
        # that the one reported is the first in the recording's order, whatever the arrival order.
        while not (found and expected.prefix > min(pos for pos, _, _ in found)):
            if expected.prefix == len(ups) and state["senders_done"] and not ends:
                break  # no Shutdown recorded: what the board sends after the recording ended is not checked
            try:
                msg = await peer.receive(timeout_s)
            except ExchangeFailed as exc:  # StreamEnded too: the board closed the link
                missing = expected.first_missing()
                if missing is None:
                    if not isinstance(exc, StreamEnded):
                        found.append((len(ups), dataclasses.replace(exc.divergence, index=len(ups)), -1))
                    break
                pos, rec_index, want = missing
                d = dataclasses.replace(exc.divergence, index=pos, expected=want.TAG, expected_value=want)
                found.append((pos, d, rec_index))
                break
            state["received"] += 1
            key = reply_key(msg)
            queue = expected.by_key.get(key)
            if not queue:
                pos = expected.prefix
                found.append((pos, Divergence(pos, None, msg.TAG, None, None, msg,
                                              note=f"the recording has no further reply of {_key_text(key)}"), -1))
                break
            pos, rec_index, want = queue.popleft()
            d = message_divergence(want, msg, ignore=ignore)
            if d is not None:
                found.append((pos, dataclasses.replace(d, index=pos), rec_index))
            else:
                state["compared"] += 1
            expected.match(pos)  # answered, as recorded or not: the frames that waited for it may go
        cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_all, nursery.cancel_scope)
        nursery.start_soon(receive_all, nursery.cancel_scope)
    if not found and state["sent"] < len(downs):
        found.append((len(ups), Divergence(len(ups), None, None, None, None, None,
                                           note=f"the board closed the link with {len(downs) - state['sent']} "
                                                f"recorded frame(s) still to send"), -1))
    found.sort(key=lambda item: item[0])
    _, divergence, rec_index = found[0] if found else (0, None, -1)
    notes = [] if ends else ["the recording ends without a Shutdown: replies after its last frame were not checked"]
    span = (max(recorded) - min(recorded)) / 1e9 if recorded else 0.0
    return ReplayReport(divergence, state["sent"], state["received"], state["compared"], len(ups), math.nan, span,
                        "", rec_index, ignore, notes)


def _key_text(key: tuple) -> str:
    return f"{key[0]} {key[1]}" if len(key) > 1 else "this kind (no run or request id)"


def _ends_with_shutdown(downs: list[tuple[int, bytes]]) -> bool:
    if not downs:
        return False
    try:
        return isinstance(decode(downs[-1][1]), Shutdown)
    except RemoteProtocolError:
        return False
