"""Bad input raises RemoteProtocolError naming message and field, and nothing else; bad local
messages raise LocalProtocolError.

Malformed frames are crafted with the independent builder in ``strategies`` (reference msgpack
packer plus struct), with a correct length and CRC unless the test is about those, so each case
reaches the part of the decoder it aims at. The fuzz tests at the end feed arbitrary bytes and
mutated valid frames: each must decode to a valid message or raise RemoteProtocolError.
"""

from __future__ import annotations

import struct
import tracemalloc

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import strategies
from strategies import frame_around, rebuild, reference_body, split_frame
from neurosplit.protocol import (
    MAX_LABEL,
    ConfigureLearning,
    ConfigureNeurons,
    ConfigureRows,
    Error,
    Hello,
    LocalProtocolError,
    Message,
    MembraneSamples,
    NeuronTrace,
    ProtocolError,
    RemoteProtocolError,
    RunComplete,
    RunRequest,
    SpikeBatch,
    WriteWeights,
    decode,
    encode,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_MESSAGES = settings(FUZZ, max_examples=150)  # drawing a message costs ~10 ms

SPIKES = SpikeBatch(run_id=3, t_ticks=np.array([10, 10, 250]), label=np.array([1, 2, 3]),
                    sample=np.array([0, 1, 1]), horizon_ticks=300)
WEIGHTS = WriteWeights(request_id=9, row=np.array([0, 1]), column=np.array([4, 5, 6]),
                       weight=np.arange(6, dtype=np.uint8).reshape(2, 3))


def reject(frame: bytes | bytearray, message: str, field: str | None = None, match: str = "",
           **kwargs) -> RemoteProtocolError:
    """decode(frame) must raise RemoteProtocolError (and no other exception) naming message and field."""
    with pytest.raises(ProtocolError) as info:
        decode(frame, **kwargs)
    exc = info.value
    assert type(exc) is RemoteProtocolError, f"{type(exc).__name__}: {exc}"
    assert exc.message == message, str(exc)
    if field is not None:
        assert exc.field == field, str(exc)
        assert str(exc).startswith(f"{message}.{field}: ")
    assert match in exc.problem, str(exc)
    return exc


def with_data(frame: bytes, **datas: bytes) -> bytes:
    """``frame`` with some arrays' data bytes replaced (header untouched), length and CRC fixed."""
    header, old = split_frame(frame)
    names = [spec[0] for spec in header["a"]]
    return frame_around(reference_body(header, [datas.get(n, d) for n, d in zip(names, old)]))


def with_array(frame: bytes, name: str, arr: np.ndarray) -> bytes:
    """``frame`` with array ``name`` replaced, header spec included: dtype, shape and data agree."""
    header, old = split_frame(frame)
    names = [spec[0] for spec in header["a"]]
    i = names.index(name)
    header["a"][i] = [name, arr.dtype.str, list(arr.shape)]
    return frame_around(reference_body(header, [arr.tobytes() if j == i else d for j, d in enumerate(old)]))


# -- framing ---------------------------------------------------------------------------------
def test_every_truncation_of_a_frame_is_refused():
    frame = encode(SPIKES)
    for k in range(len(frame)):
        exc = reject(frame[:k], "frame")
        assert exc.field in ("header", "length")


def test_every_truncation_of_a_body_is_refused_by_the_body_decoder():
    body = encode(SPIKES)[8:]
    header_end = len(reference_body(split_frame(encode(SPIKES))[0], []))
    for k in range(len(body)):
        exc = reject(frame_around(body[:k]), "frame" if k < header_end else "spike_batch")
        assert exc.field in ("body", "header", "a", "t_ticks", "label", "sample"), str(exc)


def test_oversize_frames_are_refused_before_reading_the_body():
    frame = encode(SPIKES)
    assert decode(frame, max_frame_bytes=len(frame)) == SPIKES
    reject(frame, "frame", "length", "exceeds the maximum", max_frame_bytes=len(frame) - 1)
    reject(struct.pack("<II", 0xFFFFFFFF, 0) + b"\0" * 16, "frame", "length", "exceeds the maximum")


def test_crc_mismatch_from_any_flipped_body_byte():
    frame = encode(SPIKES)
    for i in range(8, len(frame)):
        for bit in (0, 7):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            reject(bytes(bad), "frame", "crc32", "checksum mismatch")
    for i in range(8):  # the frame header itself: the length or the checksum goes wrong
        bad = bytearray(frame)
        bad[i] ^= 1
        assert reject(bytes(bad), "frame").field in ("length", "crc32")


def test_trailing_bytes_are_refused():
    frame = encode(SPIKES)
    reject(frame + b"\0", "frame", "length", "frame holds")
    reject(frame_around(frame[8:] + b"\0"), "spike_batch", "body", "1 trailing bytes")
    reject(frame_around(frame[8:] + msgpack.packb(1)), "spike_batch", "body", "trailing")


def test_bodies_that_are_not_our_msgpack_array_are_refused():
    reject(frame_around(msgpack.packb([{"v": 1}])), "frame", "body", "array32")  # fixarray, not array32
    reject(frame_around(b""), "frame", "body")
    reject(frame_around(b"\xdd\x00\x00\x00\x01\xc1"), "frame", "header", "not a msgpack header")  # 0xc1: never used
    reject(frame_around(reference_body([1, 2], [])), "frame", "header", "expected a map")
    reject(frame_around(reference_body({"v": 1, "t": "shutdown", "f": {}, "a": []}, [], n_items=3)),
           "shutdown", "a", "body holds 3 items")


# -- the header ------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [0, 2, -1, "1", 1.0, True, None, [1]])
def test_other_protocol_versions_are_refused(version):
    frame = rebuild(encode(SPIKES), lambda h: h.update(v=version))
    reject(frame, "frame", "v", "is not spoken here")
    reject(rebuild(encode(SPIKES), lambda h: h.pop("v")), "frame", "v")


def test_version_is_checked_before_the_rest_of_the_header():
    reject(frame_around(reference_body({"v": 2, "layout": "new"}, [])), "frame", "v")


def test_unknown_message_type_and_header_keys_are_refused():
    reject(rebuild(encode(SPIKES), lambda h: h.update(t="spike_bundle")), "frame", "t", "unknown message type 'spike_bundle'")
    reject(rebuild(encode(SPIKES), lambda h: h.update(t=7)), "frame", "t", "unknown message type 7")
    reject(rebuild(encode(SPIKES), lambda h: h.update(x=1)), "frame", "header", "unknown key 'x'")
    reject(rebuild(encode(SPIKES), lambda h: h.pop("t")), "frame", "t")


def test_unknown_and_missing_fields_are_refused():
    frame = encode(SPIKES)
    reject(rebuild(frame, lambda h: h["f"].update(colour="red")), "spike_batch", "colour", "unknown field")
    reject(rebuild(frame, lambda h: h["f"].pop("horizon_ticks")), "spike_batch", "horizon_ticks", "missing field")
    reject(rebuild(frame, lambda h: h["f"].update(t_ticks=1)), "spike_batch", "t_ticks", "unknown field")
    reject(rebuild(frame, lambda h: h.update(f=[1])), "spike_batch", "f", "expected a map")
    reject(rebuild(frame, lambda h: h.update(f={b"": 1})), "spike_batch", None, "unknown field")


def test_absent_fields_with_defaults_take_their_default():
    run = RunRequest(run_id=1, n_samples=2, sample_ticks=3, madc_neuron=5)
    back = decode(rebuild(encode(run), lambda h: h["f"].pop("madc_neuron")))
    assert back.madc_neuron == RunRequest.__dataclass_fields__["madc_neuron"].default


@pytest.mark.parametrize(("msg", "field", "value", "path"), [
    (SPIKES, "run_id", "3", "run_id"),
    (SPIKES, "run_id", 3.0, "run_id"),
    (SPIKES, "run_id", True, "run_id"),
    (SPIKES, "run_id", None, "run_id"),
    (SPIKES, "horizon_ticks", [300], "horizon_ticks"),
    (RunRequest(run_id=1, n_samples=1, sample_ticks=1), "learn", 1, "learn"),
    (Hello(protocol_version=1, role="host"), "role", 5, "role"),
    (Hello(protocol_version=1, role="host"), "software", b"", "software"),
    (RunComplete(run_id=1, n_samples=1, events_in=0, events_out=0), "dropped", [["lane", 1]], "dropped"),
    (RunComplete(run_id=1, n_samples=1, events_in=0, events_out=0), "dropped", {"lane": 1.5}, "dropped['lane']"),
    (RunComplete(run_id=1, n_samples=1, events_in=0, events_out=0), "dropped", {"lane": {"x": 1}}, "dropped['lane']"),
    (RunComplete(run_id=1, n_samples=1, events_in=0, events_out=0), "dropped", {b"": 1}, "dropped[b'']"),
])
def test_scalar_fields_of_the_wrong_type_are_refused(msg, field, value, path):
    frame = rebuild(encode(msg), lambda h: h["f"].update({field: value}))
    reject(frame, msg.TAG, path)


def test_invalid_scalar_values_are_refused():
    run = encode(RunRequest(run_id=1, n_samples=1, sample_ticks=1))
    reject(rebuild(run, lambda h: h["f"].update(sample_ticks=0)), "run_request", "sample_ticks", "must be > 0")
    reject(rebuild(run, lambda h: h["f"].update(run_id=-1)), "run_request", "run_id")
    reject(rebuild(encode(Hello(protocol_version=1, role="core")), lambda h: h["f"].update(role="cpu")),
           "hello", "role", "unknown role")
    reject(rebuild(encode(Error(fault="local", message="x")), lambda h: h["f"].update(fault="yours")),
           "error", "fault")
    reject(rebuild(encode(Hello(protocol_version=1, role="core")), lambda h: h["f"].update(software="s" * 5000)),
           "frame", "header", "max_str_len")


def test_deeply_nested_header_values_are_refused():
    sentinel = "SENTINEL-0123456789"
    body = reference_body({"v": 1, "t": "shutdown", "f": {"reason": sentinel}, "a": []}, [])
    marker = msgpack.packb(sentinel)
    for depth in (100, 5_000, 100_000):
        nested = body.replace(marker, b"\x91" * depth + b"\xc0")
        exc = reject(frame_around(nested), "frame" if depth > 100 else "shutdown")
        assert exc.field in ("header", "reason")
    nested_maps = body.replace(marker, b"\x81\xa1k" * 20_000 + b"\xc0")
    reject(frame_around(nested_maps), "frame", "header")


# -- arrays ----------------------------------------------------------------------------------
def test_array_list_must_match_the_message():
    frame = encode(SPIKES)
    reject(rebuild(frame, lambda h: h["a"].reverse()), "spike_batch", "a", "do not match")
    reject(rebuild(frame, lambda h: h["a"].pop()), "spike_batch", "a", "do not match")
    reject(rebuild(frame, lambda h: h.update(a="t_ticks")), "spike_batch", "a")
    reject(rebuild(frame, lambda h: h["a"][0].append(0)), "spike_batch", "t_ticks", "[name, dtype, shape]")


@pytest.mark.parametrize("dtype", ["<i4", ">i8", "<u8", "<f8", "i8", 8, None])
def test_wrong_dtype_is_refused(dtype):
    frame = rebuild(encode(SPIKES), lambda h: h["a"][0].__setitem__(1, dtype))
    reject(frame, "spike_batch", "t_ticks", "expected dtype <i8")
    reject(with_array(encode(SPIKES), "label", SPIKES.label.astype(np.int32)), "spike_batch", "label", "expected dtype")


@pytest.mark.parametrize("shape", [[4], [2], [3, 1], [], [-3], [3.0], [True], ["3"], None, [2**40]])
def test_wrong_shape_or_byte_count_is_refused(shape):
    frame = rebuild(encode(SPIKES), lambda h: h["a"][0].__setitem__(2, shape))
    reject(frame, "spike_batch", "t_ticks")


def test_arrays_of_different_lengths_are_refused():
    short = with_array(encode(SPIKES), "label", SPIKES.label[:2].copy())
    reject(short, "spike_batch", "label", "length 2 differs from t_ticks length 3")
    reject(with_array(encode(WEIGHTS), "weight", np.zeros((3, 2), np.uint8)), "write_weights", "weight", "is not (len(row), len(column))")


def test_data_that_disagrees_with_the_declared_bytes_is_refused():
    frame = encode(SPIKES)
    reject(with_data(frame, t_ticks=SPIKES.t_ticks.tobytes()[:-8]), "spike_batch", "t_ticks", "do not hold shape")
    reject(with_data(frame, label=b""), "spike_batch", "label", "do not hold shape")
    header, datas = split_frame(frame)
    k0 = (-(len(reference_body(header, [])) + 2 + 5)) % 8  # the pad that aligns t_ticks
    misaligned = frame_around(reference_body(header, datas, pads=[(k0 + 1) % 8, 0, 0]))
    reject(misaligned, "spike_batch", "t_ticks", "8-byte boundary")
    reject(frame_around(reference_body(header, datas, pads=[k0 + 8, 0, 0])), "spike_batch", "t_ticks", "pad")
    padded = [encode(SpikeBatch(**{**SPIKES.fields(), "run_id": r})) for r in (0, 200, 300, 1 << 20, 1 << 40)]
    body = bytearray(next(f for f in padded if f[8 + len(reference_body(split_frame(f)[0], [])) + 1])[8:])
    pad_at = len(reference_body(split_frame(frame_around(bytes(body)))[0], []))
    assert body[pad_at] == 0xC4 and body[pad_at + 1] > 0
    body[pad_at + 2] = 1  # a pad byte that is not zero
    reject(frame_around(bytes(body)), "spike_batch", "t_ticks", "zero")


def test_huge_declared_shapes_are_refused_without_allocating():
    frame = encode(WEIGHTS)
    cases = [
        rebuild(frame, lambda h: h["a"][2].__setitem__(2, [2**39, 2**39])),  # would wrap an int64 product
        rebuild(frame, lambda h: h["a"][2].__setitem__(2, [2**32, 2**32])),
        rebuild(frame, lambda h: h["a"][2].__setitem__(2, [0, 2**39])),  # zero bytes, honestly declared
    ]
    header, datas = split_frame(frame)
    body = reference_body(header, datas)
    claims_4gib = body[:-(6 + 5)] + struct.pack(">BI", 0xC6, 0xFFFFFFFF) + body[-6:]  # bin32 length of the last array
    cases.append(frame_around(claims_4gib))
    tracemalloc.start()
    try:
        for bad in cases:
            with pytest.raises(RemoteProtocolError, match="write_weights"):
                decode(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"decoding refused frames allocated {peak} bytes"


# -- rules between values --------------------------------------------------------------------
def test_ticks_that_go_backwards_are_refused():
    back = np.array([10, 250, 249], np.int64)
    reject(with_data(encode(SPIKES), t_ticks=back.tobytes()), "spike_batch", "t_ticks[2]", "ticks must not decrease")
    samples = MembraneSamples(run_id=1, t_ticks=np.array([5, 6]), neuron=np.array([0]), adc_lsb=np.zeros((2, 1), np.uint8))
    reject(with_data(encode(samples), t_ticks=np.array([6, 5]).tobytes()), "membrane_samples", "t_ticks[1]", "decrease")
    trace = NeuronTrace(run_id=1, neuron=2, t_ticks=np.array([1, 2]), adc_lsb=np.array([0, 1]))
    reject(with_data(encode(trace), t_ticks=np.array([2, 1]).tobytes()), "neuron_trace", "t_ticks[1]", "decrease")
    late = np.array([10, 10, 300], np.int64)
    reject(with_data(encode(SPIKES), t_ticks=late.tobytes()), "spike_batch", "t_ticks[2]", "horizon_ticks")
    negative = np.array([-1, 10, 250], np.int64)
    reject(with_data(encode(SPIKES), t_ticks=negative.tobytes()), "spike_batch", "t_ticks[0]", "below 0")


def test_codes_out_of_range_are_refused():
    labels = np.array([1, MAX_LABEL + 1, 3], np.uint16)
    reject(with_data(encode(SPIKES), label=labels.tobytes()), "spike_batch", "label[1]", f"exceeds {MAX_LABEL}")
    weights = np.array([[0, 1, 2], [3, 64, 5]], np.uint8)
    reject(with_data(encode(WEIGHTS), weight=weights.tobytes()), "write_weights", "weight[1,1]", "weight 64 exceeds 63")
    trace = NeuronTrace(run_id=1, neuron=2, t_ticks=np.array([1, 2]), adc_lsb=np.array([0, 1023]))
    reject(with_data(encode(trace), adc_lsb=np.array([0, 1024], np.uint16).tobytes()), "neuron_trace", "adc_lsb[1]", "1024 exceeds 1023")
    rows = ConfigureRows(row=np.array([0]), source_label=np.array([1]), sign=np.array([1]))
    reject(with_data(encode(rows), sign=np.array([0], np.int8).tobytes()), "configure_rows", "sign", "+1 or -1")


# -- locally built messages ------------------------------------------------------------------
def _neurons(**over):
    kw = {name: np.ones(2) for name in ConfigureNeurons.ARRAYS}
    kw["neuron"] = np.array([0, 1])
    return ConfigureNeurons(**{**kw, **over})


LOCAL_CASES = [
    ("spike_batch", "t_ticks[2]", lambda: SpikeBatch(run_id=0, t_ticks=[5, 6, 4], label=[0, 0, 0], sample=[0, 0, 0], horizon_ticks=9)),
    ("spike_batch", "label[0]", lambda: SpikeBatch(run_id=0, t_ticks=[5], label=[MAX_LABEL + 1], sample=[0], horizon_ticks=9)),
    ("spike_batch", "label", lambda: SpikeBatch(run_id=0, t_ticks=[5], label=[-1], sample=[0], horizon_ticks=9)),
    ("spike_batch", "t_ticks[0]", lambda: SpikeBatch(run_id=0, t_ticks=[9], label=[0], sample=[0], horizon_ticks=9)),
    ("spike_batch", "label", lambda: SpikeBatch(run_id=0, t_ticks=[5], label=[0, 1], sample=[0], horizon_ticks=9)),
    ("spike_batch", "horizon_ticks", lambda: SpikeBatch(run_id=0, t_ticks=[], label=[], sample=[], horizon_ticks=-1)),
    ("spike_batch", "t_ticks", lambda: SpikeBatch(run_id=0, t_ticks=np.array([0.5]), label=[0], sample=[0], horizon_ticks=9)),
    ("spike_batch", "t_ticks", lambda: SpikeBatch(run_id=0, t_ticks=np.zeros((1, 1), np.int64), label=[0], sample=[0], horizon_ticks=9)),
    ("spike_batch", "t_ticks", lambda: SpikeBatch(run_id=0, t_ticks=5, label=[0], sample=[0], horizon_ticks=9)),
    ("spike_batch", "run_id", lambda: SpikeBatch(run_id="0", t_ticks=[], label=[], sample=[], horizon_ticks=9)),
    ("spike_batch", "horizon_ticks", lambda: SpikeBatch(run_id=0, t_ticks=[], label=[], sample=[], horizon_ticks=9.0)),
    ("write_weights", "weight[0,1]", lambda: WriteWeights(request_id=0, row=[0], column=[0, 1], weight=[[1, 64]])),
    ("write_weights", "weight", lambda: WriteWeights(request_id=0, row=[0], column=[0, 1], weight=[[1]])),
    ("configure_rows", "sign", lambda: ConfigureRows(row=[0], source_label=[0], sign=[0])),
    ("configure_neurons", "tau_mem_us[0]", lambda: _neurons(tau_mem_us=np.array([0.0, 1.0]))),
    ("configure_neurons", "v_th_lsb", lambda: _neurons(v_th_lsb=np.array([np.nan, 1.0]))),
    ("hello", "role", lambda: Hello(protocol_version=1, role="gpu")),
    ("run_request", "sample_ticks", lambda: RunRequest(run_id=0, n_samples=1, sample_ticks=0)),
    ("run_request", "learn", lambda: RunRequest(run_id=0, n_samples=1, sample_ticks=1, learn=1)),
    ("error", "fault", lambda: Error(fault="theirs", message="")),
    ("neuron_trace", "adc_lsb[0]", lambda: NeuronTrace(run_id=0, neuron=0, t_ticks=[0], adc_lsb=[1024])),
    ("neuron_trace", "t_ticks[1]", lambda: NeuronTrace(run_id=0, neuron=0, t_ticks=[3, 2], adc_lsb=[0, 0])),
    ("membrane_samples", "t_ticks[0]", lambda: MembraneSamples(run_id=0, t_ticks=[-1], neuron=[0], adc_lsb=[[0]])),
    ("run_complete", "dropped['x']", lambda: RunComplete(run_id=0, n_samples=0, events_in=0, events_out=0, dropped={"x": "1"})),
    ("run_complete", "dropped[1]", lambda: RunComplete(run_id=0, n_samples=0, events_in=0, events_out=0, dropped={1: 1})),
]


@pytest.mark.parametrize(("tag", "field", "build"), LOCAL_CASES, ids=[f"{t}.{f}" for t, f, _ in LOCAL_CASES])
def test_invalid_local_messages_raise_local_protocol_error(tag, field, build):
    with pytest.raises(ProtocolError) as info:
        build()
    exc = info.value
    assert type(exc) is LocalProtocolError, f"{type(exc).__name__}: {exc}"
    assert (exc.message, exc.field) == (tag, field), str(exc)
    assert str(exc).startswith(f"{tag}.{field}: ")


def test_configure_learning_checks_its_enums_locally():
    kw = dict(loss="ttfs", optimiser="adam", input_label=[], hidden_neuron=[], output_neuron=[])
    if "trainable" in ConfigureLearning.ARRAYS:
        kw["trainable"] = np.zeros((0, 0), np.uint8)
    ConfigureLearning(**kw)
    for field, value in (("loss", "hinge"), ("optimiser", "lbfgs")):
        with pytest.raises(LocalProtocolError, match=f"configure_learning.{field}"):
            ConfigureLearning(**{**kw, field: value})


# -- fuzz --------------------------------------------------------------------------------------
def decodes_or_refuses(frame: bytes) -> Message | None:
    """The fuzz oracle: a valid message (that round-trips) or RemoteProtocolError, nothing else."""
    try:
        msg = decode(frame)
    except RemoteProtocolError as exc:
        assert exc.message and exc.field is not None and exc.problem
        return None
    assert decode(encode(msg)) == msg
    return msg


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_remote_protocol_error(data):
    decodes_or_refuses(data)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bodies_in_valid_frames_decode_or_raise(body):
    decodes_or_refuses(frame_around(b"\xdd" + body[:4] + body[4:]))
    decodes_or_refuses(frame_around(body))


_msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@FUZZ_MESSAGES
@given(msg=strategies.messages(max_n=4), where=st.integers(0, 1 << 16), value=_msgpack_values, data=st.data())
def test_headers_with_a_value_replaced_decode_or_raise(msg, where, value, data):
    """Replace one node of a valid header (any depth) by an arbitrary msgpack value."""
    header, datas = split_frame(encode(msg))
    nodes = [(header, key) for key in header]
    for k in ("f",):
        nodes += [(header[k], key) for key in header[k]]
    for spec in header["a"]:
        nodes += [(spec, i) for i in range(len(spec))] + [(spec[2], i) for i in range(len(spec[2]))]
    parent, key = nodes[where % len(nodes)]
    parent[key] = value
    decodes_or_refuses(frame_around(reference_body(header, datas)))


_mutation = strategies.byte_mutations()


@FUZZ_MESSAGES
@given(msg=strategies.messages(max_n=6), mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_mutated_frames_with_recomputed_crc_decode_or_raise(msg, mutations):
    body = strategies.mutate(bytearray(encode(msg)[8:]), mutations)
    decodes_or_refuses(frame_around(body))
