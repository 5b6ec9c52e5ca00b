"""Every message of the catalogue survives encode/decode, and the bytes are what docs/protocol.md says.

The round trip is checked against itself (decode(encode(m)) == m, encode(decode(f)) == f) and
against independent readers and writers: the reference msgpack unpacker reads every body, and
``strategies.reference_frame`` (msgpack.packb + struct, written from the doc) must produce the
same bytes as our encoder.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import struct
import typing
import zlib
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from neurosplit.protocol import (
    MAX_LABEL,
    PROTOCOL_VERSION,
    FrozenDict,
    LocalProtocolError,
    Message,
    RunComplete,
    Shutdown,
    SpikeBatch,
    decode,
    decode_body,
    encode,
    encode_body,
    message_classes,
)

TAGS = sorted(message_classes())
CLASSES = message_classes()
DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
ROUND_TRIP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_views_into(msg: Message, frame: bytes | bytearray) -> None:
    """Every array of a decoded message is a read-only, aligned view into the frame's body."""
    base = np.frombuffer(frame, np.uint8)
    lo, hi = base.ctypes.data, base.ctypes.data + base.nbytes
    for name, (dtype, ndim) in type(msg).ARRAYS.items():
        a = getattr(msg, name)
        assert a.dtype == np.dtype(dtype) and a.ndim == ndim, name
        assert not a.flags.writeable, f"{name} is writeable"
        with pytest.raises(ValueError):
            a[...] = 0
        if a.size:
            assert a.flags.c_contiguous, name
            assert np.shares_memory(a, base), f"{name} was copied"
            assert lo + 8 <= a.ctypes.data and a.ctypes.data + a.nbytes <= hi, f"{name} lies outside the body"
            assert a.ctypes.data % 8 == 0, f"{name} is not 8-byte aligned"


