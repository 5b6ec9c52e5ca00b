"""The message header of a frame body: read it from the bytes (bounded), and check it against the
catalogue before any array is touched (docs/protocol.md, "Decoding rules and limits").

``_read_header(view)`` reads the msgpack map that follows the body's array32 marker through a
bounded Unpacker and says where it ends; ``_check_header(header)`` returns the message class, the
scalar fields and the array descriptions, or raises RemoteProtocolError naming the fault.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import numpy as np

from ._base import _REGISTRY, MAX_MAP_LEN, MAX_STR_BYTES, Message, scalar_kinds
from ._compiled import MAX_HEADER_BYTES
from ._errors import RemoteProtocolError
from ._messages import PROTOCOL_VERSION

_MAX_HEADER_BYTES = MAX_HEADER_BYTES
_MAX_ARRAYS = 64
_MAX_DIM = 1 << 40  # largest length of one array axis (and far beyond any frame)


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
