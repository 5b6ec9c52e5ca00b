"""Reliable delivery for the host link, after the hardware's HostARQ over UDP (bss2_facts.md §4).

A ``ReliableTransport`` wraps each end of a link whose frames may be lost, duplicated, reordered
or corrupted, and gives the layer above (the LinkEnd, hence the actors) every frame exactly once
and in order. Each frame of the layer above crosses inside a ``LinkFrame`` envelope (a message of
the catalogue, so the envelope is a valid frame with its own CRC) carrying:

- ``seq``: its sequence number, modulo ``2**seq_bits``; the sender keeps at most ``window``
  frames unacknowledged (HostARQ: 128) and retransmits each one whose acknowledgement has not come
  after a retransmission timeout (doubling per try up to ``max_rto_s``);
- ``ack`` and ``sack``: the next sequence number this end expects (cumulative) and a bitmap of the
  frames after it that it already holds (selective), piggybacked on data or sent alone.

The receiver keeps frames that arrive early (at most ``window`` frames and ``max_early_bytes``),
discards duplicates and frames that fail to decode (a CRC mismatch is a loss, repaired by
retransmission), and re-acknowledges duplicates so that a lost acknowledgement is repaired too.

No task of its own: the actor's pump always waits in ``receive_frame``, and while it waits a
control loop in the same call sends acknowledgements and retransmissions and watches the link
timeout. So the receive path never blocks on a send, and a stopped actor leaves nothing running.

Timing only ever decides *when* a frame is (re)sent, never *what* is delivered: the frames
delivered and their order are those sent, so results never depend on the wall clock. The one
thing a timer ends is the link: frames unacknowledged for longer than ``link_timeout_s`` raise
``LinkDownError`` naming the last frame confirmed.

The hardware numbers its frames with 8 bits; the default here is 16, because the fault injector
can hold frames back, and a sequence space of ``2 * window`` is only safe if no frame outlives
the time the sender needs to wrap around it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import trio

from ..protocol import DEFAULT_MAX_FRAME_BYTES, LinkFrame, NeurosplitError, RemoteProtocolError, decode, encode
from ._transport import FrameTransport

__all__ = ["ReliableConfig", "ReliableStats", "ReliableTransport", "LinkDownError", "reliable_wrapper",
           "describe_frame"]

_ENVELOPE_BYTES = 4096  # room for the envelope's own header above the largest enclosed frame
_NO_BYTES = b""
_EMPTY = np.zeros(0, np.uint8)
_TICK_S = 0.1  # the watchdog wakes at least this often
_STALL_S = 1.0  # a wake-up this much later than planned: the event loop stood still


class LinkDownError(NeurosplitError):
    """A reliable link gave up: frames stayed unacknowledged for longer than the link timeout."""


@dataclass(frozen=True)
class ReliableConfig:
    """window: frames in flight unacknowledged (HostARQ: 128). seq_bits: width of sequence
    numbers on the wire; 2**seq_bits must be >= 2 * window. rto_s: first retransmission timeout,
    doubled per retry up to max_rto_s. ack_delay_s: how long an acknowledgement waits for data to
    ride on, or for more frames to acknowledge at once (HostARQ: 500 us). link_timeout_s: unacknowledged this long, the link is
    declared down. max_frame_bytes: largest frame of the layer above. max_early_bytes: most bytes
    of frames held for a gap to close; beyond it an early frame is dropped (it comes again), so a
    peer cannot make this end hold more."""

    window: int = 128
    seq_bits: int = 16
    rto_s: float = 0.02
    max_rto_s: float = 0.5
    ack_delay_s: float = 0.001
    link_timeout_s: float = 10.0
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_early_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if not 2 <= self.seq_bits <= 32:
            raise ValueError(f"seq_bits must lie in [2, 32], got {self.seq_bits}")
        if not 1 <= self.window <= 1 << (self.seq_bits - 1):
            raise ValueError(f"window must lie in [1, {1 << (self.seq_bits - 1)}] for {self.seq_bits}-bit "
                             f"sequence numbers, got {self.window}")
        if not (self.rto_s > 0 and math.isfinite(self.rto_s)):
            raise ValueError(f"rto_s must be > 0, got {self.rto_s}")
        if not self.max_rto_s >= self.rto_s:
            raise ValueError(f"max_rto_s must be >= rto_s ({self.rto_s}), got {self.max_rto_s}")
        if not 0 <= self.ack_delay_s < self.rto_s:
            raise ValueError(f"ack_delay_s must lie in [0, rto_s = {self.rto_s}), got {self.ack_delay_s}")
        if self.max_early_bytes < 0:
            raise ValueError(f"max_early_bytes must be >= 0, got {self.max_early_bytes}")
        if not self.link_timeout_s > 0:
            raise ValueError(f"link_timeout_s must be > 0, got {self.link_timeout_s}")


@dataclass
class ReliableStats:
    """Counters of one end. data_frames: frames of the layer above sent (first transmissions);
    retransmissions; acks_sent: pure acknowledgements; wire_frames, wire_bytes: envelopes sent,
    all included; delivered: frames handed up; duplicates_discarded, out_of_order (held until the
    gap closed), corrupt_discarded (failed to decode: CRC), invalid_discarded (not an envelope,
    or out of range), early_discarded (would have exceeded max_early_bytes); peak_in_flight:
    most frames unacknowledged at once; stalls: times this end's
    own event loop stood still longer than a timeout (not blamed on the link)."""

    data_frames: int = 0
    retransmissions: int = 0
    acks_sent: int = 0
    wire_frames: int = 0
    wire_bytes: int = 0
    delivered: int = 0
    duplicates_discarded: int = 0
    out_of_order: int = 0
    corrupt_discarded: int = 0
    invalid_discarded: int = 0
    early_discarded: int = 0
    peak_in_flight: int = 0
    stalls: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class _Outstanding:
    __slots__ = ("frame", "due", "tries", "sacked")

    def __init__(self, frame: bytes, due: float) -> None:
        self.frame = frame
        self.due = due
        self.tries = 1
        self.sacked = False


class ReliableTransport:
    """One end of a reliable link over ``inner`` (any FrameTransport, faulty or not). ``name``
    says which end, for errors ("host link, host side")."""

    def __init__(self, inner: FrameTransport, config: ReliableConfig = ReliableConfig(), name: str = "link",
                 stats: ReliableStats | None = None) -> None:
        self.inner = self._inner = inner
        self.config = config
        self.name = name
        self.stats = stats if stats is not None else ReliableStats()
        self._mod = 1 << config.seq_bits
        self._max_wire = config.max_frame_bytes + _ENVELOPE_BYTES
        self._sack_bytes = -(-(config.window - 1) // 8)
        self._send_lock = trio.Lock()
        # sender: absolute sequence numbers; the wire carries them modulo self._mod
        self._base = 0  # oldest unacknowledged
        self._next = 0  # next to assign
        self._unacked: dict[int, _Outstanding] = {}
        self._room = trio.Event()
        self._progress_at = 0.0
        self._last_confirmed: bytes | None = None
        # receiver
        self._expected = 0
        self._early: dict[int, bytes] = {}
        self._early_bytes = 0
        self._ready: deque[bytes] = deque()
        self._ack_due = False
        self._ack_at = 0.0
        self._end: BaseException | None = None
        self._failure: LinkDownError | None = None
        self._last_tick: float | None = None
        self._kick = trio.Event()  # set when a wire frame arrived: wakes the control loop
        self._idle = False
        self._receiving: trio.CancelScope | None = None

    # -- FrameTransport ---------------------------------------------------------------------
    def buffer_used(self) -> int:
        return self._inner.buffer_used()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def send_frame(self, frame: bytes) -> None:
        """Send one frame of the layer above; waits while ``window`` frames are unacknowledged."""
        self._raise_if_down()
        while self._next - self._base >= self.config.window:
            await self._room.wait()
            self._raise_if_down()
        seq = self._next
        self._next += 1
        now = trio.current_time()
        if not self._unacked:
            self._progress_at = now  # the wait for an acknowledgement starts now
        out = self._unacked[seq] = _Outstanding(bytes(frame), now + self._rto(1))
        self.stats.data_frames += 1
        self.stats.peak_in_flight = max(self.stats.peak_in_flight, self._next - self._base)
        await self._send_wire(seq, out.frame)

    async def receive_frame(self) -> bytes:
        """The next frame of the layer above, in order, exactly once."""
        if not self._ready:
            self._raise_if_down()
            if self._end is None:
                await self._receive_watching()
            if not self._ready:
                raise self._end
        self.stats.delivered += 1
        return self._ready.popleft()

    # -- the wire ----------------------------------------------------------------------------
    async def _receive_watching(self) -> None:
        """Receive wire frames until one is ready for the layer above and the control loop has
        answered what arrived (so acknowledgements flow under steady traffic too). The control
        loop and the watchdog run meanwhile; the receiving never stops while they send, so two
        ends that both send to each other never wait on each other."""
        self._idle = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._control)
            nursery.start_soon(self._watchdog, nursery.cancel_scope)
            while not (self._ready and self._idle):
                with trio.CancelScope() as self._receiving:
                    try:
                        raw = await self._inner.receive_frame()
                    except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                        self._end = exc
                        break
                    self._on_wire(raw)
                    self._kick.set()
                self._receiving = None
            self._receiving = None
            nursery.cancel_scope.cancel()
        self._raise_if_down()

    async def _send_wire(self, seq: int, payload: bytes) -> None:
        expected = self._expected
        env = LinkFrame(seq=seq % self._mod if seq >= 0 else -1, ack=expected % self._mod, sack=self._sack(),
                        payload=np.frombuffer(payload, np.uint8))
        wire = encode(env)
        async with self._send_lock:
            await self._inner.send_frame(wire)
        self.stats.wire_frames += 1
        self.stats.wire_bytes += len(wire)
        if self._expected == expected:
            self._ack_due = False  # the acknowledgement rode along

    def _sack(self) -> np.ndarray:
        if not self._early:
            return _EMPTY
        mask = 0
        for seq in self._early:  # all within the window, so after self._expected
            mask |= 1 << (seq - self._expected - 1)
        return np.frombuffer(mask.to_bytes(self._sack_bytes, "little"), np.uint8)

    def _on_wire(self, raw: bytes) -> None:
        try:
            env = decode(raw, self._max_wire)
        except RemoteProtocolError:
            self.stats.corrupt_discarded += 1  # a CRC mismatch or a mangled frame: a loss
            return
        if type(env) is not LinkFrame or env.seq >= self._mod or env.ack >= self._mod:
            self.stats.invalid_discarded += 1
            return
        self._on_ack(env.ack, env.sack)
        if env.seq >= 0:
            self._on_data(env.seq, env.payload)

    def _on_ack(self, ack: int, sack: np.ndarray) -> None:
        ahead = (ack - self._base) % self._mod
        if ahead > self._next - self._base:  # an old acknowledgement, overtaken: nothing new
            return
        if ahead:
            for seq in range(self._base, self._base + ahead):
                out = self._unacked.pop(seq)
                self._last_confirmed = out.frame
            self._base += ahead
            self._progress_at = trio.current_time()
            self._room.set()
            self._room = trio.Event()
        if sack.size and self._unacked:
            mask, i = int.from_bytes(sack.tobytes(), "little"), 0
            while mask:
                if mask & 1 and (out := self._unacked.get(self._base + 1 + i)) is not None:
                    out.sacked = True
                mask >>= 1
                i += 1

    def _on_data(self, seq: int, payload: np.ndarray) -> None:
        if not self._ack_due:  # every data frame is answered, duplicates too (their ack may be lost)
            self._ack_due = True
            self._ack_at = trio.current_time() + self.config.ack_delay_s
        offset = (seq - self._expected) % self._mod
        if offset >= self.config.window:  # behind the window: delivered long ago
            self.stats.duplicates_discarded += 1
            return
        seq = self._expected + offset
        if seq in self._early:
            self.stats.duplicates_discarded += 1
            return
        if offset:
            if self._early_bytes + payload.nbytes > self.config.max_early_bytes:
                self.stats.early_discarded += 1  # as if lost: the sender sends it again
                return
            self.stats.out_of_order += 1
            self._early[seq] = payload.tobytes()
            self._early_bytes += payload.nbytes
            return
        self._ready.append(payload.tobytes())
        self._expected += 1
        while self._expected in self._early:
            frame = self._early.pop(self._expected)
            self._early_bytes -= len(frame)
            self._ready.append(frame)
            self._expected += 1

    # -- timers ------------------------------------------------------------------------------
    def _rto(self, tries: int) -> float:
        return min(self.config.rto_s * 2.0 ** (tries - 1), self.config.max_rto_s)

    async def _control(self) -> None:
        """Acknowledge what arrived and retransmit what is overdue, until cancelled; once nothing
        is left to send and a frame waits for the layer above, end the receiving."""
        while True:
            self._idle = False
            now = trio.current_time()
            if self._ack_due and now >= self._ack_at:
                await self._send_wire(-1, _NO_BYTES)
                self.stats.acks_sent += 1
            for seq in sorted(self._unacked):
                out = self._unacked.get(seq)
                if out is None or out.sacked or out.due > now:
                    continue
                out.tries += 1
                out.due = now + self._rto(out.tries)
                self.stats.retransmissions += 1
                await self._send_wire(seq, out.frame)
            if self._ack_due and trio.current_time() >= self._ack_at:  # more arrived while we sent
                continue
            self._idle = True
            if self._ready and self._receiving is not None:
                self._receiving.cancel()
            wake = min([o.due for o in self._unacked.values() if not o.sacked] + [now + self.config.rto_s]
                       + ([self._ack_at] if self._ack_due else []))
            with trio.move_on_at(wake):
                await self._kick.wait()
            self._kick = trio.Event()

    async def _watchdog(self, scope: trio.CancelScope) -> None:
        """Declare the link down once frames stay unacknowledged longer than the link timeout.

        It never sends, so the gaps between its wake-ups measure this end's own event loop: a gap
        far longer than it slept means the loop stood still (a long computation in the same
        process), and that time is not held against the link."""
        timeout = self.config.link_timeout_s
        while True:
            now = trio.current_time()
            if self._last_tick is not None and now - self._last_tick > _TICK_S + _STALL_S:
                self.stats.stalls += 1
                self._progress_at = min(now, self._progress_at + (now - self._last_tick))
            self._last_tick = now
            if self._unacked and now - self._progress_at > timeout:
                self._failure = LinkDownError(self._down_message(now))
                scope.cancel()
                return
            await trio.sleep(_TICK_S if not self._unacked else
                             max(0.0, min(_TICK_S, self._progress_at + timeout - now + 1e-6)))

    def _raise_if_down(self) -> None:
        if self._failure is not None:
            raise LinkDownError(str(self._failure))

    def _down_message(self, now: float) -> str:
        oldest = min(self._unacked)
        out = self._unacked[oldest]
        confirmed = (f"frame {self._base - 1} ({describe_frame(self._last_confirmed)})"
                     if self._last_confirmed is not None else "nothing yet")
        return (f"{self.name}: no acknowledgement for {now - self._progress_at:.1f} s, longer than the link "
                f"timeout of {self.config.link_timeout_s:g} s (link cut or peer gone); last confirmed: "
                f"{confirmed}; {len(self._unacked)} frame(s) unconfirmed from frame {oldest} "
                f"({describe_frame(out.frame)}, sent {out.tries} times)")


def describe_frame(frame: bytes | None) -> str:
    """'train_step, run 13': what a frame holds, for messages about the link."""
    if frame is None:
        return "none"
    try:
        msg = decode(frame)
    except RemoteProtocolError:
        return f"{len(frame)} bytes that do not decode"
    parts = [msg.TAG]
    for name in ("run_id", "request_id"):
        if hasattr(msg, name):
            parts.append(f"{name.replace('_id', '')} {getattr(msg, name)}")
    return ", ".join(parts)


def reliable_wrapper(config: ReliableConfig = ReliableConfig(), link: str = "host"):
    """(wrap, stats): ``wrap(a, b)`` puts reliable delivery on both ends of a link for open_system;
    ``stats`` maps 'host_side' and 'board_side' to each end's counters."""
    stats = {"host_side": ReliableStats(), "board_side": ReliableStats()}

    def wrap(a: FrameTransport, b: FrameTransport) -> tuple[FrameTransport, FrameTransport]:
        return (ReliableTransport(a, config, f"{link} link, host side", stats["host_side"]),
                ReliableTransport(b, config, f"{link} link, board side", stats["board_side"]))

    return wrap, stats
