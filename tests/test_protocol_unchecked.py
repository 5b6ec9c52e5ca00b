"""Frames without checksum and in-process frames (docs/protocol.md, "Checksums and in-process frames").

A frame whose length word has bit 31 set (``UNCHECKED``) carries no CRC-32; in-process links send
their frames that way, as sealed FrameParts (the header bytes and the message's own arrays, never
joined), and every other link requires the CRC. Checked against the independent frame builder in
``strategies`` and the reference msgpack unpacker, and fuzzed: without a CRC every mutation
reaches the parser, which must still decode or raise RemoteProtocolError.
"""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from strategies import frame_around
from neurosplit.protocol import (
    UNCHECKED,
    FrameParts,
    FrameReader,
    ProtocolError,
    RemoteProtocolError,
    SpikeBatch,
    decode,
    encode,
    encode_parts,
    message_classes,
)

CLASSES = message_classes()
TAGS = sorted(CLASSES)
ROUND_TRIP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPIKES = SpikeBatch(run_id=3, t_ticks=np.array([10, 10, 250]), label=np.array([1, 2, 3]),
                    sample=np.array([0, 1, 1]), horizon_ticks=300)


def refused(frame, field: str, match: str = "", **kwargs) -> RemoteProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frame, **kwargs)
    exc = info.value
    assert type(exc) is RemoteProtocolError, f"{type(exc).__name__}: {exc}"
    assert (exc.message, exc.field) == ("frame", field), str(exc)
    assert match in str(exc)
    return exc


def decodes_or_refuses(frame) -> None:
    try:
        decode(frame)
    except RemoteProtocolError:
        pass


# -- the flag ---------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", TAGS)
@ROUND_TRIP
@given(data=st.data())
def test_unchecked_frames_differ_from_checked_ones_only_in_the_frame_header(tag, data):
    msg = data.draw(strategies.message_of(CLASSES[tag]))
    checked, unchecked = encode(msg), encode(msg, checksum=False)
    assert unchecked[8:] == checked[8:] and len(unchecked) == len(checked)
    word, crc = struct.unpack("<II", unchecked[:8])
    assert word == UNCHECKED | (len(unchecked) - 8) and crc == 0
    assert unchecked == strategies.reference_frame(msg, checksum=False)
    assert len(msgpack.unpackb(unchecked[8:], raw=False)) == 1 + 2 * len(CLASSES[tag].ARRAYS)  # any msgpack reads it
    assert decode(unchecked) == msg and encode(decode(unchecked), checksum=False) == unchecked


def test_a_link_that_can_corrupt_frames_requires_the_checksum():
    refused(encode(SPIKES, checksum=False), "crc32", "requires checksummed frames", require_checksum=True)
    refused(encode_parts(SPIKES), "crc32", "requires checksummed frames", require_checksum=True)
    assert decode(encode(SPIKES), require_checksum=True) == SPIKES


def test_a_frame_without_checksum_carries_zero_in_the_checksum_word():
    body = encode(SPIKES)[8:]
    refused(frame_around(body, crc=0x1234, unchecked=True), "crc32", "must carry 0")
    assert decode(frame_around(body, unchecked=True)) == SPIKES


def test_the_flag_set_on_a_checked_frame_is_refused():
    """A bit error that sets the flag leaves a CRC in the checksum word: refused; a link that
    requires checksums refuses the frame whatever the word holds."""
    frame = bytearray(encode(SPIKES))
    frame[3] |= 0x80
    refused(bytes(frame), "crc32", "must carry 0")
    frame[4:8] = bytes(4)
    refused(bytes(frame), "crc32", "requires checksummed", require_checksum=True)


def test_the_length_limits_look_past_the_flag():
    refused(struct.pack("<II", UNCHECKED | 993, 0) + bytes(993), "length", "1001 bytes exceeds the maximum 1000",
            max_frame_bytes=1000)
    reader = FrameReader(max_frame_bytes=1000)
    reader.feed(struct.pack("<II", UNCHECKED | 993, 0))
    with pytest.raises(RemoteProtocolError, match="1001 bytes exceeds the maximum 1000"):
        list(reader.frames())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(st.tuples(strategies.messages(max_n=6), st.booleans()), max_size=6),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=12))
