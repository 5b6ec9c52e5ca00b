"""Hypothesis strategies for the protocol tests, and an independent frame builder.

``messages()`` draws any valid message of the catalogue; ``message_of(cls)`` one class. Fields are
drawn from their annotations and array specs (so a new message without cross-field rules needs
nothing here); a message whose fields relate (equal lengths, sorted ticks, bounded codes, enums)
gets a case in ``_RELATED``. A class the generic drawing cannot satisfy fails loudly, naming this
file, so the round-trip tests cannot silently skip it.

``reference_body`` / ``reference_frame`` build frames from docs/protocol.md with the reference
msgpack packer and ``struct``, sharing no code with ``neurosplit.protocol._codec``: the tests use
them to check our encoder byte for byte and to hand-craft malformed frames.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import typing
import zlib
from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import msgpack
import numpy as np
from hypothesis import strategies as st

from neurosplit.protocol import (
    FAULTS,
    MAX_LABEL,
    PROTOCOL_VERSION,
    ROLES,
    WEIGHT_MAX,
    LocalProtocolError,
    Message,
    message_classes,
)

MAX_N = 24
"""Longest 1-d array drawn (events, rows, samples); large batches have their own tests."""
MAX_SIDE = 8
"""Longest side of a drawn 2-d array."""

INT_MIN, INT_MAX = -(1 << 63), (1 << 64) - 1  # what a msgpack int holds

# -- generic fields, from annotations ------------------------------------------------------
_SCALAR_STRATEGIES: dict[Any, st.SearchStrategy] = {
    int: st.integers(INT_MIN, INT_MAX),
    float: st.floats(),  # NaN, infinities, -0.0 and subnormals included
    bool: st.booleans(),
    str: st.text(max_size=24),  # hypothesis leaves out surrogates, which UTF-8 cannot carry
}


def scalar_strategy(kind: Any) -> st.SearchStrategy:
    """Any value of a scalar field annotation (int, float, bool, str, dict[str, int|float])."""
    if typing.get_origin(kind) is dict:
        _, vkind = typing.get_args(kind)
        return st.dictionaries(st.text(max_size=12), _SCALAR_STRATEGIES[vkind], max_size=6)
    return _SCALAR_STRATEGIES[kind]


@functools.lru_cache(maxsize=4096)  # strategies are built per draw here; hypothesis validates each new one
def array_strategy(dtype: str, ndim: int, elements: st.SearchStrategy | None = None,
                   shape: Any = None, max_n: int = MAX_N) -> st.SearchStrategy:
    """Arrays of one field: 1-d of length 0..max_n, 2-d of sides 0..min(max_n, MAX_SIDE), unless ``shape`` is given."""
    if shape is None:
        shape = st.integers(0, max_n) if ndim == 1 else hnp.array_shapes(
            min_dims=ndim, max_dims=ndim, min_side=0, max_side=min(max_n, MAX_SIDE))
    return hnp.arrays(np.dtype(dtype), shape, elements=elements)


@functools.cache
def _scalar_fields(cls: type[Message]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name not in cls.ARRAYS}


@functools.lru_cache(maxsize=256)
def generic_fields(cls: type[Message], skip: frozenset = frozenset(), max_n: int = MAX_N) -> st.SearchStrategy[dict[str, Any]]:
    """The fields of ``cls`` not in ``skip``, each drawn from its type alone."""
    parts = {name: scalar_strategy(kind) for name, kind in _scalar_fields(cls).items()}
    parts.update({name: array_strategy(dtype, ndim, max_n=max_n) for name, (dtype, ndim) in cls.ARRAYS.items()})
    return st.fixed_dictionaries({name: s for name, s in parts.items() if name not in skip})


# -- fields that relate to each other ------------------------------------------------------
def _sorted(a: np.ndarray) -> np.ndarray:
    return np.sort(a, kind="stable")


_nonneg_ticks = st.integers(0, 1 << 62)
_labels = st.integers(0, MAX_LABEL)
_finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def _hello(draw, max_n: int) -> dict:
    return {"role": draw(st.sampled_from(ROLES))}


@st.composite
def _configure_neurons(draw, max_n: int) -> dict:
    n = draw(st.integers(0, max_n))
    f64 = lambda elements: draw(array_strategy("float64", 1, elements, n))  # noqa: E731
    return {
        "neuron": draw(array_strategy("uint16", 1, shape=n)),
        "tau_mem_us": f64(st.floats(1e-3, 1e9)),
        "tau_syn_us": f64(st.floats(1e-3, 1e9)),
        "v_leak_lsb": f64(_finite),
        "v_reset_lsb": f64(_finite),
        "v_th_lsb": f64(_finite),
        "t_ref_us": f64(st.floats(0.0, 1e9)),
    }


@st.composite
def _configure_rows(draw, max_n: int) -> dict:
    n = draw(st.integers(0, max_n))
    return {
        "row": draw(array_strategy("uint16", 1, shape=n)),
        "source_label": draw(array_strategy("uint16", 1, _labels, n)),
        "sign": draw(array_strategy("int8", 1, st.sampled_from([-1, 1]), n)),
    }


@st.composite
def _weights(draw, max_n: int) -> dict:
    r, c = draw(st.integers(0, min(max_n, MAX_SIDE))), draw(st.integers(0, min(max_n, MAX_SIDE)))
    return {
        "row": draw(array_strategy("uint16", 1, shape=r)),
        "column": draw(array_strategy("uint16", 1, shape=c)),
        "weight": draw(array_strategy("uint8", 2, st.integers(0, WEIGHT_MAX), (r, c))),
    }


@st.composite
def _run_request(draw, max_n: int) -> dict:
    return {
        "run_id": draw(st.integers(0, INT_MAX)),
        "n_samples": draw(st.integers(0, INT_MAX)),
        "sample_ticks": draw(st.integers(1, INT_MAX)),
        "cadc_period_ticks": draw(st.integers(0, INT_MAX)),
        "step_ticks": draw(st.integers(0, INT_MAX)),
    }


@st.composite
def _spike_batch(draw, max_n: int) -> dict:
    n = draw(st.integers(0, max_n))
    t = _sorted(draw(array_strategy("int64", 1, _nonneg_ticks, n)))
    first_free = int(t[-1]) + 1 if n else 0
    return {
        "t_ticks": t,
        "label": draw(array_strategy("uint16", 1, _labels, n)),
        "sample": draw(array_strategy("uint32", 1, shape=n)),
        "horizon_ticks": draw(st.integers(first_free, INT_MAX)),
    }


@st.composite
def _membrane_samples(draw, max_n: int) -> dict:
    m, k = draw(st.integers(0, min(max_n, MAX_SIDE))), draw(st.integers(0, min(max_n, MAX_SIDE)))
    return {
        "t_ticks": _sorted(draw(array_strategy("int64", 1, _nonneg_ticks, m))),
        "neuron": draw(array_strategy("uint16", 1, shape=k)),
        "adc_lsb": draw(array_strategy("uint8", 2, shape=(m, k))),
    }


@st.composite
def _neuron_trace(draw, max_n: int) -> dict:
    m = draw(st.integers(0, max_n))
    return {
        "t_ticks": _sorted(draw(array_strategy("int64", 1, _nonneg_ticks, m))),
        "adc_lsb": draw(array_strategy("uint16", 1, st.integers(0, 1023), m)),
    }


@st.composite
def _configure_learning(draw, max_n: int) -> dict:
    k, h, o = (draw(st.integers(0, min(max_n, MAX_SIDE))) for _ in range(3))
    return {
        "loss": draw(st.sampled_from(["ttfs", "mse"])),
        "optimiser": draw(st.sampled_from(["adam", "sgd"])),
        "input_label": draw(array_strategy("uint16", 1, _labels, k)),
        "hidden_neuron": draw(array_strategy("uint16", 1, shape=h)),
        "output_neuron": draw(array_strategy("uint16", 1, shape=o)),
        "trainable": draw(array_strategy("uint8", 2, st.integers(0, 1), (k + h + o, h + o))),
    }


@st.composite
def _train_step(draw, max_n: int) -> dict:
    return {"learning_rate": draw(st.floats(min_value=0.0))}


@st.composite
def _error(draw, max_n: int) -> dict:
    return {"fault": draw(st.sampled_from(FAULTS))}


@st.composite
def _learner_state(draw, max_n: int) -> dict:
    s, n = draw(st.integers(0, min(max_n, MAX_SIDE))), draw(st.integers(0, min(max_n, MAX_SIDE)))
    return {
        "step": draw(st.integers(0, INT_MAX)),
        **{name: draw(array_strategy("float64", 2, shape=(s, n))) for name in ("shadow", "adam_m", "adam_v")},
    }


@st.composite
def _link_frame(draw, max_n: int) -> dict:
    seq = draw(st.integers(-1, INT_MAX))
    return {
        "seq": seq,
        "ack": draw(st.integers(0, INT_MAX)),
        "payload": draw(array_strategy("uint8", 1, max_n=0 if seq == -1 else max_n)),
        "sack": draw(array_strategy("uint8", 1, max_n=min(max_n, 32))),
    }


_RELATED: dict[str, Callable[[int], st.SearchStrategy[dict]]] = {
    "hello": _hello,
    "configure_neurons": _configure_neurons,
    "configure_rows": _configure_rows,
    "write_weights": _weights,
    "weights": _weights,
    "run_request": _run_request,
    "spike_batch": _spike_batch,
    "membrane_samples": _membrane_samples,
    "neuron_trace": _neuron_trace,
    "configure_learning": _configure_learning,
    "train_step": _train_step,
    "error": _error,
    "write_learner_state": _learner_state,
    "learner_state": _learner_state,
    "link_frame": _link_frame,
}


# -- how arrays reach the constructor ------------------------------------------------------
@st.composite
def _relayout(draw, a: np.ndarray) -> Any:
    """The same values as a contiguous array, a strided view, a Fortran array or a list."""
    how = draw(st.sampled_from(["contiguous", "strided", "fortran", "list"]))
    if how == "strided":
        wide = np.zeros((a.shape[0] * 2,) + a.shape[1:], a.dtype)
        wide[::2] = a
        return wide[::2]
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "list" and a.size:  # an empty list has neither dtype nor (for 2-d) shape to infer
        return a.tolist()
    return np.ascontiguousarray(a)


@st.composite
def message_of(draw, cls: type[Message], relayout: bool = True, max_n: int = MAX_N) -> Message:
    """A valid message of class ``cls`` whose arrays have at most ``max_n`` entries per axis."""
    kwargs = draw(_RELATED[cls.TAG](max_n)) if cls.TAG in _RELATED else {}
    kwargs.update(draw(generic_fields(cls, skip=frozenset(kwargs), max_n=max_n)))
    if relayout:
        for name in cls.ARRAYS:
            kwargs[name] = draw(_relayout(kwargs[name]))
    try:
        return cls(**kwargs)
    except LocalProtocolError as exc:
        raise AssertionError(
            f"tests/strategies.py drew an invalid {cls.TAG} ({exc}): give it a case in _RELATED"
        ) from exc


def messages(max_n: int = MAX_N) -> st.SearchStrategy[Message]:
    """Any valid message of the catalogue, arrays of at most ``max_n`` entries per axis."""
    return st.one_of([message_of(cls, max_n=max_n) for _, cls in sorted(message_classes().items())])


# -- an independent frame builder (docs/protocol.md, "Frame and body layout") ---------------
def reference_body(header: Any, datas: list[bytes], pads: list[int] | None = None, n_items: int | None = None) -> bytes:
    """array32 of [header, pad, data, ...] with the reference packer; pads default to aligning."""
    out = bytearray(struct.pack(">BI", 0xDD, 1 + 2 * len(datas) if n_items is None else n_items))
    out += msgpack.packb(header, use_bin_type=True)
    for i, data in enumerate(datas):
        k = (-(len(out) + 2 + 5)) % 8 if pads is None else pads[i]
        out += bytes((0xC4, k)) + bytes(k) + struct.pack(">BI", 0xC6, len(data)) + bytes(data)
    return bytes(out)


def frame_around(body: bytes, length: int | None = None, crc: int | None = None, unchecked: bool = False) -> bytes:
    """Frame header (u32 length, u32 crc32, little endian) followed by ``body``. ``unchecked``: set
    bit 31 of the length word (the body carries no checksum) and put 0 in the CRC word."""
    if unchecked:
        return struct.pack("<II", (len(body) if length is None else length) | 1 << 31, 0 if crc is None else crc) + body
    return struct.pack("<II", len(body) if length is None else length,
                       zlib.crc32(body) if crc is None else crc) + body


def reference_header(msg: Message) -> dict:
    cls = type(msg)
    scalars = {name: (dict(v) if isinstance(v := getattr(msg, name), dict) else v) for name in _scalar_fields(cls)}
    arrays = {name: np.asarray(getattr(msg, name)) for name in cls.ARRAYS}
    return {"v": PROTOCOL_VERSION, "t": cls.TAG, "f": scalars,
            "a": [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]}


def reference_frame(msg: Message, checksum: bool = True) -> bytes:
    """The frame of ``msg`` as docs/protocol.md lays it out, built without our codec; without
    ``checksum``, the UNCHECKED form."""
    datas = [np.asarray(getattr(msg, name)).tobytes() for name in type(msg).ARRAYS]
    return frame_around(reference_body(reference_header(msg), datas), unchecked=not checksum)


def split_frame(frame: bytes) -> tuple[dict, list[bytes]]:
    """Header and array data of a frame, read with the reference unpacker."""
    items = msgpack.unpackb(frame[8:], raw=False)
    return items[0], items[2::2]


def rebuild(frame: bytes, edit: Callable[[dict], Any]) -> bytes:
    """``frame`` with its header changed in place by ``edit`` (its return value is ignored)."""
    header, datas = split_frame(frame)
    edit(header)
    return frame_around(reference_body(header, datas))


# -- byte mutations of frame bodies (fuzzing) -----------------------------------------------------------------

def byte_mutations(ops=("flip", "set", "insert", "delete")):
    """(op, position, byte) tuples for ``mutate``; positions wrap around the body's length."""
    return st.tuples(st.sampled_from(list(ops)), st.integers(0, 1 << 20), st.integers(0, 255))


def mutate(body: bytearray, mutations) -> bytes:
    """Apply ``mutations`` in order: flip a bit, set a byte, insert a byte, delete a byte, or truncate
    from a position on. Returns the mutated bytes."""
    for op, pos, byte in mutations:
        i = pos % (len(body) + (op == "insert")) if body or op == "insert" else 0
        if op == "flip" and body:
            body[i] ^= 1 << (byte % 8)
        elif op == "set" and body:
            body[i] = byte
        elif op == "insert":
            body.insert(i, byte)
        elif op == "delete" and body:
            del body[i]
        elif op == "truncate":
            del body[i:]
    return bytes(body)

