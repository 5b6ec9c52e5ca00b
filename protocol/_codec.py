"""Messages to bytes and back, and length-prefixed frames for byte streams. No I/O here.

A frame is ``<u32 body length><u32 crc32 of body><body>`` (little endian), so the body starts
8-byte aligned. The body is one plain msgpack array::

    [header, pad_0, data_0, pad_1, data_1, ...]

``header`` is a map ``{"v": version, "t": tag, "f": {scalar fields}, "a": [[name, dtype, shape], ...]}``;
each ``data_i`` is a bin32 holding the raw little-endian bytes of array ``i``, and each ``pad_i``
is a short bin that puts the next data on an 8-byte boundary. Any msgpack library decodes the
whole body; ours reads only the header and wraps the data as read-only numpy views, without
copying.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import msgpack
import numpy as np

from ._base import Message, message_classes, scalar_kinds
from ._errors import LocalProtocolError, RemoteProtocolError
from ._messages import PROTOCOL_VERSION

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
_MAX_NDIM = 8


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True)


def encode_body(msg: Message) -> bytes:
    """The msgpack body of one message (no frame header)."""
    cls = type(msg)
    scalars = {name: getattr(msg, name) for name in scalar_kinds(cls)}
    arrays = [np.ascontiguousarray(getattr(msg, name)) for name in cls.ARRAYS]
    header = {
        "v": PROTOCOL_VERSION,
        "t": cls.TAG,
        "f": scalars,
        "a": [[name, a.dtype.str, list(a.shape)] for name, a in zip(cls.ARRAYS, arrays)],
    }
    parts = [struct.pack(">BI", _ARRAY32, 1 + 2 * len(arrays)), _packer().pack(header)]
    pos = sum(len(p) for p in parts)
    for a in arrays:
        # pad element: 2 bytes of bin8 header + k zero bytes; then 5 bytes of bin32 header.
        k = (-(pos + 2 + 5)) % 8
        data = a.view(np.uint8).reshape(-1) if a.size else b""
        parts.append(bytes((_BIN8, k)) + b"\0" * k + struct.pack(">BI", _BIN32, a.nbytes))
        parts.append(data)
        pos += 2 + k + 5 + a.nbytes
    return b"".join(bytes(p) if isinstance(p, np.ndarray) else p for p in parts)


def encode(msg: Message) -> bytes:
    """One frame: the 8-byte frame header followed by the message body."""
    body = encode_body(msg)
    return _FRAME_HEADER.pack(len(body), zlib.crc32(body)) + body


def decode(frame: bytes | bytearray | memoryview, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Message:
    """Decode one whole frame; raises RemoteProtocolError naming the message and field at fault."""
    view = memoryview(frame)
    if view.nbytes < FRAME_HEADER_BYTES:
        raise RemoteProtocolError("frame", "header", f"truncated: {view.nbytes} bytes, need {FRAME_HEADER_BYTES}")
    length, crc = _FRAME_HEADER.unpack_from(view)
    if FRAME_HEADER_BYTES + length > max_frame_bytes:
        raise RemoteProtocolError("frame", "length", f"{FRAME_HEADER_BYTES + length} bytes exceeds the maximum {max_frame_bytes}")
    if view.nbytes != FRAME_HEADER_BYTES + length:
        raise RemoteProtocolError("frame", "length", f"header says {length} body bytes, frame holds {view.nbytes - FRAME_HEADER_BYTES}")
    body = view[FRAME_HEADER_BYTES:]
    if zlib.crc32(body) != crc:
        raise RemoteProtocolError("frame", "crc32", "checksum mismatch: the frame was corrupted")
    return decode_body(body)


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """Decode one message body; arrays are read-only views into ``body``."""
    view = memoryview(body).cast("B")
    n = view.nbytes
    if n < 5 or view[0] != _ARRAY32:
        raise RemoteProtocolError("frame", "body", "not a neurosplit message: expected a msgpack array32")
    (n_items,) = struct.unpack_from(">I", view, 1)
    header, pos = _read_header(view)
    tag, fields, specs = _check_header(header)
    cls = message_classes()[tag]
    if n_items != 1 + 2 * len(specs):
        raise RemoteProtocolError(tag, "a", f"body holds {n_items} items, header lists {len(specs)} arrays")
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in specs:
        if pos + 2 > n or view[pos] != _BIN8:
            raise RemoteProtocolError(tag, name, "truncated or malformed before the array data")
        pos += 2 + view[pos + 1]
        if pos + 5 > n or view[pos] != _BIN32:
            raise RemoteProtocolError(tag, name, "truncated or malformed array header")
        (nbytes,) = struct.unpack_from(">I", view, pos + 1)
        pos += 5
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
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
        return cls(**fields, **arrays)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, exc.field, exc.problem) from exc


def _read_header(view: memoryview) -> tuple[Any, int]:
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=_MAX_HEADER_BYTES,
        max_bin_len=0,
        max_ext_len=0,
        max_str_len=4096,
        max_array_len=256,
        max_map_len=256,
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
            raise RemoteProtocolError("frame", "header", f"not a msgpack header: {exc}") from exc
        return header, 5 + unpacker.tell()


def _check_header(header: Any) -> tuple[str, dict, list]:
    if not isinstance(header, dict):
        raise RemoteProtocolError("frame", "header", f"expected a map, got {type(header).__name__}")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError("frame", "v", f"protocol version {version!r} is not spoken here (we speak {PROTOCOL_VERSION})")
    tag = header.get("t")
    classes = message_classes()
    if not isinstance(tag, str) or tag not in classes:
        raise RemoteProtocolError("frame", "t", f"unknown message type {tag!r}")
    cls = classes[tag]
    fields = header.get("f")
    if not isinstance(fields, dict):
        raise RemoteProtocolError(tag, "f", f"expected a map of fields, got {type(fields).__name__}")
    kinds = scalar_kinds(cls)
    for name in fields:
        if name not in kinds:
            raise RemoteProtocolError(tag, str(name), "unknown field")
    raw_specs = header.get("a")
    if not isinstance(raw_specs, list) or len(raw_specs) > _MAX_ARRAYS:
        raise RemoteProtocolError(tag, "a", "expected a list of array descriptions")
    names = [s[0] if isinstance(s, list) and s else None for s in raw_specs]
    if names != list(cls.ARRAYS):
        raise RemoteProtocolError(tag, "a", f"arrays {names} do not match {list(cls.ARRAYS)}")
    specs = []
    for spec in raw_specs:
        if len(spec) != 3:
            raise RemoteProtocolError(tag, spec[0], "array description must be [name, dtype, shape]")
        name, dtype_str, shape = spec
        want_dtype, want_ndim = cls.ARRAYS[name]
        want = np.dtype(want_dtype)
        if dtype_str != want.str:
            raise RemoteProtocolError(tag, name, f"expected dtype {want.str} ({want}), got {dtype_str!r}")
        if (not isinstance(shape, list) or len(shape) != want_ndim or len(shape) > _MAX_NDIM
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)):
            raise RemoteProtocolError(tag, name, f"expected a shape of {want_ndim} non-negative ints, got {shape!r}")
        specs.append((name, want, shape))
    return tag, fields, specs


class FrameReader:
    """Sans-I/O splitter of a byte stream into whole frames.

    ``feed(data)`` appends received bytes; ``frames()`` yields each complete frame. A frame longer
    than ``max_frame_bytes`` raises RemoteProtocolError as soon as its header is seen, before its
    body is buffered, so no peer can make the reader hold more than the maximum.
    """

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < FRAME_HEADER_BYTES:
            raise ValueError(f"max_frame_bytes must be >= {FRAME_HEADER_BYTES}, got {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def frames(self):
        while len(self._buf) >= FRAME_HEADER_BYTES:
            length, _ = _FRAME_HEADER.unpack_from(self._buf)
            total = FRAME_HEADER_BYTES + length
            if total > self.max_frame_bytes:
                raise RemoteProtocolError("frame", "length", f"{total} bytes exceeds the maximum {self.max_frame_bytes}")
            if len(self._buf) < total:
                return
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            yield frame
