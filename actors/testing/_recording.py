"""Frame recording: every frame crossing a link, with its link, direction and stamps, in a file.

A :class:`FrameRecorder` hands out transport wrappers (the ``wrap`` of ``open_system`` and
``open_board``, or one end of a socket link) that write each frame they pass on, unchanged, to a
``.nsrec`` file (or to a list in memory). Nothing about the frames, their order or their timing
is altered, so a recorded run ends with the same bits as an unrecorded one.

The file (docs/testing.md, "The recording format"), all integers little endian::

    file   := magic "NSREC\\r\\n\\x1a" (8 bytes), u16 format version (1), u16 flags (0),
              u32 meta length M, M bytes of UTF-8 JSON (links, command, seeds, session, notes),
              then records until the end of the file
    record := u32 frame length L, u8 link index (into meta "links"), u8 flags, u16 reserved (0),
              u64 wall_ns, i64 emulated_ticks, then the L frame bytes (the protocol's frame,
              its own length and CRC-32 included)
    flags  := bit 0 direction (0 down: host -> chip side, 1 up), bit 1 emulated time from the link
              model, bit 2 that time counts from the start of the frame's run (a link that
              streams in time), bit 3 emulated time taken from the message's own tick field

``wall_ns``: ``time.perf_counter_ns()`` since the recorder started. ``emulated_ticks``: when
the frame arrives in emulated time under the link's model (actors/_link_model.py), else the
message's ``horizon_ticks`` or its last ``t_ticks``, else -1.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import msgpack

from ...protocol import DEFAULT_MAX_FRAME_BYTES, Message, RemoteProtocolError, decode
from .._system import LINK_NAMES, TransportWrapper
from .._transport import FrameTransport

__all__ = ["FrameRecord", "FrameRecorder", "RecordingTransport", "RecordingReader", "Recording", "RecordingError",
           "read_recording", "write_recording", "frame_tag", "MAGIC", "FORMAT_VERSION"]

MAGIC = b"NSREC\r\n\x1a"
"""First 8 bytes of a recording: a name, then CR LF and ^Z so that a text-mode copy shows (as PNG)."""
FORMAT_VERSION = 1
_FILE_HEADER = struct.Struct("<8sHHI")
_RECORD = struct.Struct("<IBBHQq")
_MAX_META_BYTES = 1 << 20
_UP, _FROM_LINK, _RUN_TIME, _FROM_MESSAGE = 1, 2, 4, 8
_KNOWN_FLAGS = _UP | _FROM_LINK | _RUN_TIME | _FROM_MESSAGE
_TIMED_TAGS = ("spike_batch", "membrane_samples", "neuron_trace")
_BODY_LENGTH_BITS = (1 << 31) - 1  # bit 31 of a frame's first word flags a frame without CRC (protocol/_codec.py)


class RecordingError(ValueError):
    """A recording file that cannot be read: names the file, the record and its byte offset."""


@dataclass(frozen=True)
class FrameRecord:
    """One frame as it crossed a link.

    link: link name. direction: 'down' (host -> chip side) or 'up'. wall_ns: nanoseconds since
    the recording started (wall clock, for profiling only). emulated_ticks: emulated arrival in
    FPGA ticks (8 ns) under the link's model, else the message's own tick, else -1; emulated_from
    says which ('link', 'message' or 'none'); run_time: the link-model time counts from the start
    of the frame's run. frame: the raw frame bytes. offset: byte offset of the record in its file
    (-1 when not read from one; not compared).
    """

    link: str
    direction: str
    wall_ns: int
    emulated_ticks: int
    frame: bytes
    emulated_from: str = "none"
    run_time: bool = False
    offset: int = field(default=-1, compare=False)

    @cached_property
    def tag(self) -> str | None:
        """The message tag, read from the frame's header alone (None if the header is unreadable)."""
        return frame_tag(self.frame)

    def message(self) -> Message:
        """The decoded message (decoded on each call; raises RemoteProtocolError for a bad frame)."""
        return decode(self.frame)


def frame_tag(frame: bytes) -> str | None:
    """The tag in a frame's header, without decoding the message; None if it cannot be read."""
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 16)
        unpacker.feed(memoryview(frame)[13:13 + (1 << 16)])
        header = unpacker.unpack()
        tag = header.get("t") if isinstance(header, dict) else None
        return tag if isinstance(tag, str) else None
    except Exception:  # any bytes at all: a tag or nothing
        return None


