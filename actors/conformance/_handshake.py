"""Handshake and version negotiation: what a board says to a host, and to peers it must refuse."""

from __future__ import annotations

from ...protocol import PROTOCOL_VERSION, Hello, RunRequest, encode
from ..testing import Divergence, ExchangeFailed
from ._common import expect_error
from ._frames import rebuild
from ._scenario import scenario
from ._target import SocketTarget


def _board_hello(target) -> Hello:
    chip_id = -1 if target.chip_seed is None else target.chip_seed
    return Hello(protocol_version=PROTOCOL_VERSION, role="board", chip_id=chip_id)


async def _still_greets(target, session) -> None:
    """After a refusal the board still serves a proper host: on the same link in this process; on
    a server the refused connection is closed, and a new one is served."""
    if isinstance(target, SocketTarget):
        await session.peer.expect_end()
        async with target.session() as again:
            if again.hello.role != "board":
                raise ExchangeFailed(Divergence(0, "hello", "hello", "role", "board", again.hello.role))
        return
    await session.peer.hello(target.session_map)


@scenario("handshake.hello")
async def hello(target):
    """A host's Hello (version 1, role host, a session map) is answered by exactly one Hello of
    role board that speaks the same version and names the board's die as chip_id. Every session
    starts this way; a host uses chip_id to tell which die it drives (a board's results depend on it)."""
    async with target.session(hello=False) as s:
        await s.peer.send(Hello(protocol_version=PROTOCOL_VERSION, role="host", session=target.session_map))
        want = _board_hello(target)
        ignore = {"software", "session"} | ({"chip_id"} if target.chip_seed is None else set())
        got = await s.peer.expect(want, ignore=frozenset(ignore))
        if got.session:
            raise ExchangeFailed(Divergence(0, "hello", "hello", "session", {}, dict(got.session),
                                            note="only a host's Hello carries a session"))
    return {"chip_id": got.chip_id, "software": got.software}


@scenario("handshake.unknown-version-frame")
async def unknown_version_frame(target):
    """A first frame whose header says protocol version 2 is refused with an Error (fault remote)
    naming frame.v, because the version is checked before anything else in the header: a later
    version may change the rest. The board then still serves a host that speaks version 1."""
    frame = rebuild(encode(Hello(protocol_version=PROTOCOL_VERSION, role="host", session=target.session_map)),
                    lambda h, d: h.update(v=2))
    async with target.session(hello=False) as s:
        await s.peer.send_frame(frame)
        await expect_error(s.peer, mentions="frame.v: protocol version 2 is not spoken here",
                           in_reply_to=("frame", "hello"))
        await _still_greets(target, s)


@scenario("handshake.unknown-version-hello")
async def unknown_version_hello(target):
    """A version-1 frame whose Hello claims protocol_version 2 is refused with an Error naming
    hello.protocol_version: a host that says it speaks another version must not be served as if
    it spoke this one. The board then still serves a host that speaks version 1."""
    async with target.session(hello=False) as s:
        await s.peer.send(Hello(protocol_version=2, role="host", session=target.session_map))
        await expect_error(s.peer, mentions="hello.protocol_version: 2 is not spoken here", in_reply_to="hello")
        await _still_greets(target, s)


@scenario("handshake.wrong-role")
async def wrong_role(target):
    """A Hello whose role is not host (here: board) is refused with an Error naming hello.role: a
    board serves hosts, and two boards wired to each other must find out at once, not exchange
    requests neither understands. The board then still serves a proper host."""
    async with target.session(hello=False) as s:
        await s.peer.send(Hello(protocol_version=PROTOCOL_VERSION, role="board"))
        await expect_error(s.peer, mentions="hello.role", in_reply_to="hello")
        await _still_greets(target, s)


@scenario("handshake.hello-first")
async def hello_first(target):
    """A request sent before any Hello (a RunRequest) is refused with an Error saying a host must
    open with hello, and is not served: the Hello carries the version and the session the board
    is built for, so nothing may run before it. The board then still serves a proper host."""
    async with target.session(hello=False) as s:
        await s.peer.send(RunRequest(run_id=0, n_samples=1, sample_ticks=1000))
        await expect_error(s.peer, mentions="run_request: a host must open with hello",
                           in_reply_to=("run_request", "hello"))
        await _still_greets(target, s)
