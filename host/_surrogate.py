"""The host surrogate-gradient scheme (``host-surrogate``): in-the-loop training after Cramer et al. 2022.

The chip runs the time-stepped forward pass (RunRequest.step_ticks) and sends up the spikes and
CADC samples of the hidden and output neurons every ``cadc_period_ticks``; the host converts the
codes back to LSB with the nominal ADC transfer, bins the spikes to the CADC grid and runs the
surrogate backward pass of chip/_surrogate.py through them (forward values from the chip,
derivatives from the nominal model). The optimiser is the host-eventprop path's: a chip Learner's
shadow weights in code units and Adam; the rows whose 6-bit codes changed are written down.

Network: inputs -> LIF hidden layer -> output neurons that are LIF circuits with a threshold out of
reach (non-spiking leaky integrators). Loss: softmax cross entropy on the max (or mean) over time of
the output membranes, plus the read-out and spike-count regularisers of chip/_surrogate.py.

host/_surrogate_software.py runs the same loop on ``simulate_steps`` instead of a board (an ideal chip,
or one with injected parameter noise): the mismatch study trains its reference weights with it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from ..chip import NEURON_LABEL_BASE, NeuronParams, simulate_steps, uniform_params
from ..chip._learner import Learner, LearnerConfig
from ..chip._surrogate import (READOUTS, count_regulariser, readout_cross_entropy, readout_logits, spike_raster,
                               surrogate_backward)
from ..chip._synapses import CURRENT_LSB_PER_CODE
from ..protocol import TICKS_PER_US
from ._network import Network, Placement, feedforward, place
from ._report import training_report
from ._tasks import TASKS, encode_task, load_task, n_sources

__all__ = ["SurrogateConfig", "SurrogateModel", "SurrogateStep", "EpochRecord", "build_network", "encode_ticks",
           "recording_from_run", "train_surrogate", "evaluate_on_board", "deploy", "batches", "SURROGATE_TASK_DEFAULTS",
           "HIDDEN_TARGETS", "OUTPUT_TARGETS"]

HIDDEN_TARGETS = dict(tau_mem_us=10.0, tau_syn_us=5.0, v_leak_lsb=80.0, v_reset_lsb=80.0, v_th_lsb=130.0, t_ref_us=1.7)
"""Hidden LIF targets: leak-to-threshold 50 LSB, refractory one CADC step."""
OUTPUT_TARGETS = dict(tau_mem_us=10.0, tau_syn_us=5.0, v_leak_lsb=50.0, v_reset_lsb=50.0, v_th_lsb=240.0, t_ref_us=0.0)
"""Read-out targets: a low leak and the highest threshold the calibration accepts (245 LSB, the top of
the CADC's range) leave 190 LSB for the membrane to integrate in: the LIF circuit acts as a leaky
integrator (the read-out regulariser keeps it below threshold; a read-out spike is ignored)."""

SURROGATE_TASK_DEFAULTS = {
    "digits": dict(n_hidden=60, n_steps=20, t_early_us=0.0, t_late_us=17.04, t_bias_us=0.0, duplicates=1,
                   epochs=30, batch_size=50, readout="max", scale_lsb=5.0, hidden_init=(3.0, 8.0)),
    "yinyang": dict(n_hidden=100, n_steps=30, t_early_us=0.0, t_late_us=34.08, t_bias_us=0.0, duplicates=5,
                    epochs=40, batch_size=50, readout="mean", scale_lsb=2.0, hidden_init=(8.0, 12.0)),
}
"""Per-task defaults of the SurrogateConfig fields left None. Digits: Cramer et al.'s MNIST read-out
(max over time); Yin-Yang: the mean over time (their SHD read-out), because a max read-out gives no
gradient to an output whose maximum is its resting first sample, and Yin-Yang's inhibited outputs
stay there (short trainings on digits profit from it too)."""


@dataclass(frozen=True)
class SurrogateConfig:
    """A host-surrogate training. Times in hardware microseconds or FPGA ticks, weights in 6-bit codes.

    Fields left None take the task's default (SURROGATE_TASK_DEFAULTS). cadc_period_ticks: the CADC
    sampling period and the model's grid (>= 213 ticks = 1.7 us); chip_step_ticks: the chip's
    integration step (0: the CADC period; a divisor of it makes the chip finer than the model).
    n_steps: grid points per sample (trial = n_steps CADC periods). readout 'max' or 'mean';
    baseline: what the read-out subtracts, 'rest' (each output's first CADC sample of the sample,
    taken at rest before any input acts: it cancels the die's leak and CADC offsets) or 'leak' (the
    nominal leak). scale_lsb: membrane LSB per logit unit; rho_max: read-out regulariser; beta_per_lsb: SuperSpike
    steepness; rho/nu_upper/lower: hidden spike-count regulariser (chip/_surrogate.count_regulariser).
    lr: Adam step in codes, times lr_decay per epoch. grad_clip: per-entry clip in codes (0: off).
    input_dropout: probability that an input spike of a training sample is left out (augmentation).
    """

    learning: str = "host-surrogate"
    task: str = "digits"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = 0.5
    lr_decay: float = 0.95
    seed: int = 0
    n_train: int | None = None
    n_test: int | None = None
    n_hidden: int | None = None
    n_steps: int | None = None
    t_early_us: float | None = None
    t_late_us: float | None = None
    t_bias_us: float | None = None
    duplicates: int | None = None
    cadc_period_ticks: int = 213
    chip_step_ticks: int = 0
    readout: str | None = None
    baseline: str = "rest"
    scale_lsb: float | None = None
    rho_max: float = 1e-3
    beta_per_lsb: float = 0.5
    rho_upper: float = 0.02
    nu_upper: float = 3.0
    rho_lower: float = 0.5
    nu_lower: float = 0.05
    hidden_init: tuple[float, float] | None = None
    output_init: tuple[float, float] = (0.0, 8.0)
    grad_clip: float = 0.0
    input_dropout: float = 0.0
    hidden_targets: dict = field(default_factory=lambda: dict(HIDDEN_TARGETS))
    output_targets: dict = field(default_factory=lambda: dict(OUTPUT_TARGETS))

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name, value in SURROGATE_TASK_DEFAULTS[self.task].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if not (self.lr > 0.0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        for name in ("epochs", "batch_size", "n_hidden", "n_steps", "duplicates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.cadc_period_ticks < 213:
            raise ValueError(f"cadc_period_ticks must be >= 213 (1.7 us, the CADC's limit), got {self.cadc_period_ticks}")
        if self.chip_step_ticks < 0 or (self.chip_step_ticks and self.cadc_period_ticks % self.chip_step_ticks):
            raise ValueError(f"chip_step_ticks must be 0 or divide cadc_period_ticks={self.cadc_period_ticks}, "
                             f"got {self.chip_step_ticks}")
        if not 0.0 <= self.input_dropout < 1.0:
            raise ValueError(f"input_dropout must lie in [0, 1), got {self.input_dropout}")
        if self.baseline not in ("rest", "leak"):
            raise ValueError(f"baseline must be 'rest' or 'leak', got {self.baseline!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        if not self.trial_us > self.t_late_us:
            raise ValueError(f"n_steps * cadc period ({self.trial_us:g} us) must exceed t_late_us ({self.t_late_us})")

    @classmethod
    def from_train_config(cls, cfg) -> "SurrogateConfig":
        """The surrogate run of a TrainConfig: what to train (task, epochs, batch, data sizes, hidden
        size, seed) is taken over; the optimiser and loss settings are this scheme's own."""
        return cls(task=getattr(cfg, "task", "yinyang"), epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                   n_train=cfg.n_train, n_test=cfg.n_test, n_hidden=cfg.n_hidden)

    @property
    def dt_us(self) -> float:
        return self.cadc_period_ticks / TICKS_PER_US

    @property
    def step_ticks(self) -> int:
        return self.chip_step_ticks or self.cadc_period_ticks

    @property
    def sample_ticks(self) -> int:
        return self.n_steps * self.cadc_period_ticks

    @property
    def trial_us(self) -> float:
        return self.sample_ticks / TICKS_PER_US

    @property
    def n_in(self) -> int:
        return n_sources(self.task, duplicates=self.duplicates, bias=self.t_bias_us is not None)

    def encode(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return encode_task(self.task, x, t_early_us=self.t_early_us, t_late_us=self.t_late_us,
                           t_bias_us=self.t_bias_us, duplicates=self.duplicates)


def build_network(cfg: SurrogateConfig, n_out: int) -> Network:
    """Inputs -> hidden (cfg.hidden_targets) -> n_out read-outs (cfg.output_targets), weights drawn in codes."""
    rng = np.random.default_rng([cfg.seed, 1])
    net = feedforward(cfg.n_in, cfg.n_hidden, n_out, cfg.hidden_targets, rng, hidden_init=cfg.hidden_init,
                      output_init=cfg.output_init)
    hid, out = uniform_params(cfg.n_hidden, **cfg.hidden_targets), uniform_params(n_out, **cfg.output_targets)
    return dataclasses.replace(net, targets=NeuronParams(*(np.concatenate([h, o]) for h, o in zip(hid, out))))


def encode_ticks(cfg: SurrogateConfig, x, input_label, dropout_rng: np.random.Generator | None = None):
    """Playback of a batch and the host's view of it: ((t_ticks int64, label uint16, sample uint32) in
    tick order, (in_t_us, in_src, in_sample) of the same events, times as the ticks played them).
    With dropout_rng each event is left out with probability cfg.input_dropout."""
    t_us, src, smp = cfg.encode(x)
    if dropout_rng is not None and cfg.input_dropout > 0:
        keep = dropout_rng.random(t_us.size) >= cfg.input_dropout
        t_us, src, smp = t_us[keep], src[keep], smp[keep]
    ticks_in = np.floor(t_us * TICKS_PER_US + 1e-9).astype(np.int64)
    # Inputs due at one tick leave one tick apart (8 ns), so a latency code's simultaneous pixels never
    # overflow the FPGA's event lanes; the host bins the ticks as played.
    key = smp.astype(np.int64) * cfg.sample_ticks + ticks_in
    first = np.r_[0, np.flatnonzero(np.diff(key)) + 1] if key.size else np.zeros(0, np.int64)
    ticks_in = ticks_in + np.arange(key.size) - np.repeat(first, np.diff(np.r_[first, key.size]))
    order = np.lexsort((src, ticks_in, smp))
    ticks_in, src, smp = ticks_in[order], src[order], smp[order]
    ticks = smp.astype(np.int64) * cfg.sample_ticks + ticks_in
    return ((ticks, np.asarray(input_label)[src].astype(np.uint16), smp.astype(np.uint32)),
            (ticks_in / TICKS_PER_US, src, smp))


class SurrogateStep(NamedTuple):
    loss: float  # batch mean, cross entropy + regularisers
    correct: np.ndarray  # bool[n_samples]
    hidden_counts: np.ndarray  # float64[n_samples, n_hidden]
    grad_codes: np.ndarray  # float64[n_src, n] dL/d(signed code), masked to the trainable pairs
    logits: np.ndarray  # float64[n_samples, n_out]


class SurrogateModel:
    """What the host knows: the nominal model of the placed network and the learner's shadow weights."""

    def __init__(self, cfg: SurrogateConfig, net: Network, placement: Placement) -> None:
        arr = placement.array
        self.cfg, self.net = cfg, net
        self.learner = Learner.from_synapses(net.targets, net.input_label, net.hidden, net.output, arr.row_label,
                                             arr.row_sign, arr.weight[:, net.circuits], net.trainable,
                                             LearnerConfig(loss="surrogate", lr=cfg.lr))
        self.params = net.targets
        self.n_hidden = int(net.hidden.size)
        self.spiking = np.arange(net.n) < self.n_hidden
        self._model_of_circuit = {int(c): i for i, c in enumerate(net.circuits)}

    def w_lsb(self) -> np.ndarray:
        return self.learner.w_lsb()

    def gradient(self, inputs, raster: np.ndarray, v_rec: np.ndarray, labels, *, w_lsb=None,
                 params: NeuronParams | None = None, code_gain=None) -> SurrogateStep:
        """Loss and dL/d(code) of a batch from its recording (raster uint8[s, K, n], v_rec float64[s, K, n]).
        w_lsb / params: the model the derivatives come from (default: nominal); code_gain float64[n_src, n]:
        d w_lsb / d code where it is not CURRENT_LSB_PER_CODE (injected weight noise)."""
        cfg, nh = self.cfg, self.n_hidden
        out = readout_cross_entropy(v_rec[:, :, nh:], labels, self.baseline(v_rec), readout=cfg.readout,
                                    scale_lsb=cfg.scale_lsb, rho_max=cfg.rho_max)
        counts = raster[:, :, :nh].sum(axis=1, dtype=np.float64)
        reg, d_count = count_regulariser(counts, rho_upper=cfg.rho_upper, nu_upper=cfg.nu_upper,
                                         rho_lower=cfg.rho_lower, nu_lower=cfg.nu_lower)
        dl_dv = np.zeros(v_rec.shape)
        dl_dv[:, :, nh:] = out.dl_dv
        dl_dc = np.zeros((v_rec.shape[0], self.net.n))
        dl_dc[:, :nh] = d_count
        grad = surrogate_backward(self.w_lsb() if w_lsb is None else w_lsb, self.params if params is None else params,
                                  *inputs, raster, v_rec, dl_dv, dl_dc, cfg.dt_us, beta_per_lsb=cfg.beta_per_lsb,
                                  spiking=self.spiking)
        grad = grad * (CURRENT_LSB_PER_CODE if code_gain is None else code_gain)
        grad = np.where(self.learner.mask, grad, 0.0)
        if cfg.grad_clip > 0:
            grad = np.clip(grad, -cfg.grad_clip, cfg.grad_clip)
        return SurrogateStep(out.loss + reg, out.correct, counts, grad, out.logits)

    def apply(self, grad_codes: np.ndarray, lr: float) -> tuple[np.ndarray, np.ndarray]:
        """Adam step; returns (rows int64[r], codes uint8[r, n]) that changed on the array."""
        return self.learner.apply_gradient(grad_codes, lr)

    def baseline(self, v_rec: np.ndarray) -> np.ndarray:
        """What the read-out subtracts (SurrogateConfig.baseline): float64[n_samples, n_out] or [n_out]."""
        if self.cfg.baseline == "rest":
            return v_rec[:, 0, self.n_hidden:]
        return self.params.v_leak_lsb[self.n_hidden:]

    def logits(self, v_rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z float64[n_samples, n_out], k_max) of a recording (chip/_surrogate.readout_logits)."""
        return readout_logits(v_rec[:, :, self.n_hidden:], self.baseline(v_rec), readout=self.cfg.readout,
                              scale_lsb=self.cfg.scale_lsb)

    def predict(self, v_rec: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(v_rec)[0], axis=1)

    def simulate(self, inputs, n_samples: int, *, w_lsb=None, params: NeuronParams | None = None,
                 v_th_offset_lsb=None) -> tuple[np.ndarray, np.ndarray]:
        """A software forward pass on the model's grid: (raster uint8[s, K, n], v_rec float64[s, K, n])."""
        cfg = self.cfg
        res = simulate_steps(self.w_lsb() if w_lsb is None else w_lsb, self.params if params is None else params,
                             *inputs, n_samples, cfg.trial_us, cfg.dt_us, v_th_offset_lsb=v_th_offset_lsb,
                             record_pre=True)
        return spike_raster(res.spikes, n_samples, cfg.n_steps, self.net.n, cfg.dt_us), res.v_pre_lsb

    def recording(self, spikes, membranes, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        return recording_from_run(spikes, membranes, n_samples, self.cfg, self.net.circuits)


def recording_from_run(spikes, membranes, n_samples: int, cfg: SurrogateConfig, circuits
                       ) -> tuple[np.ndarray, np.ndarray]:
    """What a run sent up, on the model's grid: (raster uint8[s, K, n], v_rec float64[s, K, n]).

    spikes: (t_ticks, label, sample) of the recorded spikes; membranes: the run's MembraneSamples.
    CADC codes become LSB through the nominal transfer (one code per LSB, no offset); spikes enter
    the first CADC grid point at or after them. Neurons in model order = ``circuits`` (int[n])."""
    circuits = np.asarray(circuits, np.int64)
    n = circuits.size
    lookup = np.full(1 << 16, -1, np.int64)
    lookup[NEURON_LABEL_BASE + circuits] = np.arange(n)
    t, lab, smp = (np.asarray(a, np.int64) for a in spikes)
    nrn = lookup[lab]
    keep = nrn >= 0
    k = -(-(t[keep] - smp[keep] * cfg.sample_ticks) // cfg.cadc_period_ticks)
    ok = k < cfg.n_steps
    flat = (smp[keep][ok] * cfg.n_steps + k[ok]) * n + nrn[keep][ok]
    raster = np.minimum(np.bincount(flat, minlength=n_samples * cfg.n_steps * n), 255).astype(np.uint8)
    v_rec = np.full((n_samples, cfg.n_steps, n), np.nan)
    for m in membranes:
        col = lookup[NEURON_LABEL_BASE + np.asarray(m.neuron, np.int64)]
        tt = np.asarray(m.t_ticks, np.int64)
        s_idx, k_idx = tt // cfg.sample_ticks, (tt % cfg.sample_ticks) // cfg.cadc_period_ticks
        use = col >= 0
        v_rec[s_idx[:, None], k_idx[:, None], col[use][None, :]] = np.asarray(m.adc_lsb, np.float64)[:, use]
    if np.isnan(v_rec).any():
        raise ValueError("membrane samples missing: the run must sample every neuron at every CADC grid point")
    return raster.reshape(n_samples, cfg.n_steps, n), v_rec


class EpochRecord(NamedTuple):
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    hidden_spikes_per_sample: float
    wall_s: float


def batches(rng: np.random.Generator, n: int, batch_size: int):
    order = rng.permutation(n)
    return [order[lo:lo + batch_size] for lo in range(0, n, batch_size)]


async def train_surrogate(board, cfg: SurrogateConfig, *, progress: Callable[[dict], None] | None = None) -> dict:
    """Train in the loop through ``board`` (a HostActor-like client); returns the report fields."""
    t_start = time.perf_counter()
    data = load_task(cfg.task, n_train=cfg.n_train, n_test=cfg.n_test)
    net = build_network(cfg, data.n_classes)
    placement = place(net)
    await board.configure(placement.neurons, placement.rows)
    await board.write_weights(placement.weight_rows, placement.weight_columns, placement.weight_block)
    model = SurrogateModel(cfg, net, placement)
    rng = np.random.default_rng([cfg.seed, 2])
    drop_rng = np.random.default_rng([cfg.seed, 4])
    history: list[EpochRecord] = []
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** epoch
        loss_sum, correct, seen, hidden_spikes = 0.0, 0, 0, 0.0
        epoch_batches = batches(rng, data.x_train.shape[0], cfg.batch_size)
        for b, idx in enumerate(epoch_batches):
            step = await _board_step(board, model, data.x_train[idx], data.y_train[idx], drop_rng)
            rows, codes = model.apply(step.grad_codes, lr)
            if rows.size:
                await board.write_weights(rows.astype(np.uint16), net.circuits.astype(np.uint16), codes)
            loss_sum += step.loss * idx.size
            correct += int(step.correct.sum())
            seen += idx.size
            hidden_spikes += float(step.hidden_counts.sum())
            if progress is not None:
                progress({"epoch": epoch + 1, "epochs": cfg.epochs, "batch": b + 1, "batches": len(epoch_batches),
                          "loss": loss_sum / seen, "accuracy": correct / seen})
        test_acc = await evaluate_on_board(board, model, data.x_test, data.y_test)
        history.append(EpochRecord(epoch + 1, loss_sum / seen, correct / seen, test_acc, hidden_spikes / seen,
                                   time.perf_counter() - t_epoch))
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": cfg.epochs, "done": True, **history[-1]._asdict()})
    return _report(cfg, history, placement, net, data.x_train.shape[0], time.perf_counter() - t_start)


async def _board_run(board, model: SurrogateModel, x, drop_rng=None):
    cfg = model.cfg
    play, inputs = encode_ticks(cfg, x, model.net.input_label, drop_rng)
    res = await board.run(*play, n_samples=x.shape[0], sample_ticks=cfg.sample_ticks,
                          cadc_period_ticks=cfg.cadc_period_ticks, step_ticks=cfg.step_ticks)
    raster, v_rec = model.recording(res.spike_arrays(), res.membrane, x.shape[0])
    return inputs, raster, v_rec


async def _board_step(board, model: SurrogateModel, x, y, drop_rng=None) -> SurrogateStep:
    inputs, raster, v_rec = await _board_run(board, model, x, drop_rng)
    return model.gradient(inputs, raster, v_rec, y)


async def evaluate_on_board(board, model: SurrogateModel, x, y, *, batch: int = 200) -> float:
    """Test accuracy of the weights the board holds, read out from the CADC samples the run sends up."""
    correct = 0
    for lo in range(0, x.shape[0], batch):
        _, _, v_rec = await _board_run(board, model, x[lo:lo + batch])
        correct += int(np.sum(model.predict(v_rec) == y[lo:lo + batch]))
    return correct / max(x.shape[0], 1)


async def deploy(board, cfg: SurrogateConfig, signed_codes, n_out: int) -> SurrogateModel:
    """Place cfg's network on ``board`` and write ``signed_codes`` float64[n_src, n] (e.g. trained
    elsewhere) into its rows; returns the host's model of it (for ``evaluate_on_board``)."""
    net = build_network(cfg, n_out)
    placement = place(net)
    await board.configure(placement.neurons, placement.rows)
    model = SurrogateModel(cfg, net, placement)
    codes = np.asarray(signed_codes, np.float64)
    if codes.shape != model.learner.shadow.shape:
        raise ValueError(f"signed_codes must have shape {model.learner.shadow.shape}, got {codes.shape}")
    model.learner.shadow = np.where(model.learner.mask, np.clip(np.rint(codes), -63, 63), 0.0)
    rows, row_codes = model.learner.row_codes()
    order = np.argsort(rows, kind="stable")
    await board.write_weights(rows[order].astype(np.uint16), net.circuits.astype(np.uint16), row_codes[order])
    return model


def _report(cfg: SurrogateConfig, history: list[EpochRecord], placement: Placement, net: Network, n_train: int,
            wall: float) -> dict:
    return training_report(task=cfg.task, learning=cfg.learning, seed=cfg.seed, history=history,
                           samples=cfg.epochs * n_train, wall_s=wall, n_hidden=cfg.n_hidden,
                           quantisation=asdict(placement.report), config=asdict(cfg), net=net)