def _message_ticks(frame: bytes) -> int:
    """The frame's own time: horizon_ticks, else the last of t_ticks, else -1 (also for bad frames)."""
    if frame_tag(frame) not in _TIMED_TAGS:
        return -1
    try:
        msg = decode(frame)
    except RemoteProtocolError:
        return -1
    horizon = getattr(msg, "horizon_ticks", None)
    if horizon is not None:
        return int(horizon)
    t = msg.t_ticks
    return int(t[-1]) if t.size else -1


class FrameRecorder:
    """Records frames to ``path`` (a ``.nsrec`` file) or, with ``path=None``, to ``records``.

    links: the names of the links that may be recorded (their order fixes the link indices).
    meta: JSON-able facts written into the file header (command, seeds, notes). keep: also keep
    the records in memory when writing a file. Use as a context manager, or call close(): the
    file is complete only once closed. Frames offered after close are not recorded (``late``).
    """

    def __init__(self, path: str | Path | None = None, *, links: Sequence[str] = LINK_NAMES,
                 meta: Mapping | None = None, keep: bool = False) -> None:
        links = tuple(links)
        if not links or len(set(links)) != len(links) or len(links) > 255:
            raise ValueError(f"links must be 1 to 255 distinct names, got {links!r}")
        self.path = Path(path) if path is not None else None
        self.links = links
        self.meta = {"links": list(links), **dict(meta or {})}
        self.records: list[FrameRecord] | None = [] if (path is None or keep) else None
        self.n_frames = 0
        self.n_bytes = 0
        self.late = 0
        self.closed = False
        self._index = {name: i for i, name in enumerate(links)}
        self._t0 = time.perf_counter_ns()
        self._file = None
        if self.path is not None:
            meta_bytes = json.dumps(self.meta, sort_keys=True).encode()
            if len(meta_bytes) > _MAX_META_BYTES:
                raise ValueError(f"meta must encode to at most {_MAX_META_BYTES} bytes, got {len(meta_bytes)}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb", buffering=1 << 20)
            self._file.write(_FILE_HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(meta_bytes)) + meta_bytes)

    # -- wrappers -----------------------------------------------------------------------------
    def wrapper(self, link: str) -> TransportWrapper:
        """For ``open_system(wrap={link: ...})``: both ends record what they send (the host side
        its down frames, the chip side its up frames), so each frame is recorded once."""
        self._check_link(link)

        def wrap(a: FrameTransport, b: FrameTransport) -> tuple[FrameTransport, FrameTransport]:
            return RecordingTransport(a, self, link, "down"), RecordingTransport(b, self, link, "up")

        return wrap

    def wrap(self, wrap: Mapping[str, TransportWrapper] | None = None,
             links: Sequence[str] | None = None) -> dict[str, TransportWrapper]:
        """``wrap`` with recording on top of every link in ``links`` (default: all of this
        recorder's): the recorder sees what the actors send, above faults and reliable delivery."""
        out = dict(wrap or {})
        for link in (self.links if links is None else links):
            rec = self.wrapper(link)
            lower = out.get(link)
            out[link] = rec if lower is None else _stacked(lower, rec)
        return out

    def end_wrapper(self, link: str, side: str) -> Callable[[FrameTransport], FrameTransport]:
        """For a link with only one end here (a socket): the end on ``side`` ('a', host side, or
        'b') records what it sends and what it receives."""
        self._check_link(link)
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        out_dir = "down" if side == "a" else "up"
        return lambda transport: RecordingTransport(transport, self, link, out_dir, record_received=True)

    def _check_link(self, link: str) -> None:
        if link not in self._index:
            raise ValueError(f"link {link!r} is not recorded here, expected one of {', '.join(self.links)}")

    # -- writing ------------------------------------------------------------------------------
    def record(self, link: str, direction: str, frame: bytes, emulated_ticks: int = -1, *,
               emulated_from: str = "none", run_time: bool = False, wall_ns: int | None = None) -> None:
        """Append one frame (called by the wrappers; open to tests that build recordings).
        wall_ns: the stamp to write (default: now, since the recorder started)."""
        if self.closed:
            self.late += 1
            return
        if direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', got {direction!r}")
        if emulated_from not in ("link", "message", "none"):
            raise ValueError(f"emulated_from must be 'link', 'message' or 'none', got {emulated_from!r}")
        wall_ns = time.perf_counter_ns() - self._t0 if wall_ns is None else int(wall_ns)
        frame = bytes(frame)
        flags = ((_UP if direction == "up" else 0) | (_FROM_LINK if emulated_from == "link" else 0)
                 | (_FROM_MESSAGE if emulated_from == "message" else 0) | (_RUN_TIME if run_time else 0))
        if self._file is not None:
            self._file.write(_RECORD.pack(len(frame), self._index[link], flags, 0, wall_ns, emulated_ticks))
            self._file.write(frame)
        if self.records is not None:
            self.records.append(FrameRecord(link, direction, wall_ns, emulated_ticks, frame, emulated_from, run_time))
        self.n_frames += 1
        self.n_bytes += len(frame)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "FrameRecorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stacked(lower: TransportWrapper, upper: TransportWrapper) -> TransportWrapper:
    def wrap(a: FrameTransport, b: FrameTransport):
        return upper(*lower(a, b))

    return wrap


