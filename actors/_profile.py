"""Profiling: what each link carried, how long each hop and each actor took, how deep queues got.

Two levels:

- **Counters, always on** (no profiler needed): per link direction and message type, messages,
  bytes and spike events, the deepest buffer and the wall time spent encoding and decoding
  (``Link.stats``, actors/_link.py); per actor, messages handled, wall time inside ``handle``
  and the deepest inbox (actors/_actor.py); per modelled link, emulated-time latency, queue and
  drops (``Link.timeline``, actors/_link_model.py). Each costs a few additions per message.
- **Detailed, with a Profiler attached** (``open_system(..., profiler=Profiler())``, or inside
  ``with profiling(Profiler()):``): the wall-clock latency of every hop (a frame is stamped when
  it is sent and when it is received, in a side table keyed by the frame's identity, so nothing
  is added to the bytes on the wire), the wait of every message in its actor's inbox, the time
  each actor's tasks held the event loop (a trio instrument), wall time per handled message
  type, and the depth of link buffers, inboxes and emulated queues over time.

A profiler never decides anything: it only reads perf_counter and the counters. Its own cost is
estimated as (hook calls) x (cost of one hook call, measured when it is made) and reported as
``overhead``; benchmarks/actor_hop.py measures it directly by running with and without.

``Profiler.report()`` returns plain data: tables (lists of rows, one CSV each), histograms and
time series; host/cli/_profile.py writes and plots them.
"""

from __future__ import annotations

import math
from array import array
from contextlib import contextmanager
from contextvars import ContextVar
from time import perf_counter
from typing import Iterator

import numpy as np
import trio

from ..protocol import TICKS_PER_US
from ._link_model import percentiles

__all__ = ["Profiler", "profiling", "active_profiler", "TimeSeries"]

_ACTIVE: ContextVar["Profiler | None"] = ContextVar("neurosplit_profiler", default=None)
_MAX_SAMPLES = 1 << 20  # per-hop latencies kept for percentiles; counts and sums go on beyond
_ACTOR_NAMES = ("host", "router", "core", "ppu")


def active_profiler() -> "Profiler | None":
    """The profiler ``profiling()`` made active in this context, if any."""
    return _ACTIVE.get()


@contextmanager
def profiling(profiler: "Profiler") -> Iterator["Profiler"]:
    """Attach ``profiler`` to every system opened in this context (and tasks started from it)."""
    token = _ACTIVE.set(profiler)
    try:
        yield profiler
    finally:
        _ACTIVE.reset(token)


class TimeSeries:
    """(t, value) points, at most ``max_points``: when full, pairs of neighbours merge into their
    maximum and the stride doubles, so peaks survive the thinning."""

    __slots__ = ("max_points", "t", "v", "_stride", "_pending", "_pending_max", "_pending_t")

    def __init__(self, max_points: int = 4096) -> None:
        self.max_points = max(2, max_points)
        self.t: list[float] = []
        self.v: list[float] = []
        self._stride = 1
        self._pending = 0
        self._pending_max = -math.inf
        self._pending_t = 0.0

    def add(self, t: float, value: float) -> None:
        if value > self._pending_max:
            self._pending_max, self._pending_t = value, t
        self._pending += 1
        if self._pending < self._stride:
            return
        self.t.append(self._pending_t)
        self.v.append(self._pending_max)
        self._pending, self._pending_max = 0, -math.inf
        if len(self.t) >= self.max_points:
            keep_t, keep_v = [], []
            for i in range(0, len(self.t) - 1, 2):
                j = i if self.v[i] >= self.v[i + 1] else i + 1
                keep_t.append(self.t[j])
                keep_v.append(self.v[j])
            self.t, self.v = keep_t, keep_v
            self._stride *= 2

    def points(self) -> list[list[float]]:
        return [[t, v] for t, v in zip(self.t, self.v)]


class _LinkProbe:
    """A link's hook: wall latency of each frame from send to receive, buffer depth over time."""

    def __init__(self, profiler: "Profiler", link) -> None:
        self.profiler = profiler
        self.link = link
        self.latency_s = {"down": array("d"), "up": array("d")}
        self.by_tag: dict[tuple[str, str], list] = {}  # (direction, tag) -> [n, sum_s, max_s]
        self.depth_series = {"down": TimeSeries(profiler.max_points), "up": TimeSeries(profiler.max_points)}

    def hop(self, direction: str, tag: str, wall_s: float, transit) -> None:
        self.profiler.calls += 1
        lat = self.latency_s[direction]
        if len(lat) < _MAX_SAMPLES:
            lat.append(wall_s)
        row = self.by_tag.get((direction, tag))
        if row is None:
            row = self.by_tag[(direction, tag)] = [0, 0.0, 0.0]
        row[0] += 1
        row[1] += wall_s
        if wall_s > row[2]:
            row[2] = wall_s

    def depth(self, direction: str, depth: int) -> None:
        self.profiler.calls += 1
        self.depth_series[direction].add(perf_counter() - self.profiler.t0, depth)


