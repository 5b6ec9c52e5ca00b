"""Frame transports: what carries a link end's frames. In-process channels today; wrappers
(fault injection, hardware link models, reliable delivery) and sockets implement the same four
methods, so a link end never knows what is underneath.

A transport may say it is ``ideal``: it delivers exactly the frame objects it was handed, in order,
inside this process. Only MemoryTransport does. A Link whose two ends both sit on ideal transports
sends frames as sealed FrameParts (header bytes plus the message's own arrays, never joined) and
without CRC, since nothing between the ends can corrupt them; every other link sends ``bytes``
with a CRC and its receiver requires one (docs/protocol.md, "Checksums and in-process frames").
"""

from __future__ import annotations

from collections import deque
from typing import Protocol, Sized, runtime_checkable

import trio

__all__ = ["FrameTransport", "MemoryTransport", "memory_transport_pair", "buffered"]


@runtime_checkable
class FrameTransport(Protocol):
    """One end of a bidirectional frame pipe. ``receive_frame`` raises trio.EndOfChannel once the
    peer has closed; ``buffer_used`` is the number of frames waiting on the way out."""

    async def send_frame(self, frame: bytes) -> None: ...

    async def receive_frame(self) -> bytes: ...

    async def aclose(self) -> None: ...

    def buffer_used(self) -> int: ...


class _Statistics:
    """len() of it is a trio memory channel's ``current_buffer_used``, from its statistics()."""

    __slots__ = ("_channel",)

    def __init__(self, channel: trio.MemorySendChannel) -> None:
        self._channel = channel

    def __len__(self) -> int:
        return self._channel.statistics().current_buffer_used


def buffered(channel: trio.MemorySendChannel) -> Sized:
    """Something whose ``len()`` is always the channel's ``statistics().current_buffer_used``.

    That is the length of the channel's buffer; statistics() builds a record of seven counters to
    say it, twice per message on the hot path. So this hands out trio's own buffer (a deque, only
    ever read here) when this version of trio keeps one where it did when this was written, and
    falls back to statistics() otherwise."""
    data = getattr(getattr(channel, "_state", None), "data", None)
    if type(data) is deque and len(data) == channel.statistics().current_buffer_used:
        return data
    return _Statistics(channel)


class MemoryTransport:
    """A transport over two bounded trio memory channels (``buffer`` frames each way; 0 is a rendezvous).
    Frames are any objects (``bytes`` or FrameParts): what is sent is what is received."""

    ideal = True

    def __init__(self, send: trio.MemorySendChannel, receive: trio.MemoryReceiveChannel) -> None:
        self._send = send
        self._receive = receive
        self._buffered = buffered(send)

    async def send_frame(self, frame) -> None:
        await self._send.send(frame)

    async def receive_frame(self) -> bytes:
        return await self._receive.receive()

    async def aclose(self) -> None:
        await self._send.aclose()

    def buffer_used(self) -> int:
        return len(self._buffered)


def memory_transport_pair(buffer: int | float) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-process transports: what one sends, the other receives, in order."""
    a_send, b_recv = trio.open_memory_channel[bytes](buffer)
    b_send, a_recv = trio.open_memory_channel[bytes](buffer)
    return MemoryTransport(a_send, a_recv), MemoryTransport(b_send, b_recv)