class RecordingTransport:
    """Passes frames through unchanged and records them: those sent (direction ``out_dir``) and,
    with ``record_received``, those received. A Link built on it calls ``bind_link``, which lets
    it read each frame's emulated arrival from the link's model."""

    def __init__(self, inner: FrameTransport, recorder: FrameRecorder, link: str, out_dir: str, *,
                 record_received: bool = False) -> None:
        self.inner = inner  # the name fault accounting walks through (actors._faults.link_fault_drops)
        self.recorder = recorder
        self.link_name = link
        self.out_dir = out_dir
        self.in_dir = "up" if out_dir == "down" else "down"
        self.record_received = record_received
        self._link = None

    def bind_link(self, link) -> None:
        self._link = link

    async def send_frame(self, frame: bytes) -> None:
        self._record(self.out_dir, frame, newest=True)
        await self.inner.send_frame(frame)

    async def receive_frame(self) -> bytes:
        frame = await self.inner.receive_frame()
        if self.record_received:
            self._record(self.in_dir, frame, newest=False)
        return frame

    async def aclose(self) -> None:
        await self.inner.aclose()

    def buffer_used(self) -> int:
        return self.inner.buffer_used()

    def _record(self, direction: str, frame: bytes, newest: bool) -> None:
        transit = self._transit(direction, frame, newest)
        if transit is not None:
            self.recorder.record(self.link_name, direction, frame, transit.arrival_ticks, emulated_from="link",
                                 run_time=transit.run_time)
            return
        ticks = _message_ticks(frame)
        self.recorder.record(self.link_name, direction, frame, ticks, emulated_from="message" if ticks >= 0 else "none")

    def _transit(self, direction: str, frame: bytes, newest: bool):
        """The link model's Transit of this frame: the link tracks a frame from just before it is
        sent (newest entry) until it is received (one of the oldest)."""
        link = self._link
        if link is None or link.timeline is None:
            return None
        q = link.inflight[direction]
        entries = [q[-1]] if (newest and q) else [q[i] for i in range(min(len(q), 17))]
        for entry in entries:
            if entry[0] is frame:
                return entry[3]
        return None


def write_recording(path: str | Path, recording: "Recording | Sequence[FrameRecord]",
                    meta: Mapping | None = None) -> Path:
    """Write records, with their own stamps, as a ``.nsrec`` file (an edited recording, one built by
    hand). meta: the header's facts (default: the Recording's, ``links`` recomputed)."""
    records = recording.records if isinstance(recording, Recording) else list(recording)
    meta = dict(recording.meta if meta is None and isinstance(recording, Recording) else meta or {})
    links = list(meta.pop("links", None) or [])
    links += [r.link for r in records if r.link not in links]
    links = list(dict.fromkeys(links))
    with FrameRecorder(path, links=links or ["host"], meta=meta) as out:
        for r in records:
            out.record(r.link, r.direction, r.frame, r.emulated_ticks, emulated_from=r.emulated_from,
                       run_time=r.run_time, wall_ns=r.wall_ns)
    return Path(path)


# -- reading --------------------------------------------------------------------------------------

@dataclass
class Recording:
    """A whole recording in memory: meta (the file header's JSON) and its records in order."""

    meta: dict
    records: list[FrameRecord]
    path: Path | None = None
    truncated_at: int | None = None  # read with partial=True: where the cut-short record began

    def link(self, name: str, direction: str | None = None) -> list[FrameRecord]:
        """The records of one link (and direction), in order."""
        return [r for r in self.records if r.link == name and (direction is None or r.direction == direction)]