class _ActorProbe:
    """An actor's hook: inbox wait and depth, wall time per handled message type."""

    def __init__(self, profiler: "Profiler", actor) -> None:
        self.profiler = profiler
        self.actor = actor
        self._received: dict[int, float] = {}
        self.wait_s = array("d")
        self.inbox_series = TimeSeries(profiler.max_points)
        self.by_tag: dict[str, list] = {}  # tag -> [n, busy_s, max_s]

    def queued(self, link_name: str, msg, depth: int) -> None:
        self.profiler.calls += 1
        now = perf_counter()
        self._received[id(msg)] = now
        self.inbox_series.add(now - self.profiler.t0, depth)

    def handled(self, link_name: str, msg, t_start: float, busy_s: float) -> None:
        self.profiler.calls += 1
        t_recv = self._received.pop(id(msg), None)
        if t_recv is not None and len(self.wait_s) < _MAX_SAMPLES:
            self.wait_s.append(t_start - t_recv)
        tag = getattr(msg, "TAG", type(msg).__name__)
        row = self.by_tag.get(tag)
        if row is None:
            row = self.by_tag[tag] = [0, 0.0, 0.0]
        row[0] += 1
        row[1] += busy_s
        if busy_s > row[2]:
            row[2] = busy_s


class _LoopClock(trio.abc.Instrument):
    """Wall time each actor's tasks held the event loop (task steps, not the waits between them).
    Tasks are attributed by name: an actor's serve, pump and work tasks start with its name; the
    rest (the job itself: training loop, host-side learning) count as ``job``."""

    def __init__(self, profiler: "Profiler") -> None:
        self.profiler = profiler
        self.loop_s: dict[str, float] = {}
        self.steps = 0
        self._owner: dict[int, str] = {}
        self._t: float | None = None  # None until a step has begun (it may be added mid-step)

    def before_task_step(self, task) -> None:
        self._t = perf_counter()

    def after_task_step(self, task) -> None:
        if self._t is None:
            return
        dt = perf_counter() - self._t
        self._t = None
        self.steps += 1
        owner = self._owner.get(id(task))
        if owner is None:
            head = task.name.split(".", 1)[0]
            owner = self._owner[id(task)] = head if head in _ACTOR_NAMES else "job"
        self.loop_s[owner] = self.loop_s.get(owner, 0.0) + dt

    def task_exited(self, task) -> None:
        self._owner.pop(id(task), None)


