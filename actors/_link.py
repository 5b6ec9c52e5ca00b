"""Links: two bounded byte channels between two actors, counting what crosses them.

Every message crosses a link as an encoded frame, even inside one process, so the counters hold
what a wire would carry. A link's buffers are bounded (``buffer`` frames per direction, 0 makes
each send a rendezvous): they stand for the finite buffers of the hardware and give backpressure.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter

import trio

from ..protocol import DEFAULT_MAX_FRAME_BYTES, Message, RemoteProtocolError, decode, encode, encode_parts
from ._link_model import LinkModel, LinkTimeline
from ._transport import FrameTransport, memory_transport_pair

__all__ = ["Link", "LinkEnd", "DirectionStats", "open_link"]


@dataclass
class DirectionStats:
    """Counters of one direction of a link. bytes are whole frames (frame header included);
    encode_s / decode_s: wall seconds spent encoding frames sent and decoding frames received."""

    messages: int = 0
    bytes: int = 0
    events: int = 0
    by_tag: dict[str, list[int]] = field(default_factory=dict)  # tag -> [messages, bytes, events]
    rejected_frames: int = 0
    peak_depth: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0

    def count(self, tag: str, n_bytes: int, n_events: int) -> None:
        self.messages += 1
        self.bytes += n_bytes
        self.events += n_events
        row = self.by_tag.setdefault(tag, [0, 0, 0])
        row[0] += 1
        row[1] += n_bytes
        row[2] += n_events

    def as_dict(self) -> dict:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "events": self.events,
            "rejected_frames": self.rejected_frames,
            "peak_depth": self.peak_depth,
            "encode_s": self.encode_s,
            "decode_s": self.decode_s,
            "by_type": {t: {"messages": m, "bytes": b, "events": e} for t, (m, b, e) in sorted(self.by_tag.items())},
        }


class LinkEnd:
    """One actor's end of a link: sends on one direction, receives on the other.

    ``ideal``: both ends of the link sit on ideal in-process transports (actors/_transport.py), so
    frames go as sealed FrameParts without CRC; otherwise as ``bytes`` with a CRC, and a frame
    received without one is refused (the link could have corrupted it)."""

    def __init__(self, link: "Link", out_dir: str, transport: FrameTransport, max_frame_bytes: int,
                 ideal: bool = False) -> None:
        self.link = link
        self.out_dir = out_dir
        self.in_dir = "up" if out_dir == "down" else "down"
        self.transport = transport
        self._max_frame_bytes = max_frame_bytes
        self.ideal = ideal
        self._encode = encode_parts if ideal else encode

    @property
    def name(self) -> str:
        return self.link.name

    async def send(self, msg: Message) -> None:
        """Encode ``msg`` and send its frame; waits while the link's buffer is full. Under a link
        model the message may lose its spike events to a full queue (counted, with a reason)."""
        link = self.link
        timeline = link.timeline
        if timeline is not None:
            msg, plan = timeline.admit(self.out_dir, msg)
        t0 = perf_counter()
        frame = self._encode(msg)
        stats = link.stats[self.out_dir]
        stats.encode_s += perf_counter() - t0
        stats.count(msg.TAG, len(frame), msg.n_events())
        if timeline is not None:
            link.track(self.out_dir, frame, msg.TAG, timeline.commit(plan, msg, len(frame)))
        elif link.probe is not None:
            link.track(self.out_dir, frame, msg.TAG, None)
        depth = self.transport.buffer_used() + 1  # _send_counted_frame, written out (every message)
        if depth > stats.peak_depth:
            stats.peak_depth = depth
        if link.probe is not None:
            link.probe.depth(self.out_dir, depth)
        await self.transport.send_frame(frame)

    async def send_frame(self, frame: bytes) -> None:
        """Send raw bytes as one frame, uncounted by type: for fault injection and replay."""
        self.link.stats[self.out_dir].count("<raw>", len(frame), 0)
        await self._send_counted_frame(frame)

    async def _send_counted_frame(self, frame: bytes) -> None:
        stats = self.link.stats[self.out_dir]
        depth = self.transport.buffer_used() + 1
        if depth > stats.peak_depth:
            stats.peak_depth = depth
        if self.link.probe is not None:
            self.link.probe.depth(self.out_dir, depth)
        await self.transport.send_frame(frame)

    async def receive(self) -> Message:
        """The next message; raises RemoteProtocolError for a bad frame (the link stays usable)
        and trio.EndOfChannel once the peer has closed its end."""
        frame = await self.transport.receive_frame()
        link = self.link
        if link.inflight[self.in_dir]:
            link.arrived(self.in_dir, frame)
        stats = link.stats[self.in_dir]
        t0 = perf_counter()
        try:
            msg = decode(frame, self._max_frame_bytes, require_checksum=not self.ideal)
        except RemoteProtocolError:
            stats.rejected_frames += 1
            raise
        finally:
            stats.decode_s += perf_counter() - t0
        return msg

    async def aclose(self) -> None:
        await self.transport.aclose()


class Link:
    """A named, bidirectional link. ``down`` runs from the host side (``a``) to the chip side (``b``).

    By default both ends sit on in-process channels of ``buffer`` frames each way; pass
    ``transports=(a, b)`` to put the ends on anything else (wrappers, sockets). ``model``: the
    hardware link it stands for (actors/_link_model.py); its emulated times and drops are in
    ``timeline``. ``probe``: a profiler's per-link hook (actors/_profile.py), None when off.
    """

    MAX_INFLIGHT = 4096
    """Frames tracked per direction between send and receive at most (a frame a fault injector
    dropped never arrives; the oldest is forgotten)."""

    def __init__(self, name: str, buffer: int | float = 4, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 transports: tuple[FrameTransport, FrameTransport] | None = None,
                 model: LinkModel | None = None) -> None:
        if buffer != math.inf and (buffer < 0 or int(buffer) != buffer):
            raise ValueError(f"buffer must be a non-negative integer, got {buffer}")
        self.name = name
        self.buffer = buffer
        self.stats = {"down": DirectionStats(), "up": DirectionStats()}
        self.timeline = LinkTimeline(name, model) if model is not None else None
        self.probe = None
        # frames on their way per direction, oldest first: (frame, wall send time, tag, Transit or
        # None). A side table, so that nothing is added to the bytes on the wire.
        self.inflight: dict[str, deque] = {"down": deque(), "up": deque()}
        a, b = transports if transports is not None else memory_transport_pair(buffer)
        # frames go unjoined and without CRC only where nothing sits between the two ends
        self.ideal = getattr(a, "ideal", False) is True and getattr(b, "ideal", False) is True
        self.a = LinkEnd(self, "down", a, max_frame_bytes, self.ideal)
        self.b = LinkEnd(self, "up", b, max_frame_bytes, self.ideal)
        for transport in (a, b):  # a wrapper that reads emulated times (recording) learns its link
            bind = getattr(transport, "bind_link", None)
            if bind is not None:
                bind(self)

    def statistics(self) -> dict:
        return {d: s.as_dict() for d, s in self.stats.items()}

    def track(self, direction: str, frame: bytes, tag: str, transit) -> None:
        """Remember a frame being sent, to match it when it is received."""
        q = self.inflight[direction]
        if len(q) >= self.MAX_INFLIGHT:
            q.popleft()
        q.append((frame, perf_counter(), tag, transit))

    def arrived(self, direction: str, frame: bytes) -> None:
        """A frame was received: tell the timeline and the probe when it left and what it was.

        Matched by identity (in-process channels pass the very object), else by equal bytes (a
        wrapper, e.g. reliable delivery, hands over a copy); frames arrive in order, so the match
        is almost always the oldest entry, and only the first few are looked at (reordering).
        """
        q = self.inflight[direction]
        for i, entry in enumerate(q):
            if entry[0] is frame or entry[0] == frame:
                del q[i]
                break
            if i >= 16:
                return
        else:
            return
        _, t_sent, tag, transit = entry
        if transit is not None:
            self.timeline.delivered(direction, transit)
        if self.probe is not None:
            self.probe.hop(direction, tag, perf_counter() - t_sent, transit)


def open_link(name: str, buffer: int | float = 4, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
              model: LinkModel | None = None) -> Link:
    """A new in-process link; ``link.a`` is the host-side end, ``link.b`` the chip-side end."""
    return Link(name, buffer, max_frame_bytes, model=model)
