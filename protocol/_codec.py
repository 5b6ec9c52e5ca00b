"""Messages to bytes and back, and length-prefixed frames for byte streams. No I/O here.

A frame is ``<u32 body length><u32 crc32 of body><body>`` (little endian), so the body starts
8-byte aligned. The body is one plain msgpack array::

    [header, pad_0, data_0, pad_1, data_1, ...]

``header`` is a map ``{"v": version, "t": tag, "f": {scalar fields}, "a": [[name, dtype, shape], ...]}``;
each ``data_i`` is a bin32 holding the raw little-endian bytes of array ``i``, and each ``pad_i``
is a bin8 of 0..7 zero bytes that puts the next data on an 8-byte boundary of the body. Any
msgpack library decodes the whole body; ours reads only the header and wraps the data as
read-only numpy views, without copying. docs/protocol.md gives the layout byte by byte.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np

from ._base import _REGISTRY, MAX_MAP_LEN, MAX_STR_BYTES, Message, _from_wire, scalar_kinds
from ._errors import LocalProtocolError, RemoteProtocolError
from ._messages import PROTOCOL_VERSION

try:  # ISA-L computes the same CRC-32 as zlib several times faster (benchmarks/codec_speed.py); optional
    from isal.isal_zlib import crc32 as _crc32
except ImportError:
    from zlib import crc32 as _crc32

__all__ = [
    "encode",
    "decode",
    "encode_body",
    "decode_body",
    "FrameReader",
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_HEADER_BYTES",
]

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame (header included) a reader accepts unless told otherwise: 64 MiB."""

FRAME_HEADER_BYTES = 8
_FRAME_HEADER = struct.Struct("<II")
_ARRAY32 = 0xDD
_BIN8 = 0xC4
_BIN32 = 0xC6
_MAX_HEADER_BYTES = 64 * 1024
_MAX_ARRAYS = 64
_MAX_DIM = 1 << 40  # largest length of one array axis (and far beyond any frame)


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True)


def _body_parts(msg: Message) -> list:
    """The body as a list of byte chunks (array data as uint8 views, not copies)."""
    cls = type(msg)
    if not isinstance(msg, Message) or _REGISTRY.get(cls.TAG) is not cls:
        raise TypeError(f"expected a message of the catalogue, got {cls.__name__}")
    scalars = {name: getattr(msg, name) for name in scalar_kinds(cls)}
    arrays = [np.ascontiguousarray(getattr(msg, name)) for name in cls.ARRAYS]
    header = {
        "v": PROTOCOL_VERSION,
        "t": cls.TAG,
        "f": scalars,
        "a": [[name, a.dtype.str, list(a.shape)] for name, a in zip(cls.ARRAYS, arrays)],
    }
    packed = _packer().pack(header)
    if len(packed) > _MAX_HEADER_BYTES:  # the fields are each within bounds, but not together
        raise LocalProtocolError(cls.TAG, "f", f"header of {len(packed)} bytes exceeds {_MAX_HEADER_BYTES}")
    parts: list = [struct.pack(">BI", _ARRAY32, 1 + 2 * len(arrays)), packed]
    pos = 5 + len(packed)
    for name, a in zip(cls.ARRAYS, arrays):
        if a.nbytes >= 1 << 32:
            raise LocalProtocolError(cls.TAG, name, f"{a.nbytes} bytes do not fit a bin32")
        # pad element: 2 bytes of bin8 header + k zero bytes; then 5 bytes of bin32 header.
        k = (-(pos + 2 + 5)) % 8
        parts.append(bytes((_BIN8, k)) + b"\0" * k + struct.pack(">BI", _BIN32, a.nbytes))
        parts.append(a.reshape(-1).view(np.uint8))
        pos += 2 + k + 5 + a.nbytes
    return parts


def encode_body(msg: Message) -> bytes:
    """The msgpack body of one message (no frame header)."""
    return b"".join(_body_parts(msg))


def encode(msg: Message) -> bytes:
    """One frame: the 8-byte frame header followed by the message body. Copies each array once."""
    parts = _body_parts(msg)
    crc, length = 0, 0
    for part in parts:
        crc = _crc32(part, crc)
        length += part.nbytes if isinstance(part, np.ndarray) else len(part)
    if length >= 1 << 32:
        raise LocalProtocolError(type(msg).TAG, "body", f"{length} bytes do not fit the u32 frame length")
    return b"".join([_FRAME_HEADER.pack(length, crc), *parts])


