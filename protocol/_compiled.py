"""Per-class encoders and sealed-frame decoders, generated once per message class.

The codec's fixed cost per message is Python work, not bytes: looking up fields, looping over a
class's arrays, building the header. For each message class this module writes that work out as
one straight-line function (as ``dataclasses`` writes ``__init__``), so a message costs a few
attribute reads and one msgpack call each way. The functions do what the loops in
``_codec.py`` would do, byte for byte; tests compare the frames with an independent builder
written from docs/protocol.md (``tests/strategies.py``).

- ``encoder(cls)(msg, packer, version) -> (parts, body_length)``: the body as ``[array32 marker, header,
  glue_0, data_0, glue_1, data_1, ...]``, where ``glue_i`` is the bin8 pad and bin32 header in
  front of array ``i`` and ``data_i`` the message's own array (an aligned, contiguous, read-only
  copy only if the message holds a strided or unaligned view).
- ``sealed_decoder(cls)(parts, header) -> message | None``: a message from sealed FrameParts (made
  by our encoder from a message that passed its checks): the header's array descriptions are
  matched against the class, the array parts become the message's arrays as they are, and the
  value checks are not run again. None when the header does not match (the caller then decodes
  the joined bytes in full, which names the fault).
"""

from __future__ import annotations

import struct
from typing import Any, Callable

import numpy as np

from ._base import FrozenDict, Message, scalar_kinds
from ._errors import LocalProtocolError

__all__ = ["encoder", "sealed_decoder", "MAX_HEADER_BYTES", "GLUE"]

MAX_HEADER_BYTES = 64 * 1024
_ARRAY32 = 0xDD
_BIN8 = 0xC4
_BIN32 = 0xC6
_BEHAVED = 0x101  # numpy flags C_CONTIGUOUS | ALIGNED: the data can go as they are
GLUE = tuple(struct.Struct(f">BB{k}xBI") for k in range(8))
"""The bytes between two arrays, by pad length k: a bin8 of k zero bytes, then the bin32 header of
the next data (its byte count)."""

_ENCODERS: dict[type, Callable] = {}
_DECODERS: dict[type, Callable] = {}


def _contiguous(a: np.ndarray) -> np.ndarray:
    """An aligned, C-contiguous, read-only copy of a strided or unaligned view."""
    out = np.array(a, order="C")
    out.flags.writeable = False
    return out


def _too_big(tag: str, name: str, nbytes: int) -> None:
    raise LocalProtocolError(tag, name, f"{nbytes} bytes do not fit a bin32")


def _header_too_big(tag: str, n: int) -> None:  # the fields are each within bounds, but not together
    raise LocalProtocolError(tag, "f", f"header of {n} bytes exceeds {MAX_HEADER_BYTES}")


def encoder(cls: type[Message]) -> Callable[[Message, Any, int], tuple[list, int]]:
    """The body encoder of ``cls`` (see the module docstring); generated on first use."""
    found = _ENCODERS.get(cls)
    if found is not None:
        return found
    arrays = list(cls.ARRAYS.items())
    fields = ", ".join(f"{name!r}: msg.{name}" for name in scalar_kinds(cls))
    specs = "".join(f"({name!r}, S{i} if a{i}.dtype is D{i} else a{i}.dtype.str, a{i}.shape), "
                    for i, (name, _) in enumerate(arrays))
    lines = ["def encode(msg, packer, version):"]
    for i, (name, _) in enumerate(arrays):
        lines += [f"    a{i} = msg.{name}",
                  f"    if a{i}.flags.num & {_BEHAVED} != {_BEHAVED}: a{i} = contiguous(a{i})"]
    lines += [f"    packed = packer.pack({{'v': version, 't': TAG, 'f': {{{fields}}}, 'a': ({specs})}})",
              "    pos = 5 + len(packed)",
              f"    if pos > {5 + MAX_HEADER_BYTES}: header_too_big(TAG, pos - 5)"]
    parts = ["MARKER", "packed"]
    for i, (name, _) in enumerate(arrays):
        lines += [f"    n{i} = a{i}.nbytes",
                  f"    if n{i} >= 4294967296: too_big(TAG, {name!r}, n{i})",
                  f"    k{i} = (-(pos + 7)) % 8",  # pad element: 2 + k bytes, then 5 of bin32 header
                  f"    g{i} = GLUE[k{i}].pack({_BIN8}, k{i}, {_BIN32}, n{i})",
                  f"    pos += 7 + k{i} + n{i}"]
        parts += [f"g{i}", f"a{i}"]
    lines.append(f"    return [{', '.join(parts)}], pos")
    namespace: dict[str, Any] = {
        "TAG": cls.TAG, "MARKER": struct.pack(">BI", _ARRAY32, 1 + 2 * len(arrays)), "GLUE": GLUE,
        "contiguous": _contiguous, "too_big": _too_big, "header_too_big": _header_too_big}
    for i, (_, (dtype, _)) in enumerate(arrays):
        namespace[f"D{i}"] = np.dtype(dtype)
        namespace[f"S{i}"] = np.dtype(dtype).str
    exec("\n".join(lines), namespace)  # noqa: S102 - built from the class's own field names only
    _ENCODERS[cls] = found = namespace["encode"]
    return found


def sealed_decoder(cls: type[Message]) -> Callable[[list, dict], Message | None]:
    """The sealed-frame decoder of ``cls`` (see the module docstring); generated on first use."""
    found = _DECODERS.get(cls)
    if found is not None:
        return found
    arrays = list(cls.ARRAYS.items())
    lines = ["def decode(parts, header):",
             f"    if len(parts) != {2 + 2 * len(arrays)}: return None"]
    if arrays:
        lines.append(f"    ({''.join(f'(_, s{i}, h{i}), ' for i in range(len(arrays)))}) = header['a']")
        match = " and ".join(f"s{i} == S{i} and len(h{i}) == {ndim}" for i, (_, (_, ndim)) in enumerate(arrays))
        lines.append(f"    if not ({match}): return None")
    else:
        lines.append("    if header['a']: return None")
    lines += ["    f = header['f']", "    msg = new(cls)"]
    for i, (name, _) in enumerate(arrays):
        lines.append(f"    put(msg, {name!r}, parts[{3 + 2 * i}])")
    for name, kind in scalar_kinds(cls).items():
        value = f"f[{name!r}]" if kind in (int, float, bool, str) else f"FrozenDict(f[{name!r}])"
        lines.append(f"    put(msg, {name!r}, {value})")
    lines.append("    return msg")
    namespace: dict[str, Any] = {"new": object.__new__, "put": object.__setattr__, "cls": cls, "FrozenDict": FrozenDict}
    for i, (_, (dtype, _)) in enumerate(arrays):
        namespace[f"S{i}"] = np.dtype(dtype).str
    exec("\n".join(lines), namespace)  # noqa: S102 - built from the class's own field names only
    _DECODERS[cls] = found = namespace["decode"]
    return found
