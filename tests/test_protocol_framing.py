"""Frames on a byte stream: the frame header, and FrameReader cutting a stream back into frames.

FrameReader is sans-I/O, so a "stream" here is a list of chunks: hypothesis cuts a run of frames
at arbitrary points, and the reader must give back exactly the frames, in order, whatever the cut.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from neurosplit.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    FRAME_HEADER_BYTES,
    FrameReader,
    RemoteProtocolError,
    Shutdown,
    SpikeBatch,
    decode,
    encode,
)

STREAMS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def small(i: int) -> bytes:
    return encode(Shutdown(reason=f"frame {i}"))


def read_all(reader: FrameReader, chunks) -> list[bytes]:
    out = []
    for chunk in chunks:
        reader.feed(chunk)
        out.extend(reader.frames())
    return out


def test_frame_header_is_little_endian_length_then_crc32():
    frame = encode(Shutdown(reason="bye"))
    length, crc = struct.unpack("<II", frame[:FRAME_HEADER_BYTES])
    assert FRAME_HEADER_BYTES == 8 and length == len(frame) - 8 and crc == zlib.crc32(frame[8:])


# -- cutting streams -------------------------------------------------------------------------
@STREAMS
@given(msgs=st.lists(strategies.messages(max_n=6), max_size=6), cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
def test_a_stream_cut_anywhere_yields_exactly_its_frames(msgs, cuts):
    frames = [encode(m) for m in msgs]
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:])]
    reader = FrameReader()
    got = read_all(reader, chunks)
    assert got == frames
    assert reader.buffered_bytes == 0
    assert [decode(f) for f in got] == msgs


def test_byte_by_byte_and_all_at_once_give_the_same_frames():
    spikes = SpikeBatch(run_id=1, t_ticks=np.arange(100), label=np.zeros(100, np.uint16),
                        sample=np.zeros(100, np.uint32), horizon_ticks=100)
    frames = [small(i) for i in range(50)] + [encode(spikes)]
    stream = b"".join(frames)
    assert read_all(FrameReader(), [stream[i:i + 1] for i in range(len(stream))]) == frames
    assert read_all(FrameReader(), [stream]) == frames
    assert read_all(FrameReader(), [memoryview(stream), b""]) == frames


def test_many_small_frames_in_one_chunk():
    frames = [small(i) for i in range(20_000)]
    reader = FrameReader()
    reader.feed(b"".join(frames))
    assert list(reader.frames()) == frames and reader.buffered_bytes == 0


def test_frames_left_behind_by_an_early_break_come_next_time():
    frames = [small(i) for i in range(5)]
    reader = FrameReader()
    reader.feed(b"".join(frames))
    for first in reader.frames():
        break
    assert first == frames[0]
    assert list(reader.frames()) == frames[1:]


def test_partial_frames_stay_buffered():
    frame = small(0)
    reader = FrameReader()
    reader.feed(frame[:-1])
    assert list(reader.frames()) == [] and reader.buffered_bytes == len(frame) - 1
    reader.feed(frame[-1:])
    assert list(reader.frames()) == [frame]


def test_yielded_frames_are_bytes_that_decode_to_aligned_views():
    msg = SpikeBatch(run_id=1, t_ticks=np.arange(10), label=np.ones(10, np.uint16), sample=np.zeros(10, np.uint32),
                     horizon_ticks=10)
    reader = FrameReader()
    reader.feed(b"x" * 0)
    reader.feed(small(0)[:3])  # start the next frame at an odd offset of the reader's buffer
    reader.feed(small(0)[3:] + encode(msg))
    got = list(reader.frames())
    assert all(type(f) is bytes for f in got)
    back = decode(got[1])
    assert back == msg and back.t_ticks.ctypes.data % 8 == 0 and np.shares_memory(back.t_ticks, np.frombuffer(got[1], np.uint8))


# -- limits ----------------------------------------------------------------------------------
def test_oversize_length_prefix_raises_before_the_body_is_buffered():
    reader = FrameReader(max_frame_bytes=1000)
    reader.feed(struct.pack("<I", 993)[:3])
    assert list(reader.frames()) == []  # not even a whole header yet
    reader.feed(struct.pack("<I", 993)[3:] + b"\0" * 4)
    with pytest.raises(RemoteProtocolError) as info:
        list(reader.frames())
    assert (info.value.message, info.value.field) == ("frame", "length")
    assert "1001 bytes exceeds the maximum 1000" in str(info.value)
    assert reader.buffered_bytes == 8  # the header only: the body was never waited for
    with pytest.raises(RemoteProtocolError):  # a broken stream stays broken
        list(reader.frames())


def test_a_frame_of_exactly_the_maximum_passes():
    frame = small(1)
    assert read_all(FrameReader(max_frame_bytes=len(frame)), [frame]) == [frame]
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        read_all(FrameReader(max_frame_bytes=len(frame) - 1), [frame])
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        read_all(FrameReader(), [struct.pack("<II", DEFAULT_MAX_FRAME_BYTES, 0)])


@STREAMS
@given(n_good=st.integers(0, 8), cut=st.integers(0, 1 << 16))
def test_frames_before_a_bad_one_are_all_delivered(n_good, cut):
    good = [small(i) for i in range(n_good)]
    stream = b"".join(good) + struct.pack("<II", 1 << 30, 0) + b"\0" * 64
    cut %= len(stream) + 1
    reader = FrameReader(max_frame_bytes=4096)
    got = []
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        for chunk in (stream[:cut], stream[cut:]):
            reader.feed(chunk)
            for frame in reader.frames():
                got.append(frame)
    assert got == good


def test_corrupt_frames_pass_the_reader_and_fail_alone_at_decode():
    frames = [small(i) for i in range(3)]
    bad = bytearray(frames[1])
    bad[-1] ^= 0xFF
    got = read_all(FrameReader(), [frames[0] + bytes(bad) + frames[2]])
    assert got == [frames[0], bytes(bad), frames[2]]
    assert decode(got[0]) == Shutdown(reason="frame 0") and decode(got[2]) == Shutdown(reason="frame 2")
    with pytest.raises(RemoteProtocolError, match="crc32"):
        decode(got[1])


def test_max_frame_bytes_below_the_header_is_refused():
    with pytest.raises(ValueError, match="max_frame_bytes must be >= 8, got 7"):
        FrameReader(max_frame_bytes=7)


def test_the_codec_crc_is_zlib_crc32_whichever_backend_computes_it():
    from neurosplit.protocol import _codec

    data = np.random.default_rng(5).integers(0, 256, 100_003, dtype=np.uint8)
    assert _codec._crc32(data) == zlib.crc32(data.tobytes())
    assert _codec._crc32(data[1000:], _codec._crc32(data[:1000])) == zlib.crc32(data.tobytes())
    assert _codec._crc32(b"") == zlib.crc32(b"") == 0
