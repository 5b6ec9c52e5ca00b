"""Models of the hardware links: when a message would have arrived, and what a full queue drops.

A link may carry a :class:`LinkModel` of its hardware counterpart (bandwidth, fixed latency,
event-rate limit, queue depth). The model never delays a frame in the emulator and never reads
the wall clock: it computes, per frame, the **emulated** times at which the frame would have left
and arrived on the hardware, in FPGA ticks (8 ns), and it drops the spike events of a frame that
finds the queue of a lossy link full. Without overflow it changes nothing but the numbers it
reports: spikes and weights stay bit-identical with and without it.

**Emulated send time** of a frame on one direction of a link::

    send_ticks = max(clock, due)

``clock`` is the send time of the previous frame on the same timeline (a sender's emulated time
never goes back). ``due`` is the earliest emulated time the frame can exist:

- a message of a run going up (towards the host): the run's origin plus the run time its content
  ends at (SpikeBatch: ``horizon_ticks``; MembraneSamples, NeuronTrace: last sample tick + 1;
  RunComplete, LearnResult, Gradients: the run's end, ``n_samples * sample_ticks``);
- a SpikeBatch going down on a link that streams in time (``streams_in_time``: the FPGA releases
  each event at its tick): its first event's tick; such a batch also cannot finish before its
  last event's tick + 1;
- a reply (Ack, Weights) no earlier than its request (same ``request_id``) arrived; a Hello no
  earlier than the peer's Hello arrived;
- anything else going down (configuration, playback uploaded ahead of its run): no earlier than
  the latest frame the sending end had received from this link arrived (the host sends the next
  batch after it has seen the results of the last one);
- anything else going up: no due time.

**Timelines.** On a link that streams in time (the FPGA-chip event lanes) every run has its own
timeline, in ticks since the run started, with an empty queue at its start: a run is one timed
section of the FPGA. So whether the lanes' queue overflows depends only on that run's frames
(the router's chunks, the core's replies), never on other runs or on scheduling, and drops are
as deterministic as the spikes. Everything else (and every frame of other links) is on the link
direction's own timeline, in ticks since the system started; there a run's origin is the arrival
of the last down frame of its program (RunRequest, then playback) on that link, or the end of the
run before it if that is later (the board runs one run at a time, in the order they arrived). The host-link
times follow what the host had received before it sent, which is deterministic for a job that
waits for each result (training, evaluation); with several runs in flight they may vary with
scheduling, but the host link is reliable and never drops, so results still cannot.

**Wire.** A frame of ``B`` bytes occupies ``B + ceil(B / packet_payload_bytes) *
packet_overhead_bytes`` wire bytes. It starts when it is sent and the wire is free, is on the wire
for ``max(wire bytes / bandwidth, events / event rate)`` (whole ticks, rounded up), and arrives
the fixed latency after it finished. Frames leave in order.

**Queue.** The frames accepted on a timeline and not finished at ``send_ticks`` (the one on the
wire included). A frame that finds ``queue_depth`` of them overflows. On a lossy link (FPGA event
FIFOs) a SpikeBatch that overflows loses its events, counted by run under the reason
``"<link>_<direction>_queue_overflow"``; the frame still goes with its horizon and no events,
outside the queue, in the fixed latency (the run clock is the FPGA's, not a message). Any other
frame that overflows (a control message, or any frame of a reliable link: HostARQ blocks its
sender while the window is full) waits in emulated time until the oldest frame has left: a stall,
counted with its ticks. Nothing is dropped without its reason.

The drops of a run are added to the ``dropped`` map of its RunComplete when that passes the same
link (either direction), so the RunComplete the host receives names every drop on the links its
data crossed; ``LinkTimeline.dropped_total`` keeps the totals for ``System.dropped()``.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import asdict, dataclass, field

from ..chip._event_links import EventLaneModel
from ..protocol import (
    Ack,
    Gradients,
    Hello,
    LearnResult,
    MembraneSamples,
    Message,
    NeuronTrace,
    ReadWeights,
    RunComplete,
    RunRequest,
    SpikeBatch,
    TICKS_PER_US,
    Weights,
    WriteWeights,
)

__all__ = ["LinkModel", "LinkTimeline", "Transit", "default_link_models", "TICKS_PER_S"]

TICKS_PER_S = TICKS_PER_US * 1_000_000
"""FPGA ticks per second of hardware time: 125 MHz (bss2_facts.md §2)."""

_MAX_KEPT = 1 << 20  # per-frame values kept per direction for percentiles; aggregates go on beyond


@dataclass(frozen=True)
class LinkModel:
    """One link's hardware counterpart, the same for both directions.

    bandwidth_bytes_per_s: wire rate in bytes per second of hardware time (None: unlimited).
    latency_us: fixed one-way latency, hardware microseconds.
    event_rate_per_s: most spike events per second of hardware time (None: unlimited).
    queue_depth: frames that may be queued or on the wire at once per direction (None: unbounded).
    packet_payload_bytes, packet_overhead_bytes: a frame is cut into packets of at most this
      payload, each costing the overhead on the wire (Ethernet/IP/UDP headers); None: no packets.
    lossy: on overflow, drop the frame's spike events (else the frame waits: a stall).
    streams_in_time: spike batches going down leave at their first event's tick (timed release).
    name: what the model stands for, for reports.
    """

    name: str = "ideal"
    bandwidth_bytes_per_s: float | None = None
    latency_us: float = 0.0
    event_rate_per_s: float | None = None
    queue_depth: int | None = None
    packet_payload_bytes: int | None = None
    packet_overhead_bytes: int = 0
    lossy: bool = False
    streams_in_time: bool = False

    def __post_init__(self) -> None:
        for name in ("bandwidth_bytes_per_s", "event_rate_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if not self.latency_us >= 0:
            raise ValueError(f"latency_us must be >= 0, got {self.latency_us}")
        if self.queue_depth is not None and self.queue_depth < 1:
            raise ValueError(f"queue_depth must be >= 1 or None, got {self.queue_depth}")
        if self.packet_payload_bytes is not None and self.packet_payload_bytes < 1:
            raise ValueError(f"packet_payload_bytes must be >= 1 or None, got {self.packet_payload_bytes}")
        if self.packet_overhead_bytes < 0:
            raise ValueError(f"packet_overhead_bytes must be >= 0, got {self.packet_overhead_bytes}")

    @classmethod
    def host_1gbe(cls) -> "LinkModel":
        """The host link: HostARQ over UDP on 1 Gbit Ethernet (bss2_facts.md §4).

        125 MB/s wire speed; 1440 payload bytes per packet, each with 66 bytes of framing (Ethernet
        header, FCS, preamble and inter-frame gap 38, IPv4 20, UDP 8); window of 128 packets,
        here 128 frames; reliable (a full window blocks the sender). The one-way latency is not
        given by the sources; 50 us (switch, kernel stack, FPGA) is an assumption.
        """
        return cls(name="1GbE HostARQ", bandwidth_bytes_per_s=125e6, latency_us=50.0, queue_depth=128,
                   packet_payload_bytes=1440, packet_overhead_bytes=66, lossy=False, streams_in_time=False)

    @classmethod
    def chip_lanes(cls, lanes: EventLaneModel | None = None) -> "LinkModel":
        """The FPGA-to-chip event links, from the router's lane model (chip/_event_links.py).

        The event rate is the lanes' total capacity (n_lanes * events_per_window / window_ticks per
        tick: 500 MEvent/s by default, 125 MEvent/s per lane as a synapse driver accepts); the
        router still drops, per lane and window, what a lane cannot carry, so this model adds no
        second rate rule, only the serialisation that the rate implies. No byte limit: the wire
        format of the chip links is not our msgpack. Latency 0.325 us: the multi-chip figure of
        < 1.3 us over 4 hops (bss2_facts.md §3), per hop; the single-setup figure is unconfirmed.
        Queue of 64 frames, lossy: a full event FIFO drops events, as the FPGA counts drops.
        """
        lanes = lanes or EventLaneModel()
        per_tick = lanes.n_lanes * lanes.events_per_window / lanes.window_ticks
        return cls(name="FPGA-chip event lanes", bandwidth_bytes_per_s=None, latency_us=0.325,
                   event_rate_per_s=per_tick * TICKS_PER_S, queue_depth=64, lossy=True, streams_in_time=True)

    @property
    def latency_ticks(self) -> int:
        return int(round(self.latency_us * TICKS_PER_US))

    def wire_bytes(self, frame_bytes: int) -> int:
        """Bytes the wire carries for a frame of ``frame_bytes`` (packet framing included)."""
        if self.packet_payload_bytes is None:
            return frame_bytes + self.packet_overhead_bytes
        packets = max(1, -(-frame_bytes // self.packet_payload_bytes))
        return frame_bytes + packets * self.packet_overhead_bytes

    def transmit_ticks(self, frame_bytes: int, n_events: int) -> int:
        """Ticks the wire is busy with one frame: bytes over bandwidth or events over the event
        rate, whichever is longer, rounded up to whole ticks."""
        ticks = 0.0
        if self.bandwidth_bytes_per_s is not None:
            ticks = self.wire_bytes(frame_bytes) * TICKS_PER_S / self.bandwidth_bytes_per_s
        if self.event_rate_per_s is not None and n_events:
            ticks = max(ticks, n_events * TICKS_PER_S / self.event_rate_per_s)
        return int(math.ceil(ticks))

    def as_dict(self) -> dict:
        return asdict(self)


def default_link_models(lanes: EventLaneModel | None = None) -> dict[str, LinkModel]:
    """The models ``open_system`` puts on the links unless told otherwise: the host link and the
    chip link. The on-chip links (ppu, synram) have no hardware figures to model and stay ideal."""
    return {"host": LinkModel.host_1gbe(), "chip": LinkModel.chip_lanes(lanes)}


@dataclass(frozen=True)
class Transit:
    """Emulated times of one frame in FPGA ticks, on its timeline (since the system started, or,
    for a run's frames on a link that streams in time, since the run started)."""

    send_ticks: int
    start_ticks: int  # its first byte went onto the wire
    arrival_ticks: int
    queued: int  # frames ahead of it (queued or on the wire) when it was sent
    dropped_events: int = 0
    stalled_ticks: int = 0
    run_time: bool = False  # on a run's own timeline

    @property
    def latency_ticks(self) -> int:
        return self.arrival_ticks - self.send_ticks


class _Wire:
    """One timeline's state: the sender's clock, when the wire is free, the queue's finish times."""

    __slots__ = ("clock", "free", "finishes")

    def __init__(self) -> None:
        self.clock = 0
        self.free = 0
        self.finishes: deque[int] = deque()


@dataclass
class DirectionCounters:
    """Emulated-time counters of one direction (all its timelines together)."""

    frames: int = 0
    wire_bytes: int = 0
    latency_sum_ticks: int = 0
    latency_max_ticks: int = 0
    peak_queue: int = 0
    stalls: int = 0
    stall_ticks: int = 0
    overflow_frames: int = 0
    dropped_events: int = 0
    received_arrival_ticks: int = 0  # latest arrival among frames this direction delivered
    latencies_ticks: array = field(default_factory=lambda: array("q"))
    queue_series: list | None = None  # [(send_ticks, queued, run_time)] when series are kept

    def as_dict(self) -> dict:
        out = {"frames": self.frames, "wire_bytes": self.wire_bytes, "peak_queue": self.peak_queue,
               "stalls": self.stalls, "stall_ticks": self.stall_ticks, "overflow_frames": self.overflow_frames,
               "dropped_events": self.dropped_events,
               "latency_mean_ticks": self.latency_sum_ticks / self.frames if self.frames else 0.0,
               "latency_max_ticks": self.latency_max_ticks}
        out.update(percentiles(self.latencies_ticks, "latency", "_ticks"))
        return out


def percentiles(values, prefix: str, suffix: str, qs=(50, 90, 99)) -> dict:
    """``{prefix_p50suffix: ...}`` by the nearest-rank method (an observed value, no interpolation)."""
    if not len(values):
        return {}
    ordered = sorted(values)
    n = len(ordered)
    return {f"{prefix}_p{q}{suffix}": ordered[max(0, -(-n * q // 100) - 1)] for q in qs}


class _Plan:
    __slots__ = ("direction", "wire", "send", "queued", "dropped", "stalled", "due_last", "run_time")

    def __init__(self, direction, wire, send, queued, dropped, stalled, due_last, run_time):
        self.direction, self.wire, self.send, self.queued = direction, wire, send, queued
        self.dropped, self.stalled, self.due_last, self.run_time = dropped, stalled, due_last, run_time


_RUN_TIMED = (SpikeBatch, MembraneSamples, NeuronTrace, RunComplete)


class LinkTimeline:
    """The emulated-time state of one link under a model. ``admit`` a message before it is
    encoded (it may come back with its events dropped, or with the link's drops added to a
    RunComplete), then ``commit`` the encoded frame to get its :class:`Transit`; ``delivered``
    tells it that the far end received a frame (what the sender of the next down frame has seen).
    """

    def __init__(self, link_name: str, model: LinkModel, *, keep_series: bool = False) -> None:
        self.link_name = link_name
        self.model = model
        self.counters = {"down": DirectionCounters(), "up": DirectionCounters()}
        self._wires = {"down": _Wire(), "up": _Wire()}
        self._run_wires: dict[tuple[str, int], _Wire] = {}  # streamed links: (direction, run) -> wire
        if keep_series:
            self.keep_series()
        self._origin: dict[int, int] = {}  # run_id -> when the run starts on the far side (main timeline)
        self._run_end: dict[int, int] = {}  # run_id -> n_samples * sample_ticks
        self._board_free = 0  # the far side runs one run at a time: when the last run scheduled ends
        self._last_run: int | None = None
        self._request_arrival: dict[int, int] = {}  # request_id -> arrival of the request
        self._hello_arrival: dict[str, int] = {}  # direction -> arrival of the last Hello sent that way
        self._dropped_by_run: dict[int, dict[str, int]] = {}
        self.dropped_total: dict[str, int] = {}

    def origin_ticks(self, run_id: int) -> int | None:
        """When run ``run_id`` starts on the far side, on this link's timeline (None: not known here)."""
        return self._origin.get(run_id)

    def keep_series(self) -> None:
        """Also keep (send_ticks, queued, on a run's timeline) of every frame (profiling)."""
        for c in self.counters.values():
            if c.queue_series is None:
                c.queue_series = []

    # -- the two steps ------------------------------------------------------------------------
    def admit(self, direction: str, msg: Message) -> tuple[Message, _Plan]:
        """Decide the frame's send time and whether it overflows; returns the message to encode."""
        model, counters = self.model, self.counters[direction]
        run_time = model.streams_in_time and isinstance(msg, _RUN_TIMED)
        if run_time:
            wire = self._run_wires.get((direction, msg.run_id))
            if wire is None:
                wire = self._run_wires[(direction, msg.run_id)] = _Wire()
            due, due_last = self._due_in_run(direction, msg)
        else:
            wire = self._wires[direction]
            due, due_last = self._due(direction, msg), None
        send = max(wire.clock, due)
        finishes = wire.finishes
        while finishes and finishes[0] <= send:
            finishes.popleft()
        dropped = stalled = 0
        if model.queue_depth is not None and len(finishes) >= model.queue_depth:
            counters.overflow_frames += 1
            n_events = msg.n_events()
            if model.lossy and n_events and isinstance(msg, SpikeBatch):
                dropped = n_events
                msg = SpikeBatch(run_id=msg.run_id, t_ticks=msg.t_ticks[:0], label=msg.label[:0],
                                 sample=msg.sample[:0], horizon_ticks=msg.horizon_ticks)
                self._drop(msg.run_id, f"{self.link_name}_{direction}_queue_overflow", n_events)
                counters.dropped_events += n_events
            else:  # wait until enough frames have left that depth - 1 are ahead of this one
                leave = finishes[len(finishes) - model.queue_depth]
                stalled, send = leave - send, leave
                while finishes and finishes[0] <= send:
                    finishes.popleft()
                counters.stalls += 1
                counters.stall_ticks += stalled
        if isinstance(msg, RunComplete):
            msg = self._fold_drops(msg)
        return msg, _Plan(direction, wire, send, len(finishes), dropped, stalled, due_last, run_time)

    def commit(self, plan: _Plan, msg: Message, frame_bytes: int) -> Transit:
        """Put the admitted message's frame (``frame_bytes`` long) on the wire."""
        model, counters, wire = self.model, self.counters[plan.direction], plan.wire
        send = wire.clock = plan.send
        if plan.dropped:  # the horizon travels outside the queue, in the fixed latency
            start, arrival = send, send + model.latency_ticks
        else:
            start = max(send, wire.free)
            finish = start + model.transmit_ticks(frame_bytes, msg.n_events())
            if plan.due_last is not None and plan.due_last > finish:
                finish = plan.due_last
            wire.free = finish
            wire.finishes.append(finish)
            arrival = finish + model.latency_ticks
            counters.wire_bytes += model.wire_bytes(frame_bytes)
        latency = arrival - send
        counters.frames += 1
        counters.latency_sum_ticks += latency
        if latency > counters.latency_max_ticks:
            counters.latency_max_ticks = latency
        occupancy = plan.queued + (0 if plan.dropped else 1)
        if occupancy > counters.peak_queue:
            counters.peak_queue = occupancy
        if len(counters.latencies_ticks) < _MAX_KEPT:
            counters.latencies_ticks.append(latency)
        if counters.queue_series is not None and len(counters.queue_series) < _MAX_KEPT:
            counters.queue_series.append((send, occupancy, plan.run_time))
        self._remember(plan.direction, msg, arrival, plan.run_time)
        return Transit(send, start, arrival, plan.queued, plan.dropped, plan.stalled, plan.run_time)

    def delivered(self, direction: str, transit: Transit) -> None:
        """The far end of ``direction`` received a frame with this transit."""
        if not transit.run_time:
            c = self.counters[direction]
            if transit.arrival_ticks > c.received_arrival_ticks:
                c.received_arrival_ticks = transit.arrival_ticks

    # -- emulated send times ------------------------------------------------------------------
    def _due(self, direction: str, msg: Message) -> int:
        run_id = getattr(msg, "run_id", None)
        if run_id is not None and run_id in self._origin and (direction == "up" or isinstance(msg, RunComplete)):
            origin = self._origin[run_id]
            if isinstance(msg, SpikeBatch):
                return origin + msg.horizon_ticks
            if isinstance(msg, (MembraneSamples, NeuronTrace)):
                return origin + (int(msg.t_ticks[-1]) + 1 if msg.t_ticks.size else 0)
            if isinstance(msg, (RunComplete, LearnResult, Gradients)):
                return origin + self._run_end.get(run_id, 0)
        if isinstance(msg, (Ack, Weights)):
            return self._request_arrival.pop(msg.request_id, 0)
        if isinstance(msg, Hello):
            return self._hello_arrival.get("down" if direction == "up" else "up", 0)
        if direction == "down":  # sent after what the sender had received from this link
            return self.counters["up"].received_arrival_ticks
        return 0

    def _due_in_run(self, direction: str, msg: Message) -> tuple[int, int | None]:
        if isinstance(msg, SpikeBatch):
            if direction == "down" and msg.t_ticks.size:
                return int(msg.t_ticks[0]), int(msg.t_ticks[-1]) + 1
            return msg.horizon_ticks, None
        if isinstance(msg, (MembraneSamples, NeuronTrace)):
            return (int(msg.t_ticks[-1]) + 1 if msg.t_ticks.size else 0), None
        return self._run_end.get(msg.run_id, 0), None  # RunComplete

    def _remember(self, direction: str, msg: Message, arrival: int, run_time: bool) -> None:
        if isinstance(msg, RunRequest):
            origin = max(arrival, self._board_free)  # runs execute one after another
            self._origin[msg.run_id] = origin
            self._run_end[msg.run_id] = end = msg.n_samples * msg.sample_ticks
            self._board_free, self._last_run = origin + end, msg.run_id
        elif isinstance(msg, SpikeBatch) and direction == "down" and not run_time and msg.run_id in self._origin:
            late = arrival - self._origin[msg.run_id]  # the run starts once its program is complete
            if late > 0:
                self._origin[msg.run_id] = arrival
                if self._last_run == msg.run_id:
                    self._board_free += late
        elif isinstance(msg, (WriteWeights, ReadWeights)) and not isinstance(msg, Weights):
            self._request_arrival[msg.request_id] = arrival
        elif isinstance(msg, Hello):
            self._hello_arrival[direction] = arrival
        elif isinstance(msg, RunComplete):
            self._origin.pop(msg.run_id, None)
            self._run_end.pop(msg.run_id, None)
            for d in ("down", "up"):
                self._run_wires.pop((d, msg.run_id), None)

    # -- drops --------------------------------------------------------------------------------
    def _drop(self, run_id: int, reason: str, n: int) -> None:
        by_run = self._dropped_by_run.setdefault(run_id, {})
        by_run[reason] = by_run.get(reason, 0) + n
        self.dropped_total[reason] = self.dropped_total.get(reason, 0) + n

    def _fold_drops(self, done: RunComplete) -> RunComplete:
        mine = self._dropped_by_run.pop(done.run_id, None)
        if not mine:
            return done
        dropped = dict(done.dropped)
        for reason, n in mine.items():
            dropped[reason] = dropped.get(reason, 0) + n
        return RunComplete(run_id=done.run_id, n_samples=done.n_samples, events_in=done.events_in,
                           events_out=done.events_out, dropped=dropped)

    def statistics(self) -> dict:
        """Model parameters, drops, and per-direction emulated-time counters (ticks; 125 per us)."""
        return {"model": self.model.as_dict(), "dropped": dict(self.dropped_total),
                **{d: c.as_dict() for d, c in self.counters.items()}}
