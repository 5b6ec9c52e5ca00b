"""The host optimizer's end of the host link: requests go down, replies are matched up.

Jobs (a run, a training loop) are coroutines that call this actor's methods; the actor's serve
loop matches each reply from the board to the request waiting for it (by run id or request id),
so the order in which replies of different requests interleave never matters.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import trio

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
    MembraneSamples,
    Message,
    NeurosplitError,
    NeuronTrace,
    ReadLearnerState,
    ReadWeights,
    RunComplete,
    RunRequest,
    Shutdown,
    SpikeBatch,
    TrainStep,
    Weights,
    WriteLearnerState,
    WriteWeights,
)
from ._actor import Actor
from ._link import LinkEnd

__all__ = ["HostActor", "BoardError", "RunResult"]


class BoardError(NeurosplitError):
    """The board answered a request with an Error message."""

    def __init__(self, error: Error) -> None:
        self.error = error
        super().__init__(f"board error ({error.fault}): {error.message}")


@dataclass
class RunResult:
    """Everything that came up for one run, in tick order."""

    run_id: int
    complete: RunComplete | None = None
    spikes: list[SpikeBatch] = field(default_factory=list)
    membrane: list[MembraneSamples] = field(default_factory=list)
    traces: list[NeuronTrace] = field(default_factory=list)
    learn: LearnResult | None = None
    gradients: Gradients | None = None

    def spike_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Recorded spikes as (t_ticks int64, label uint16, sample uint32), concatenated in order."""
        if not self.spikes:
            return np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint32)
        return (np.concatenate([b.t_ticks for b in self.spikes]), np.concatenate([b.label for b in self.spikes]),
                np.concatenate([b.sample for b in self.spikes]))


class _Pending:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: Error | None = None
        self.value: object = None