def test_a_stream_of_checked_and_unchecked_frames_cut_anywhere_yields_its_frames(msgs, cuts):
    frames = [encode(m, checksum=c) for m, c in msgs]
    stream = b"".join(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    reader = FrameReader()
    got = []
    for a, b in zip(points, points[1:]):
        reader.feed(stream[a:b])
        got.extend(reader.frames())
    assert got == frames and [decode(f) for f in got] == [m for m, _ in msgs]


_mutation = strategies.byte_mutations()


@FUZZ
@given(msg=strategies.messages(max_n=6), mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_frames_without_checksum_decode_or_raise(msg, mutations):
    """No CRC stands before the parser here: every mutation reaches it."""
    body = strategies.mutate(bytearray(encode(msg, checksum=False)[8:]), mutations)
    decodes_or_refuses(frame_around(body, unchecked=True))


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_behind_an_unchecked_frame_header_decode_or_raise(body):
    decodes_or_refuses(frame_around(body, unchecked=True))
    decodes_or_refuses(frame_around(b"\xdd" + body, unchecked=True))


# -- sealed FrameParts ----------------------------------------------------------------------------
@pytest.mark.parametrize("tag", TAGS)
@ROUND_TRIP
@given(data=st.data())
def test_sealed_frame_parts_round_trip_every_message_without_copies(tag, data):
    msg = data.draw(strategies.message_of(CLASSES[tag]))  # arrays contiguous, strided, Fortran or lists
    parts = encode_parts(msg)
    assert type(parts) is FrameParts and len(parts) == len(encode(msg))
    assert bytes(parts) == encode(msg, checksum=False) == strategies.reference_frame(msg, checksum=False)
    back = decode(parts)
    assert type(back) is type(msg) and back == msg and encode(back) == encode(msg)
    for name in CLASSES[tag].ARRAYS:
        a, src = getattr(back, name), getattr(msg, name)
        assert not a.flags.writeable and a.flags.c_contiguous and a.flags.aligned, name
        assert a.dtype == src.dtype and a.shape == src.shape
        if src.size and src.flags.c_contiguous:
            assert np.shares_memory(a, src), f"{name} was copied"
    assert decode(bytes(parts)) == msg  # the joined bytes take the full decoder


def test_sealed_parts_keep_the_message_value_after_the_frame_is_gone():
    msg = SpikeBatch(run_id=1, t_ticks=np.arange(8)[::2], label=np.arange(4), sample=np.zeros(4, np.uint32),
                     horizon_ticks=10)  # strided: the encoder's contiguous copy is the data part
    back = decode(encode_parts(msg))
    assert back == msg and back.t_ticks.flags.c_contiguous and not back.t_ticks.flags.writeable


def test_frame_parts_made_by_hand_are_joined_and_checked_in_full():
    frame = encode(SPIKES)
    by_hand = FrameParts([frame[:13], memoryview(frame)[13:40], frame[40:]])
    assert len(by_hand) == len(frame) and bytes(by_hand) == frame
    assert decode(by_hand) == SPIKES
    # without a CRC to stop it, a frame whose ticks go backwards reaches the message checks
    unchecked = encode(SPIKES, checksum=False)
    ticks_back = unchecked.replace(np.array([10, 10, 250]).tobytes(), np.array([10, 9, 250]).tobytes())
    assert ticks_back != unchecked
    with pytest.raises(RemoteProtocolError, match=r"spike_batch.t_ticks\[1\]: ticks must not decrease"):
        decode(FrameParts([ticks_back[:20], ticks_back[20:]]))


def test_sealed_parts_obey_the_frame_size_limit():
    parts = encode_parts(SPIKES)
    refused(parts, "length", "exceeds the maximum", max_frame_bytes=len(parts) - 1)
    assert decode(parts, max_frame_bytes=len(parts)) == SPIKES
