"""The message base class: frozen dataclasses that carry batches as numpy arrays.

A message class declares its array fields in ``ARRAYS`` (name -> (dtype, ndim)); every other
field is a scalar whose annotation (int, float, str, bool, dict[str, int], dict[str, float]) is
checked on construction. ``__post_init__`` validates, so no invalid message exists on either side
of a link: a message built here that breaks a rule raises :class:`LocalProtocolError`; the decoder
turns the same failure on received bytes into :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ._errors import LocalProtocolError

__all__ = ["Message", "message_classes", "MAX_LABEL", "MAX_STR_BYTES", "MAX_MAP_LEN", "FrozenDict"]

MAX_LABEL = (1 << 14) - 1
"""Largest spike label: the 14-bit neuron-label field of a BrainScaleS-2 event (bss2_facts.md §1)."""

MAX_STR_BYTES = 4096
"""Longest string field (and map key) in UTF-8 bytes; the decoder refuses longer ones."""

MAX_MAP_LEN = 256
"""Most entries of a map field; the decoder refuses more."""

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1  # what a msgpack int can hold


class FrozenDict(dict):
    """The map fields of a frozen message: a dict (json and msgpack take it as one) that refuses changes."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> typing.NoReturn:
        raise TypeError("a message's map fields are read-only; build a new message instead")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:  # pickle and deepcopy would otherwise refill it item by item
        return (type(self), (dict(self),))

_REGISTRY: dict[str, type["Message"]] = {}