class RecordingReader:
    """Reads a ``.nsrec`` file record by record (frames are decoded only when asked).

    ``meta`` (including ``links``) is read on opening; iterating yields FrameRecords and raises
    RecordingError, naming the record and its byte offset, at the first truncated or corrupt one.
    partial: a record cut short by the end of the file (a recording whose process was killed)
    ends the iteration instead, and ``truncated_at`` holds its offset; corruption still raises.
    """

    def __init__(self, path: str | Path, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
                 partial: bool = False) -> None:
        self.path = Path(path)
        self.max_frame_bytes = max_frame_bytes
        self.partial = partial
        self.truncated_at: int | None = None
        self._file = open(self.path, "rb")
        try:
            self.meta, self.version, self._start = self._read_header()
        except BaseException:
            self._file.close()
            raise
        self.links: tuple[str, ...] = tuple(self.meta["links"])

    def _fail(self, record: int | None, offset: int, problem: str) -> RecordingError:
        where = "file header" if record is None else f"record {record}"
        return RecordingError(f"{self.path}: {where} at byte offset {offset}: {problem}")

    def _read_header(self) -> tuple[dict, int, int]:
        head = self._file.read(_FILE_HEADER.size)
        if len(head) < _FILE_HEADER.size or head[:8] != MAGIC:
            raise self._fail(None, 0, f"not a neurosplit recording (starts {head[:8]!r}, expected {MAGIC!r})")
        _, version, flags, meta_len = _FILE_HEADER.unpack(head)
        if version != FORMAT_VERSION:
            raise self._fail(None, 8, f"format version {version} is not read here (we read {FORMAT_VERSION})")
        if flags != 0:
            raise self._fail(None, 10, f"unknown header flags {flags:#x}")
        if meta_len > _MAX_META_BYTES:
            raise self._fail(None, 12, f"meta length {meta_len} exceeds {_MAX_META_BYTES} bytes")
        raw = self._file.read(meta_len)
        if len(raw) < meta_len:
            raise self._fail(None, _FILE_HEADER.size, f"truncated meta: {len(raw)} of {meta_len} bytes")
        try:
            meta = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._fail(None, _FILE_HEADER.size, f"meta is not JSON: {exc}") from None
        links = meta.get("links") if isinstance(meta, dict) else None
        if not (isinstance(links, list) and links and all(isinstance(x, str) for x in links)):
            raise self._fail(None, _FILE_HEADER.size, "meta has no list of link names ('links')")
        return meta, version, _FILE_HEADER.size + meta_len

    def __iter__(self) -> Iterator[FrameRecord]:
        f = self._file
        f.seek(self._start)
        offset, index = self._start, 0
        while True:
            head = f.read(_RECORD.size)
            if not head:
                return
            if len(head) < _RECORD.size:
                if self.partial:
                    self.truncated_at = offset
                    return
                raise self._fail(index, offset, f"truncated record header: {len(head)} of {_RECORD.size} bytes")
            n, link, flags, reserved, wall_ns, emulated = _RECORD.unpack(head)
            if link >= len(self.links) or flags & ~_KNOWN_FLAGS or reserved or n < 8 or n > self.max_frame_bytes:
                raise self._fail(index, offset, f"corrupt record header (frame length {n}, link index {link}, "
                                                f"flags {flags:#x}, reserved {reserved})")
            frame = f.read(n)
            if len(frame) < n:
                if self.partial:
                    self.truncated_at = offset
                    return
                raise self._fail(index, offset, f"truncated frame: the record says {n} bytes, {len(frame)} remain")
            body_bytes = int.from_bytes(frame[:4], "little") & _BODY_LENGTH_BITS
            if body_bytes != n - 8:
                raise self._fail(index, offset, f"corrupt frame: its own length field says {body_bytes} body "
                                                f"bytes, the record {n - 8}")
            source = "link" if flags & _FROM_LINK else "message" if flags & _FROM_MESSAGE else "none"
            yield FrameRecord(self.links[link], "up" if flags & _UP else "down", wall_ns, emulated, frame, source,
                              bool(flags & _RUN_TIME), offset)
            offset += _RECORD.size + n
            index += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_recording(path: str | Path, *, partial: bool = False) -> Recording:
    """The whole recording at ``path``; RecordingError (naming the record and offset) if it is
    damaged. partial: keep the whole records before one cut short by the end of the file."""
    with RecordingReader(path, partial=partial) as reader:
        return Recording(reader.meta, list(reader), reader.path, reader.truncated_at)
