"""A board in its own process: the server that runs it, and the host's connection to it.

The server (``BoardServer``) accepts one host at a time on a TCP listener. Each connection must
open with the host's Hello; the server checks version and role, refuses a second host while one
is connected (an Error, then close), builds a fresh board (router, core, PPU) from its own chip
seed and the session the Hello asks for (``session_config``), and hands the Hello on to the
router, which answers it as it does in one process. The host link's bytes are therefore the same
as in one process. When the host disconnects, or after its Shutdown, the board is dropped and the
next host gets a new one: nothing of one session reaches the next.

The host side (``connect_board``) yields a ``RemoteSystem`` whose ``host`` is the same HostActor
jobs use in one process. A board that closes the connection, or sends nothing for ``timeout_s``
while the host waits for a reply, raises BoardLost naming the last step the board confirmed.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Mapping

import structlog
import trio

from ..chip import CoreConfig
from ..chip._mismatch import MismatchSpec
from ..protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Error,
    Hello,
    NeurosplitError,
    RemoteProtocolError,
    decode,
    encode,
)
from ._host import HostActor
from ._link import Link
from ._ppu import PpuConfig
from ._profile import active_profiler
from ._socket import StreamTransport, parse_address, remote_link
from ._system import LINK_NAMES, SystemConfig, first_actor_failure, open_board

__all__ = ["BoardServer", "BoardLost", "RemoteSystem", "connect_board", "session_config", "SESSION_DEFAULTS"]

SESSION_DEFAULTS = {"seed": 0, "ideal_chip": 0, "calibrate": 1, "ppu_fixed_point_bits": 0, "link_buffer": 4}
"""What a host may ask of a board in its Hello's session map, and the value when it does not."""


def session_config(chip_seed: int, session: Mapping[str, int], *, window: int = 4) -> SystemConfig:
    """The whole configuration of a board with die ``chip_seed`` serving ``session``.

    The die is the board's (its server's ``--chip-seed``); everything else that shapes results
    (seed of trial noise and learning, ideal chip, calibration, PPU arithmetic) comes from the
    host, so a job gives the same bits on a board in its own process as in one process.
    """
    unknown = sorted(set(session) - set(SESSION_DEFAULTS))
    if unknown:
        raise ValueError(f"session keys {unknown} are unknown, expected some of {sorted(SESSION_DEFAULTS)}")
    s = {**SESSION_DEFAULTS, **session}
    spec = MismatchSpec.ideal() if s["ideal_chip"] else MismatchSpec()
    return SystemConfig(seed=s["seed"], chip_seed=chip_seed, link_buffer=s["link_buffer"], window=window,
                        core=CoreConfig(mismatch=spec, calibrate=bool(s["calibrate"])),
                        ppu=PpuConfig(fixed_point_bits=s["ppu_fixed_point_bits"]), session=dict(session))


class BoardLost(NeurosplitError):
    """The board closed the connection, or stopped answering, while the host needed it."""


# -- the server ---------------------------------------------------------------------------------

class _SessionTransport:
    """The server's socket as the board sees it: the Hello the server already read comes first;
    closing it only ends the session (the server closes the socket, after a last Error if any)."""

    def __init__(self, transport: StreamTransport, first_frame: bytes) -> None:
        self.transport = transport
        self._first: bytes | None = first_frame
        self.ended = trio.Event()
        self.ended_by = ""  # "board" (the router stopped: the host's Shutdown) or "host" (it went)
        self.error: RemoteProtocolError | None = None  # what broke the stream, answered by the server

    async def send_frame(self, frame: bytes) -> None:
        await self.transport.send_frame(frame)

    async def receive_frame(self) -> bytes:
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        try:
            return await self.transport.receive_frame()
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            self.ended_by = self.ended_by or "host"
            self.ended.set()
            raise
        except RemoteProtocolError as exc:
            # A length beyond the maximum, or a close inside a frame: the stream cannot be
            # resynchronised. The session ends; the server answers the Error (a board being torn
            # down could not be relied on to get it out first) and closes.
            self.error = exc
            self.ended_by = self.ended_by or "host"
            self.ended.set()
            raise trio.EndOfChannel from exc

    async def aclose(self) -> None:
        self.ended_by = self.ended_by or "board"
        self.ended.set()

    def buffer_used(self) -> int:
        return self.transport.buffer_used()