def message_classes() -> dict[str, type["Message"]]:
    """Every registered message class by its wire tag."""
    return dict(_REGISTRY)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Message:
    """Base of every message. Subclasses set ``TAG`` and ``ARRAYS`` and may add ``_check``."""

    TAG: ClassVar[str] = ""
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {}
    _SCALARS: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if cls.TAG:
            if cls.TAG in _REGISTRY and _REGISTRY[cls.TAG].__qualname__ != cls.__qualname__:
                raise TypeError(f"message tag {cls.TAG!r} is used twice")
            _REGISTRY[cls.TAG] = cls

    def __post_init__(self) -> None:
        cls = type(self)
        if "_SCALARS" not in cls.__dict__:
            _resolve_scalars(cls)
        for name, kind in cls._SCALARS.items():
            object.__setattr__(self, name, _check_scalar(cls.TAG, name, getattr(self, name), kind))
        for name, (dtype, ndim) in cls.ARRAYS.items():
            object.__setattr__(self, name, _check_array(cls.TAG, name, getattr(self, name), dtype, ndim))
        self._check()

    def _check(self) -> None:
        """Relations between fields; subclasses raise LocalProtocolError via ``self._fail``."""

    def _fail(self, field: str, problem: str) -> typing.NoReturn:
        raise LocalProtocolError(self.TAG, field, problem)

    # -- helpers for subclasses -------------------------------------------------------------
    def _same_length(self, *names: str) -> int:
        lengths = {n: getattr(self, n).shape[0] for n in names}
        first = next(iter(lengths.values()))
        for n, length in lengths.items():
            if length != first:
                self._fail(n, f"length {length} differs from {names[0]} length {first}")
        return first

    def _non_decreasing(self, name: str) -> None:
        a = getattr(self, name)
        # count_nonzero is a plain C loop, several us cheaper than .any() (a ufunc reduction) on the
        # short arrays most messages carry; the index search only once we know it fails
        if a.size > 1 and np.count_nonzero(a[1:] < a[:-1]):
            back = np.flatnonzero(a[1:] < a[:-1])
            self._fail(f"{name}[{back[0] + 1}]", "ticks must not decrease")

    def _at_most(self, name: str, bound: int | float, what: str = "") -> None:
        a = getattr(self, name)
        # integers: one reduction; floats compare elementwise, since a NaN would hide the max
        if a.size and (a.max() > bound if a.dtype.kind in "iu" else np.count_nonzero(a > bound)):
            self._fail_at(name, a, a.reshape(-1) > bound, f"exceeds {bound}", what)

    def _at_least(self, name: str, bound: int | float, what: str = "") -> None:
        a = getattr(self, name)
        if a.size and (a.min() < bound if a.dtype.kind in "iu" else np.count_nonzero(a < bound)):
            self._fail_at(name, a, a.reshape(-1) < bound, f"is below {bound}", what)

    def _fail_at(self, name: str, a: np.ndarray, bad: np.ndarray, problem: str, what: str) -> typing.NoReturn:
        idx = np.unravel_index(np.flatnonzero(bad)[0], a.shape)
        where = ",".join(str(int(i)) for i in idx)
        self._fail(f"{name}[{where}]", f"{what or 'value'} {a[idx]} {problem}")

    # -- value semantics ----------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """All fields by name, arrays included."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def n_events(self) -> int:
        """Spike events this message carries (0 for messages that carry none)."""
        return 0

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for name in type(self)._SCALARS:
            if not _same_scalar(getattr(self, name), getattr(other, name)):
                return False
        for name in type(self).ARRAYS:
            a, b = getattr(self, name), getattr(other, name)
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                parts.append(f"{f.name}=<{v.dtype}{list(v.shape)}>")
            else:
                parts.append(f"{f.name}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _from_wire(cls: type[Message], scalars: dict, arrays: dict, check: bool = True) -> Message:
    """A message from decoded fields, with the constructor's checks except the array conversions:
    the decoder has already matched each array's dtype and shape against the class (and made it
    read-only), so only the scalars (received values) and the relations between fields
    (``_check``) remain to check. Absent scalars take their defaults (the decoder refuses frames
    missing a required one). ``check=False`` skips ``_check``: only for the fields of a message
    that was validated when it was built (a sealed in-process frame, protocol/_codec.py).

    The scalar types are checked by exact type first (what msgpack hands out: int, float, bool,
    str; the unpacker has already bounded string lengths and UTF-8), and through the
    constructor's ``_check_scalar`` only for maps and for values of a wrong type (its errors)."""
    spec = _WIRE_SPECS.get(cls) or _wire_spec(cls)
    msg = object.__new__(cls)
    put = object.__setattr__
    tag = cls.TAG
    for name, want, kind in spec:
        if name in scalars:
            value = scalars[name]
            got = type(value)
            if got is not want:
                if want is float and got is int:
                    value = float(value)
                else:  # maps, wrong types (the error), and bool/int subclasses
                    value = _check_scalar(tag, name, value, kind)
        else:
            value = _scalar_defaults(cls)[name]()
            if want is None:  # a map's default: a fresh dict, frozen
                value = _check_scalar(tag, name, value, kind)
        put(msg, name, value)
    for name, arr in arrays.items():
        put(msg, name, arr)
    if check:
        msg._check()
    return msg


_WIRE_SPECS: dict[type, tuple[tuple[str, type | None, Any], ...]] = {}


def _wire_spec(cls: type[Message]) -> tuple[tuple[str, type | None, Any], ...]:
    """(name, exact Python type a decoded value must have to pass as is, annotation) per scalar
    field: int, float, bool and str pass on their type alone; maps (None here) always go through
    ``_check_scalar``, which checks their keys and values and freezes them."""
    spec = []
    for name, kind in scalar_kinds(cls).items():
        want = kind if kind in (int, float, bool, str) else None
        spec.append((name, want, kind))
    _WIRE_SPECS[cls] = found = tuple(spec)
    return found


_DEFAULTS: dict[type, dict] = {}


def _scalar_defaults(cls: type[Message]) -> dict:
    """name -> zero-argument function giving the default of each scalar field that has one."""
    found = _DEFAULTS.get(cls)
    if found is None:
        found = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                found[f.name] = (lambda v=f.default: v)
            elif f.default_factory is not dataclasses.MISSING:
                found[f.name] = f.default_factory
        _DEFAULTS[cls] = found
    return found


def _resolve_scalars(cls: type[Message]) -> None:
    hints = typing.get_type_hints(cls)
    scalars = {}
    for f in dataclasses.fields(cls):
        if f.name not in cls.ARRAYS:
            scalars[f.name] = hints[f.name]
    cls._SCALARS = scalars


def scalar_kinds(cls: type[Message]) -> dict[str, Any]:
    """Scalar field names and annotated types of a message class."""
    if "_SCALARS" not in cls.__dict__:
        _resolve_scalars(cls)
    return cls._SCALARS


def _same_scalar(a: Any, b: Any) -> bool:
    """Equality that, like the array comparison, counts NaN equal to NaN (a diverged loss is a value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_scalar(v, b[k]) for k, v in a.items())
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_str(tag: str, name: str, value: str) -> str:
    try:
        n_bytes = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(tag, name, f"not encodable as UTF-8: {exc.reason} at {exc.start}") from None
    if n_bytes > MAX_STR_BYTES:
        raise LocalProtocolError(tag, name, f"string of {n_bytes} UTF-8 bytes exceeds {MAX_STR_BYTES}")
    return str(value)


def _check_scalar(tag: str, name: str, value: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
    elif kind is int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if not _INT_MIN <= value <= _INT_MAX:
                raise LocalProtocolError(tag, name, f"{value} does not fit a msgpack int [-2**63, 2**64 - 1]")
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return _check_str(tag, name, value)
    elif typing.get_origin(kind) is dict:
        _, vkind = typing.get_args(kind)
        if not isinstance(value, dict):
            raise LocalProtocolError(tag, name, f"expected a map, got {_type_name(value)}")
        if len(value) > MAX_MAP_LEN:
            raise LocalProtocolError(tag, name, f"map of {len(value)} entries exceeds {MAX_MAP_LEN}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise LocalProtocolError(tag, f"{name}[{k!r}]", f"keys must be str, got {_type_name(k)}")
            k = _check_str(tag, f"{name}[{k!r}]", k)
            out[k] = _check_scalar(tag, f"{name}[{k!r}]", v, vkind)
        return FrozenDict(out)
    else:  # pragma: no cover - a catalogue bug, caught by the round-trip tests
        raise TypeError(f"{tag}.{name}: unsupported field type {kind!r}")
    raise LocalProtocolError(tag, name, f"expected {kind.__name__}, got {_type_name(value)}")


def _check_array(tag: str, name: str, value: Any, dtype: str, ndim: int) -> np.ndarray:
    want = np.dtype(dtype)
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, (list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as exc:
            raise LocalProtocolError(tag, name, f"not a rectangular array: {exc}") from None
        if arr.size == 0:
            arr = arr.astype(want)
    else:
        raise LocalProtocolError(tag, name, f"expected a numpy array of {want}, got {_type_name(value)}")
    if arr.ndim != ndim:
        raise LocalProtocolError(tag, name, f"expected {ndim} dimension(s), got shape {arr.shape}")
    if arr.dtype != want:
        if arr.dtype.kind in "iub" and want.kind in "iu":
            if arr.size and (arr.min() < np.iinfo(want).min or arr.max() > np.iinfo(want).max):
                raise LocalProtocolError(tag, name, f"values outside the range of {want}")
            arr = arr.astype(want)
        elif arr.dtype.kind in "iuf" and want.kind == "f" and np.can_cast(arr.dtype, want, "same_kind"):
            arr = arr.astype(want)
        else:
            raise LocalProtocolError(tag, name, f"expected dtype {want}, got {arr.dtype}")
    if arr.flags.writeable:
        arr = arr.view()
        arr.flags.writeable = False
    return arr
