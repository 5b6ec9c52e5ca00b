"""The plasticity processor: EventProp on chip, from the spikes the router hands it.

Its serve loop only files messages away (spike events by run, replies from the core); a worker
task takes the learning jobs in the order the host sent them, waits for each run's data to be
complete, computes the update with chip.Learner and writes the changed synapse rows into the
core, and only after the core confirms the write does it report the LearnResult up. So the next
run the host starts always sees the new weights, however the actors are scheduled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import trio

from ..chip import N_ROWS, Learner, LearnerConfig, NeuronParams
from ..chip._core import CUT_BY_SHUTDOWN
from ..chip._optim import AdamState
from ..protocol import (
    PROTOCOL_VERSION,
    Ack,
    ConfigureLearning,
    ConfigureNeurons,
    ConfigureRows,
    Error,
    Gradients,
    Hello,
    LearnResult,
    LearnerState,
    Message,
    ReadLearnerState,
    ReadWeights,
    RunComplete,
    RunRequest,
    Shutdown,
    SpikeBatch,
    TICKS_PER_US,
    TrainStep,
    Weights,
    WriteLearnerState,
    WriteWeights,
)
from ._actor import STOP, Actor
from ._link import LinkEnd

__all__ = ["PpuActor", "PpuConfig", "PPU_MEMORY_BYTES"]

PPU_MEMORY_BYTES = 16 * 1024
"""SRAM of one BrainScaleS-2 PPU core for code and data (bss2_facts.md §6)."""


@dataclass(frozen=True)
class PpuConfig:
    """fixed_point_bits: 0 for float64, else the width of the PPU's fixed-point weight
    accumulator and gradient mantissas (chip.LearnerConfig)."""

    fixed_point_bits: int = 0

    def __post_init__(self) -> None:
        if self.fixed_point_bits and not 8 <= self.fixed_point_bits <= 32:
            raise ValueError(f"fixed_point_bits must be 0 or in [8, 32], got {self.fixed_point_bits}")


@dataclass
class _RunData:
    request: RunRequest
    t: list = field(default_factory=list)
    label: list = field(default_factory=list)
    sample: list = field(default_factory=list)
    complete: trio.Event = field(default_factory=trio.Event)
    failed: str = ""  # why the run will not give a complete record (refused, cut short): no step on it

    def events(self):
        if not self.t:
            return np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint32)
        return np.concatenate(self.t), np.concatenate(self.label), np.concatenate(self.sample)


class PpuActor(Actor):
    """Links: ``router`` (spikes in, results up) and ``synram`` (weights to/from the core)."""

    name = "ppu"

    def __init__(self, router: LinkEnd, synram: LinkEnd, config: PpuConfig = PpuConfig(), seed: int = 0) -> None:
        super().__init__({"router": router, "synram": synram})
        self.config = config
        self.seed = seed
        self._targets: dict[str, np.ndarray] = {}
        self._row_label = np.zeros(N_ROWS, np.uint16)
        self._row_sign = np.zeros(N_ROWS, np.int8)
        self._runs: dict[int, _RunData] = {}
        self._jobs_send, self._jobs_recv = trio.open_memory_channel[Message](float("inf"))
        self._replies: dict[int, tuple[trio.Event, list]] = {}
        self._ids = itertools.count(1 << 30)
        self.learner: Learner | None = None

    async def handle(self, link: str, msg: Message) -> None:
        if link == "synram":
            if isinstance(msg, (Ack, Weights)) and msg.request_id in self._replies:
                event, box = self._replies.pop(msg.request_id)
                box.append(msg)
                event.set()
            elif isinstance(msg, Error):
                await self.links["router"].send(msg)
            return
        if isinstance(msg, Hello):
            await self.links["router"].send(Hello(protocol_version=PROTOCOL_VERSION, role="ppu"))
        elif isinstance(msg, ConfigureNeurons):
            for name in NeuronParams._fields:
                self._targets.setdefault(name, np.full(512, np.nan))[msg.neuron] = getattr(msg, name)
        elif isinstance(msg, ConfigureRows):
            self._row_label[msg.row] = msg.source_label
            self._row_sign[msg.row] = msg.sign
        elif isinstance(msg, RunRequest):
            self._runs[msg.run_id] = _RunData(msg)
        elif isinstance(msg, SpikeBatch) and msg.run_id in self._runs:
            run = self._runs[msg.run_id]
            run.t.append(msg.t_ticks)
            run.label.append(msg.label)
            run.sample.append(msg.sample)
        elif isinstance(msg, RunComplete) and msg.run_id in self._runs:
            run = self._runs[msg.run_id]
            if msg.dropped.get(CUT_BY_SHUTDOWN):
                run.failed = f"run {msg.run_id} was cut short by a shutdown before all its samples ran"
            run.complete.set()
        elif isinstance(msg, Error) and msg.run_id in self._runs:  # the core refused the run
            run = self._runs[msg.run_id]
            run.failed = f"run {msg.run_id} was refused: {msg.message}"
            run.complete.set()
        elif isinstance(msg, (ConfigureLearning, TrainStep, ReadLearnerState, WriteLearnerState)):
            self._jobs_send.send_nowait(msg)  # in order with the learning jobs: a state read sees every step before it
        elif isinstance(msg, Shutdown):
            # Finish the jobs accepted before it (their runs complete, or are closed by the core's
            # own shutdown), then tell the core on synram that no weight write will follow.
            self._jobs_send.send_nowait(msg)
        else:
            await self.links["router"].send(Error(fault="remote", in_reply_to=msg.TAG,
                                                  message=f"ppu: cannot handle {msg.TAG}"))

    async def work(self) -> None:
        async for job in self._jobs_recv:
            if isinstance(job, Shutdown):
                await self.links["synram"].send(job)
                self._inbox_send.send_nowait(("synram", STOP))
                return
            if isinstance(job, ConfigureLearning):
                await self._configure(job)
            elif isinstance(job, ReadLearnerState):
                await self._read_state(job)
            elif isinstance(job, WriteLearnerState):
                await self._write_state(job)
            else:
                await self._train_step(job)

    async def _read_state(self, req: ReadLearnerState) -> None:
        router = self.links["router"]
        if self.learner is None:
            await router.send(Error(fault="remote", in_reply_to=req.TAG, message=f"{req.TAG}: learning is not configured"))
            return
        adam = self.learner.adam
        await router.send(LearnerState(request_id=req.request_id, step=adam.step, shadow=self.learner.shadow,
                                       adam_m=adam.m, adam_v=adam.v))

    async def _write_state(self, req: WriteLearnerState) -> None:
        """Restore shadow weights and optimiser state (resuming a training from a checkpoint)."""
        router = self.links["router"]
        if self.learner is None or req.shadow.shape != self.learner.shadow.shape:
            why = ("learning is not configured" if self.learner is None else
                   f"shadow shape {req.shadow.shape} is not the configured network's {self.learner.shadow.shape}")
            await router.send(Error(fault="remote", in_reply_to=req.TAG, message=f"{req.TAG}.shadow: {why}"))
            return
        self.learner.shadow = np.array(req.shadow)
        self.learner.adam = AdamState(np.array(req.adam_m), np.array(req.adam_v), req.step)
        await router.send(Ack(request_id=req.request_id, what=req.TAG))

    async def _request(self, msg_factory) -> Message:
        rid = next(self._ids)
        event, box = trio.Event(), []
        self._replies[rid] = (event, box)
        await self.links["synram"].send(msg_factory(rid))
        await event.wait()
        return box[0]

    async def _configure(self, cfg: ConfigureLearning) -> None:
        circuits = np.concatenate([cfg.hidden_neuron, cfg.output_neuron]).astype(np.int64)
        if "tau_mem_us" not in self._targets or np.isnan(self._targets["tau_mem_us"][circuits]).any():
            await self.links["router"].send(Error(fault="remote", in_reply_to="configure_learning",
                                                  message="configure_learning: neurons must be configured first"))
            return
        params = NeuronParams(*(np.ascontiguousarray(self._targets[f][circuits]) for f in NeuronParams._fields))
        used = np.flatnonzero(self._row_sign != 0).astype(np.uint16)
        reply = await self._request(lambda rid: ReadWeights(request_id=rid, row=used, column=circuits.astype(np.uint16)))
        weight = np.zeros((self._row_label.size, circuits.size), np.uint8)
        weight[reply.row.astype(np.int64)] = reply.weight
        config = LearnerConfig.from_params(cfg.loss, cfg.params, fixed_point_bits=self.config.fixed_point_bits)
        self.learner = Learner.from_synapses(params, cfg.input_label, cfg.hidden_neuron, cfg.output_neuron,
                                             self._row_label, self._row_sign, weight, cfg.trainable.astype(bool), config)
        self.log.info("learning_configured", n_inputs=len(cfg.input_label), n_neurons=len(circuits),
                      working_set_bytes=self.learner.working_set_bytes())

    async def _train_step(self, step: TrainStep) -> None:
        router = self.links["router"]
        run = self._runs.get(step.run_id)
        if run is None or self.learner is None:
            why = "learning is not configured" if self.learner is None else f"no run {step.run_id} was delivered"
            await router.send(Error(fault="remote", in_reply_to="train_step", run_id=step.run_id, message=f"train_step: {why}"))
            return
        await run.complete.wait()
        del self._runs[step.run_id]
        if run.failed:
            await router.send(Error(fault="remote", in_reply_to="train_step", run_id=step.run_id,
                                    message=f"train_step: {run.failed}"))
            return
        req = run.request
        t, label, sample = run.events()
        inputs, spikes = self.learner.spikes_from_ticks(t, label, sample, req.sample_ticks)
        t_end_us = req.sample_ticks / TICKS_PER_US
        # A pass that neither updates nor reports gradients (a test pass) needs no adjoint sweep.
        outcome = self.learner.step(inputs, spikes, step.label, req.n_samples, t_end_us, apply=step.apply_update,
                                    lr=step.learning_rate, gradient=step.apply_update or step.report_gradients)
        if outcome.write_rows.size:
            circuits = self.learner.rows.column.astype(np.uint16)
            await self._request(lambda rid: WriteWeights(request_id=rid, row=outcome.write_rows.astype(np.uint16),
                                                         column=circuits, weight=outcome.write_codes))
        if step.report_gradients:
            await router.send(Gradients(run_id=step.run_id, loss=outcome.loss.loss, grad=outcome.grad_codes))
        metrics = {"ppu_working_set_bytes": float(self.learner.working_set_bytes(len(t))),
                   "ppu_memory_bytes": float(PPU_MEMORY_BYTES)}
        if outcome.guard_count is not None:  # absent, not 0, when no adjoint sweep ran
            metrics["adjoint_guard_count"] = float(outcome.guard_count)
        await router.send(LearnResult(
            run_id=step.run_id, loss=outcome.loss.loss, n_correct=int(outcome.loss.correct.sum()),
            n_samples=req.n_samples, spike_count=outcome.spike_count, metrics=metrics))
