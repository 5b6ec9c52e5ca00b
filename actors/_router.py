"""The FPGA event router: playback into the chip, recording out of it, routing, drop counting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..chip._event_links import EventLaneModel, LaneState, admit_events
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
from ._actor import STOP, Actor
from ._admission import BoardLimits, admission_problem
from ._link import LinkEnd

__all__ = ["RouterActor", "RouterConfig"]


@dataclass(frozen=True)
class RouterConfig:
    """chunk_events: most input events per chunk streamed to the core (chunks are cut between
    ticks, so results never depend on it). Each chunk is a message on the chip link and a call into
    the integrator with its own thread hand-offs (~1 ms of overhead on 2 cores): 65,536 events (2,600
    Yin-Yang samples) make a run of a few thousand samples one chunk; 4,096 held Yin-Yang inference to
    46,000 samples/s where 65,536 gives 69,000 (benchmarks/inference_throughput.py). lanes: capacity of the event lanes into the chip.
    limits: what one request may make the board allocate (actors/_admission.py)."""

    chunk_events: int = 65536
    lanes: EventLaneModel = field(default_factory=EventLaneModel)
    chip_id: int = 0
    limits: BoardLimits = field(default_factory=BoardLimits)

    def __post_init__(self) -> None:
        if self.chunk_events < 1:
            raise ValueError(f"chunk_events must be >= 1, got {self.chunk_events}")


@dataclass
class _Run:
    request: RunRequest
    lanes: LaneState
    horizon_ticks: int = 0
    played: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def end_ticks(self) -> int:
        return self.request.n_samples * self.request.sample_ticks

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n


class RouterActor(Actor):
    """Links: ``host`` (to the host optimizer), ``chip`` (to the analog core), ``ppu``."""

    name = "router"

    def __init__(self, host: LinkEnd, chip: LinkEnd, ppu: LinkEnd, config: RouterConfig = RouterConfig()) -> None:
        super().__init__({"host": host, "chip": chip, "ppu": ppu})
        self.config = config
        self._runs: dict[int, _Run] = {}
        self.dropped_total: dict[str, int] = {}
        self._greeted = False  # the host's Hello came: requests may be served
        self._shutting_down = False  # the host's Shutdown came: finish what core and PPU owe, then stop
        self._inner_closed: set[str] = set()  # of "chip", "ppu": links whose actor has stopped

    async def handle(self, link: str, msg: Message) -> None:
        if link == "host":
            if self._shutting_down:  # the session is over: nobody downstream would serve it
                self.log.warning("after_shutdown", tag=msg.TAG)
                return
            await self._from_host(msg)
        elif link == "chip":
            await self._from_core(msg)
        else:
            await self._from_ppu(msg)

    # -- host -> chip -----------------------------------------------------------------------
    async def _from_host(self, msg: Message) -> None:
        host, chip, ppu = self.links["host"], self.links["chip"], self.links["ppu"]
        problem = admission_problem(msg, self.config.limits)
        if problem is not None:
            await host.send(Error(fault="chip-limit", in_reply_to=msg.TAG, run_id=getattr(msg, "run_id", -1),
                                  message=problem))
            return
        if isinstance(msg, Hello):
            if msg.protocol_version != PROTOCOL_VERSION:
                await host.send(Error(fault="remote", in_reply_to="hello",
                                      message=f"hello.protocol_version: {msg.protocol_version} is not spoken here "
                                              f"(we speak {PROTOCOL_VERSION})"))
                return
            if msg.role != "host":
                await host.send(Error(fault="remote", in_reply_to="hello",
                                      message=f"hello.role: a board serves role 'host', got {msg.role!r}"))
                return
            self._greeted = True
            await host.send(Hello(protocol_version=PROTOCOL_VERSION, role="board", chip_id=self.config.chip_id,
                                  software="neurosplit"))
        elif not self._greeted and not isinstance(msg, Shutdown):
            # the Hello carries the version and the session: nothing is served before it
            await host.send(Error(fault="remote", in_reply_to=msg.TAG, run_id=getattr(msg, "run_id", -1),
                                  message=f"{msg.TAG}: a host must open with hello"))
        elif isinstance(msg, (ConfigureNeurons, ConfigureRows)):
            await chip.send(msg)
            await ppu.send(msg)  # the PPU models the network it learns on
        # exact types: Weights and LearnerState (replies) subclass WriteWeights and WriteLearnerState
        elif type(msg) in (WriteWeights, ReadWeights):
            await chip.send(msg)
        elif type(msg) in (ConfigureLearning, TrainStep, ReadLearnerState, WriteLearnerState):
            await ppu.send(msg)
        elif isinstance(msg, RunRequest):
            await self._start_run(msg)
        elif isinstance(msg, SpikeBatch):
            await self._play(msg)
        elif isinstance(msg, Shutdown):
            # Finish what was accepted: core and PPU stop after what they were sent before the
            # Shutdown, and their replies are still routed up until both have closed their links.
            self._shutting_down = True
            for name in ("chip", "ppu"):
                if name not in self._inner_closed:
                    await self.links[name].send(msg)
            if self._inner_closed >= {"chip", "ppu"}:
                self.stop()
        else:
            await host.send(Error(fault="remote", in_reply_to=msg.TAG,
                                  message=f"{msg.TAG}: not a message the host may send to the board"))

    async def _start_run(self, req: RunRequest) -> None:
        if req.run_id in self._runs:
            await self.links["host"].send(Error(fault="remote", in_reply_to="run_request", run_id=req.run_id,
                                                message=f"run_request.run_id: run {req.run_id} is already running"))
            return
        self._runs[req.run_id] = _Run(req, LaneState.empty(self.config.lanes.n_lanes))
        await self.links["chip"].send(req)
        if req.learn:
            await self.links["ppu"].send(req)

    async def _play(self, batch: SpikeBatch) -> None:
        """Admit a playback batch through the event lanes and stream it to the core in chunks."""
        run = self._runs.get(batch.run_id)
        host = self.links["host"]
        if run is None:
            await host.send(Error(fault="remote", in_reply_to="spike_batch", run_id=batch.run_id,
                                  message=f"spike_batch.run_id: no run {batch.run_id} is open"))
            return
        t, label, sample = batch.t_ticks, batch.label, batch.sample
        problem = None
        if t.size and t[0] < run.horizon_ticks:
            problem = f"spike_batch.t_ticks[0]: tick {t[0]} is before the horizon {run.horizon_ticks} already played"
        elif batch.horizon_ticks < run.horizon_ticks or batch.horizon_ticks > run.end_ticks:
            problem = (f"spike_batch.horizon_ticks: {batch.horizon_ticks} outside [{run.horizon_ticks}, "
                       f"{run.end_ticks}] of run {batch.run_id}")
        elif t.size and np.any(sample.astype(np.int64) != t // run.request.sample_ticks):
            bad = int(np.flatnonzero(sample.astype(np.int64) != t // run.request.sample_ticks)[0])
            problem = f"spike_batch.sample[{bad}]: sample {sample[bad]} does not match tick {t[bad]}"
        if problem:
            run.drop("rejected_batch", int(t.size))
            await host.send(Error(fault="remote", in_reply_to="spike_batch", run_id=batch.run_id, message=problem))
            return
        keep = admit_events(t, label, self.config.lanes, run.lanes)
        n_drop = int(t.size - np.count_nonzero(keep))
        if n_drop:
            run.drop("chip_lane_overflow", n_drop)
            self.log.warning("events_dropped", run_id=batch.run_id, reason="chip_lane_overflow", n_dropped=n_drop)
            t, label, sample = t[keep], label[keep], sample[keep]
        run.played += int(t.size)
        run.horizon_ticks = batch.horizon_ticks
        for lo, hi, horizon in _chunks(t, self.config.chunk_events, batch.horizon_ticks):
            chunk = SpikeBatch(run_id=batch.run_id, t_ticks=t[lo:hi], label=label[lo:hi], sample=sample[lo:hi],
                               horizon_ticks=horizon)
            await self.links["chip"].send(chunk)
            if run.request.learn:
                await self.links["ppu"].send(chunk)

    # -- chip -> host / PPU ------------------------------------------------------------------
    async def _from_core(self, msg: Message) -> None:
        host, ppu = self.links["host"], self.links["ppu"]
        run = self._runs.get(getattr(msg, "run_id", -1))
        if isinstance(msg, SpikeBatch) and run is not None:
            if run.request.record_spikes:
                await host.send(msg)
            if run.request.learn:
                # Inputs and recorded spikes share this link; labels tell them apart
                # (neurons emit labels from NEURON_LABEL_BASE up, inputs stay below it).
                await ppu.send(msg)
        elif isinstance(msg, RunComplete) and run is not None:
            dropped = dict(msg.dropped)
            for reason, n in run.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + n
                self.dropped_total[reason] = self.dropped_total.get(reason, 0) + n
            done = RunComplete(run_id=msg.run_id, n_samples=msg.n_samples, events_in=run.played + sum(run.dropped.values()),
                               events_out=msg.events_out, dropped=dropped)
            if run.request.learn:
                await ppu.send(done)
            await host.send(done)
            del self._runs[msg.run_id]
        elif isinstance(msg, Error) and run is not None and msg.in_reply_to == "run_request":
            # the core refused the run: it will not complete
            if run.request.learn:
                await ppu.send(msg)  # so that the PPU answers a TrainStep on it instead of waiting
            await host.send(msg)
            del self._runs[msg.run_id]
        elif isinstance(msg, (MembraneSamples, NeuronTrace, Weights, Ack, Error, Hello)):
            await host.send(msg)
        else:
            await host.send(Error(fault="internal", in_reply_to=msg.TAG,
                                  message=f"router: unexpected {msg.TAG} from the core"))

    async def _from_ppu(self, msg: Message) -> None:
        if isinstance(msg, (LearnResult, Gradients, Error, Hello, Ack, LearnerState)):
            await self.links["host"].send(msg)
        else:
            await self.links["host"].send(Error(fault="internal", in_reply_to=msg.TAG,
                                                message=f"router: unexpected {msg.TAG} from the PPU"))


    async def _pump_until_closed(self, link_name: str, end: LinkEnd) -> None:
        await super()._pump_until_closed(link_name, end)
        if link_name != "host":
            self._inner_closed.add(link_name)
            if self._shutting_down and self._inner_closed >= {"chip", "ppu"}:
                # core and PPU have stopped after the Shutdown: stop once all they sent is handled
                self._inbox_send.send_nowait((link_name, STOP))


def _chunks(t_ticks: np.ndarray, chunk_events: int, horizon_ticks: int):
    """(lo, hi, horizon) pieces of at most ~chunk_events events, cut only between distinct ticks;
    each piece's horizon is the next piece's first tick (the last one's is ``horizon_ticks``)."""
    n = t_ticks.shape[0]
    cuts = [0]
    while cuts[-1] < n:
        lo = cuts[-1]
        hi = min(lo + chunk_events, n)
        if hi < n:
            # never split events of one tick: move the cut past every event at t[hi - 1]
            hi = int(np.searchsorted(t_ticks, t_ticks[hi - 1], side="right"))
        cuts.append(hi)
    if n == 0:
        yield 0, 0, horizon_ticks
        return
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        yield lo, hi, int(t_ticks[hi]) if hi < n else horizon_ticks