class HostActor(Actor):
    """Link: ``board`` (the host end of the host link)."""

    name = "host"

    def __init__(self, board: LinkEnd, window: int = 4) -> None:
        super().__init__({"board": board})
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._credits = trio.Semaphore(window)
        self._runs: dict[int, tuple[RunResult, _Pending, bool]] = {}
        self._requests: dict[int, _Pending] = {}
        self._hello: _Pending | None = None
        self._learn: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._next_run_id = 0  # trial noise is keyed by run id: a resumed job continues the sequence
        self.board_hello: Hello | None = None
        self.unmatched_errors: list[Error] = []
        self.last_confirmed = "nothing yet"  # the last step the board confirmed, for error messages
        self.dropped_total: dict[str, int] = {}  # events the board reported dropped, summed over runs

    @property
    def board(self) -> LinkEnd:
        return self.links["board"]

    @property
    def next_run_id(self) -> int:
        """The id the next run will get (runs are numbered 0, 1, ... in the order they start)."""
        return self._next_run_id

    def set_next_run_id(self, run_id: int) -> None:
        """Continue the run-id sequence at ``run_id`` (a job resumed from a checkpoint: the board
        draws trial noise by run id, so the resumed job must number its runs as the first did)."""
        if run_id < 0:
            raise ValueError(f"run_id must be >= 0, got {run_id}")
        if self._runs:
            raise ValueError(f"cannot renumber runs while {len(self._runs)} are in flight")
        self._next_run_id = int(run_id)

    # -- requests ---------------------------------------------------------------------------
    async def handshake(self, session: dict[str, int] | None = None) -> Hello:
        """Say hello (with what this session asks of the board) and wait for the board's."""
        self._hello = _Pending()
        await self.board.send(Hello(protocol_version=PROTOCOL_VERSION, role="host", software="neurosplit",
                                    session=session or {}))
        return await self._wait(self._hello)

    def waiting(self) -> int:
        """Requests sent that still wait for their reply (handshake, reads, writes, runs, steps)."""
        hello = int(self._hello is not None and not self._hello.done.is_set())
        return hello + len(self._requests) + len(self._runs) + len(self._learn)

    async def configure(self, *msgs: ConfigureNeurons | ConfigureRows | ConfigureLearning) -> None:
        for msg in msgs:
            await self.board.send(msg)

    async def write_weights(self, row, column, weight) -> None:
        """Write a block of 6-bit codes and wait until the core confirms it."""
        rid = next(self._ids)
        pending = self._requests[rid] = _Pending()
        await self.board.send(WriteWeights(request_id=rid, row=row, column=column, weight=weight))
        await self._wait(pending)

    async def read_weights(self, row, column) -> Weights:
        rid = next(self._ids)
        pending = self._requests[rid] = _Pending()
        await self.board.send(ReadWeights(request_id=rid, row=row, column=column))
        return await self._wait(pending)

    async def read_learner_state(self) -> LearnerState:
        """The PPU's learner state (shadow weights, optimiser moments), after every learning job sent before."""
        rid = next(self._ids)
        pending = self._requests[rid] = _Pending()
        await self.board.send(ReadLearnerState(request_id=rid))
        return await self._wait(pending)

    async def write_learner_state(self, *, step: int, shadow, adam_m, adam_v) -> None:
        """Restore the PPU's learner state (after configure_learning) and wait until it confirms."""
        rid = next(self._ids)
        pending = self._requests[rid] = _Pending()
        await self.board.send(WriteLearnerState(request_id=rid, step=step, shadow=shadow, adam_m=adam_m, adam_v=adam_v))
        await self._wait(pending)

    async def run(self, t_ticks, label, sample, *, n_samples: int, sample_ticks: int, cadc_period_ticks: int = 0,
                  madc_neuron: int = -1, learn: bool = False, record_spikes: bool = True,
                  train_labels=None, apply_update: bool = True, report_gradients: bool = False,
                  learning_rate: float = 0.0, step_ticks: int = 0) -> RunResult:
        """Play one run and wait for everything it sends up. With ``train_labels`` the PPU also
        takes a training step on it (``learn`` is implied) and the result carries its LearnResult.
        ``step_ticks`` > 0 asks for the time-stepped integrator (RunRequest.step_ticks)."""
        learn = learn or train_labels is not None
        async with self._credits:
            run_id = self._next_run_id
            self._next_run_id += 1
            result, pending = RunResult(run_id), _Pending()
            self._runs[run_id] = (result, pending, learn)
            req = RunRequest(run_id=run_id, n_samples=n_samples, sample_ticks=sample_ticks,
                             cadc_period_ticks=cadc_period_ticks, madc_neuron=madc_neuron, learn=learn,
                             record_spikes=record_spikes, step_ticks=step_ticks)
            await self.board.send(req)
            await self.board.send(SpikeBatch(run_id=run_id, t_ticks=t_ticks, label=label, sample=sample,
                                             horizon_ticks=n_samples * sample_ticks))
            if train_labels is not None:
                learn_pending = self._learn[run_id] = _Pending()
                await self.board.send(TrainStep(run_id=run_id, label=train_labels, apply_update=apply_update,
                                                report_gradients=report_gradients, learning_rate=learning_rate))
            await self._wait(pending)
            if train_labels is not None:
                await self._wait(learn_pending)
            return result

    async def shutdown(self, reason: str = "done") -> None:
        await self.board.send(Shutdown(reason=reason))

    async def _wait(self, pending: _Pending):
        await pending.done.wait()
        if pending.error is not None:
            raise BoardError(pending.error)
        return pending.value

    # -- replies ----------------------------------------------------------------------------
    async def handle(self, link: str, msg: Message) -> None:
        run_id = getattr(msg, "run_id", -1)
        if isinstance(msg, Hello):
            self.board_hello = msg
            self.last_confirmed = "handshake"
            self._resolve(self._hello, msg)
        elif isinstance(msg, (Ack, Weights, LearnerState)):
            self.last_confirmed = f"{msg.TAG} of request {msg.request_id}"
            self._resolve(self._requests.pop(msg.request_id, None), msg)
        elif isinstance(msg, SpikeBatch) and run_id in self._runs:
            self._runs[run_id][0].spikes.append(msg)
        elif isinstance(msg, MembraneSamples) and run_id in self._runs:
            self._runs[run_id][0].membrane.append(msg)
        elif isinstance(msg, NeuronTrace) and run_id in self._runs:
            self._runs[run_id][0].traces.append(msg)
        elif isinstance(msg, RunComplete) and run_id in self._runs:
            result, pending, learn = self._runs[run_id]
            result.complete = msg
            self.last_confirmed = f"run {run_id} complete"
            for reason, n in msg.dropped.items():
                self.dropped_total[reason] = self.dropped_total.get(reason, 0) + n
            if run_id not in self._learn:
                del self._runs[run_id]
            self._resolve(pending, result)
        elif isinstance(msg, Gradients) and run_id in self._runs:
            self._runs[run_id][0].gradients = msg
        elif isinstance(msg, LearnResult) and run_id in self._learn:
            result = self._runs.pop(run_id)[0]
            result.learn = msg
            self.last_confirmed = f"learning step of run {run_id}"
            self._resolve(self._learn.pop(run_id), msg)
        elif isinstance(msg, Error):
            self._fail(msg)
        else:
            self.log.warning("unmatched_reply", tag=msg.TAG, run_id=run_id)

    def _resolve(self, pending: _Pending | None, value: object) -> None:
        if pending is not None and not pending.done.is_set():
            pending.value = value
            pending.done.set()

    def _fail(self, error: Error) -> None:
        """An Error fails the request it names (by run id), or every waiting request if it names none."""
        self.log.warning("board_error", fault=error.fault, message=error.message, run_id=error.run_id)
        targets: list[_Pending] = []
        if error.run_id >= 0:
            if error.run_id in self._runs:
                targets.append(self._runs.pop(error.run_id)[1])
            if error.run_id in self._learn:
                targets.append(self._learn.pop(error.run_id))
        else:
            targets = [p for p in (self._hello,) if p is not None and not p.done.is_set()]
            targets += list(self._requests.values()) + [r[1] for r in self._runs.values()] + list(self._learn.values())
            self._requests.clear()
            self._runs.clear()
            self._learn.clear()
        if not targets:
            self.unmatched_errors.append(error)
        for p in targets:
            if not p.done.is_set():
                p.error = error
                p.done.set()
