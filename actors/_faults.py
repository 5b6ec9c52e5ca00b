"""Fault injection: links that drop, duplicate, reorder, delay or corrupt frames, or go dead a while.

A fault wrapper sits on the receiving side of each direction of a link: frames leave the sender
untouched (and are counted there by its LinkEnd), and the receiver gets what the faulty wire made
of them. Every decision comes from a generator seeded by (seed, link, direction) and drawn a fixed
number of times per frame in arrival order, so the same frames meet the same faults in every run.

Two fault models, by the kind of link (docs/faults.md):

- the network link (``host``: UDP through switches, under reliable delivery, actors/_reliable.py):
  any frame can be dropped, duplicated, held back behind the next one (reorder), delayed,
  corrupted (bits flipped; the CRC catches it) or lost while the link is cut.
- the point-to-point links (``chip``: serial event lanes on the board, no retransmission; ``ppu``
  and ``synram``: buses on the die): a wire neither duplicates nor reorders, and the board's
  control path is reliable; what the chip link loses is spike events. A dropped, corrupted or cut
  event frame loses its events while its time marker (the horizon) still arrives, because the
  hardware's clock does not ride on event packets; control frames pass. Every event lost there
  is counted by run and reason (``chip_down_fault_drop``, ``chip_up_fault_corrupt``, ...), added
  to the run's RunComplete as that passes the link and to System.dropped(). On ``ppu`` and
  ``synram`` only delays are modelled.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import trio

from ..protocol import RemoteProtocolError, RunComplete, SpikeBatch, decode, encode
from ._transport import FrameTransport

__all__ = ["FaultSpec", "FaultCounts", "LinkFaults", "FaultyTransport", "parse_faults", "fault_wrapper",
           "link_fault_drops", "FAULT_KINDS", "NETWORK_LINKS", "FAULT_LINKS"]

FAULT_KINDS = ("drop", "dup", "reorder", "delay", "corrupt")
"""Per-frame faults, each with a rate in [0, 1]."""

FAULT_LINKS = ("host", "chip", "ppu", "synram")
NETWORK_LINKS = ("host",)
"""Links that may duplicate and reorder (a network); the others are point-to-point."""

_EVENT_LOSS_LINKS = ("host", "chip")
_SMALL_FRAME = 4096  # a RunComplete is far smaller; larger frames are not looked into
_STREAM = 0xFA  # keeps fault draws apart from every other use of the seed


@dataclass(frozen=True)
class FaultSpec:
    """What a link does wrong. Rates are probabilities per frame, in [0, 1].

    drop: lose the frame. dup: deliver it twice. reorder: hold it back until the next frame has
    been delivered (or hold_s seconds pass with none). delay: deliver it delay_s seconds late;
    frames behind it wait (order is kept). corrupt: flip 1 to 3 bits anywhere in the frame.
    cut_at, cut_s: once cut_at frames (counted in the down direction) have reached the wire, the
    link loses everything in both directions for cut_s seconds; cut_at -1: never.
    seed: the fault generator's seed (None: the system's seed). direction: 'down', 'up' or 'both'.
    """

    drop: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    corrupt: float = 0.0
    delay_s: float = 0.002
    hold_s: float = 0.02
    cut_at: int = -1
    cut_s: float = 0.0
    seed: int | None = None
    direction: str = "both"

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            rate = getattr(self, kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{kind} must lie in [0, 1], got {rate}")
        if not (self.delay_s >= 0 and math.isfinite(self.delay_s)):
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s}")
        if not (self.hold_s > 0 and math.isfinite(self.hold_s)):
            raise ValueError(f"hold_s must be > 0, got {self.hold_s}")
        if self.cut_at < -1:
            raise ValueError(f"cut_at must be >= 0 (or -1: never), got {self.cut_at}")
        if not (self.cut_s >= 0 and math.isfinite(self.cut_s)):
            raise ValueError(f"cut_s must be >= 0, got {self.cut_s}")
        if self.direction not in ("down", "up", "both"):
            raise ValueError(f"direction must be 'down', 'up' or 'both', got {self.direction!r}")

    @property
    def active(self) -> bool:
        """Whether this spec injects anything at all."""
        return any(getattr(self, k) > 0 for k in FAULT_KINDS) or (self.cut_at >= 0 and self.cut_s > 0)

    @property
    def loses_frames(self) -> bool:
        """Whether frames can go missing, twice or out of order (what reliable delivery repairs)."""
        return self.drop > 0 or self.dup > 0 or self.reorder > 0 or self.corrupt > 0 or (self.cut_at >= 0 and self.cut_s > 0)

    def check_link(self, link: str) -> None:
        """Refuse faults the link cannot have, naming why."""
        if link not in FAULT_LINKS:
            raise ValueError(f"unknown link {link!r}, expected one of {', '.join(FAULT_LINKS)}")
        if link not in NETWORK_LINKS and (self.dup or self.reorder):
            raise ValueError(f"{link}: dup and reorder happen on a network ({', '.join(NETWORK_LINKS)}); "
                             "a point-to-point link neither duplicates nor reorders")
        if link not in _EVENT_LOSS_LINKS and (self.drop or self.corrupt or self.cut_at >= 0):
            raise ValueError(f"{link}: only delay is modelled on the on-chip buses ppu and synram")


@dataclass
class FaultCounts:
    """What one direction of a faulty link did. frames: frames that reached the wire; the rest
    count injected faults by kind. On a point-to-point link, events_lost counts the spike events
    lost by drop, corrupt and cut, and spared the fault draws that hit a control frame (not
    applied: the control path is reliable)."""

    frames: int = 0
    drop: int = 0
    dup: int = 0
    reorder: int = 0
    delay: int = 0
    corrupt: int = 0
    cut: int = 0
    events_lost: int = 0
    spared: int = 0
    undetected_corruption: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class LinkFaults:
    """The faults of one link: its spec, its generators and counters per direction, its cut."""

    def __init__(self, link: str, spec: FaultSpec, seed: int = 0) -> None:
        spec.check_link(link)
        self.link = link
        self.spec = spec
        self.network = link in NETWORK_LINKS
        base = spec.seed if spec.seed is not None else seed
        index = FAULT_LINKS.index(link)
        self.rng = {d: np.random.default_rng([int(base), _STREAM, index, i]) for i, d in enumerate(("down", "up"))}
        self.counts = {"down": FaultCounts(), "up": FaultCounts()}
        self.dropped_total: dict[str, int] = {}  # events lost, by reason ("chip_down_fault_drop", ...)
        self._run_drops: dict[int, dict[str, int]] = {}  # per run, until its RunComplete passes
        self._cut_until = -math.inf

    def arrive(self, direction: str) -> bool:
        """Count a frame reaching the wire; True if the link is cut right now."""
        self.counts[direction].frames += 1
        now = trio.current_time()
        if direction == "down" and self.counts["down"].frames == self.spec.cut_at + 1 and self.spec.cut_s > 0:
            self._cut_until = now + self.spec.cut_s
        return now < self._cut_until

    def applies(self, direction: str) -> bool:
        return self.spec.direction in (direction, "both")

    def lose(self, run_id: int, direction: str, kind: str, n_events: int) -> None:
        """Count ``n_events`` spike events of run ``run_id`` lost to fault ``kind``."""
        reason = f"{self.link}_{direction}_fault_{kind}"
        self.dropped_total[reason] = self.dropped_total.get(reason, 0) + n_events
        run = self._run_drops.setdefault(run_id, {})
        run[reason] = run.get(reason, 0) + n_events

    def account(self, frame: bytes) -> bytes:
        """The frame, or, if it is the RunComplete of a run that lost events here, the same with
        those losses added to its ``dropped`` map (each event of a run passes this link before its
        RunComplete does, so the map is then complete)."""
        if not self._run_drops or len(frame) > _SMALL_FRAME:
            return frame
        try:
            msg = decode(frame)
        except RemoteProtocolError:
            return frame
        if not isinstance(msg, RunComplete) or msg.run_id not in self._run_drops:
            return frame
        dropped = dict(msg.dropped)
        for reason, n in self._run_drops.pop(msg.run_id).items():
            dropped[reason] = dropped.get(reason, 0) + n
        return encode(RunComplete(run_id=msg.run_id, n_samples=msg.n_samples, events_in=msg.events_in,
                                  events_out=msg.events_out, dropped=dropped))

    def statistics(self) -> dict:
        return {d: c.as_dict() for d, c in self.counts.items()}


class FaultyTransport:
    """The receiving side of one direction of a faulty link; sending passes straight through."""

    def __init__(self, inner: FrameTransport, faults: LinkFaults, direction: str) -> None:
        self.inner = inner
        self._inner = inner
        self.faults = self._faults = faults
        self._dir = direction
        self._rng = faults.rng[direction]
        self._counts = faults.counts[direction]
        self._ready: deque[tuple[bytes, bool]] = deque()  # (frame, delayed)
        self._held: list[tuple[bytes, bool]] | None = None
        self._end: BaseException | None = None

    async def send_frame(self, frame: bytes) -> None:
        await self._inner.send_frame(frame)

    def buffer_used(self) -> int:
        return self._inner.buffer_used()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def receive_frame(self) -> bytes:
        while not self._ready:
            if self._end is not None:
                raise self._end
            try:
                if self._held is None:
                    frame = await self._inner.receive_frame()
                else:
                    frame = None
                    with trio.move_on_after(self._faults.spec.hold_s):
                        frame = await self._inner.receive_frame()
                    if frame is None:  # nothing followed the held frame in time: let it go
                        self._release_held()
                        continue
            except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                self._end = exc
                self._release_held()
                continue
            self._arrive(frame)
        frame, delayed = self._ready[0]
        if delayed:  # cancelled while it sleeps, the frame stays first in line
            await trio.sleep(self._faults.spec.delay_s)
        self._ready.popleft()
        return frame

    def _release_held(self) -> None:
        if self._held is not None:
            self._ready.extend(self._held)
            self._held = None

    def _arrive(self, frame: bytes) -> None:
        spec, counts = self._faults.spec, self._counts
        cut = self._faults.arrive(self._dir)
        if self._faults.applies(self._dir):
            u = self._rng.random(len(FAULT_KINDS))  # always five draws: decisions stay aligned with frames
            drop, dup, reorder, delay, corrupt = (float(x) < getattr(spec, k) for x, k in zip(u, FAULT_KINDS))
        else:
            drop = dup = reorder = delay = corrupt = False
        if not self._faults.network:
            self._arrive_point_to_point(frame, cut, drop, corrupt, delay)
            return
        if cut or drop:
            counts.cut += cut
            counts.drop += not cut
            return
        if corrupt:
            frame = self._flip_bits(frame)
            counts.corrupt += 1
        copies = [(frame, delay)] + ([(frame, False)] if dup else [])
        counts.dup += dup
        counts.delay += delay
        if reorder and self._held is None:
            counts.reorder += 1
            self._held = copies
            return
        self._ready.extend(copies)
        self._release_held()

    def _arrive_point_to_point(self, frame: bytes, cut: bool, drop: bool, corrupt: bool, delay: bool) -> None:
        counts = self._counts
        kind = "cut" if cut else "drop" if drop else "corrupt" if corrupt else None
        if kind is not None:
            try:
                msg = decode(frame)
            except RemoteProtocolError:  # already broken upstream: nothing of ours to model
                msg = None
            if isinstance(msg, SpikeBatch) and msg.n_events():
                if kind == "corrupt" and self._undetected(frame):
                    counts.undetected_corruption += 1  # pass the original: we only model detected corruption
                else:
                    setattr(counts, kind, getattr(counts, kind) + 1)
                    counts.events_lost += msg.n_events()
                    self._faults.lose(msg.run_id, self._dir, kind, msg.n_events())
                    frame = encode(SpikeBatch(run_id=msg.run_id, t_ticks=np.zeros(0, np.int64),
                                              label=np.zeros(0, np.uint16), sample=np.zeros(0, np.uint32),
                                              horizon_ticks=msg.horizon_ticks))
            elif msg is not None and not isinstance(msg, SpikeBatch):
                counts.spared += 1
        counts.delay += delay
        self._ready.append((self._faults.account(frame), delay))

    def _flip_bits(self, frame: bytes) -> bytes:
        bad = bytearray(frame)
        n_bits = 1 + int(self._rng.integers(0, 3))
        for pos in self._rng.integers(0, 8 * len(bad), n_bits):
            bad[pos // 8] ^= 1 << int(pos % 8)
        return bytes(bad)

    def _undetected(self, frame: bytes) -> bool:
        """Flip bits as the wire would and ask the decoder whether the CRC caught it."""
        try:
            decode(self._flip_bits(frame))
        except RemoteProtocolError:
            return False
        return True


def fault_wrapper(link: str, spec: FaultSpec, seed: int = 0):
    """(wrap, faults): ``wrap(a, b)`` puts faults under both ends of link ``link`` (a: host side,
    receives ``up``; b: chip side, receives ``down``) for open_system; ``faults`` holds the counters."""
    faults = LinkFaults(link, spec, seed)

    def wrap(a: FrameTransport, b: FrameTransport) -> tuple[FrameTransport, FrameTransport]:
        # both sides, whatever the direction: the chip side's RunComplete carries the run's losses
        return FaultyTransport(a, faults, "up"), FaultyTransport(b, faults, "down")

    return wrap, faults


def link_fault_drops(link) -> dict[str, int]:
    """Events the fault injection under ``link`` (a Link) lost, by reason; empty without faults."""
    for end in (link.a, link.b):
        transport = end.transport
        while transport is not None:
            faults = getattr(transport, "faults", None)
            if isinstance(faults, LinkFaults):
                return faults.dropped_total
            transport = getattr(transport, "inner", None)
    return {}


# -- the command-line syntax and config files ------------------------------------------------
_KEYS = {f.name: f.type for f in fields(FaultSpec)}
_INT_KEYS = ("cut_at", "seed")


def parse_faults(text: str) -> dict[str, FaultSpec]:
    """Fault specs by link from ``host:drop=0.01,dup=0.01;chip:drop=0.001`` or from a .toml or
    .json file that maps link names to tables of the same keys (``[host] drop = 0.01``). A
    top-level ``seed`` in a file applies to every link that gives none. Errors name the link,
    the key and the bound."""
    text = text.strip()
    path = Path(text)
    if text.endswith((".toml", ".json")) or (text and ":" not in text and path.is_file()):
        return _from_file(path)
    out: dict[str, FaultSpec] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        link, sep, body = part.partition(":")
        link = link.strip()
        if not sep:
            raise ValueError(f"--faults: expected LINK:KEY=VALUE,..., got {part!r}")
        items = {}
        for item in filter(None, (i.strip() for i in body.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"--faults {link}: expected KEY=VALUE, got {item!r}")
            items[key.strip()] = value.strip()
        out[link] = _spec(link, items)
    return out


def _from_file(path: Path) -> dict[str, FaultSpec]:
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ValueError(f"--faults: cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--faults: {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--faults: {path} must map link names to tables of faults")
    seed = data.pop("seed", None)
    out = {}
    for link, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"--faults {link}: expected a table of KEY = VALUE, got {type(table).__name__}")
        if seed is not None:
            table = {"seed": seed, **table}
        out[link] = _spec(link, table)
    return out


def _spec(link: str, items: dict) -> FaultSpec:
    if link not in FAULT_LINKS:
        raise ValueError(f"--faults: unknown link {link!r}, expected one of {', '.join(FAULT_LINKS)}")
    kwargs = {}
    for key, value in items.items():
        if key not in _KEYS:
            raise ValueError(f"--faults {link}: unknown key {key!r}, expected one of {', '.join(_KEYS)}")
        try:
            if key == "direction":
                kwargs[key] = str(value)
            elif key in _INT_KEYS:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                kwargs[key] = int(value)
            else:
                kwargs[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"--faults {link}: {key} must be a {'whole ' if key in _INT_KEYS else ''}number, "
                             f"got {value!r}") from None
    try:
        spec = FaultSpec(**kwargs)
        spec.check_link(link)
    except ValueError as exc:
        raise ValueError(f"--faults {link}: {exc}".replace(f"{link}: {link}: ", f"{link}: ")) from None
    return spec