def data_offsets(body: bytes) -> list[int]:
    """Body offsets of each array's data, found with the reference unpacker's tell()."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(body) + 1)
    unpacker.feed(body)
    n_items = unpacker.read_array_header()
    unpacker.unpack()  # the header
    offsets = []
    for _ in range((n_items - 1) // 2):
        unpacker.unpack()  # pad
        data = unpacker.unpack()
        offsets.append(unpacker.tell() - len(data))
    return offsets


# -- the round trip ----------------------------------------------------------------------
@pytest.mark.parametrize("tag", TAGS)
@ROUND_TRIP
@given(data=st.data())
def test_every_message_round_trips(tag, data):
    msg = data.draw(strategies.message_of(CLASSES[tag]))
    frame = encode(msg)
    back = decode(frame)
    assert type(back) is type(msg)
    assert back == msg
    assert encode(back) == frame
    assert_views_into(back, frame)
    assert encode_body(msg) == frame[8:]
    assert decode_body(frame[8:]) == msg


@pytest.mark.parametrize("tag", TAGS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_reference_msgpack_reads_every_body(tag, data):
    msg = data.draw(strategies.message_of(CLASSES[tag]))
    cls = type(msg)
    frame = encode(msg)
    body = frame[8:]
    assert frame[:8] == struct.pack("<II", len(body), zlib.crc32(body))

    items = msgpack.unpackb(body, raw=False)
    assert body[0] == 0xDD and len(items) == 1 + 2 * len(cls.ARRAYS)
    header = items[0]
    assert set(header) == {"v", "t", "f", "a"}
    assert header["v"] == PROTOCOL_VERSION and header["t"] == tag
    assert set(header["f"]) == {f.name for f in dataclasses.fields(cls)} - set(cls.ARRAYS)
    assert [spec[0] for spec in header["a"]] == list(cls.ARRAYS)
    rebuilt = {}
    for (name, dtype, shape), pad, data_bytes, offset in zip(header["a"], items[1::2], items[2::2], data_offsets(body)):
        arr = getattr(msg, name)
        assert dtype == arr.dtype.str and shape == list(arr.shape)
        assert data_bytes == arr.tobytes()
        assert pad == bytes(len(pad)) and len(pad) < 8
        assert offset % 8 == 0
        rebuilt[name] = np.frombuffer(data_bytes, dtype).reshape(shape)
    assert cls(**header["f"], **rebuilt) == msg
    assert frame == strategies.reference_frame(msg)


@pytest.mark.parametrize("tag", TAGS)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_messages_with_empty_arrays_round_trip(tag, data):
    msg = data.draw(strategies.message_of(CLASSES[tag], max_n=0))
    assert all(getattr(msg, name).size == 0 for name in CLASSES[tag].ARRAYS)
    frame = encode(msg)
    assert decode(frame) == msg and encode(decode(frame)) == frame
    assert frame == strategies.reference_frame(msg)


def big_spike_batch(n: int) -> SpikeBatch:
    rng = np.random.default_rng(n)
    return SpikeBatch(
        run_id=7,
        t_ticks=np.sort(rng.integers(0, 1 << 40, n)),
        label=rng.integers(0, MAX_LABEL + 1, n).astype(np.uint16),
        sample=rng.integers(0, 1 << 32, n, dtype=np.uint32),
        horizon_ticks=1 << 40,
    )


@pytest.mark.parametrize("n", [100_000, 1_000_000])
def test_large_spike_batch_round_trips_without_copies(n):
    msg = big_spike_batch(n)
    frame = encode(msg)
    assert len(frame) < 14 * n + 200  # 8 + 2 + 4 bytes per event, plus header and pads
    back = decode(frame)
    assert back == msg and back.n_events() == n
    assert encode(back) == frame
    assert_views_into(back, frame)
    header, datas = strategies.split_frame(frame)
    assert header["a"][0] == ["t_ticks", "<i8", [n]]
    assert datas[0] == msg.t_ticks.tobytes() and datas[2] == msg.sample.tobytes()


# -- buffers and value semantics -----------------------------------------------------------
def test_decode_takes_any_byte_buffer_and_keeps_arrays_aligned_and_read_only():
    msg = big_spike_batch(1000)
    frame = encode(msg)
    writable = bytearray(frame)
    back = decode(writable)
    assert back == msg
    assert_views_into(back, writable)  # a view into the bytearray, yet read-only
    shifted = bytearray(len(frame) + 3)
    shifted[3:] = frame
    unaligned = decode(memoryview(shifted)[3:])  # copied once, into aligned memory
    assert unaligned == msg and all(getattr(unaligned, n).ctypes.data % 8 == 0 for n in SpikeBatch.ARRAYS)
    assert decode(np.frombuffer(frame, np.uint8)) == msg
    word_frames = [f for f in (encode(Shutdown(reason="r" * k)) for k in range(8)) if len(f) % 8 == 0]
    assert decode(np.frombuffer(word_frames[0], np.uint64)) == decode(word_frames[0])  # items that are not bytes


def test_messages_are_frozen_and_their_maps_read_only():
    msg = RunComplete(run_id=1, n_samples=2, events_in=3, events_out=4, dropped={"lane_full": 5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.run_id = 2  # type: ignore[misc]
    assert isinstance(msg.dropped, FrozenDict) and msg.dropped == {"lane_full": 5}
    with pytest.raises(TypeError):
        msg.dropped["other"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        msg.dropped.update(other=1)
    assert pickle.loads(pickle.dumps(msg)) == msg
    assert copy.deepcopy(msg) == msg
    assert decode(encode(msg)).dropped == {"lane_full": 5}


def test_equality_is_by_value_with_nan_equal_to_nan():
    kw = {"run_id": 1, "loss": float("nan"), "n_correct": 0, "n_samples": 0, "spike_count": np.zeros(0, np.uint32)}
    a = message_classes()["learn_result"](**kw, metrics={"acc": float("nan")})
    b = message_classes()["learn_result"](**kw, metrics={"acc": float("nan")})
    assert a == b and decode(encode(a)) == a
    assert a != message_classes()["learn_result"](**kw, metrics={"acc": 0.5})
    assert Shutdown(reason="x") != Shutdown(reason="y")
    assert (Shutdown() == 0) is False


def test_messages_hold_read_only_views_of_their_inputs():
    t = np.array([1, 2, 3])
    msg = SpikeBatch(run_id=0, t_ticks=t, label=[1, 2, 3], sample=np.zeros(3, np.uint32), horizon_ticks=4)
    assert not msg.t_ticks.flags.writeable and t.flags.writeable  # the caller's array is untouched
    assert msg.label.dtype == np.uint16


def test_limits_that_the_decoder_enforces_are_refused_when_building():
    limits = [
        lambda: Shutdown(reason="x" * 4097),
        lambda: Shutdown(reason="\ud800"),
        lambda: RunComplete(run_id=1 << 64, n_samples=0, events_in=0, events_out=0),
        lambda: RunComplete(run_id=0, n_samples=0, events_in=0, events_out=0, dropped={str(i): 0 for i in range(257)}),
        lambda: RunComplete(run_id=0, n_samples=0, events_in=0, events_out=0, dropped={"k" * 5000: 0}),
    ]
    for build in limits:
        with pytest.raises(LocalProtocolError):
            build()
    many_long_keys = {f"{i:04d}" + "k" * 4000: 0 for i in range(20)}  # each fine, together over 64 KiB
    with pytest.raises(LocalProtocolError, match="header"):
        encode(RunComplete(run_id=0, n_samples=0, events_in=0, events_out=0, dropped=many_long_keys))
    assert decode(encode(Shutdown(reason="é" * 2048))) == Shutdown(reason="é" * 2048)  # 4096 bytes is allowed


# -- the catalogue -----------------------------------------------------------------------
def test_catalogue_is_consistent():
    assert len(TAGS) == len(set(TAGS)) >= 18
    for tag, cls in CLASSES.items():
        assert cls.TAG == tag and re.fullmatch(r"[a-z_]+", tag)
        assert cls.__dataclass_params__.frozen and hasattr(cls, "__slots__")
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(cls.ARRAYS) <= fields, tag
        for name, (dtype, ndim) in cls.ARRAYS.items():
            assert np.dtype(dtype).str[0] in "<|" and ndim in (1, 2), (tag, name)


# -- the document ------------------------------------------------------------------------
def _doc_sections() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z_]+)`", text, flags=re.M)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def _kind_name(kind) -> str:
    if typing.get_origin(kind) is dict:
        return f"map str -> {typing.get_args(kind)[1].__name__}"
    return kind.__name__


def test_docs_describe_every_message_and_field_as_the_code_declares_them():
    sections = _doc_sections()
    assert sorted(sections) == TAGS, "docs/protocol.md needs one '### `tag`' section per message"
    for tag, cls in CLASSES.items():
        rows = {}
        for line in sections[tag].splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| `") and len(cells) >= 4:
                rows[cells[0].strip("`")] = cells
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert f.name in rows, f"docs/protocol.md: {tag} lacks a row for {f.name}"
            _, kind, default = rows[f.name][:3]
            if f.name in cls.ARRAYS:
                dtype, ndim = cls.ARRAYS[f.name]
                m = re.fullmatch(r"`(\w+)\[([^\]]*)\]`", kind)
                assert m and m.group(1) == dtype and len(m.group(2).split(",")) == ndim, (tag, f.name, kind)
            else:
                assert kind == f"`{_kind_name(hints[f.name])}`", (tag, f.name, kind)
            if f.default is not dataclasses.MISSING:
                assert default == f"`{f.default!r}`", (tag, f.name, default)
            elif f.default_factory is not dataclasses.MISSING:
                assert default == f"`{f.default_factory()!r}`", (tag, f.name, default)
            else:
                assert default == "required", (tag, f.name, default)
        assert set(rows) == {f.name for f in dataclasses.fields(cls)}, f"{tag}: rows for fields the code lacks"


def test_docs_example_frame_is_what_encode_writes():
    text = DOC.read_text(encoding="utf-8")
    dump = re.search(r"```hex\n(.*?)```", text, flags=re.S).group(1)
    frame = bytes.fromhex("".join(line[6:] for line in dump.splitlines()))
    msg = SpikeBatch(run_id=7, t_ticks=[100, 260], label=[3, 8193], sample=[0, 1], horizon_ticks=300)
    assert encode(msg) == frame and decode(frame) == msg
    assert "`SpikeBatch(run_id=7, t_ticks=[100, 260], label=[3, 8193], sample=[0, 1], horizon_ticks=300)`" in text
