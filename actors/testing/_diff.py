"""The first place two message sequences differ: message type, field path and values.

A protocol test compares what a board sent with what it should have sent. ``first_divergence``
walks two sequences of messages in step and names the first difference: which position, which
message type was expected and which came, and, when the types agree, the dotted path of the first
field that differs (``t_ticks[3]``, ``weight[2,5]``, ``dropped.chip_lane_overflow``) with both
values. Arrays compare by dtype, then shape, then values (NaN equals NaN, as ``Message.__eq__``);
scalars compare by type and value (``1`` is not ``1.0``, ``True`` is not ``1``), as the codec
keeps them apart on the wire.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...protocol import Message

__all__ = ["Divergence", "message_divergence", "first_divergence", "ABSENT", "type_name"]

_SHOW = 160  # characters of a value shown in a divergence's text


class _Absent:
    """Stands for a map key or list item one side does not have."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


@dataclass(frozen=True)
class Divergence:
    """The first place two message sequences differ.

    index: position in the exchange (0 for ``message_divergence``). expected, received: the
    message type names (wire tags, ``run_complete``) at that position; None where nothing was
    expected or nothing came (the stream ended, or a timeout). field: dotted path of the first
    differing field (``t_ticks[3]``, ``weight[2,5]``, ``metrics.loss``, ``t_ticks.dtype``,
    ``weight.shape``); None when the types differ or one side is missing. expected_value,
    received_value: the values at ``field`` (the whole messages when the types differ). note:
    free text a check adds (why it refused the message, how long it waited).
    """

    index: int
    expected: str | None
    received: str | None
    field: str | None
    expected_value: object
    received_value: object
    note: str = ""

    def __str__(self) -> str:
        where = f"message {self.index}"
        if self.field is not None:
            text = (f"{where} ({self.expected}).{self.field}: expected {_show(self.expected_value)}, "
                    f"received {_show(self.received_value)}")
        elif self.expected is not None and self.received is not None:
            text = f"{where}: expected {self.expected}, received {self.received}"
            if isinstance(self.received_value, Message):
                text += f" {_show(self.received_value)}"
        elif self.expected is not None:
            text = f"{where}: expected {self.expected}, received nothing"
        elif self.received is not None:
            text = f"{where}: expected nothing, received {self.received} {_show(self.received_value)}"
        else:
            return f"{where}: {self.note}" if self.note else f"{where}: diverged"
        return f"{text} ({self.note})" if self.note else text

    def as_dict(self) -> dict:
        """JSON-ready form: values as their text (arrays and messages have no JSON form)."""
        return {"index": self.index, "expected": self.expected, "received": self.received, "field": self.field,
                "expected_value": _show(self.expected_value, None), "received_value": _show(self.received_value, None),
                "note": self.note, "text": str(self)}


def type_name(obj: Any) -> str | None:
    """The wire tag of a message or message class, the class name of anything else; None for None."""
    if obj is None:
        return None
    tag = getattr(obj, "TAG", "")
    if isinstance(tag, str) and tag:
        return tag
    return obj.__name__ if isinstance(obj, type) else type(obj).__name__


def message_divergence(expected: Any, received: Any, *, ignore: frozenset[str] = frozenset()) -> Divergence | None:
    """Where ``received`` first differs from ``expected`` (index 0), or None if they agree.

    ignore: field paths to leave out: a field name (``chip_id``), a tag-qualified name
    (``hello.software``: only in that message type), or a dotted path into a map
    (``metrics.ppu_working_set_bytes``). Either side may be None (nothing expected / received).
    """
    exp_t, rec_t = type_name(expected), type_name(received)
    if expected is None or received is None or type(expected) is not type(received):
        if expected is None and received is None:
            return None
        return Divergence(0, exp_t, rec_t, None, expected, received)
    found = _diff(expected, received, "", exp_t or "", frozenset(ignore))
    if found is None:
        return None
    path, e, r = found
    return Divergence(0, exp_t, rec_t, path, e, r)


def first_divergence(expected: Sequence, received: Sequence, *,
                     ignore: frozenset[str] = frozenset()) -> Divergence | None:
    """The first position where two message sequences differ, or None if they are equal.

    A sequence that ends early diverges at its length: expected (or received) is None there.
    """
    for i in range(max(len(expected), len(received))):
        e = expected[i] if i < len(expected) else None
        r = received[i] if i < len(received) else None
        found = message_divergence(e, r, ignore=ignore)
        if found is not None:
            return dataclasses.replace(found, index=i)
    return None


# -- comparison -------------------------------------------------------------------------------
def _ignored(path: str, tag: str, ignore: frozenset[str]) -> bool:
    bare = _strip_indices(path)
    return bool(ignore) and (bare in ignore or f"{tag}.{bare}" in ignore)


def _strip_indices(path: str) -> str:
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _diff(a: Any, b: Any, path: str, tag: str, ignore: frozenset[str]) -> tuple[str, Any, Any] | None:
    """(path, a value, b value) of the first difference below ``path``, or None."""
    if path and _ignored(path, tag, ignore):
        return None
    if isinstance(a, Message) or (dataclasses.is_dataclass(a) and not isinstance(a, type)):
        if type(a) is not type(b):
            return path or "", a, b
        for f in dataclasses.fields(a):
            found = _diff(getattr(a, f.name), getattr(b, f.name), _join(path, f.name), tag, ignore)
            if found is not None:
                return found
        return None
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _diff_arrays(a, b, path)
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _diff(a.get(key, ABSENT), b.get(key, ABSENT), _join(path, str(key)), tag, ignore)
            if found is not None:
                return found
        return None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        for i in range(max(len(a), len(b))):
            found = _diff(a[i] if i < len(a) else ABSENT, b[i] if i < len(b) else ABSENT, f"{path}[{i}]", tag, ignore)
            if found is not None:
                return found
        return None
    if _same_scalar(a, b):
        return None
    return path, a, b


def _same_scalar(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a and b != b:
        return True
    try:
        return bool(a == b)
    except Exception:  # an object whose equality is not a bool: equal only if identical
        return a is b


def _diff_arrays(a: Any, b: Any, path: str) -> tuple[str, Any, Any] | None:
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return path, a, b
    if a.dtype != b.dtype:
        return f"{path}.dtype", str(a.dtype), str(b.dtype)
    if a.shape != b.shape:
        return f"{path}.shape", tuple(a.shape), tuple(b.shape)
    if a.dtype.kind == "f" or a.dtype.kind == "c":
        differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    else:
        differ = a != b
    if a.ndim == 0:
        return (path, a.item(), b.item()) if bool(differ) else None
    bad = np.flatnonzero(differ)
    if not bad.size:
        return None
    idx = np.unravel_index(int(bad[0]), a.shape)
    where = ",".join(str(int(i)) for i in idx)
    return f"{path}[{where}]", a[idx].item(), b[idx].item()


def _show(value: Any, limit: int | None = _SHOW) -> str:
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, np.ndarray):
        text = f"<{value.dtype}{list(value.shape)}>"
    else:
        text = repr(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
