"""The message catalogue. docs/protocol.md lists every message and field with type and unit.

Time is FPGA ticks (8 ns) since the start of a run; a run plays ``n_samples`` batch entries one
after another, entry ``k`` occupying ticks ``[k * sample_ticks, (k + 1) * sample_ticks)``.
Membrane values are CADC codes (LSB, 8 bit) or MADC codes (LSB, 10 bit); weights are 6-bit
synapse codes (0..63) whose sign is a property of the synapse row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ._base import MAX_LABEL, MAX_STR_BYTES, Message

_count_nonzero = np.count_nonzero

__all__ = [
    "PROTOCOL_VERSION",
    "ROLES",
    "FAULTS",
    "WEIGHT_MAX",
    "Hello",
    "ConfigureNeurons",
    "ConfigureRows",
    "WriteWeights",
    "ReadWeights",
    "Weights",
    "Ack",
    "RunRequest",
    "SpikeBatch",
    "RunComplete",
    "MembraneSamples",
    "NeuronTrace",
    "ConfigureLearning",
    "TrainStep",
    "Gradients",
    "LearnResult",
    "Error",
    "Shutdown",
    "ReadLearnerState",
    "WriteLearnerState",
    "LearnerState",
    "LinkFrame",
]

PROTOCOL_VERSION = 1
"""Version of the wire protocol; a peer that speaks another one is refused at the handshake."""

ROLES = ("host", "router", "core", "ppu", "board")
FAULTS = ("local", "remote", "chip-limit", "internal")
WEIGHT_MAX = 63
"""Largest synapse weight code: 6 bit (bss2_facts.md §1)."""


def _frozen(cls):
    return dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)(cls)


@_frozen
class Hello(Message):
    """Handshake, sent first on every link by both ends.

    protocol_version: the version this end speaks. role: one of ROLES. chip_id: the chip seed of
    the board (hosts send -1). software: free-form name and version of the sender. session: what
    a host asks of the board for this session (seed, ideal_chip, calibrate, ppu_fixed_point_bits,
    link_buffer; a board in its own process is built from it); empty from every other role.
    """

    TAG: ClassVar[str] = "hello"
    protocol_version: int
    role: str
    chip_id: int = -1
    software: str = ""
    session: dict[str, int] = field(default_factory=dict)

    def _check(self) -> None:
        if self.role not in ROLES:
            self._fail("role", f"unknown role {self.role!r}, expected one of {', '.join(ROLES)}")


@_frozen
class ConfigureNeurons(Message):
    """Targets for a set of neuron circuits, each float64[n] or uint16[n].

    neuron: neuron circuit index. tau_mem_us, tau_syn_us: membrane and synaptic time constants
    (hardware microseconds). v_leak_lsb, v_reset_lsb, v_th_lsb: leak, reset and threshold
    potentials (CADC LSB). t_ref_us: refractory period (hardware microseconds).
    """

    TAG: ClassVar[str] = "configure_neurons"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "neuron": ("uint16", 1),
        "tau_mem_us": ("float64", 1),
        "tau_syn_us": ("float64", 1),
        "v_leak_lsb": ("float64", 1),
        "v_reset_lsb": ("float64", 1),
        "v_th_lsb": ("float64", 1),
        "t_ref_us": ("float64", 1),
    }
    neuron: np.ndarray
    tau_mem_us: np.ndarray
    tau_syn_us: np.ndarray
    v_leak_lsb: np.ndarray
    v_reset_lsb: np.ndarray
    v_th_lsb: np.ndarray
    t_ref_us: np.ndarray

    def _check(self) -> None:
        self._same_length(*self.ARRAYS)
        for name in ("tau_mem_us", "tau_syn_us"):
            self._at_least(name, 1e-3, "time constant")
        self._at_least("t_ref_us", 0.0, "refractory period")
        for name in self.ARRAYS:
            a = getattr(self, name)
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                self._fail(name, "values must be finite")


@_frozen
class ConfigureRows(Message):
    """Synapse-row routing: which spike label drives a row, and the row's sign.

    row: uint16[r] synapse row index. source_label: uint16[r] label whose events the row answers.
    sign: int8[r], +1 excitatory or -1 inhibitory.
    """

    TAG: ClassVar[str] = "configure_rows"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "row": ("uint16", 1),
        "source_label": ("uint16", 1),
        "sign": ("int8", 1),
    }
    row: np.ndarray
    source_label: np.ndarray
    sign: np.ndarray

    def _check(self) -> None:
        self._same_length("row", "source_label", "sign")
        self._at_most("source_label", MAX_LABEL, "label")
        if np.any((self.sign != 1) & (self.sign != -1)):
            self._fail("sign", "each row sign must be +1 or -1")


@_frozen
class WriteWeights(Message):
    """Write a block of the synapse array. weight: uint8[r, c] codes 0..63 at (row[i], column[j])."""

    TAG: ClassVar[str] = "write_weights"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "row": ("uint16", 1),
        "column": ("uint16", 1),
        "weight": ("uint8", 2),
    }
    request_id: int
    row: np.ndarray
    column: np.ndarray
    weight: np.ndarray

    def _check(self) -> None:
        if self.weight.shape != (self.row.shape[0], self.column.shape[0]):
            self._fail("weight", f"shape {self.weight.shape} is not (len(row), len(column)) = "
                       f"({self.row.shape[0]}, {self.column.shape[0]})")
        self._at_most("weight", WEIGHT_MAX, "weight")


@_frozen
class ReadWeights(Message):
    """Ask for the block of the synapse array at rows x columns; answered by Weights."""

    TAG: ClassVar[str] = "read_weights"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"row": ("uint16", 1), "column": ("uint16", 1)}
    request_id: int
    row: np.ndarray
    column: np.ndarray


@_frozen
class Weights(WriteWeights):
    """The answer to ReadWeights: weight uint8[r, c] codes as stored on chip."""

    TAG: ClassVar[str] = "weights"


@_frozen
class Ack(Message):
    """Confirms that the request ``request_id`` (a weight write, a configuration) took effect."""

    TAG: ClassVar[str] = "ack"
    request_id: int
    what: str


@_frozen
class RunRequest(Message):
    """Start a run of n_samples batch entries of sample_ticks FPGA ticks each.

    cadc_period_ticks: period of all-neuron membrane samples (0: none). madc_neuron: neuron whose
    membrane is traced at the MADC rate (-1: none). learn: deliver the run's spikes to the
    plasticity processor, which answers with a LearnResult after a TrainStep. record_spikes:
    send the recorded spikes up to the host (off for on-chip learning, where only metrics go up).
    step_ticks: 0 integrates the exact event-driven dynamics; > 0 integrates on a grid of that many
    ticks (surrogate-gradient training in the loop), spikes fall on grid points and each CADC sample
    reads the membrane just before its grid point's threshold check (cadc_period_ticks must then be a
    multiple of step_ticks).
    """

    TAG: ClassVar[str] = "run_request"
    run_id: int
    n_samples: int
    sample_ticks: int
    cadc_period_ticks: int = 0
    madc_neuron: int = -1
    learn: bool = False
    record_spikes: bool = True
    step_ticks: int = 0

    def _check(self) -> None:
        if self.run_id < 0:
            self._fail("run_id", f"must be >= 0, got {self.run_id}")
        if self.n_samples < 0:
            self._fail("n_samples", f"must be >= 0, got {self.n_samples}")
        if self.sample_ticks <= 0:
            self._fail("sample_ticks", f"must be > 0, got {self.sample_ticks}")
        if self.cadc_period_ticks < 0:
            self._fail("cadc_period_ticks", f"must be >= 0, got {self.cadc_period_ticks}")
        if self.step_ticks < 0:
            self._fail("step_ticks", f"must be >= 0, got {self.step_ticks}")


@_frozen
class SpikeBatch(Message):
    """Spike events of many samples of one run, in tick order.

    t_ticks: int64[n] FPGA ticks since run start, non-decreasing, each below horizon_ticks.
    label: uint16[n] spike label (14-bit address). sample: uint32[n] batch entry of each event.
    horizon_ticks: every event of this stream earlier than this tick has now been sent.
    """

    TAG: ClassVar[str] = "spike_batch"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "t_ticks": ("int64", 1),
        "label": ("uint16", 1),
        "sample": ("uint32", 1),
    }
    run_id: int
    t_ticks: np.ndarray
    label: np.ndarray
    sample: np.ndarray
    horizon_ticks: int

    def _check(self) -> None:
        t = self.t_ticks
        n = t.shape[0]
        if self.label.shape[0] != n or self.sample.shape[0] != n:
            self._same_length("t_ticks", "label", "sample")
        if self.horizon_ticks < 0:
            self._fail("horizon_ticks", f"must be >= 0, got {self.horizon_ticks}")
        if not n:
            return
        # Every message on the spike path runs this: two array passes in the common case (ticks in
        # order, labels' maximum). Ticks in order are non-negative iff the first is; the slow
        # helpers run only to name the fault, in the order the rules are listed.
        if n > 1 and _count_nonzero(t[1:] < t[:-1]):  # count_nonzero: a C loop, where .any() is a ufunc reduction
            self._at_least("t_ticks", 0, "tick")
            self._non_decreasing("t_ticks")
        if t[0] < 0:
            self._at_least("t_ticks", 0, "tick")
        if t[n - 1] >= self.horizon_ticks:
            self._fail(f"t_ticks[{n - 1}]", f"tick {t[n - 1]} is not below horizon_ticks {self.horizon_ticks}")
        if self.label.max() > MAX_LABEL:
            self._at_most("label", MAX_LABEL, "label")

    def n_events(self) -> int:
        return int(self.t_ticks.shape[0])


@_frozen
class RunComplete(Message):
    """End of a run. events_in: input events played; events_out: spikes recorded;
    dropped: events lost by reason, empty when none were."""

    TAG: ClassVar[str] = "run_complete"
    run_id: int
    n_samples: int
    events_in: int
    events_out: int
    dropped: dict[str, int] = field(default_factory=dict)


@_frozen
class MembraneSamples(Message):
    """CADC-like samples of many neurons at once: adc_lsb uint8[m, n] at t_ticks int64[m]
    (ticks since run start) for neuron uint16[n]."""

    TAG: ClassVar[str] = "membrane_samples"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "t_ticks": ("int64", 1),
        "neuron": ("uint16", 1),
        "adc_lsb": ("uint8", 2),
    }
    run_id: int
    t_ticks: np.ndarray
    neuron: np.ndarray
    adc_lsb: np.ndarray

    def _check(self) -> None:
        if self.adc_lsb.shape != (self.t_ticks.shape[0], self.neuron.shape[0]):
            self._fail("adc_lsb", f"shape {self.adc_lsb.shape} is not (len(t_ticks), len(neuron))")
        self._at_least("t_ticks", 0, "tick")
        self._non_decreasing("t_ticks")


@_frozen
class NeuronTrace(Message):
    """MADC-like trace of one neuron: adc_lsb uint16[m] (10-bit codes) at t_ticks int64[m]."""

    TAG: ClassVar[str] = "neuron_trace"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"t_ticks": ("int64", 1), "adc_lsb": ("uint16", 1)}
    run_id: int
    neuron: int
    t_ticks: np.ndarray
    adc_lsb: np.ndarray

    def _check(self) -> None:
        self._same_length("t_ticks", "adc_lsb")
        self._at_least("t_ticks", 0, "tick")
        self._non_decreasing("t_ticks")
        self._at_most("adc_lsb", 1023, "10-bit code")


@_frozen
class ConfigureLearning(Message):
    """What the learner optimises. loss: 'ttfs' (first-spike cross entropy) or 'mse' (spike times).
    input_label: uint16[k] labels of the network inputs, in model order; hidden_neuron and
    output_neuron: uint16 circuit indices in model order. trainable: uint8[s, n] 1 where the
    synapse from source s (inputs, then hidden, then output neurons) to model neuron n learns.
    params: loss and optimiser hyperparameters (times in hardware microseconds), as documented
    in docs/protocol.md."""

    TAG: ClassVar[str] = "configure_learning"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "input_label": ("uint16", 1),
        "hidden_neuron": ("uint16", 1),
        "output_neuron": ("uint16", 1),
        "trainable": ("uint8", 2),
    }
    loss: str
    optimiser: str
    input_label: np.ndarray
    hidden_neuron: np.ndarray
    output_neuron: np.ndarray
    trainable: np.ndarray
    params: dict[str, float] = field(default_factory=dict)

    def _check(self) -> None:
        if self.loss not in ("ttfs", "mse"):
            self._fail("loss", f"unknown loss {self.loss!r}, expected 'ttfs' or 'mse'")
        if self.optimiser not in ("adam", "sgd"):
            self._fail("optimiser", f"unknown optimiser {self.optimiser!r}, expected 'adam' or 'sgd'")
        self._at_most("input_label", MAX_LABEL, "label")
        n_model = self.hidden_neuron.shape[0] + self.output_neuron.shape[0]
        if self.trainable.shape != (self.input_label.shape[0] + n_model, n_model):
            self._fail("trainable", f"shape {self.trainable.shape} is not (inputs + neurons, neurons) = "
                       f"({self.input_label.shape[0] + n_model}, {n_model})")


@_frozen
class TrainStep(Message):
    """Compute a gradient from run run_id with targets label uint16[n_samples] and, if
    apply_update, take an optimiser step with learning_rate (0: the configured one).
    report_gradients: also send the gradient up as a Gradients message."""

    TAG: ClassVar[str] = "train_step"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"label": ("uint16", 1)}
    run_id: int
    label: np.ndarray
    apply_update: bool = True
    report_gradients: bool = False
    learning_rate: float = 0.0

    def _check(self) -> None:
        if not self.learning_rate >= 0.0:
            self._fail("learning_rate", f"must be >= 0, got {self.learning_rate}")


@_frozen
class Gradients(Message):
    """Loss gradient with respect to the signed model weights grad float64[s, n] of the
    projection from sources (input labels, then hidden neurons, model order) to neurons."""

    TAG: ClassVar[str] = "gradients"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"grad": ("float64", 2)}
    run_id: int
    loss: float
    grad: np.ndarray


@_frozen
class LearnResult(Message):
    """Outcome of a TrainStep or an evaluation: batch-mean loss, correct predictions, and
    spike_count uint32[k] summed over the batch per neuron (hidden, then output, model order)."""

    TAG: ClassVar[str] = "learn_result"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"spike_count": ("uint32", 1)}
    run_id: int
    loss: float
    n_correct: int
    n_samples: int
    spike_count: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


@_frozen
class Error(Message):
    """A request could not be served. fault: 'local' (the sender of this Error erred),
    'remote' (the request was invalid), 'chip-limit' (valid but beyond the chip), 'internal'."""

    TAG: ClassVar[str] = "error"
    fault: str
    message: str
    in_reply_to: str = ""
    run_id: int = -1

    def __post_init__(self) -> None:
        # An error report must never fail for being too long: cut the text to what the wire carries.
        if isinstance(self.message, str) and len(self.message.encode("utf-8", "replace")) > MAX_STR_BYTES:
            cut = self.message.encode("utf-8", "replace")[:MAX_STR_BYTES - 16].decode("utf-8", "ignore")
            object.__setattr__(self, "message", cut + " [truncated]")
        Message.__post_init__(self)

    def _check(self) -> None:
        if self.fault not in FAULTS:
            self._fail("fault", f"unknown fault {self.fault!r}, expected one of {', '.join(FAULTS)}")


@_frozen
class Shutdown(Message):
    """Orderly end of the session; the receiver finishes what it accepted and stops."""

    TAG: ClassVar[str] = "shutdown"
    reason: str = ""


@_frozen
class ReadLearnerState(Message):
    """Ask the plasticity processor for its learner state (for a checkpoint); answered by
    LearnerState with the same request_id, in order with the learning jobs sent before it."""

    TAG: ClassVar[str] = "read_learner_state"
    request_id: int


@_frozen
class WriteLearnerState(Message):
    """Restore the plasticity processor's learner state (resuming from a checkpoint); answered by
    Ack. step: optimiser steps taken so far. shadow: float64[s, n] the learner's signed weights in
    weight-code units, at the PPU's precision (finer than the 6-bit array); adam_m, adam_v:
    float64[s, n] the optimiser's first and second moments. Sources s and model neurons n as in
    Gradients."""

    TAG: ClassVar[str] = "write_learner_state"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {
        "shadow": ("float64", 2),
        "adam_m": ("float64", 2),
        "adam_v": ("float64", 2),
    }
    request_id: int
    step: int
    shadow: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray

    def _check(self) -> None:
        if self.step < 0:
            self._fail("step", f"must be >= 0, got {self.step}")
        for name in ("adam_m", "adam_v"):
            if getattr(self, name).shape != self.shadow.shape:
                self._fail(name, f"shape {getattr(self, name).shape} differs from shadow shape {self.shadow.shape}")


@_frozen
class LearnerState(WriteLearnerState):
    """The answer to ReadLearnerState: the learner state as the PPU holds it."""

    TAG: ClassVar[str] = "learner_state"


@_frozen
class LinkFrame(Message):
    """Envelope of the reliable host link (HostARQ-like; docs/faults.md). It carries one frame of
    the layer above and acknowledges the other direction.

    seq: sequence number of the enclosed frame, modulo the link's sequence space (-1: none, a pure
    acknowledgement). ack: the next sequence number the sender of the envelope expects (every
    frame before it has arrived). sack: uint8[k] bitmap of frames after ack that have arrived
    too (bit i of byte j stands for ack + 1 + 8 j + i). payload: uint8[n] the enclosed frame,
    frame header and CRC included."""

    TAG: ClassVar[str] = "link_frame"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"payload": ("uint8", 1), "sack": ("uint8", 1)}
    seq: int
    ack: int
    payload: np.ndarray
    sack: np.ndarray

    def _check(self) -> None:
        if self.seq < -1:
            self._fail("seq", f"must be >= -1, got {self.seq}")
        if self.ack < 0:
            self._fail("ack", f"must be >= 0, got {self.ack}")
        if self.seq == -1 and self.payload.size:
            self._fail("payload", f"a pure acknowledgement (seq -1) carries no frame, got {self.payload.size} bytes")
        if self.sack.shape[0] > 32:
            self._fail("sack", f"bitmap of {self.sack.shape[0]} bytes exceeds 32 (256 frames)")