@dataclass
class SessionRecord:
    """What the server keeps of one host connection (``BoardServer.sessions``)."""

    peer: str
    outcome: str  # "done" (Shutdown), "disconnected", "failed: ...", "refused: ..."
    session: dict = field(default_factory=dict)
    traffic: dict = field(default_factory=dict)
    wall_s: float = 0.0


class BoardServer:
    """One board behind a TCP listener, one host at a time, a fresh board per host.

    chip_seed: the die. make_config(chip_seed, session) builds each session's configuration
    (default ``session_config``). handshake_timeout_s: how long a new connection may take to say
    hello. ``sessions`` records each connection, refusals included. recorder(session index, peer,
    session map of the host's Hello), if given, makes a frame recorder per admitted session (an actors.testing.FrameRecorder: its
    ``end_wrapper``, ``wrap`` and ``close`` are used) that records the board's end of the host link
    and every link of the board.
    """

    def __init__(self, chip_seed: int, *, make_config: Callable[[int, Mapping[str, int]], SystemConfig] = session_config,
                 handshake_timeout_s: float = 10.0, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 recorder: Callable[[int, str, dict], object] | None = None) -> None:
        if handshake_timeout_s <= 0:
            raise ValueError(f"handshake_timeout_s must be > 0, got {handshake_timeout_s}")
        self.chip_seed = chip_seed
        self.make_config = make_config
        self.handshake_timeout_s = handshake_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self.recorder = recorder
        self.host: str | None = None  # peer address of the host being served
        self.sessions: list[SessionRecord] = []
        self.log = structlog.get_logger().bind(actor="board_server", chip_seed=chip_seed)

    async def serve(self, listen_host: str = "127.0.0.1", port: int = 0, *,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; ``task_status.started`` gets the listeners (port 0:
        an ephemeral port, read it from ``listeners[0].socket.getsockname()``)."""
        await trio.serve_tcp(self.handle, port, host=listen_host, task_status=task_status)

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection: handshake, then a whole session (or a refusal)."""
        peer = _peer_name(stream)
        transport = StreamTransport(stream, self.max_frame_bytes)
        try:
            first, hello = await self._read_hello(transport, peer)
            if hello is None:
                return
            config = self._admit(hello, peer)
            if isinstance(config, str):
                await self._refuse(transport, peer, config, hello.session)
                return
            self.host = peer
            try:
                await self._session(transport, first, config, peer)
            finally:
                self.host = None
        finally:
            with trio.CancelScope(shield=True):
                await transport.aclose()

    async def _read_hello(self, transport: StreamTransport, peer: str) -> tuple[bytes, Hello | None]:
        with trio.move_on_after(self.handshake_timeout_s) as scope:
            try:
                first = await transport.receive_frame()
            except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
                self.sessions.append(SessionRecord(peer, "disconnected before hello"))
                return b"", None
            except RemoteProtocolError as exc:
                await self._refuse(transport, peer, str(exc))
                return b"", None
        if scope.cancelled_caught:
            await self._refuse(transport, peer, f"hello: none came within {self.handshake_timeout_s:g} s")
            return b"", None
        try:
            msg = decode(first, self.max_frame_bytes)
        except RemoteProtocolError as exc:  # another protocol version lands here, as frame.v
            await self._refuse(transport, peer, str(exc))
            return b"", None
        if not isinstance(msg, Hello):
            await self._refuse(transport, peer, f"{msg.TAG}: a host must open with hello")
            return b"", None
        return first, msg

    def _admit(self, hello: Hello, peer: str) -> SystemConfig | str:
        """The session's configuration, or why the host is refused."""
        if hello.protocol_version != PROTOCOL_VERSION:
            return (f"hello.protocol_version: {hello.protocol_version} is not spoken here "
                    f"(we speak {PROTOCOL_VERSION})")
        if hello.role != "host":
            return f"hello.role: a board serves role 'host', got {hello.role!r}"
        if self.host is not None:
            return (f"board busy: chip {self.chip_seed} is driven by another host ({self.host}); "
                    f"a board serves one host at a time")
        try:
            return self.make_config(self.chip_seed, hello.session)
        except ValueError as exc:
            return f"hello.session: {exc}"

    async def _refuse(self, transport: StreamTransport, peer: str, why: str, session=None) -> None:
        self.log.warning("host_refused", peer=peer, reason=why)
        self.sessions.append(SessionRecord(peer, f"refused: {why}", dict(session or {})))
        with trio.move_on_after(self.handshake_timeout_s):
            try:
                await transport.send_frame(encode(Error(fault="remote", in_reply_to="hello", message=why)))
                await transport.stream.send_eof()
                # Let the host read the Error before the socket goes: drain until it closes.
                while True:
                    await transport.receive_frame()
            except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
                pass

    async def _session(self, transport: StreamTransport, first: bytes, config: SystemConfig, peer: str) -> None:
        t0 = time.perf_counter()
        self.log.info("session_start", peer=peer, session=dict(config.session))
        record = SessionRecord(peer, "disconnected", dict(config.session))
        board_transport = _SessionTransport(transport, first)
        board = None
        rec = self.recorder(len(self.sessions), peer, dict(config.session)) if self.recorder is not None else None
        host_end = board_transport if rec is None else rec.end_wrapper("host", "b")(board_transport)
        wrap = None if rec is None else rec.wrap(links=[n for n in LINK_NAMES if n != "host"])
        try:
            with trio.CancelScope() as scope:
                async with open_board(config, host_end, wrap=wrap) as board:
                    # The session ends when the router has stopped (the host's Shutdown) or the
                    # host has gone; either way nothing of this board is kept.
                    await board_transport.ended.wait()
                    record.outcome = "done" if board_transport.ended_by == "board" else "disconnected"
                    scope.cancel()
            if board_transport.error is not None:
                await self._answer(transport, Error(fault="remote", in_reply_to="frame",
                                                    message=str(board_transport.error)))
        except BaseException as exc:
            failed = first_actor_failure(exc)
            if failed is None and not isinstance(exc, Exception):
                raise
            cause = failed.__cause__ if failed is not None else exc
            if board_transport.ended_by == "host" or isinstance(cause, (trio.BrokenResourceError,
                                                                        trio.ClosedResourceError)):
                record.outcome = "disconnected"  # the host went while the board was answering it
                return
            why = str(failed if failed is not None else exc)
            record.outcome = f"failed: {why}"
            self.log.error("board_failed", peer=peer, error=why)
            with trio.move_on_after(self.handshake_timeout_s):
                try:
                    await transport.send_frame(encode(Error(fault="internal", message=f"board failed: {why}")))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
        finally:
            if rec is not None:
                rec.close()
            record.wall_s = time.perf_counter() - t0
            if board is not None:
                record.traffic = board.traffic()
            self.sessions.append(record)
            self.log.info("session_end", peer=peer, outcome=record.outcome, wall_s=round(record.wall_s, 3),
                          traffic={name: {d: {k: s[k] for k in ("messages", "bytes", "events")}
                                          for d, s in dirs.items()} for name, dirs in record.traffic.items()})


    async def _answer(self, transport: StreamTransport, error: Error) -> None:
        """Send a last Error on a session's socket, if the host still listens."""
        with trio.move_on_after(self.handshake_timeout_s):
            try:
                await transport.send_frame(encode(error))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except (OSError, AttributeError):
        return "?"


# -- the host's side ----------------------------------------------------------------------------

@dataclass
class RemoteSystem:
    """The host's view of a board in another process. ``traffic()`` holds the host link as
    counted here (both directions, the same counts the in-process link holds); the board's
    internal links are counted by its server (``session_end`` log)."""

    config: SystemConfig
    address: str
    links: dict[str, Link]
    host: HostActor
    transport: StreamTransport
    timeout_s: float = 60.0  # longest silence while a reply is awaited; may be changed between requests
    closing: bool = False
    served: trio.Event = field(default_factory=trio.Event)

    @property
    def chip_seed(self) -> int:
        """The die of the board (from its Hello)."""
        return self.host.board_hello.chip_id if self.host.board_hello is not None else -1

    def traffic(self) -> dict:
        return {name: link.statistics() for name, link in self.links.items()}

    def dropped(self) -> dict[str, int]:
        """Events the board reported dropped (RunComplete.dropped), summed over runs."""
        return dict(self.host.dropped_total)


@asynccontextmanager
async def connect_board(address: str, config: SystemConfig = SystemConfig(), *, timeout_s: float = 60.0,
                        connect_timeout_s: float = 10.0, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                        wrap_transport: Callable[[StreamTransport], object] | None = None
                        ) -> AsyncIterator[RemoteSystem]:
    """Connect to the board at ``HOST:PORT``, shake hands (asking for ``config.session``), yield
    the system; send Shutdown on exit and wait (at most ``timeout_s``) for the board to close.

    timeout_s: longest silence of the board while the host waits for a reply (a run must
    send something within it), before BoardLost. A refusal (busy, version, role, session)
    raises BoardError with the board's reason. wrap_transport: the host link end's transport
    passes through it (a FrameTransport wrapper, e.g. a recorder's ``end_wrapper``), from the Hello on.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    listen_host, port = parse_address(address)
    try:
        with trio.fail_after(connect_timeout_s):
            stream = await trio.open_tcp_stream(listen_host, port)
    except (OSError, trio.TooSlowError) as exc:
        raise BoardLost(f"no board at {address}: {exc or 'connect timed out'}") from exc
    transport = StreamTransport(stream, max_frame_bytes)
    end_transport = transport if wrap_transport is None else wrap_transport(transport)
    link, end = remote_link("host", end_transport, "a", buffer=config.link_buffer, max_frame_bytes=max_frame_bytes)
    host = HostActor(end, window=config.window)
    system = RemoteSystem(config, address, {"host": link}, host, transport, timeout_s)
    profiler = active_profiler()
    if profiler is not None:  # the host side only: the board's links are in the server's process
        profiler.attach(system)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_serve_host, system, name="host")
            nursery.start_soon(_watch, system, name="host.watchdog")
            await host.handshake(config.session)
            yield system
            system.closing = True
            await host.shutdown()
    except BaseExceptionGroup as group:
        # Once the board is lost, whatever else failed (a send on the closed socket, the job
        # cancelled while it waited) follows from it: say that one thing.
        lost = _first_of(group, BoardLost)
        if lost is None:
            raise
        raise lost from None


def _first_of(exc: BaseException, kind: type) -> BaseException | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            if (found := _first_of(sub, kind)) is not None:
                return found
    return None


async def _serve_host(system: RemoteSystem) -> None:
    host = system.host
    try:
        await host.serve()
    finally:
        system.served.set()
    if system.closing:
        return
    errors_seen = system.links["host"].stats["up"].by_tag.get("error", [0])[0]
    if host.waiting() or not errors_seen:  # else the board said why, and the waiter has it already
        raise BoardLost(f"the board at {system.address} closed the connection while {host.waiting()} "
                        f"request(s) waited; last confirmed step: {host.last_confirmed}")


async def _watch(system: RemoteSystem) -> None:
    """Raise BoardLost when the board is silent for system.timeout_s while the host waits on it."""
    host, transport = system.host, system.transport
    busy_since = None
    closing_since = None
    while not system.served.is_set():
        timeout_s = system.timeout_s
        await trio.sleep(min(1.0, timeout_s / 10))
        now = trio.current_time()
        if system.closing:
            closing_since = closing_since if closing_since is not None else now
            if now - closing_since > timeout_s:  # everything is in; do not wait for ever on the close
                host.log.warning("board_did_not_close", address=system.address, waited_s=timeout_s)
                await transport.aclose()
                return
            continue
        if not host.waiting():
            busy_since = None
            continue
        busy_since = busy_since if busy_since is not None else now
        silent_s = now - max(transport.last_receive_s, busy_since)
        if silent_s > timeout_s:
            raise BoardLost(f"the board at {system.address} sent nothing for {silent_s:.1f} s (timeout "
                            f"{timeout_s:g} s) while {host.waiting()} request(s) waited; last confirmed step: "
                            f"{host.last_confirmed}")