class Profiler:
    """Collects wall-clock measurements of the systems it is attached to (one after another, or
    several at once: their figures add up).

    detailed: attach the per-frame and per-message hooks (else only the always-on counters are
    read at the end). max_points: most points per time series.
    """

    def __init__(self, *, detailed: bool = True, max_points: int = 4096) -> None:
        self.detailed = detailed
        self.max_points = max_points
        self.systems: list = []
        self.t0 = perf_counter()
        self.t_end: float | None = None
        self.calls = 0
        self._links: list[_LinkProbe] = []
        self._actors: list[_ActorProbe] = []
        self._loop: _LoopClock | None = None
        self.hook_cost_s = _hook_cost_s() if detailed else 0.0

    # -- wiring -------------------------------------------------------------------------------
    def attach(self, system) -> None:
        """Hook into a system's links and actors (open_system calls this before starting them)."""
        if not self.systems:
            self.t0 = perf_counter()
        self.systems.append(system)
        if not self.detailed:
            return
        for link in system.links.values():
            link.probe = _LinkProbe(self, link)
            self._links.append(link.probe)
            if link.timeline is not None:
                link.timeline.keep_series()
        for actor in _actors_of(system):
            actor.probe = _ActorProbe(self, actor)
            self._actors.append(actor.probe)
        if self._loop is None:
            try:
                self._loop = _LoopClock(self)
                trio.lowlevel.add_instrument(self._loop)
            except RuntimeError:  # not inside trio.run
                self._loop = None

    def stop(self) -> None:
        """Stop measuring (the wall clock of the report ends here); detach the trio instrument."""
        if self.t_end is None:
            self.t_end = perf_counter()
        if self._loop is not None:
            try:
                trio.lowlevel.remove_instrument(self._loop)
            except (RuntimeError, KeyError):
                pass

    # -- the report ---------------------------------------------------------------------------
    def report(self) -> dict:
        """Tables, histograms and series of everything measured (plain data, JSON-ready)."""
        self.stop()
        wall = max(self.t_end - self.t0, 1e-12)
        loop_steps = self._loop.steps if self._loop is not None else 0
        overhead_s = (self.calls + 2 * loop_steps) * self.hook_cost_s
        out = {
            "detailed": self.detailed,
            "wall_s": wall,
            "overhead": {"hook_calls": self.calls, "loop_steps": loop_steps,
                         "hook_cost_us": self.hook_cost_s * 1e6, "estimated_s": overhead_s,
                         "fraction_of_wall": overhead_s / wall,
                         "how": "hook calls x the measured cost of one hook call (2 per loop step)"},
            "tables": {
                "traffic_by_type": self._traffic_by_type(),
                "hops": self._hops(),
                "actors": self._actors_table(wall),
            },
            "link_models": {},
            "histograms": {},
            "series": {},
        }
        for system in self.systems:
            for name, stats in system.link_models().items() if hasattr(system, "link_models") else ():
                out["link_models"][name] = stats
        if self.detailed:
            out["tables"]["handle_by_type"] = self._handle_by_type()
            out["histograms"] = self._histograms()
            out["series"] = self._series()
        return out

    def _links_by_name(self) -> dict[str, list]:
        by_name: dict[str, list] = {}
        for system in self.systems:
            for name, link in system.links.items():
                by_name.setdefault(name, []).append(link)
        return by_name

    def _traffic_by_type(self) -> list[dict]:
        rows: dict[tuple, list] = {}
        for name, links in self._links_by_name().items():
            for link in links:
                for d in ("down", "up"):
                    for tag, (m, b, e) in link.stats[d].by_tag.items():
                        row = rows.setdefault((name, d, tag), [0, 0, 0])
                        row[0] += m
                        row[1] += b
                        row[2] += e
        return [{"link": k[0], "direction": k[1], "type": k[2], "messages": m, "bytes": b, "events": e,
                 "bytes_per_message": b / m if m else 0.0} for k, (m, b, e) in sorted(rows.items())]

    def _hops(self) -> list[dict]:
        rows = []
        for name, links in self._links_by_name().items():
            for d in ("down", "up"):
                stats = [link.stats[d] for link in links]
                messages = sum(s.messages for s in stats)
                row = {"link": name, "direction": d, "messages": messages, "bytes": sum(s.bytes for s in stats),
                       "events": sum(s.events for s in stats),
                       "encode_us_per_msg": 1e6 * sum(s.encode_s for s in stats) / messages if messages else 0.0,
                       "decode_us_per_msg": 1e6 * sum(s.decode_s for s in stats) / max(messages, 1),
                       "codec_s": sum(s.encode_s + s.decode_s for s in stats),
                       "peak_depth": max(s.peak_depth for s in stats)}
                lat = [x for link in links if link.probe is not None for x in link.probe.latency_s[d]]
                if lat:
                    row.update({k: v * 1e6 for k, v in percentiles(lat, "wall", "_us").items()})
                    row["wall_max_us"] = max(lat) * 1e6
                    row["wall_mean_us"] = float(np.mean(lat)) * 1e6
                timelines = [link.timeline for link in links if link.timeline is not None]
                if timelines:
                    c = [t.counters[d] for t in timelines]
                    emu = [x for cc in c for x in cc.latencies_ticks]
                    row.update({k: v / TICKS_PER_US for k, v in percentiles(emu, "emu", "_us").items()})
                    row["emu_max_us"] = max(cc.latency_max_ticks for cc in c) / TICKS_PER_US
                    frames = sum(cc.frames for cc in c)
                    row["emu_mean_us"] = sum(cc.latency_sum_ticks for cc in c) / max(frames, 1) / TICKS_PER_US
                    row["emu_peak_queue"] = max(cc.peak_queue for cc in c)
                    row["emu_stalls"] = sum(cc.stalls for cc in c)
                    row["emu_dropped_events"] = sum(cc.dropped_events for cc in c)
                    row["emu_wire_bytes"] = sum(cc.wire_bytes for cc in c)
                rows.append(row)
        return rows

    def _actors_table(self, wall: float) -> list[dict]:
        rows = []
        loop = self._loop.loop_s if self._loop is not None else {}
        by_name: dict[str, list] = {}
        for system in self.systems:
            for actor in _actors_of(system):
                by_name.setdefault(actor.name, []).append(actor)
        names = list(by_name) + (["job"] if "job" in loop else [])
        for name in names:
            actors = by_name.get(name, [])
            busy = sum(a.busy_s for a in actors)
            row = {"actor": name, "handled": sum(a.handled for a in actors), "busy_s": busy,
                   "busy_fraction": busy / wall, "inbox_peak": max((a.inbox_peak for a in actors), default=0),
                   "bad_frames": sum(a.bad_frames for a in actors)}
            if self._loop is not None:
                row["loop_s"] = loop.get(name, 0.0)
                row["loop_fraction"] = row["loop_s"] / wall
            waits = [x for a in actors if a.probe is not None for x in a.probe.wait_s]
            if waits:
                row.update({k: v * 1e6 for k, v in percentiles(waits, "inbox_wait", "_us").items()})
            rows.append(row)
        return rows

    def _handle_by_type(self) -> list[dict]:
        rows: dict[tuple, list] = {}
        for probe in self._actors:
            for tag, (n, busy, mx) in probe.by_tag.items():
                row = rows.setdefault((probe.actor.name, tag), [0, 0.0, 0.0])
                row[0] += n
                row[1] += busy
                row[2] = max(row[2], mx)
        return [{"actor": a, "type": t, "messages": n, "busy_s": b, "busy_us_per_msg": 1e6 * b / n,
                 "busy_max_us": 1e6 * mx} for (a, t), (n, b, mx) in sorted(rows.items())]

    def _histograms(self) -> dict:
        wall, emu = {}, {}
        for name, links in self._links_by_name().items():
            for d in ("down", "up"):
                lat = [x * 1e6 for link in links if link.probe is not None for x in link.probe.latency_s[d]]
                if lat:
                    wall[f"{name}/{d}"] = _log_histogram(lat)
                ticks = [x / TICKS_PER_US for link in links if link.timeline is not None
                         for x in link.timeline.counters[d].latencies_ticks]
                if ticks:
                    emu[f"{name}/{d}"] = _log_histogram(ticks)
        return {"wall_latency_us": wall, "emulated_latency_us": emu}

    def _series(self) -> dict:
        depth, inbox, emu = {}, {}, {}
        for probe in self._links:
            for d, series in probe.depth_series.items():
                if series.t:
                    depth[f"{probe.link.name}/{d}"] = series.points()
            timeline = probe.link.timeline
            if timeline is not None:
                for d, c in timeline.counters.items():
                    if c.queue_series:
                        main = [[s / TICKS_PER_US, q] for s, q, run_time in c.queue_series if not run_time]
                        runs = [[s / TICKS_PER_US, q] for s, q, run_time in c.queue_series if run_time]
                        if main:
                            emu[f"{probe.link.name}/{d}"] = _thin(main, self.max_points)
                        if runs:
                            emu[f"{probe.link.name}/{d} (run time)"] = _thin(runs, self.max_points)
        for probe in self._actors:
            if probe.inbox_series.t:
                inbox[probe.actor.name] = probe.inbox_series.points()
        return {"link_buffer_depth": depth, "inbox_depth": inbox, "emulated_queue": emu,
                "units": {"link_buffer_depth": "wall s since start, frames", "inbox_depth": "wall s since start, messages",
                          "emulated_queue": "emulated us (system or run time), frames"}}


