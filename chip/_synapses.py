"""The synapse array: 6-bit weight codes in signed rows, selected by spike labels.

Hardware (bss2_facts.md §1): each synapse stores a 6-bit weight (0..63); the sign is a property
of the row (set by its synapse driver, excitatory or inhibitory); a row answers the events whose
label it holds, and several rows may answer one label. Software pairs an excitatory and an
inhibitory row per source to get signed weights -63..63 (hxtorch's "7-bit signed" weights).

Emulation (simplifications, documented in docs/mismatch.md): one array of N_ROWS = 256 rows by
N_NEURONS = 512 columns (the chip has two 256 x 256 arrays, one per hemisphere); each row stores
a full 14-bit source label (the chip matches a 5-bit row select and a 6-bit synapse label); a row
with sign 0 is switched off. External inputs use labels < NEURON_LABEL_BASE; neuron circuit j
emits NEURON_LABEL_BASE + j.

The current a code drives is code * CURRENT_LSB_PER_CODE * gain[row, column] LSB of synaptic
current, gain being the die's per-synapse mismatch (1 on an ideal die).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..protocol import MAX_LABEL, ChipLimitError
from ._params import N_NEURONS, N_ROWS, NEURON_LABEL_BASE, WEIGHT_MAX

__all__ = [
    "CURRENT_LSB_PER_CODE",
    "ROW_MODES",
    "SynapseArray",
    "RowLayout",
    "QuantReport",
    "Mapping",
    "CodeGradient",
    "quantise",
    "plan_rows",
    "write_weights",
    "map_network",
    "signed_codes",
    "source_labels",
    "rows_for_labels",
    "effective_weights",
    "row_sources",
    "refresh_effective_weights",
    "code_gradient",
]

CURRENT_LSB_PER_CODE = 70.0 / 58.0
"""Synaptic current (LSB) per weight code on an ideal die, about 1.2: on BSS-2 one model unit of
weight is 58 codes and one model unit of V is ~70 LSB (bss2_facts.md §9-10, jaxsnn yinyang_bss2)."""

ROW_MODES = ("pair", "needed")
"""'pair': every source gets an exc and an inh row (signs may change during training);
'needed': only the rows whose sign occurs in the quantised weights (fixed networks, fewer rows)."""


def _frozen(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class SynapseArray:
    """The array as stored on chip (read-only arrays).

    weight: uint8[n_rows, n_cols] codes 0..63. row_label: uint16[n_rows] the label each row
    answers. row_sign: int8[n_rows], +1 excitatory, -1 inhibitory, 0 switched off.
    """

    weight: np.ndarray
    row_label: np.ndarray
    row_sign: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        if w.ndim != 2 or w.dtype != np.uint8:
            raise ValueError(f"weight must be uint8[rows, cols], got {w.dtype} shape {w.shape}")
        if w.size and w.max() > WEIGHT_MAX:
            raise ValueError(f"weight codes must be <= {WEIGHT_MAX}, got {w.max()}")
        lab, sign = np.asarray(self.row_label), np.asarray(self.row_sign)
        if lab.shape != (w.shape[0],) or lab.dtype != np.uint16:
            raise ValueError(f"row_label must be uint16[{w.shape[0]}], got {lab.dtype} shape {lab.shape}")
        if sign.shape != (w.shape[0],) or sign.dtype != np.int8 or np.any(np.abs(sign.astype(np.int16)) > 1):
            raise ValueError(f"row_sign must be int8[{w.shape[0]}] of -1, 0, +1, got {sign.dtype} shape {sign.shape}")
        for name, a in (("weight", w), ("row_label", lab), ("row_sign", sign)):
            object.__setattr__(self, name, _frozen(a, a.dtype))

    @classmethod
    def empty(cls, n_rows: int = N_ROWS, n_cols: int = N_NEURONS) -> "SynapseArray":
        """All rows off, all codes 0."""
        return cls(np.zeros((n_rows, n_cols), np.uint8), np.zeros(n_rows, np.uint16), np.zeros(n_rows, np.int8))

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape


@dataclass(frozen=True, eq=False)
class RowLayout:
    """Where a network's signed weights live. source_label uint16[n_src]: label of each source
    (weight-matrix row); neuron int64[n_post]: neuron circuit (array column) of each target;
    exc_row, inh_row int64[n_src]: the source's excitatory and inhibitory row, -1 if none."""

    source_label: np.ndarray
    neuron: np.ndarray
    exc_row: np.ndarray
    inh_row: np.ndarray

    @property
    def n_rows_used(self) -> int:
        return int(np.count_nonzero(self.exc_row >= 0) + np.count_nonzero(self.inh_row >= 0))


