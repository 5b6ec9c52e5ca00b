"""Socket links: a FrameTransport over a trio byte stream (TCP), and a link with one end remote.

The stream carries the protocol's frames unchanged (``<u32 length><u32 crc32><body>``), cut
back into frames by protocol.FrameReader, so a LinkEnd counts the same frames and bytes on a
socket as on an in-process channel. When only one end of a link lives in this process, the other
end's counts are unknown here, so that end also counts what it receives (``remote_link``).
"""

from __future__ import annotations

import collections

import trio

from ..protocol import DEFAULT_MAX_FRAME_BYTES, FrameReader, Message, RemoteProtocolError
from ._link import Link, LinkEnd

__all__ = ["StreamTransport", "remote_link", "parse_address", "RECEIVE_BYTES"]

RECEIVE_BYTES = 1 << 16
"""Most bytes taken from the socket per receive call."""


class StreamTransport:
    """A FrameTransport over a trio.abc.Stream.

    ``receive_frame`` raises trio.EndOfChannel when the peer closed between frames and
    RemoteProtocolError once if it closed inside a frame or announced a frame longer than
    ``max_frame_bytes``; after that error the stream cannot be resynchronised, so every later
    call raises trio.BrokenResourceError. ``closed`` is set once nothing more can come in.
    ``last_receive_s`` is trio.current_time() of the last bytes received (for watchdogs only).
    """

    def __init__(self, stream: trio.abc.Stream, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.stream = stream
        self._reader = FrameReader(max_frame_bytes)
        self._frames: collections.deque[bytes] = collections.deque()
        self._send_lock = trio.Lock()
        self._sending = 0
        self._broken = False
        self.closed = trio.Event()
        self.last_receive_s = trio.current_time()
        self.bytes_sent = 0
        self.bytes_received = 0

    async def send_frame(self, frame: bytes) -> None:
        # send_all must not interleave with another task's send_all: frames would mix on the wire.
        self._sending += 1
        try:
            async with self._send_lock:
                await self.stream.send_all(frame)
                self.bytes_sent += len(frame)
        finally:
            self._sending -= 1

    async def receive_frame(self) -> bytes:
        while not self._frames:
            if self._broken:
                raise trio.BrokenResourceError("the stream broke inside a frame")
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.closed.set()
                raise
            if not data:
                self.closed.set()
                if self._reader.buffered_bytes:
                    self._broken = True
                    raise RemoteProtocolError("frame", "length", f"the peer closed the stream inside a frame "
                                              f"({self._reader.buffered_bytes} bytes of it received)")
                raise trio.EndOfChannel
            self.last_receive_s = trio.current_time()
            self.bytes_received += len(data)
            self._reader.feed(data)
            try:
                self._frames.extend(self._reader.frames())
            except RemoteProtocolError:
                self._broken = True
                if not self._frames:
                    raise
        return self._frames.popleft()

    async def aclose(self) -> None:
        self.closed.set()
        await self.stream.aclose()

    def buffer_used(self) -> int:
        """Frames waiting to go out: the sender in progress and those queued behind it (the
        kernel's socket buffer is not counted)."""
        return self._sending


class _ReceivingLinkEnd(LinkEnd):
    """A link end whose peer lives in another process: it counts what it receives too, in the
    incoming direction's stats, exactly as the peer's end counts what it sends."""

    def __init__(self, link: Link, out_dir: str, transport, max_frame_bytes: int) -> None:
        super().__init__(link, out_dir, _Measured(transport), max_frame_bytes)

    async def receive(self) -> Message:
        msg = await super().receive()
        self.link.stats[self.in_dir].count(msg.TAG, self.transport.last_frame_bytes, msg.n_events())
        return msg


class _Measured:
    """Passes frames through and remembers the length of the last one received."""

    def __init__(self, transport) -> None:
        self.inner = transport
        self.last_frame_bytes = 0

    async def send_frame(self, frame: bytes) -> None:
        await self.inner.send_frame(frame)

    async def receive_frame(self) -> bytes:
        frame = await self.inner.receive_frame()
        self.last_frame_bytes = len(frame)
        return frame

    async def aclose(self) -> None:
        await self.inner.aclose()

    def buffer_used(self) -> int:
        return self.inner.buffer_used()


class _Elsewhere:
    """Stands for the transport of a link end that lives in another process."""

    async def send_frame(self, frame: bytes) -> None:
        raise RuntimeError("this end of the link lives in another process")

    async def receive_frame(self) -> bytes:
        raise RuntimeError("this end of the link lives in another process")

    async def aclose(self) -> None:
        pass

    def buffer_used(self) -> int:
        return 0


def remote_link(name: str, transport, side: str, buffer: int = 4,
                max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> tuple[Link, LinkEnd]:
    """A link of which only one end, on ``transport``, is in this process; returns (link, end).

    side: "a" (the host side, sends down) or "b" (the chip side, sends up). The local end counts
    both directions, so ``link.statistics()`` holds the same counts as the in-process link would.
    """
    if side not in ("a", "b"):
        raise ValueError(f"side must be 'a' or 'b', got {side!r}")
    link = Link(name, buffer, max_frame_bytes,
                transports=(transport, _Elsewhere()) if side == "a" else (_Elsewhere(), transport))
    end = _ReceivingLinkEnd(link, "down" if side == "a" else "up", transport, max_frame_bytes)
    setattr(link, side, end)
    return link, end


def parse_address(address: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``[v6]:PORT``) as (host, port); errors name the bound."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    host = host.strip("[]") or default_host
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"address port must be an integer, got {port_text!r} in {address!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"address port must be in [0, 65535], got {port}")
    return host, port
