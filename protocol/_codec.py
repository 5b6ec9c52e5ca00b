"""Messages to bytes and back, and length-prefixed frames for byte streams. No I/O here.

A frame is ``<u32 body length | flag><u32 crc32 of body><body>`` (little endian), so the body
starts 8-byte aligned. Bit 31 of the first word (``UNCHECKED``) says the body carries no
checksum (the second word is then 0): links that cannot corrupt a frame (ideal in-process
channels) leave the CRC out, every other link computes it and its receiver requires it. The
body is one plain msgpack array::

    [header, pad_0, data_0, pad_1, data_1, ...]

``header`` is a map ``{"v": version, "t": tag, "f": {scalar fields}, "a": [[name, dtype, shape], ...]}``;
each ``data_i`` is a bin32 holding the raw little-endian bytes of array ``i``, and each ``pad_i``
is a bin8 of 0..7 zero bytes that puts the next data on an 8-byte boundary of the body. Any
msgpack library decodes the whole body; ours reads only the header and wraps the data as
read-only numpy views, without copying. docs/protocol.md gives the layout byte by byte.

In one process a frame need never be joined: :func:`encode_parts` gives it as
:class:`FrameParts`, the list of buffers it is made of (header bytes, then each array's own
memory), and :func:`decode` wraps those buffers again, copying nothing either way.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np

from ._base import _REGISTRY, MAX_MAP_LEN, MAX_STR_BYTES, Message, _from_wire, scalar_kinds
from ._compiled import _DECODERS, _ENCODERS, GLUE, MAX_HEADER_BYTES, encoder, sealed_decoder
from ._errors import LocalProtocolError, RemoteProtocolError
from ._messages import PROTOCOL_VERSION

try:  # ISA-L computes the same CRC-32 as zlib several times faster (benchmarks/codec_speed.py); optional
    from isal.isal_zlib import crc32 as _crc32
except ImportError:
    from zlib import crc32 as _crc32

__all__ = [
    "encode",
    "encode_parts",
    "decode",
    "encode_body",
    "decode_body",
    "FrameParts",
    "FrameReader",
    "DEFAULT_MAX_FRAME_BYTES",
    "FRAME_HEADER_BYTES",
    "UNCHECKED",
]

DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame (header included) a reader accepts unless told otherwise: 64 MiB."""

FRAME_HEADER_BYTES = 8
UNCHECKED = 1 << 31
"""Bit 31 of a frame's first word: the body carries no checksum (the CRC word is 0). The other
31 bits are the body length."""

_LENGTH_BITS = UNCHECKED - 1
_FRAME_HEADER = struct.Struct("<II")
_ARRAY32 = 0xDD
_BIN8 = 0xC4
_BIN32 = 0xC6
_MAX_HEADER_BYTES = MAX_HEADER_BYTES
_MAX_ARRAYS = 64
_MAX_DIM = 1 << 40  # largest length of one array axis (and far beyond any frame)
_THREAD = threading.local()  # a msgpack Packer per thread (a Packer keeps a buffer between calls)


class FrameParts:
    """One frame as the buffers it is made of, never joined (scatter-gather).

    ``parts`` concatenated are the frame's bytes; ``len()`` is its length in bytes and
    ``bytes()`` joins it. What :func:`encode_parts` returns is *sealed*: made by our encoder from
    a message that passed its checks when it was built, its array parts are that message's own
    read-only arrays, and :func:`decode` hands them to the decoded message as they are, without
    copying and without re-running the message's value checks. Parts assembled by hand are
    joined and decoded like any bytes.
    """

    __slots__ = ("parts", "nbytes", "_sealed")

    def __init__(self, parts) -> None:
        self.parts = tuple(parts)
        self.nbytes = sum(memoryview(p).nbytes for p in self.parts)
        self._sealed = False

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)

    def __repr__(self) -> str:
        return f"FrameParts({len(self.parts)} parts, {self.nbytes} bytes{', sealed' if self._sealed else ''})"


