"""What the conformance suite runs against: a board in this process, or a board server.

A target opens sessions: each a fresh board (in this process: a new ``open_board`` on an
in-process host link; on a server: a new TCP connection, which the server answers with a new
board) with a ScriptedPeer on the host's end. Scenarios drive the peer directly, frame by frame.
Where a target cannot do what a scenario needs (fault injection under a remote board's host link,
reconnecting to a board that has no server), it says so and the scenario is not applicable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Mapping

import trio

from ...protocol import DEFAULT_MAX_FRAME_BYTES, PROTOCOL_VERSION, Error, Hello, Shutdown
from .._board import BoardServer, session_config
from .._faults import FaultSpec, fault_wrapper
from .._reliable import ReliableConfig, ReliableStats, reliable_wrapper
from .._socket import StreamTransport, parse_address
from .._system import Board, open_board
from .._transport import FrameTransport, memory_transport_pair
from ..testing import Divergence, ExchangeFailed, ScriptedPeer, StreamEnded

__all__ = ["Target", "InProcessTarget", "SocketTarget", "Session", "NotApplicable", "serving_target",
           "DEFAULT_SESSION", "REPLY_S"]

REPLY_S = 120.0
"""How long a scenario waits for any one reply: generous, since the first run of a fresh install
compiles the numba kernels (tens of seconds on a busy machine). A correct board answers in
milliseconds; a broken one that never answers costs this much."""

DEFAULT_SESSION = {"seed": 0, "calibrate": 0}
"""What the suite's Hello asks of a board: no calibration (seconds per configuration), seed 0."""


class NotApplicable(Exception):
    """The scenario cannot run against this target; the text says why."""


@dataclass
class Session:
    """One host session: the peer on the host's end, the board's Hello, and (in this process)
    the board itself, for checks from the inside (link counters, queue depths)."""

    peer: ScriptedPeer
    target: "Target"
    hello: Hello | None = None
    board: Board | None = None
    reliable: dict[str, ReliableStats] | None = None
    faults: object = None


class Target(ABC):
    """Base of the targets. ``description``: for the report. ``chip_seed``: the board's die, if
    known beforehand. ``byte_stream``: frames travel on a byte stream (a socket), where a frame's
    length is what its header says. ``injects_faults``: fault injection and reliable delivery can
    be put under the host link. ``reconnects``: sessions are connections to a server, which must
    serve the next host after one goes."""

    description = "target"
    chip_seed: int | None = None
    byte_stream = False
    injects_faults = False
    reconnects = False
    session_map: dict[str, int] = DEFAULT_SESSION

    @abstractmethod
    def session(self, *, hello: bool = True, faults: Mapping[str, FaultSpec] | None = None,
                reliable: ReliableConfig | None = None) -> "AsyncIterator[Session]":
        """An async context manager: one host session on this target (the peer says Hello first
        unless ``hello`` is False; faults and reliable delivery under the host link where the target
        injects faults)."""

    def as_dict(self) -> dict:
        return {"description": self.description, "chip_seed": self.chip_seed, "byte_stream": self.byte_stream,
                "injects_faults": self.injects_faults, "reconnects": self.reconnects,
                "session": dict(self.session_map)}


async def _close(peer: ScriptedPeer, timeout_s: float = 10.0) -> None:
    """End a session politely: Shutdown, then wait for the board to close the link."""
    with trio.move_on_after(timeout_s):
        try:
            if not peer.closed:
                await peer.send(Shutdown(reason="conformance scenario done"))
            while True:
                await peer.receive(timeout_s)
        except (StreamEnded, ExchangeFailed, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass


@dataclass
class InProcessTarget(Target):
    """A board in this process (``open_board``) on an in-process host link, one per session.

    chip_seed: the die. session_map: what the Hello asks (the board is built from it, as a
    server would). link_buffer: frames per direction of the host link. wrap_board: a function
    given the board's end of the host link (after any fault injection and reliable delivery)
    that returns the transport the board uses instead: the hook for boards broken on purpose.
    wrap_board_wire: the same, but under the board's end of reliable delivery (it sees the
    LinkFrame envelopes on the wire), for boards whose link layer is broken. reliable_config:
    the reliable delivery the reliable.* scenarios use (default: theirs).
    """

    chip_seed: int = 0
    session_map: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SESSION))
    link_buffer: int = 4
    wrap_board: Callable[[FrameTransport], FrameTransport] | None = None
    wrap_board_wire: Callable[[FrameTransport], FrameTransport] | None = None
    reliable_config: ReliableConfig | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES

    injects_faults = True

    @property
    def description(self) -> str:
        return f"in-process board (chip {self.chip_seed})"

    @asynccontextmanager
    async def session(self, *, hello: bool = True, faults: Mapping[str, FaultSpec] | None = None,
                      reliable: ReliableConfig | None = None) -> AsyncIterator[Session]:
        config = session_config(self.chip_seed, self.session_map)
        host_side, board_side = memory_transport_pair(self.link_buffer)
        fault_counts = stats = None
        if faults and "host" in faults:
            wrap, fault_counts = fault_wrapper("host", faults["host"], seed=config.seed)
            host_side, board_side = wrap(host_side, board_side)
        if self.wrap_board_wire is not None:
            board_side = self.wrap_board_wire(board_side)
        if reliable is not None:
            wrap, stats = reliable_wrapper(reliable)
            host_side, board_side = wrap(host_side, board_side)
        if self.wrap_board is not None:
            board_side = self.wrap_board(board_side)
        peer = ScriptedPeer(host_side, name="host", max_frame_bytes=self.max_frame_bytes, timeout_s=REPLY_S)
        with trio.CancelScope() as scope:
            async with open_board(config, board_side) as board:
                session = Session(peer, self, board=board, reliable=stats, faults=fault_counts)
                if hello:
                    session.hello = await peer.hello(self.session_map)
                try:
                    yield session
                finally:
                    with trio.CancelScope(shield=True):
                        await _close(peer)
                    scope.cancel()