def _actors_of(system) -> list:
    return [a for a in (getattr(system, n, None) for n in _ACTOR_NAMES) if a is not None]


def _thin(points: list, max_points: int) -> list:
    if len(points) <= max_points:
        return points
    step = -(-len(points) // max_points)
    return points[::step]


def _log_histogram(values_us: list[float], per_decade: int = 10) -> dict:
    """Counts in log-spaced bins (``per_decade`` per factor 10), with exact min, max and mean."""
    v = np.asarray(values_us, np.float64)
    pos = v[v > 0]
    lo = math.floor(math.log10(pos.min()) * per_decade) / per_decade if pos.size else 0.0
    hi = math.ceil(math.log10(max(pos.max(), 10 ** (lo + 1 / per_decade))) * per_decade) / per_decade if pos.size else 1.0
    edges = 10.0 ** np.arange(lo, hi + 1e-9 + 1 / per_decade, 1 / per_decade)
    counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
    return {"edges_us": edges.tolist(), "counts": counts.tolist(), "n": int(v.size), "min_us": float(v.min()),
            "max_us": float(v.max()), "mean_us": float(v.mean())}


def _hook_cost_s(n: int = 20000) -> float:
    """Wall seconds of one probe hook call (the costlier of the per-frame hooks), best of 3."""

    class _Dummy:
        name = "x"
        timeline = None

    prof = Profiler.__new__(Profiler)
    prof.calls, prof.max_points, prof.t0 = 0, 4096, perf_counter()
    probe = _LinkProbe(prof, _Dummy())
    best = math.inf
    for _ in range(3):
        t0 = perf_counter()
        for _ in range(n):
            probe.hop("down", "spike_batch", 1e-5, None)
            probe.depth("down", 1)
        best = min(best, (perf_counter() - t0) / (2 * n))
    # the stamping in Link.track/arrived (a dict insert and pop, two perf_counter) costs about as much
    return best