def decode(frame: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode one whole frame; raises RemoteProtocolError naming the message and field at fault.

    The message's arrays are read-only views into ``frame`` (into one aligned copy of the body
    if ``frame`` does not sit 8-byte aligned in memory; ``bytes`` objects always do).
    """
    view = memoryview(frame).cast("B")
    if view.nbytes < FRAME_HEADER_BYTES:
        raise RemoteProtocolError("frame", "header", f"truncated: {view.nbytes} bytes, need {FRAME_HEADER_BYTES}")
    length, crc = _FRAME_HEADER.unpack_from(view)
    if FRAME_HEADER_BYTES + length > max_frame_bytes:
        raise RemoteProtocolError("frame", "length", f"{FRAME_HEADER_BYTES + length} bytes exceeds the maximum {max_frame_bytes}")
    if view.nbytes != FRAME_HEADER_BYTES + length:
        raise RemoteProtocolError("frame", "length", f"header says {length} body bytes, frame holds {view.nbytes - FRAME_HEADER_BYTES}")
    body = view[FRAME_HEADER_BYTES:]
    if _crc32(body) != crc:
        raise RemoteProtocolError("frame", "crc32", "checksum mismatch: the frame was corrupted")
    return decode_body(body)


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """Decode one message body; arrays are read-only views into ``body`` (see :func:`decode`)."""
    view = memoryview(body).cast("B")
    n = view.nbytes
    if n < 5 or view[0] != _ARRAY32:
        raise RemoteProtocolError("frame", "body", "not a neurosplit message: expected a msgpack array32")
    (n_items,) = struct.unpack_from(">I", view, 1)
    header, pos = _read_header(view)
    cls, fields, specs = _check_header(header)
    tag = cls.TAG
    if n_items != 1 + 2 * len(specs):
        raise RemoteProtocolError(tag, "a", f"body holds {n_items} items, header lists {len(specs)} arrays")
    if specs and n >= 8 and not _aligned8(view):
        view = memoryview(bytes(view))  # bytes objects keep their data 8-byte aligned
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in specs:
        if pos + 2 > n or view[pos] != _BIN8:
            raise RemoteProtocolError(tag, name, "truncated or malformed before the array data (expected a bin8 pad)")
        k = view[pos + 1]
        if k > 7 or pos + 2 + k > n or (pos + 2 + k + 5) % 8 or any(view[pos + 2:pos + 2 + k]):
            raise RemoteProtocolError(tag, name, f"pad of {k} bytes at body offset {pos} must be the 0..7 zero "
                                      "bytes that put the array data on an 8-byte boundary")
        pos += 2 + k
        if pos + 5 > n or view[pos] != _BIN32:
            raise RemoteProtocolError(tag, name, "truncated or malformed array header (expected a bin32)")
        (nbytes,) = struct.unpack_from(">I", view, pos + 1)
        pos += 5
        want = math.prod(shape) * dtype.itemsize  # Python ints: a huge declared shape cannot wrap around
        if nbytes != want:
            raise RemoteProtocolError(tag, name, f"{nbytes} data bytes do not hold shape {tuple(shape)} of {dtype}")
        if pos + nbytes > n:
            raise RemoteProtocolError(tag, name, f"truncated: needs {nbytes} bytes, {n - pos} left")
        arr = np.frombuffer(view, dtype=dtype, count=want // dtype.itemsize, offset=pos) if want else np.empty(0, dtype)
        arrays[name] = arr.reshape(shape)
        pos += nbytes
    if pos != n:
        raise RemoteProtocolError(tag, "body", f"{n - pos} trailing bytes after the last array")
    try:
        if cls.__post_init__ is Message.__post_init__:  # no checks of its own beyond the base class's
            return _from_wire(cls, fields, arrays)
        return cls(**fields, **arrays)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, exc.field, exc.problem) from exc


def _short(value: Any, limit: int = 60) -> str:
    """repr of a received value, cut short: a peer must not fill our logs through an error text.
    A value nested deeper than Python's recursion limit (msgpack unpacks up to 1024 levels) is
    named by its type only (benchmarks/fuzz_decoder.py found repr failing on those)."""
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep to show>"
    return text if len(text) <= limit else text[:limit] + "..."


def _read_header(view: memoryview) -> tuple[Any, int]:
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=_MAX_HEADER_BYTES,
        max_bin_len=0,
        max_ext_len=0,
        max_str_len=MAX_STR_BYTES,
        max_array_len=max(_MAX_ARRAYS, 3),
        max_map_len=MAX_MAP_LEN,
    )
    end = min(view.nbytes, 5 + _MAX_HEADER_BYTES)
    pos = 5
    while True:
        stop = min(end, pos + 512)
        unpacker.feed(view[pos:stop])
        pos = stop
        try:
            header = unpacker.unpack()
        except msgpack.OutOfData:
            if pos >= end:
                what = "truncated" if end == view.nbytes else f"longer than {_MAX_HEADER_BYTES} bytes"
                raise RemoteProtocolError("frame", "header", f"message header {what}") from None
            continue
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
            # e.g. msgpack's StackError (nesting deeper than its stack), a str over max_str_len
            raise RemoteProtocolError("frame", "header", f"not a msgpack header: {type(exc).__name__} {exc}") from exc
        return header, 5 + unpacker.tell()


_HEADER_KEYS = ("v", "t", "f", "a")


@functools.cache
def _required_fields(cls: type[Message]) -> tuple[str, ...]:
    """Scalar fields without a default: a frame must carry them (fields with defaults may be absent)."""
    return tuple(
        f.name for f in dataclasses.fields(cls)
        if f.name not in cls.ARRAYS and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )


def _check_header(header: Any) -> tuple[type[Message], dict, list]:
    if not isinstance(header, dict):
        raise RemoteProtocolError("frame", "header", f"expected a map, got {type(header).__name__}")
    version = header.get("v")  # first: another version may lay out the rest of the header differently
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RemoteProtocolError("frame", "v", f"protocol version {_short(version)} is not spoken here (we speak {PROTOCOL_VERSION})")
    for key in header:
        if key not in _HEADER_KEYS:
            raise RemoteProtocolError("frame", "header", f"unknown key {_short(key)}")
    tag = header.get("t")
    cls = _REGISTRY.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise RemoteProtocolError("frame", "t", f"unknown message type {_short(tag)}")
    fields = header.get("f")
    if not isinstance(fields, dict):
        raise RemoteProtocolError(tag, "f", f"expected a map of fields, got {type(fields).__name__}")
    kinds = scalar_kinds(cls)
    for name in fields:
        if name not in kinds:
            raise RemoteProtocolError(tag, _short(name, 40) if not isinstance(name, str) else name[:40], "unknown field")
    for name in _required_fields(cls):
        if name not in fields:
            raise RemoteProtocolError(tag, name, "missing field")
    raw_specs = header.get("a")
    if not isinstance(raw_specs, list) or len(raw_specs) > _MAX_ARRAYS:
        raise RemoteProtocolError(tag, "a", f"expected a list of at most {_MAX_ARRAYS} array descriptions")
    layout = _layout(cls)
    if len(raw_specs) != len(layout) or any(
            type(spec) is not list or not spec or spec[0] != name for spec, (name, *_) in zip(raw_specs, layout)):
        names = [s[0] if isinstance(s, list) and s else None for s in raw_specs]
        raise RemoteProtocolError(tag, "a", f"arrays {_short(names, 200)} do not match {list(cls.ARRAYS)}")
    specs = []
    for spec, (name, want, want_str, want_ndim) in zip(raw_specs, layout):
        if len(spec) != 3:
            raise RemoteProtocolError(tag, name, "array description must be [name, dtype, shape]")
        _, dtype_str, shape = spec
        if dtype_str != want_str:
            raise RemoteProtocolError(tag, name, f"expected dtype {want_str} ({want}), got {_short(dtype_str)}")
        if (type(shape) is not list or len(shape) != want_ndim
                or not all(type(d) is int and 0 <= d < _MAX_DIM for d in shape)):
            raise RemoteProtocolError(tag, name, f"expected a shape of {want_ndim} non-negative ints, got {_short(shape)}")
        specs.append((name, want, shape))
    return cls, fields, specs


@functools.cache
def _layout(cls: type[Message]) -> tuple[tuple[str, np.dtype, str, int], ...]:
    """(name, dtype, dtype string, ndim) of each array field, in wire order."""
    return tuple((name, np.dtype(dtype), np.dtype(dtype).str, ndim) for name, (dtype, ndim) in cls.ARRAYS.items())


if np.dtype(np.uint64).alignment == 8:
    def _aligned8(view: memoryview) -> bool:
        """Whether the buffer starts 8-byte aligned in memory (numpy's aligned flag, cheaper than its address)."""
        return np.frombuffer(view, np.uint64, count=1).flags.aligned
else:  # pragma: no cover - 32-bit platforms
    def _aligned8(view: memoryview) -> bool:
        return np.frombuffer(view, np.uint8, count=1).__array_interface__["data"][0] % 8 == 0


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
            length, _ = _FRAME_HEADER.unpack_from(self._buf, self._start)
            total = FRAME_HEADER_BYTES + length
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