@dataclass(frozen=True)
class QuantReport:
    """What quantisation did to a weight matrix (errors in weight codes, over all n_weights).

    n_clipped: weights with |w| > 63 (set to +-63). n_sign_blocked: weights whose sign has no row
    ('needed' mode after a sign change; written as 0). rms_error, max_error: of w - written code.
    """

    n_weights: int
    n_clipped: int
    n_sign_blocked: int
    rms_error: float
    max_error: float


@dataclass(frozen=True, eq=False)
class Mapping:
    """A network placed on the array: the array, the layout and the quantisation report."""

    array: SynapseArray
    layout: RowLayout
    report: QuantReport


@dataclass(frozen=True, eq=False)
class CodeGradient:
    """Gradient of a loss w.r.t. the codes of a layout, each float64[n_src, n_post].

    exc, inh: w.r.t. the code in the source's exc / inh row (0 where the row does not exist).
    signed: w.r.t. the signed code c = exc - inh, using the row that currently carries the weight
    (at c = 0 the row a descent step would write to: exc if the gradient is negative, else inh).
    """

    exc: np.ndarray
    inh: np.ndarray
    signed: np.ndarray


def _as_float_matrix(w, name: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"{name} must be 2-d, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{name} must be finite")
    return w


def _as_index(x, name: str) -> np.ndarray:
    a = np.atleast_1d(np.asarray(x))
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-d integer array, got {a.dtype} shape {a.shape}")
    return a.astype(np.int64)


def _check_neurons(neuron, n_cols: int) -> np.ndarray:
    neuron = _as_index(neuron, "neuron")
    if neuron.size > n_cols:
        raise ChipLimitError(f"network uses {neuron.size} neurons, the chip has {n_cols} "
                             f"({neuron.size - n_cols} too many)")
    if neuron.size and (neuron.min() < 0 or neuron.max() >= n_cols):
        bad = neuron[(neuron < 0) | (neuron >= n_cols)][0]
        raise ChipLimitError(f"neuron circuit {bad} does not exist: the chip has circuits 0..{n_cols - 1}")
    if np.unique(neuron).size != neuron.size:
        raise ValueError("neuron must not repeat a circuit")
    return neuron


def _check_labels(label, name: str) -> np.ndarray:
    label = _as_index(label, name)
    if label.size and (label.min() < 0 or label.max() > MAX_LABEL):
        bad = label[(label < 0) | (label > MAX_LABEL)][0]
        raise ChipLimitError(f"{name} {bad} does not fit the 14-bit spike label (0..{MAX_LABEL})")
    if np.unique(label).size != label.size:
        raise ValueError(f"{name} must not repeat a label")
    return label


def _check_input_labels(input_label) -> np.ndarray:
    label = _check_labels(input_label, "input_label")
    if label.size and label.max() >= NEURON_LABEL_BASE:
        bad = label[label >= NEURON_LABEL_BASE][0]
        raise ChipLimitError(f"input_label {bad} is not an external label: external labels are "
                             f"< {NEURON_LABEL_BASE}, neuron j emits {NEURON_LABEL_BASE} + j")
    return label


def source_labels(input_label, neuron) -> np.ndarray:
    """Labels of the sources of ``simulate_events``' w_lsb rows, uint16[n_in + n]: the external
    inputs in order, then NEURON_LABEL_BASE + each neuron circuit in order."""
    label = _check_input_labels(input_label)
    neuron = _check_neurons(neuron, N_NEURONS)
    return np.concatenate([label, NEURON_LABEL_BASE + neuron]).astype(np.uint16)


def quantise(w_code) -> tuple[np.ndarray, QuantReport]:
    """Round a signed weight matrix (in codes) to -63..63: int16 codes and the error report.
    Rounding is numpy's rint (half to even)."""
    w = _as_float_matrix(w_code, "w_code")
    q = np.clip(np.rint(w), -WEIGHT_MAX, WEIGHT_MAX)
    return q.astype(np.int16), _report(w, q, n_sign_blocked=0)


def _report(w: np.ndarray, q: np.ndarray, n_sign_blocked: int) -> QuantReport:
    err = w - q
    return QuantReport(n_weights=int(w.size), n_clipped=int(np.count_nonzero(np.abs(np.rint(w)) > WEIGHT_MAX)),
                       n_sign_blocked=int(n_sign_blocked),
                       rms_error=float(np.sqrt(np.mean(err * err))) if w.size else 0.0,
                       max_error=float(np.max(np.abs(err))) if w.size else 0.0)


