"""Cutting a byte stream back into frames, sans I/O (docs/protocol.md, "Streams")."""

from __future__ import annotations

from collections.abc import Iterator

from ._codec import _FRAME_HEADER, _LENGTH_BITS, DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES
from ._errors import RemoteProtocolError

__all__ = ["FrameReader"]


class FrameReader:
    """Sans-I/O splitter of a byte stream into whole frames.

    ``feed(data)`` appends received bytes; ``frames()`` yields each complete frame as ``bytes``
    (ready for :func:`decode`, and 8-byte aligned). A frame longer than ``max_frame_bytes`` raises
    RemoteProtocolError as soon as its 8-byte header is seen, before its body is buffered, so no
    peer can make the reader hold more than the maximum beyond what one ``feed`` hands it. Frames
    before a bad one are all yielded first; once broken, the reader raises on every ``frames()``.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < FRAME_HEADER_BYTES:
            raise ValueError(f"max_frame_bytes must be >= {FRAME_HEADER_BYTES}, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._start = 0  # bytes of _buf already yielded; dropped on the next feed, not once per frame
        self._error: RemoteProtocolError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not yet yielded as a frame."""
        return len(self._buf) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        if self._start:
            del self._buf[:self._start]
            self._start = 0
        self._buf += data

    def frames(self) -> Iterator[bytes]:
        """Yield every complete frame buffered so far, in order."""
        if self._error is not None:
            raise RemoteProtocolError(self._error.message, self._error.field, self._error.problem)
        while len(self._buf) - self._start >= FRAME_HEADER_BYTES:
            word, _ = _FRAME_HEADER.unpack_from(self._buf, self._start)
            total = FRAME_HEADER_BYTES + (word & _LENGTH_BITS)
            if total > self.max_frame_bytes:
                self._error = RemoteProtocolError(
                    "frame", "length", f"{total} bytes exceeds the maximum {self.max_frame_bytes}")
                raise self._error
            if len(self._buf) - self._start < total:
                return
            with memoryview(self._buf) as mv:
                frame = bytes(mv[self._start:self._start + total])
            self._start += total
            yield frame