def _encoder(cls: type) -> Any:
    """The generated body encoder of a catalogue class (protocol/_compiled.py)."""
    if not (isinstance(cls, type) and issubclass(cls, Message)) or _REGISTRY.get(cls.TAG) is not cls:
        raise TypeError(f"expected a message of the catalogue, got {cls.__name__}")
    return encoder(cls)


def _packer() -> msgpack.Packer:
    try:
        return _THREAD.packer
    except AttributeError:
        _THREAD.packer = packer = msgpack.Packer(use_bin_type=True)
        return packer


def _body_parts(msg: Message) -> tuple[list, int]:
    """([array32 marker, header, glue_0, data_0, glue_1, data_1, ...], body length): the body as
    chunks; each data_i is the message's own array (a copy only if it was strided)."""
    # the version is read here, per call (tests speak other versions by patching this module)
    return (_ENCODERS.get(type(msg)) or _encoder(type(msg)))(msg, _packer(), PROTOCOL_VERSION)


def encode_body(msg: Message) -> bytes:
    """The msgpack body of one message (no frame header)."""
    return b"".join(_body_parts(msg)[0])


def _frame_header(msg: Message, parts: list, length: int, checksum: bool) -> bytes:
    if length > _LENGTH_BITS:
        raise LocalProtocolError(type(msg).TAG, "body", f"{length} bytes do not fit the 31-bit frame length")
    if not checksum:
        return _FRAME_HEADER.pack(length | UNCHECKED, 0)
    crc = 0
    for part in parts:
        crc = _crc32(part, crc)
    return _FRAME_HEADER.pack(length, crc)


def encode(msg: Message, *, checksum: bool = True) -> bytes:
    """One frame: the 8-byte frame header followed by the message body. Copies each array once.

    checksum: put the body's CRC-32 in the frame (what every link that can corrupt a frame
    needs); False sets the ``UNCHECKED`` flag instead and saves a pass over the bytes."""
    parts, length = _body_parts(msg)
    return b"".join([_frame_header(msg, parts, length, checksum), *parts])


def encode_parts(msg: Message) -> FrameParts:
    """The frame of ``msg`` without checksum (``UNCHECKED``) as sealed :class:`FrameParts`: the
    header bytes and the message's own read-only arrays, never joined. For links that cannot
    corrupt a frame and can carry a list of buffers (the in-process MemoryTransport); ``bytes()``
    of it equals ``encode(msg, checksum=False)``."""
    try:  # _body_parts, written out: this runs for every message on every in-process link
        packer = _THREAD.packer
    except AttributeError:
        packer = _packer()
    parts, length = (_ENCODERS.get(type(msg)) or _encoder(type(msg)))(msg, packer, PROTOCOL_VERSION)
    if length > _LENGTH_BITS:
        raise LocalProtocolError(msg.TAG, "body", f"{length} bytes do not fit the 31-bit frame length")
    parts[0] = _UNCHECKED_HEAD.pack(length | UNCHECKED, 0, parts[0])  # frame header + array32 marker
    frame = _new(FrameParts)
    frame.parts = parts
    frame.nbytes = FRAME_HEADER_BYTES + length
    frame._sealed = True
    return frame


_UNCHECKED_HEAD = struct.Struct("<II5s")


