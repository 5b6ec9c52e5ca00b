"""The actor base: one task drains each inbound link into the inbox, one task handles the inbox.

Receiving never waits on anything but the link itself, so an actor always drains its inbound
links, whatever its handler is blocked on; that breaks the cycle host -> router -> core -> PPU ->
router -> host of bounded links (DESIGN.md, "Messages, batching and flow control"). The inbox is
not bounded by a number: what bounds it is the host's window of runs in flight, and its peak depth
is reported so that a test can check it.
"""

from __future__ import annotations

import math
from time import perf_counter

import structlog
import trio

from ..protocol import Error, Message, RemoteProtocolError, Shutdown
from ._link import LinkEnd
from ._transport import buffered

__all__ = ["Actor", "ActorFailed", "BadFrame"]


class ActorFailed(Exception):
    """An actor stopped with an error; ``actor`` names it and ``__cause__`` holds the error."""

    def __init__(self, actor: str, cause: BaseException) -> None:
        self.actor = actor
        super().__init__(f"actor {actor!r} failed: {type(cause).__name__}: {cause}")


class BadFrame:
    """Inbox item standing for a frame that failed to decode on ``link``."""

    __slots__ = ("error",)

    def __init__(self, error: RemoteProtocolError) -> None:
        self.error = error


STOP = object()
"""Inbox item that ends the serve loop once everything queued before it has been handled (a pump
task's way to stop the actor)."""


class Actor:
    """Base class. Subclasses implement ``handle(link_name, msg)`` and may override ``on_bad_frame``."""

    name = "actor"

    def __init__(self, links: dict[str, LinkEnd]) -> None:
        self.links = links
        self.log = structlog.get_logger().bind(actor=self.name)
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[tuple[str, object]](math.inf)
        self._inbox = buffered(self._inbox_send)  # len(): messages waiting in the inbox
        self.inbox_peak = 0
        self.bad_frames = 0
        self._stopping = False
        self.handled = 0
        self.busy_s = 0.0  # wall seconds inside handle(): its own work, and what it awaits (threads, sends)
        self.probe = None  # a profiler's per-actor hook (actors/_profile.py), None when off

    async def serve(self) -> None:
        """Serve until a Shutdown has been handled or every inbound link has closed."""
        try:
            async with trio.open_nursery() as nursery:
                self._open_pumps = len(self.links)
                for link_name, end in self.links.items():
                    nursery.start_soon(self._pump, link_name, end, name=f"{self.name}.pump.{link_name}")
                nursery.start_soon(self.work, name=f"{self.name}.work")
                async for link_name, item in self._inbox_recv:
                    if item is STOP:
                        break
                    if isinstance(item, BadFrame):
                        self.bad_frames += 1
                        self.log.warning("bad_frame", link=link_name, error=str(item.error))
                        await self.on_bad_frame(link_name, item.error)
                        continue
                    t0 = perf_counter()
                    await self.handle(link_name, item)
                    busy = perf_counter() - t0
                    self.busy_s += busy
                    self.handled += 1
                    if self.probe is not None:
                        self.probe.handled(link_name, item, t0, busy)
                    if self._stopping:
                        break
                nursery.cancel_scope.cancel()
        except Exception as exc:
            cause = _first_leaf(exc)
            raise ActorFailed(self.name, cause) from cause
        finally:
            for end in self.links.values():
                with trio.CancelScope(shield=True):
                    await end.aclose()

    async def _pump(self, link_name: str, end: LinkEnd) -> None:
        try:
            await self._pump_until_closed(link_name, end)
        finally:
            self._open_pumps -= 1
            if self._open_pumps == 0:  # no more input can come: let the serve loop finish
                self._inbox_send.close()

    async def _pump_until_closed(self, link_name: str, end: LinkEnd) -> None:
        while True:
            try:
                msg = await end.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except RemoteProtocolError as exc:
                self._inbox_send.send_nowait((link_name, BadFrame(exc)))
                continue
            self._inbox_send.send_nowait((link_name, msg))
            depth = len(self._inbox)
            if depth > self.inbox_peak:
                self.inbox_peak = depth
            if self.probe is not None:
                self.probe.queued(link_name, msg, depth)

    async def handle(self, link_name: str, msg: Message) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def work(self) -> None:
        """Optional second task for jobs that wait on replies; cancelled when serving ends."""

    async def on_bad_frame(self, link_name: str, error: RemoteProtocolError) -> None:
        """Answer a frame that did not decode: the peer gets an Error naming the fault, and the
        actor goes on serving; everything accepted before is kept."""
        await self.links[link_name].send(Error(fault="remote", message=str(error), in_reply_to="frame"))

    def stop(self) -> None:
        """Leave the serve loop after the current message."""
        self._stopping = True

    async def forward_shutdown(self, msg: Shutdown, *link_names: str) -> None:
        for name in link_names:
            await self.links[name].send(msg)
        self.stop()


def _first_leaf(exc: BaseException) -> BaseException:
    """The first non-group exception inside nested exception groups (the actual error)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