@dataclass
class SocketTarget(Target):
    """A board server (``neurosplit chip serve``, or a BoardServer in this process) at ``address``.

    chip_seed: the board's die if known (else taken from its Hello). server: the BoardServer when
    it runs in this process (for checks of its session records). busy_wait_s: how long a new
    session retries while the server still serves the previous host.
    """

    address: str = "127.0.0.1:7557"
    chip_seed: int | None = None
    session_map: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SESSION))
    server: BoardServer | None = None
    busy_wait_s: float = 10.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES

    byte_stream = True
    reconnects = True

    @property
    def description(self) -> str:
        where = "board server in this process" if self.server is not None else "board server"
        return f"{where} at {self.address}"

    async def connect(self) -> ScriptedPeer:
        """A new connection, with no hello said yet."""
        host, port = parse_address(self.address)
        stream = await trio.open_tcp_stream(host, port)
        return ScriptedPeer(StreamTransport(stream, self.max_frame_bytes), name="host",
                            max_frame_bytes=self.max_frame_bytes, timeout_s=REPLY_S)

    async def connect_and_greet(self) -> tuple[ScriptedPeer, Hello]:
        """A new connection whose Hello the board has answered; retries while the server is still
        busy with the previous host (it notices a host's departure a moment after the host)."""
        deadline = trio.current_time() + self.busy_wait_s
        while True:
            peer = await self.connect()
            try:
                await peer.send(Hello(protocol_version=PROTOCOL_VERSION, role="host", software="neurosplit-peer",
                                      session=self.session_map))
                reply = await peer.receive()
            except BaseException:
                with trio.CancelScope(shield=True):
                    await peer.aclose()
                raise
            if isinstance(reply, Hello):
                if self.chip_seed is None:
                    self.chip_seed = reply.chip_id
                return peer, reply
            await peer.aclose()
            if not (isinstance(reply, Error) and "busy" in reply.message and trio.current_time() < deadline):
                raise ExchangeFailed(_refused(reply))
            await trio.sleep(0.05)

    @asynccontextmanager
    async def session(self, *, hello: bool = True, faults: Mapping[str, FaultSpec] | None = None,
                      reliable: ReliableConfig | None = None) -> AsyncIterator[Session]:
        if faults or reliable is not None:
            raise NotApplicable("fault injection and reliable delivery go under the host link of a board in this "
                                "process; a board server's end of its socket is out of reach")
        if hello:
            peer, greeting = await self.connect_and_greet()
        else:
            peer, greeting = await self.connect(), None
        try:
            yield Session(peer, self, hello=greeting)
        finally:
            with trio.CancelScope(shield=True):
                await _close(peer)
                await peer.aclose()


def _refused(reply) -> Divergence:
    return Divergence(0, "hello", reply.TAG, None, None, reply, note="the board refused the session")


@asynccontextmanager
async def serving_target(chip_seed: int = 0, *, session_map: Mapping[str, int] | None = None,
                         listen: str = "127.0.0.1") -> AsyncIterator[SocketTarget]:
    """A BoardServer on an ephemeral port in this process, as a SocketTarget; stopped on exit."""
    server = BoardServer(chip_seed, handshake_timeout_s=5.0)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, listen, 0)
        port = listeners[0].socket.getsockname()[1]
        yield SocketTarget(address=f"{listen}:{port}", chip_seed=chip_seed,
                           session_map=dict(session_map or DEFAULT_SESSION), server=server)
        nursery.cancel_scope.cancel()