def decode(frame: bytes | bytearray | memoryview | FrameParts, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
           *, require_checksum: bool = False) -> Message:
    """Decode one whole frame; raises RemoteProtocolError naming the message and field at fault.

    The message's arrays are read-only views into ``frame`` (into one aligned copy of the body
    if ``frame`` does not sit 8-byte aligned in memory; ``bytes`` objects always do; for sealed
    FrameParts, views of the sender's arrays). require_checksum: refuse a frame that carries no
    CRC (``UNCHECKED``): a link that can corrupt frames must ask for it.
    """
    if type(frame) is FrameParts:
        if frame._sealed:
            if require_checksum:
                raise RemoteProtocolError("frame", "crc32", "this link requires checksummed frames; the frame "
                                          "carries none (UNCHECKED flag set)")
            if frame.nbytes > max_frame_bytes:
                raise RemoteProtocolError("frame", "length", f"{frame.nbytes} bytes exceeds the maximum {max_frame_bytes}")
            # Read the header, match it against the class, give the new message the sender's arrays
            # as they are (no copy), without re-running its value checks (it passed them when it
            # was built; protocol/_compiled.py). Anything unexpected: join and decode in full.
            parts = frame.parts
            try:
                # msgpack's defaults: raw=False, strict_map_key=True; arrays as tuples (cheaper than lists)
                header = msgpack.unpackb(parts[1], use_list=False)
                cls = _REGISTRY[header["t"]]
                if header["v"] == PROTOCOL_VERSION:
                    msg = (_DECODERS.get(cls) or sealed_decoder(cls))(parts, header)
                    if msg is not None:
                        return msg
            except Exception:  # noqa: BLE001, S110 - not our encoder's layout after all: said below
                pass
        frame = bytes(frame)
    # a bytes object's data sit 8-byte aligned (CPython allocates it so), hence its body too
    aligned = _BYTES_ALIGNED and type(frame) is bytes
    view = memoryview(frame) if aligned else memoryview(frame).cast("B")
    if view.nbytes < FRAME_HEADER_BYTES:
        raise RemoteProtocolError("frame", "header", f"truncated: {view.nbytes} bytes, need {FRAME_HEADER_BYTES}")
    word, crc = _FRAME_HEADER.unpack_from(view)
    length = word & _LENGTH_BITS
    if FRAME_HEADER_BYTES + length > max_frame_bytes:
        raise RemoteProtocolError("frame", "length", f"{FRAME_HEADER_BYTES + length} bytes exceeds the maximum {max_frame_bytes}")
    if view.nbytes != FRAME_HEADER_BYTES + length:
        raise RemoteProtocolError("frame", "length", f"header says {length} body bytes, frame holds {view.nbytes - FRAME_HEADER_BYTES}")
    body = view[FRAME_HEADER_BYTES:]
    if not word & UNCHECKED:
        if _crc32(body) != crc:
            raise RemoteProtocolError("frame", "crc32", "checksum mismatch: the frame was corrupted")
    elif require_checksum:
        raise RemoteProtocolError("frame", "crc32", "this link requires checksummed frames; the frame carries "
                                  "none (UNCHECKED flag set)")
    elif crc:
        raise RemoteProtocolError("frame", "crc32", f"a frame without checksum (UNCHECKED flag set) must carry 0 "
                                  f"in the checksum field, got {crc:#010x}")
    return _decode_body(body, aligned)


_new = object.__new__
_put = object.__setattr__


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


def _empty(dtype: np.dtype, shape: tuple) -> np.ndarray:
    return _read_only(np.empty(shape, dtype))


def decode_body(body: bytes | bytearray | memoryview) -> Message:
    """Decode one message body; arrays are read-only views into ``body`` (see :func:`decode`)."""
    return _decode_body(memoryview(body).cast("B"), False)


