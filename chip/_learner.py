"""EventProp learning from recorded spikes: what the plasticity processor runs after each batch.

The learner keeps the trainable signed weights of (source, neuron) pairs in weight-code units at
higher precision than the 6-bit synapse array (the PPU's own memory), turns recorded spike ticks
into spike times, evaluates the loss, runs the one adjoint sweep (chip/_eventprop.py) and an
optimiser step, and says which synapse codes to write back. The host placement of EventProp runs
this very class on spikes sent up, so both placements compute bit-identical updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..protocol import TICKS_PER_US
from ._eventprop import adjoint_sweep
from ._learner_kernels import clip_mask_changed, gather_codes, split_events
from ._losses import LossResult, spike_time_mse, ttfs_cross_entropy
from ._optim import adam_init, adam_step, to_fixed_point
from ._params import NEURON_LABEL_BASE, WEIGHT_MAX, NeuronParams
from ._spikes import SpikeRecord
from ._synapses import CURRENT_LSB_PER_CODE

__all__ = ["LearnerConfig", "Learner", "StepOutcome", "RowMap"]


@dataclass(frozen=True)
class LearnerConfig:
    """Loss and optimiser settings; times in hardware microseconds.

    fixed_point_bits: 0 keeps float64 weights and gradients; otherwise the PPU holds its weight
    accumulator as signed fixed point of that many bits (7 integer bits for +-63.5 codes, the rest
    fraction) and each gradient as block floating point: one shared power-of-two exponent per step
    and a fixed_point_bits-bit signed mantissa per entry, as a processor without FPU would keep
    them. The optimiser moments stay float64.
    grad_clip: clip each gradient entry (in codes) to +-grad_clip; 0 disables.
    """

    loss: str = "ttfs"
    lr: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 0.0
    fixed_point_bits: int = 0
    loss_params: dict = field(default_factory=dict)


    @classmethod
    def from_params(cls, loss: str, params: dict, *, fixed_point_bits: int = 0) -> "LearnerConfig":
        """Settings from a ConfigureLearning params map: optimiser keys (lr, beta1, beta2, eps,
        grad_clip) are taken out, the rest are loss parameters."""
        p = dict(params)
        opt = {k: float(p.pop(k)) for k in ("lr", "beta1", "beta2", "eps", "grad_clip") if k in p}
        return cls(loss=loss, fixed_point_bits=fixed_point_bits, loss_params=p, **opt)


class RowMap(NamedTuple):
    """Where each trainable (source, neuron) pair lives in the synapse array.

    exc_row, inh_row: int64[n_src] row of each source's excitatory / inhibitory synapses (-1: none).
    column: int64[n] synapse column (= neuron circuit) of each model neuron.
    """

    exc_row: np.ndarray
    inh_row: np.ndarray
    column: np.ndarray


class StepOutcome(NamedTuple):
    loss: LossResult
    grad_codes: np.ndarray | None  # float64[n_src, n] dL/d(signed code); None: not computed (gradient=False)
    spike_count: np.ndarray  # uint32[n] spikes per model neuron over the batch
    write_rows: np.ndarray  # int64[r] rows whose codes changed
    write_codes: np.ndarray  # uint8[r, n] new codes of those rows at the model's columns
    guard_count: int | None  # the adjoint sweep's grazing-crossing guards; None: no sweep ran


class Learner:
    """EventProp on one mapped network.

    params: nominal NeuronParams of the model neurons (what the learner believes, not the die).
    input_label: uint16[n_in] labels of the inputs (source order). neuron_circuit: int64[n]
    circuits of the model neurons (hidden then output). output: int64[k] model indices of the
    output neurons. rows: RowMap. codes: float64[n_src, n] initial signed codes. mask: bool[n_src, n]
    pairs that have a synapse (others stay 0 and get no update).
    """

    def __init__(self, params: NeuronParams, input_label: np.ndarray, neuron_circuit: np.ndarray,
                 output: np.ndarray, rows: RowMap, codes: np.ndarray, mask: np.ndarray,
                 config: LearnerConfig = LearnerConfig()) -> None:
        self.params = params
        self.config = config
        self.n_in = int(len(input_label))
        self.n = int(len(neuron_circuit))
        self.input_label = np.asarray(input_label, np.int64)
        self.neuron_circuit = np.asarray(neuron_circuit, np.int64)
        self.output = np.asarray(output, np.int64)
        self.rows = rows
        self.mask = np.asarray(mask, bool)
        if codes.shape != (self.n_in + self.n, self.n) or self.mask.shape != codes.shape:
            raise ValueError(f"codes and mask must have shape {(self.n_in + self.n, self.n)}, "
                             f"got {codes.shape} and {self.mask.shape}")
        self.shadow = np.where(self.mask, np.asarray(codes, np.float64), 0.0)
        self.adam = adam_init(self.shadow.shape)
        # label -> source index, for inputs and for neurons
        self._src_of_label = np.full(1 << 16, -1, np.int64)
        self._src_of_label[self.input_label] = np.arange(self.n_in)
        self._src_of_label[NEURON_LABEL_BASE + self.neuron_circuit] = self.n_in + np.arange(self.n)

    @classmethod
    def from_synapses(cls, params: NeuronParams, input_label, hidden, output, row_label, row_sign, weight,
                      trainable, config: LearnerConfig = LearnerConfig()) -> "Learner":
        """A learner for the network the synapse rows hold: both placements build theirs this way.

        input_label: int[n_in]; hidden, output: int circuits; row_label uint16[rows], row_sign
        int8[rows] (+1, -1, 0 off); weight uint8[rows, n] codes at the model's columns (hidden then
        output); trainable bool[n_in + n, n]. Each source uses its first excitatory and first
        inhibitory row.
        """
        circuits = np.concatenate([np.asarray(hidden, np.int64), np.asarray(output, np.int64)])
        sources = np.concatenate([np.asarray(input_label, np.int64), NEURON_LABEL_BASE + circuits])
        row_label = np.asarray(row_label, np.int64)
        row_sign = np.asarray(row_sign, np.int64)
        weight = np.asarray(weight, np.float64)
        rows = {}
        for sign in (1, -1):
            first = np.full(sources.size, -1, np.int64)
            cand = np.flatnonzero(row_sign == sign)[::-1]  # reversed: the lowest row wins below
            lookup = dict(zip(row_label[cand].tolist(), cand.tolist()))
            for i, lab in enumerate(sources.tolist()):
                first[i] = lookup.get(lab, -1)
            rows[sign] = first
        codes = np.zeros((sources.size, circuits.size))
        for sign, r in rows.items():
            ok = r >= 0
            codes[ok] += sign * weight[r[ok]]
        n_hidden = len(hidden)
        return cls(params, input_label, circuits, np.arange(n_hidden, circuits.size), RowMap(rows[1], rows[-1], circuits),
                   codes, np.asarray(trainable, bool), config)

    # -- views ------------------------------------------------------------------------------
    def signed_codes(self) -> np.ndarray:
        """The signed codes as stored on chip: the shadow rounded and clipped to +-63."""
        return np.clip(np.rint(self.shadow), -WEIGHT_MAX, WEIGHT_MAX)

    def w_lsb(self) -> np.ndarray:
        """Effective weights the learner assumes (nominal synapse gain 1)."""
        return self.signed_codes() * CURRENT_LSB_PER_CODE

    def working_set_bytes(self, n_events: int = 0) -> int:
        """Bytes of learner state: shadow weights, optimiser moments, and a spike buffer of n_events."""
        weight_bytes = 8 if not self.config.fixed_point_bits else -(-self.config.fixed_point_bits // 8)
        return self.shadow.size * (weight_bytes + 2 * 8) + n_events * (4 + 2 + 2)

    # -- the step ---------------------------------------------------------------------------
    def spikes_from_ticks(self, t_ticks, label, sample, sample_ticks: int):
        """Split a tick-ordered event stream into inputs (t_us, src, sample) and a SpikeRecord, each sorted
        by (sample, t_us, source); events whose label is neither an input nor a model neuron are left out."""
        t_ticks = np.ascontiguousarray(t_ticks, np.int64)
        label = np.ascontiguousarray(label, np.int64)
        sample = np.ascontiguousarray(sample, np.int64)
        if not t_ticks.shape == label.shape == sample.shape or t_ticks.ndim != 1:
            raise ValueError(f"t_ticks, label and sample must be 1-d of one length, got {t_ticks.shape}, "
                             f"{label.shape}, {sample.shape}")
        if label.size and (label.min() < 0 or label.max() >= self._src_of_label.size):
            raise ValueError(f"label must lie in [0, {self._src_of_label.size}), got [{label.min()}, {label.max()}]")
        m = t_ticks.size
        in_t, in_src, in_smp = np.empty(m), np.empty(m, np.int32), np.empty(m, np.int32)
        sp_t, sp_n, sp_smp = np.empty(m), np.empty(m, np.int32), np.empty(m, np.int32)
        out = np.zeros(4, np.int64)
        split_events(t_ticks, label, sample, int(sample_ticks), TICKS_PER_US, self._src_of_label, self.n_in,
                     in_t, in_src, in_smp, sp_t, sp_n, sp_smp, out)
        ni, ns = int(out[0]), int(out[1])
        inputs = (in_t[:ni], in_src[:ni], in_smp[:ni])
        spikes = (sp_t[:ns], sp_n[:ns], sp_smp[:ns])
        # the stream comes sorted from the core and the host; a stable sort would leave it as it is
        if not out[2]:
            order = np.lexsort((inputs[1], inputs[0], inputs[2]))
            inputs = tuple(a[order] for a in inputs)
        if not out[3]:
            order = np.lexsort((spikes[1], spikes[0], spikes[2]))
            spikes = tuple(a[order] for a in spikes)
        return inputs, SpikeRecord(*spikes)

    def evaluate(self, inputs, spikes: SpikeRecord, label, n_samples: int, t_end_us: float) -> LossResult:
        label = np.asarray(label, np.int64)
        p = dict(self.config.loss_params)
        if self.config.loss == "ttfs":
            return ttfs_cross_entropy(spikes, self.output, label, n_samples, t_end_us=t_end_us,
                                      tau0_us=p.get("tau0_us", 0.5), tau1_us=p.get("tau1_us", 6.4),
                                      alpha=p.get("alpha", 3e-3))
        if self.config.loss == "mse":
            return spike_time_mse(spikes, self.output, label, n_samples, t_end_us=t_end_us,
                                  t_correct_us=p.get("t_correct_us", 5.4), t_wrong_us=p.get("t_wrong_us", 6.6),
                                  tau_norm_us=p.get("tau_norm_us", 12.0))
        raise ValueError(f"loss must be 'ttfs' or 'mse', got {self.config.loss!r}")

    def step(self, inputs, spikes: SpikeRecord, label, n_samples: int, t_end_us: float,
             apply: bool = True, lr: float = 0.0, gradient: bool = True) -> StepOutcome:
        """One gradient estimate and (if apply) one optimiser step on a batch of n_samples, with
        learning rate ``lr`` (0: the configured one). ``gradient=False`` (only without ``apply``)
        scores the batch alone: loss and spike counts, no adjoint sweep (grad_codes and guard_count
        are None)."""
        loss = self.evaluate(inputs, spikes, label, n_samples, t_end_us)
        if not gradient:
            if apply:
                raise ValueError("apply=True needs gradient=True: an update needs the gradient")
            counts = np.bincount(spikes.neuron, minlength=self.n).astype(np.uint32)
            return StepOutcome(loss, None, counts, np.zeros(0, np.int64), np.zeros((0, self.n), np.uint8), None)
        in_t_us, in_src, in_sample = inputs
        adj = adjoint_sweep(self.w_lsb(), self.params, in_t_us, in_src, in_sample, spikes, loss.dl_dt,
                            n_samples, t_end_us)
        grad = np.where(self.mask, adj.grad_w * CURRENT_LSB_PER_CODE, 0.0)
        if self.config.fixed_point_bits:
            grad = _block_fixed_point(grad, self.config.fixed_point_bits)
        if self.config.grad_clip > 0:
            grad = np.clip(grad, -self.config.grad_clip, self.config.grad_clip)
        counts = np.bincount(spikes.neuron, minlength=self.n).astype(np.uint32)
        rows, codes = np.zeros(0, np.int64), np.zeros((0, self.n), np.uint8)
        if apply:
            rows, codes = self.apply_gradient(grad, lr)
        return StepOutcome(loss, grad, counts, rows, codes, int(adj.n_grazing))

    def apply_gradient(self, grad: np.ndarray, lr: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """One optimiser step on the shadow weights with grad float64[n_src, n] (dL/d signed code) and
        learning rate ``lr`` (0: the configured one). Returns the synapse rows whose codes changed,
        int64[r], and their new codes uint8[r, n] at the model's columns (what to write to the array)."""
        old = self.shadow
        shadow, self.adam = adam_step(old, grad, self.adam, lr=lr or self.config.lr,
                                      beta1=self.config.beta1, beta2=self.config.beta2, eps=self.config.eps)
        if self.config.fixed_point_bits:
            before = self.signed_codes()
            self.shadow = np.where(self.mask, np.clip(shadow, -WEIGHT_MAX - 0.5, WEIGHT_MAX + 0.5), 0.0)
            bits = self.config.fixed_point_bits
            self.shadow = to_fixed_point(self.shadow, frac_bits=max(bits - 7, 0), total_bits=bits)
            after = self.signed_codes()
            changed = np.flatnonzero(np.any(before != after, axis=1))
        else:  # clip, mask and compare the 6-bit codes in one pass (the numpy expressions' bits)
            flags = np.zeros(shadow.shape[0], np.uint8)
            after = np.empty_like(shadow)
            clip_mask_changed(old, shadow, self.mask, WEIGHT_MAX + 0.5, float(WEIGHT_MAX), after, flags)
            self.shadow = shadow
            changed = np.flatnonzero(flags)
        return self._rows_of(changed, after)

    def row_codes(self, signed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """All rows of the mapping with their uint8 codes at the model's columns."""
        signed = self.signed_codes() if signed is None else signed
        exc, inh = self.rows.exc_row, self.rows.inh_row
        rows = np.concatenate([exc[exc >= 0], inh[inh >= 0]])
        codes = np.concatenate([np.clip(signed[exc >= 0], 0, None), np.clip(-signed[inh >= 0], 0, None)])
        return rows, codes.astype(np.uint8)

    def _rows_of(self, changed: np.ndarray, signed: np.ndarray):
        """Synapse rows (ascending) and their uint8 codes for the sources ``changed``, from the whole signed
        codes ``signed`` float64[n_src, n]."""
        exc, inh = self.rows.exc_row[changed], self.rows.inh_row[changed]
        on_e, on_i = exc >= 0, inh >= 0
        rows = np.concatenate([exc[on_e], inh[on_i]])
        src = np.concatenate([changed[on_e], changed[on_i]])
        sign = np.concatenate([np.ones(int(on_e.sum())), -np.ones(int(on_i.sum()))])
        order = np.argsort(rows, kind="stable")
        codes = np.empty((rows.size, signed.shape[1]), np.uint8)
        gather_codes(np.ascontiguousarray(signed, np.float64), src[order], sign[order], codes)
        return rows[order], codes


def _block_fixed_point(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` with one shared power-of-two exponent and a ``bits``-bit signed mantissa per entry."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x
    exponent = int(np.ceil(np.log2(peak)))  # |x| / 2**exponent <= 1
    return to_fixed_point(x / 2.0 ** exponent, frac_bits=bits - 1, total_bits=bits) * 2.0 ** exponent