def plan_rows(source_label, neuron, *, w_code=None, rows: str = "pair", first_row: int = 0,
              n_rows: int = N_ROWS, n_cols: int = N_NEURONS) -> RowLayout:
    """Assign synapse rows to sources, in source order from ``first_row``: per source its exc row,
    then its inh row. rows='pair' gives every source both; rows='needed' only the signs that occur
    in ``rint(w_code)`` (float64[n_src, n_post], required then); a source with no nonzero weight
    gets no row.

    source_label: int[n_src] unique labels (inputs < NEURON_LABEL_BASE, neurons NEURON_LABEL_BASE + j).
    neuron: int[n_post] unique neuron circuits (columns). Raises ChipLimitError if the rows, the
    neurons or a label do not fit the chip, saying by how much.
    """
    if rows not in ROW_MODES:
        raise ValueError(f"rows must be one of {ROW_MODES}, got {rows!r}")
    label = _check_labels(source_label, "source_label")
    neuron = _check_neurons(neuron, n_cols)
    n_src = label.size
    if rows == "pair":
        need_exc = need_inh = np.ones(n_src, bool)
    else:
        if w_code is None:
            raise ValueError("rows='needed' requires w_code")
        q = np.rint(_as_float_matrix(w_code, "w_code"))
        if q.shape != (n_src, neuron.size):
            raise ValueError(f"w_code must have shape ({n_src}, {neuron.size}), got {q.shape}")
        need_exc, need_inh = (q > 0).any(axis=1), (q < 0).any(axis=1)
    n_need = int(need_exc.sum() + need_inh.sum())
    if not 0 <= first_row <= n_rows:
        raise ValueError(f"first_row must be in [0, {n_rows}], got {first_row}")
    if first_row + n_need > n_rows:
        free = n_rows - first_row
        raise ChipLimitError(f"network needs {n_need} synapse rows ({n_src} sources, rows={rows!r}), "
                             f"{free} are free from row {first_row} ({first_row + n_need - n_rows} too many)")
    order = np.stack([need_exc, need_inh], axis=1).ravel()  # exc, inh, exc, inh, ...
    slot = np.full(2 * n_src, -1, np.int64)
    slot[order] = first_row + np.arange(n_need)
    return RowLayout(_frozen(label.astype(np.uint16), np.uint16), _frozen(neuron, np.int64),
                     _frozen(slot[0::2], np.int64), _frozen(slot[1::2], np.int64))


def write_weights(array: SynapseArray, layout: RowLayout, w_code) -> tuple[SynapseArray, QuantReport]:
    """A new array holding ``w_code`` (float64[n_src, n_post], signed, in codes) in the layout's
    rows: labels and signs set, positive parts rounded into exc rows, negative into inh rows,
    clipped to 63. Columns outside layout.neuron of those rows are zeroed. The report compares
    w_code with what was written."""
    w = _as_float_matrix(w_code, "w_code")
    n_src, n_post = layout.source_label.size, layout.neuron.size
    if w.shape != (n_src, n_post):
        raise ValueError(f"w_code must have shape ({n_src}, {n_post}), got {w.shape}")
    n_rows, n_cols = array.shape
    for name in ("exc_row", "inh_row"):
        r = getattr(layout, name)
        if r.size and r.max() >= n_rows:
            raise ChipLimitError(f"layout.{name} uses row {r.max()}, the array has rows 0..{n_rows - 1}")
    if n_post and layout.neuron.max() >= n_cols:
        raise ChipLimitError(f"layout uses neuron {layout.neuron.max()}, the array has columns 0..{n_cols - 1}")
    q = np.clip(np.rint(w), -WEIGHT_MAX, WEIGHT_MAX)
    has_exc, has_inh = (layout.exc_row >= 0)[:, None], (layout.inh_row >= 0)[:, None]
    blocked = ((q > 0) & ~has_exc) | ((q < 0) & ~has_inh)
    q = np.where(blocked, 0.0, q)
    weight, label, sign = array.weight.copy(), array.row_label.copy(), array.row_sign.copy()
    for rows, part, s in ((layout.exc_row, np.maximum(q, 0.0), 1), (layout.inh_row, np.maximum(-q, 0.0), -1)):
        ok = rows >= 0
        r = rows[ok]
        label[r], sign[r] = layout.source_label[ok], s
        weight[r] = 0
        weight[np.ix_(r, layout.neuron)] = part[ok].astype(np.uint8)
    return SynapseArray(weight, label, sign), _report(w, q, int(blocked.sum()))