def _decode_body(view: memoryview, aligned: bool) -> Message:
    """decode_body of a byte view; ``aligned``: the caller knows the view starts 8-byte aligned."""
    n = view.nbytes
    if n < 5 or view[0] != _ARRAY32:
        raise RemoteProtocolError("frame", "body", "not a neurosplit message: expected a msgpack array32")
    (n_items,) = struct.unpack_from(">I", view, 1)
    header, pos = _read_header(view)
    cls, fields, specs = _check_header(header)
    tag = cls.TAG
    if n_items != 1 + 2 * len(specs):
        raise RemoteProtocolError(tag, "a", f"body holds {n_items} items, header lists {len(specs)} arrays")
    if specs and not aligned and n >= 8 and not _aligned8(view):
        view = memoryview(bytes(view))  # bytes objects keep their data 8-byte aligned
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape in specs:
        want = math.prod(shape) * dtype.itemsize  # Python ints: a huge declared shape cannot wrap around
        # The one valid pad aligns the data: pad length, pad and bin32 header are all known from
        # the position and the declared shape, so a well-formed frame is checked by one compare;
        # _array_fault says what is wrong with any other.
        k = (-(pos + 7)) % 8
        start = pos + 7 + k
        if want >= 1 << 32 or start + want > n or view[pos:start] != GLUE[k].pack(_BIN8, k, _BIN32, want):
            _array_fault(view, pos, tag, name, dtype, shape, want)
        if want:
            arr = np.frombuffer(view, dtype, want // dtype.itemsize, start)
            if len(shape) != 1:
                arr = arr.reshape(shape)
            if arr.flags.writeable:  # views into a writable buffer (a bytearray) must not change under us
                arr.flags.writeable = False
        else:
            arr = _empty(dtype, tuple(shape))
        arrays[name] = arr
        pos = start + want
    if pos != n:
        raise RemoteProtocolError(tag, "body", f"{n - pos} trailing bytes after the last array")
    try:
        return _from_wire(cls, fields, arrays)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(exc.message, exc.field, exc.problem) from exc


def _array_fault(view: memoryview, pos: int, tag: str, name: str, dtype: np.dtype, shape: list, want: int) -> None:
    """Raise the error that names what is wrong with the pad, bin32 header or data of an array
    whose bytes at body offset ``pos`` are not what a well-formed frame holds there."""
    n = view.nbytes
    if pos + 2 > n or view[pos] != _BIN8:
        raise RemoteProtocolError(tag, name, "truncated or malformed before the array data (expected a bin8 pad)")
    k = view[pos + 1]
    if k > 7 or pos + 2 + k > n or (pos + 2 + k + 5) % 8 or (k and any(view[pos + 2:pos + 2 + k])):
        raise RemoteProtocolError(tag, name, f"pad of {k} bytes at body offset {pos} must be the 0..7 zero "
                                  "bytes that put the array data on an 8-byte boundary")
    pos += 2 + k
    if pos + 5 > n or view[pos] != _BIN32:
        raise RemoteProtocolError(tag, name, "truncated or malformed array header (expected a bin32)")
    (nbytes,) = struct.unpack_from(">I", view, pos + 1)
    pos += 5
    if nbytes != want:
        raise RemoteProtocolError(tag, name, f"{nbytes} data bytes do not hold shape {tuple(shape)} of {dtype}")
    if pos + nbytes > n:
        raise RemoteProtocolError(tag, name, f"truncated: needs {nbytes} bytes, {n - pos} left")
    raise AssertionError(f"{tag}.{name}: array bytes at body offset {pos} refused, but no fault found")  # pragma: no cover


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
    """The msgpack header after the 5-byte array32 marker, and the body offset where it ends.
    Fed to a bounded Unpacker 512 bytes at a time (a header is ~100 bytes), never more than
    64 KiB: the array data behind it is not copied."""
    unpacker = msgpack.Unpacker(**_UNPACK_LIMITS)
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


_UNPACK_LIMITS = dict(raw=False, strict_map_key=True, max_buffer_size=_MAX_HEADER_BYTES, max_bin_len=0, max_ext_len=0,
                      max_str_len=MAX_STR_BYTES, max_array_len=max(_MAX_ARRAYS, 3), max_map_len=MAX_MAP_LEN)


_HEADER_KEYS = ("v", "t", "f", "a")


_FIELD_NAMES: dict[type, tuple[frozenset, tuple[str, ...]]] = {}


def _field_names(cls: type[Message]) -> tuple[frozenset, tuple[str, ...]]:
    """(every scalar field, the scalar fields without a default in declaration order): a frame
    must carry the second and nothing outside the first (fields with defaults may be absent)."""
    required = tuple(
        f.name for f in dataclasses.fields(cls)
        if f.name not in cls.ARRAYS and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    _FIELD_NAMES[cls] = found = (frozenset(scalar_kinds(cls)), required)
    return found


def _check_header(header: Any) -> tuple[type[Message], dict, list]:
    if type(header) is not dict:
        raise RemoteProtocolError("frame", "header", f"expected a map, got {type(header).__name__}")
    version = header.get("v")  # first: another version may lay out the rest of the header differently
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise RemoteProtocolError("frame", "v", f"protocol version {_short(version)} is not spoken here (we speak {PROTOCOL_VERSION})")
    if len(header) != 4 or not header.keys() <= _HEADER_SET:
        for key in header:
            if key not in _HEADER_KEYS:
                raise RemoteProtocolError("frame", "header", f"unknown key {_short(key)}")
    tag = header.get("t")
    cls = _REGISTRY.get(tag) if type(tag) is str else None
    if cls is None:
        raise RemoteProtocolError("frame", "t", f"unknown message type {_short(tag)}")
    fields = header.get("f")
    if type(fields) is not dict:
        raise RemoteProtocolError(tag, "f", f"expected a map of fields, got {type(fields).__name__}")
    known, required = _FIELD_NAMES.get(cls) or _field_names(cls)
    names = fields.keys()
    if not names <= known:
        for name in fields:
            if name not in known:
                raise RemoteProtocolError(tag, _short(name, 40) if not isinstance(name, str) else name[:40], "unknown field")
    for name in required:
        if name not in fields:
            raise RemoteProtocolError(tag, name, "missing field")
    raw_specs = header.get("a")
    if type(raw_specs) is not list or len(raw_specs) > _MAX_ARRAYS:
        raise RemoteProtocolError(tag, "a", f"expected a list of at most {_MAX_ARRAYS} array descriptions")
    layout = _LAYOUTS.get(cls) or _layout(cls)
    names_match = len(raw_specs) == len(layout)
    if names_match:
        for spec, entry in zip(raw_specs, layout):
            if type(spec) is not list or not spec or spec[0] != entry[0]:
                names_match = False
                break
    if not names_match:
        names = [s[0] if isinstance(s, list) and s else None for s in raw_specs]
        raise RemoteProtocolError(tag, "a", f"arrays {_short(names, 200)} do not match {list(cls.ARRAYS)}")
    specs = []
    for spec, (name, want, want_str, want_ndim) in zip(raw_specs, layout):
        if len(spec) != 3:
            raise RemoteProtocolError(tag, name, "array description must be [name, dtype, shape]")
        _, dtype_str, shape = spec
        if dtype_str != want_str:
            raise RemoteProtocolError(tag, name, f"expected dtype {want_str} ({want}), got {_short(dtype_str)}")
        if type(shape) is not list or len(shape) != want_ndim:
            raise RemoteProtocolError(tag, name, f"expected a shape of {want_ndim} non-negative ints, got {_short(shape)}")
        for d in shape:
            if type(d) is not int or not 0 <= d < _MAX_DIM:
                raise RemoteProtocolError(tag, name, f"expected a shape of {want_ndim} non-negative ints, got {_short(shape)}")
        specs.append((name, want, shape))
    return cls, fields, specs


_HEADER_SET = frozenset(_HEADER_KEYS)


_LAYOUTS: dict[type, tuple[tuple[str, np.dtype, str, int], ...]] = {}


def _layout(cls: type[Message]) -> tuple[tuple[str, np.dtype, str, int], ...]:
    """(name, dtype, dtype string, ndim) of each array field, in wire order."""
    found = tuple((name, np.dtype(dtype), np.dtype(dtype).str, ndim) for name, (dtype, ndim) in cls.ARRAYS.items())
    _LAYOUTS[cls] = found
    return found


if np.dtype(np.uint64).alignment == 8:
    def _aligned8(view: memoryview) -> bool:
        """Whether the buffer starts 8-byte aligned in memory (numpy's aligned flag, cheaper than its address)."""
        return np.frombuffer(view, np.uint64, count=1).flags.aligned
else:  # pragma: no cover - 32-bit platforms
    def _aligned8(view: memoryview) -> bool:
        return np.frombuffer(view, np.uint8, count=1).__array_interface__["data"][0] % 8 == 0


_BYTES_ALIGNED = all(_aligned8(memoryview(bytes(n))) for n in (8, 24, 1000, 100_000))
"""Whether this interpreter keeps the data of bytes objects 8-byte aligned (CPython on 64-bit
platforms does: the object header is 32 bytes, and allocations are 16-byte aligned)."""


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
