"""Frames a correct host never sends, built by hand: one per class of malformed input.

Each builder starts from a valid frame of the catalogue and breaks one thing, so the board's
answer can name exactly that thing. The layout (docs/protocol.md, "Frame and body layout") is
rebuilt here with plain msgpack, independently of the codec under test.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Callable

import msgpack
import numpy as np

from ...protocol import ReadWeights, RunRequest, SpikeBatch, WriteWeights, encode

__all__ = ["split_frame", "build_frame", "rebuild", "MALFORMED"]


def split_frame(frame: bytes) -> tuple[dict, list[bytes]]:
    """(header map, [array data, ...]) of a valid frame."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
    unpacker.feed(frame[8:])
    items = list(unpacker)
    if not items or not isinstance(items[0], list):  # the body is one array: [header, pad, data, ...]
        raise ValueError("not a neurosplit frame")
    body = items[0]
    return body[0], [bytes(x) for x in body[2::2]]


def build_frame(header: Any, datas: list[bytes], *, length: int | None = None, crc: int | None = None) -> bytes:
    """A frame around ``header`` and the arrays' data, aligned as the protocol lays it out."""
    body = bytearray(struct.pack(">BI", 0xDD, 1 + 2 * len(datas)))
    body += msgpack.packb(header, use_bin_type=True)
    for data in datas:
        k = (-(len(body) + 2 + 5)) % 8
        body += bytes((0xC4, k)) + bytes(k) + struct.pack(">BI", 0xC6, len(data)) + bytes(data)
    return struct.pack("<II", len(body) if length is None else length,
                       zlib.crc32(body) if crc is None else crc) + bytes(body)


def rebuild(frame: bytes, edit: Callable[[dict, list[bytes]], Any]) -> bytes:
    """``frame`` with its header and array data changed in place by ``edit(header, datas)``."""
    header, datas = split_frame(frame)
    edit(header, datas)
    return build_frame(header, datas)


def _read(request_id: int = 900) -> bytes:
    return encode(ReadWeights(request_id=request_id, row=[0], column=[0]))


def bad_crc() -> bytes:
    frame = bytearray(_read())
    frame[-1] ^= 0x01  # one bit of the array data: the CRC no longer matches
    return bytes(frame)


def truncated() -> bytes:
    return _read()[:-3]


def bad_msgpack() -> bytes:
    body = struct.pack(">BI", 0xDD, 1) + b"\xc1" * 16  # 0xc1 is the one byte msgpack never uses
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def unknown_tag() -> bytes:
    return rebuild(encode(RunRequest(run_id=901, n_samples=1, sample_ticks=100)),
                   lambda h, d: h.update(t="run_reqest"))


def missing_field() -> bytes:
    return rebuild(encode(RunRequest(run_id=902, n_samples=1, sample_ticks=100)), lambda h, d: h["f"].pop("run_id"))


def wrong_dtype() -> bytes:
    def edit(h, d):
        h["a"][0][1] = "<i4"  # t_ticks declared int32 instead of int64
        d[0] = np.asarray([5, 6], np.int32).tobytes()

    return rebuild(encode(SpikeBatch(run_id=903, t_ticks=[5, 6], label=[0, 1], sample=[0, 0], horizon_ticks=7)), edit)


def weight_out_of_range() -> bytes:
    def edit(h, d):
        d[2] = bytes([64])  # one code above WEIGHT_MAX (63)

    return rebuild(encode(WriteWeights(request_id=904, row=[0], column=[0], weight=[[1]])), edit)


def unchecked() -> bytes:
    """A valid frame sent without its checksum (the UNCHECKED flag): only ideal in-process links,
    which cannot flip bits, may carry those; a host link requires the CRC."""
    return encode(ReadWeights(request_id=905, row=[0], column=[0]), checksum=False)


def oversize() -> bytes:
    """A frame header announcing a 4 GiB body: refused from the header alone, before any body."""
    return struct.pack("<II", 0xFFFFFFF0, 0) + b"\0" * 16


MALFORMED: dict[str, tuple[Callable[[], bytes], str]] = {
    "bad-crc": (bad_crc, "frame.crc32"),
    "truncated": (truncated, "frame.length"),
    "bad-msgpack": (bad_msgpack, "frame.header"),
    "unknown-tag": (unknown_tag, "frame.t"),
    "missing-field": (missing_field, "run_request.run_id"),
    "wrong-dtype": (wrong_dtype, "spike_batch.t_ticks"),
    "weight-out-of-range": (weight_out_of_range, "write_weights.weight[0,0]"),
    "unchecked": (unchecked, "frame.crc32"),
    "oversize": (oversize, "frame.length"),
}
"""name -> (frame builder, the field path the board's Error must name)."""