def map_network(w_code, source_label, neuron, *, rows: str = "pair", array: SynapseArray | None = None,
                first_row: int = 0) -> Mapping:
    """Place a signed weight matrix (float64[n_src, n_post], already scaled to codes) on the chip:
    plan_rows then write_weights into ``array`` (default: an empty array)."""
    array = SynapseArray.empty() if array is None else array
    layout = plan_rows(source_label, neuron, w_code=w_code, rows=rows, first_row=first_row,
                       n_rows=array.shape[0], n_cols=array.shape[1])
    new, report = write_weights(array, layout, w_code)
    return Mapping(new, layout, report)


def signed_codes(array: SynapseArray, layout: RowLayout) -> np.ndarray:
    """The signed codes exc - inh of the layout as stored, int16[n_src, n_post]."""
    out = np.zeros((layout.source_label.size, layout.neuron.size), np.int16)
    for rows, s in ((layout.exc_row, 1), (layout.inh_row, -1)):
        ok = rows >= 0
        out[ok] += s * array.weight[np.ix_(rows[ok], layout.neuron)].astype(np.int16)
    return out


def rows_for_labels(array: SynapseArray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Row selection as the hardware does it: every switched-on row whose label equals an event's.

    labels: int[m] event labels. Returns (event int64[k], row int64[k]) pairs, ordered by event,
    then row; an event may select several rows (e.g. an exc + inh pair) or none.
    """
    labels = _as_index(labels, "labels")
    on = np.flatnonzero(array.row_sign != 0)
    order = np.argsort(array.row_label[on], kind="stable")  # equal labels keep ascending rows
    rows, row_lab = on[order], array.row_label[on][order].astype(np.int64)
    lo, hi = np.searchsorted(row_lab, labels, "left"), np.searchsorted(row_lab, labels, "right")
    count = hi - lo
    event = np.repeat(np.arange(labels.size, dtype=np.int64), count)
    first = np.cumsum(count) - count  # where each event's pairs start in the output
    idx = np.repeat(lo, count) + np.arange(event.size) - np.repeat(first, count)
    return event, rows[idx].astype(np.int64)


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of each query in the unique int array keys, -1 where absent."""
    if keys.size == 0:
        return np.full(queries.shape, -1, np.int64)
    order = np.argsort(keys)
    pos = np.minimum(np.searchsorted(keys[order], queries), keys.size - 1)
    return np.where(keys[order][pos] == queries, order[pos], -1).astype(np.int64)


def effective_weights(array: SynapseArray, gain, input_label, neuron, *,
                      lsb_per_code: float = CURRENT_LSB_PER_CODE) -> np.ndarray:
    """The matrix ``simulate_events`` integrates, float64[n_in + n, n]: entry [s, j] = sum over the
    switched-on rows answering source s of sign * code[row, neuron[j]] * gain[row, neuron[j]] * lsb_per_code.

    gain: float64[n_rows, n_cols] per-synapse gain (die.synapse_gain; ones for an ideal die).
    input_label: int[n_in] labels of the external inputs (source order). neuron: int[n] circuits in
    use (neuron order). Rows answering a label that is not simulated are ignored.
    """
    gain = np.asarray(gain, dtype=np.float64)
    if gain.shape != array.shape:
        raise ValueError(f"gain must have the array's shape {array.shape}, got {gain.shape}")
    neuron = _check_neurons(neuron, array.shape[1])
    src, rows = row_sources(array.row_label, array.row_sign, input_label, neuron)
    w = np.zeros((np.atleast_1d(np.asarray(input_label)).size + neuron.size, neuron.size), np.float64)
    _add_rows(w, src, rows, neuron, array.row_sign.astype(np.float64), np.ascontiguousarray(array.weight),
              np.ascontiguousarray(gain), float(lsb_per_code))
    return w


def row_sources(row_label, row_sign, input_label, neuron) -> tuple[np.ndarray, np.ndarray]:
    """Which source (row of ``effective_weights``) each switched-on row answers: (src int64[k], row
    int64[k]), rows ascending; rows answering a label that is not simulated are left out. It depends
    on the row configuration and the simulated sources only, not on the codes, so a core computes it
    once per configuration and reuses it for every weight write (``refresh_effective_weights``).

    row_label: uint16[n_rows]; row_sign: int8[n_rows] (0: off); input_label, neuron: as in effective_weights.
    """
    labels = source_labels(input_label, neuron).astype(np.int64)
    on = np.flatnonzero(np.asarray(row_sign) != 0)
    src = _lookup(labels, np.asarray(row_label)[on].astype(np.int64))
    return src[src >= 0], on[src >= 0]


def refresh_effective_weights(w: np.ndarray, changed_rows, src: np.ndarray, rows: np.ndarray, neuron: np.ndarray,
                              sign: np.ndarray, weight: np.ndarray, gain: np.ndarray, *,
                              lsb_per_code: float = CURRENT_LSB_PER_CODE) -> None:
    """Bring ``w`` (an ``effective_weights`` matrix, float64[n_src, n], updated in place) up to date after
    the codes of ``changed_rows`` (int[m]) changed. Every source one of those rows answers is summed
    again from zero over all its rows in ascending order, as ``effective_weights`` sums it, so the
    result has the same bits as a full recomputation; the other sources are not touched.

    src, rows: ``row_sources`` of the current configuration. neuron: int64[n] circuits. sign:
    float64[n_rows] row signs. weight: uint8[n_rows, n_cols] codes, gain: float64[n_rows, n_cols]
    (both C-contiguous)."""
    hit_row = np.zeros(weight.shape[0], bool)
    hit_row[np.asarray(changed_rows, np.int64)] = True
    hit_src = np.zeros(w.shape[0], bool)
    hit_src[src[hit_row[rows]]] = True
    if not hit_src.any():
        return
    w[hit_src] = 0.0
    again = hit_src[src]
    _add_rows(w, src[again], rows[again], neuron, sign, weight, gain, float(lsb_per_code))


@njit(cache=True, nogil=True)
def _write_block(weight, rows, cols, block):
    """weight[rows[i], cols[j]] = block[i, j], in row order (a repeated row keeps its last block row):
    numpy's ``weight[np.ix_(rows, cols)] = block`` without its fancy-indexing overhead (~0.25 ms for a
    training step's 250 x 103 block)."""
    for i in range(rows.shape[0]):
        r = rows[i]
        for j in range(cols.shape[0]):
            weight[r, cols[j]] = block[i, j]


@njit(cache=True, nogil=True)
def _add_rows(w, src, rows, neuron, sign, weight, gain, lsb_per_code):
    """w[src[i], j] += sign * code * gain * lsb_per_code of row rows[i] at column neuron[j], rows in the
    given (ascending) order: deterministic when several rows answer one label."""
    for i in range(rows.shape[0]):
        r, s = rows[i], src[i]
        for j in range(neuron.shape[0]):
            c = neuron[j]
            w[s, j] += sign[r] * weight[r, c] * gain[r, c] * lsb_per_code


def code_gradient(grad_w_lsb, array: SynapseArray, layout: RowLayout, gain, input_label, neuron, *,
                  lsb_per_code: float = CURRENT_LSB_PER_CODE) -> CodeGradient:
    """Chain rule from the effective matrix to the codes of ``layout``.

    grad_w_lsb: float64[n_in + n, n], gradient w.r.t. ``effective_weights(array, gain, input_label,
    neuron)``. Every source and neuron of the layout must be among the simulated ones.
    """
    g = _as_float_matrix(grad_w_lsb, "grad_w_lsb")
    neuron = _check_neurons(neuron, array.shape[1])
    labels = source_labels(input_label, neuron).astype(np.int64)
    if g.shape != (labels.size, neuron.size):
        raise ValueError(f"grad_w_lsb must have shape ({labels.size}, {neuron.size}), got {g.shape}")
    src = _lookup(labels, layout.source_label.astype(np.int64))
    col = _lookup(neuron, layout.neuron)
    if np.any(src < 0):
        raise ValueError(f"layout source label {layout.source_label[src < 0][0]} is not among the simulated sources")
    if np.any(col < 0):
        raise ValueError(f"layout neuron {layout.neuron[col < 0][0]} is not among the simulated neurons")
    gsub = g[np.ix_(src, col)]
    gain = np.asarray(gain, dtype=np.float64)

    def per_row(rows: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray]:
        ok = rows >= 0
        k = np.zeros_like(gsub)
        k[ok] = gain[np.ix_(rows[ok], layout.neuron)] * float(lsb_per_code)
        return sign * gsub * k, k

    exc, k_exc = per_row(layout.exc_row, 1.0)
    inh, k_inh = per_row(layout.inh_row, -1.0)
    c = signed_codes(array, layout)
    has_exc, has_inh = (layout.exc_row >= 0)[:, None], (layout.inh_row >= 0)[:, None]
    use_exc = (((c > 0) | ((c == 0) & (gsub < 0))) & has_exc) | ~has_inh
    signed = gsub * np.where(use_exc, k_exc, k_inh)
    return CodeGradient(exc, inh, signed)
