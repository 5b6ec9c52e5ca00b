"""Messages to frames and back. No I/O here.

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

Per-class encoders and sealed-frame decoders are in ``_compiled.py``, the header reader and its
checks in ``_header.py``, the splitter of byte streams into frames in ``_stream.py``.
"""

from __future__ import annotations

import math
import struct
import threading
from typing import Any

import msgpack
import numpy as np

from ._base import _REGISTRY, Message, _from_wire
from ._compiled import _DECODERS, _ENCODERS, GLUE, encoder, sealed_decoder
from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import _check_header, _read_header
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
