"""Wiring: four actors, four links, one nursery.

::

    host --[host]--> router --[chip]--> core
                       |                 ^
                     [ppu]               |
                       v                 |
                      ppu ----[synram]---+
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Mapping

import trio

from ..chip._event_links import EventLaneModel
from ._actor import ActorFailed
from ._core import CoreActor, CoreConfig
from ._host import HostActor
from ._link import Link
from ._transport import FrameTransport, memory_transport_pair
from ._ppu import PpuActor, PpuConfig
from ._router import RouterActor, RouterConfig

__all__ = ["SystemConfig", "System", "open_system", "LINK_NAMES", "first_actor_failure", "TransportWrapper"]

LINK_NAMES = ("host", "chip", "ppu", "synram")
"""host: host <-> router (the 1 GbE-like host link); chip: router <-> analog core (event lanes);
ppu: router <-> plasticity processor; synram: plasticity processor <-> analog core (on-chip bus).
``down`` is the direction away from the host (for synram: PPU -> core)."""


@dataclass(frozen=True)
class SystemConfig:
    """Everything that fixes a system's behaviour. seed: trial-to-trial noise and learning;
    chip_seed: the die (device mismatch); link_buffer: frames each link direction buffers
    (0: rendezvous); window: runs the host keeps in flight."""

    seed: int = 0
    chip_seed: int = 0
    link_buffer: int = 4
    window: int = 4
    chunk_events: int = 4096
    lanes: EventLaneModel = field(default_factory=EventLaneModel)
    core: CoreConfig = field(default_factory=CoreConfig)
    ppu: PpuConfig = field(default_factory=PpuConfig)

    def __post_init__(self) -> None:
        if self.link_buffer < 0:
            raise ValueError(f"link_buffer must be >= 0, got {self.link_buffer}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


@dataclass
class System:
    config: SystemConfig
    links: dict[str, Link]
    host: HostActor
    router: RouterActor
    core: CoreActor
    ppu: PpuActor

    def traffic(self) -> dict:
        """``{link: {direction: {messages, bytes, events, ...}}}`` for every link."""
        return {name: link.statistics() for name, link in self.links.items()}

    def dropped(self) -> dict[str, int]:
        """Events dropped anywhere, by reason; empty when none were."""
        out: dict[str, int] = {}
        for part in (self.router.dropped_total, self.core.dropped_total):
            for reason, n in part.items():
                out[reason] = out.get(reason, 0) + n
        return out


TransportWrapper = Callable[[FrameTransport, FrameTransport], tuple[FrameTransport, FrameTransport]]


@asynccontextmanager
async def open_system(config: SystemConfig = SystemConfig(), *,
                      wrap: Mapping[str, TransportWrapper] | None = None) -> AsyncIterator[System]:
    """Start the four actors, shake hands, yield the system; shut it down cleanly on exit.

    wrap: per link name, a function that takes the link's two in-process transports (host side,
    chip side) and returns the transports to use instead (fault injection, link models).

    An actor that fails stops the whole system: the exception that leaves this context is an
    ExceptionGroup holding an ActorFailed that names the actor (see first_actor_failure).
    """
    links = {}
    for name in LINK_NAMES:
        pair = memory_transport_pair(config.link_buffer)
        if wrap and name in wrap:
            pair = wrap[name](*pair)
        links[name] = Link(name, config.link_buffer, transports=pair)
    host = HostActor(links["host"].a, window=config.window)
    router = RouterActor(links["host"].b, links["chip"].a, links["ppu"].a,
                         RouterConfig(chunk_events=config.chunk_events, lanes=config.lanes, chip_id=config.chip_seed))
    core = CoreActor(links["chip"].b, links["synram"].b, config.core, chip_seed=config.chip_seed, seed=config.seed)
    ppu = PpuActor(links["ppu"].b, links["synram"].a, config.ppu, seed=config.seed)
    system = System(config, links, host, router, core, ppu)
    async with trio.open_nursery() as nursery:
        for actor in (router, core, ppu, host):
            nursery.start_soon(actor.serve, name=actor.name)
        await host.handshake()
        yield system
        await host.shutdown()


def first_actor_failure(exc: BaseException) -> ActorFailed | None:
    """The first ActorFailed inside an exception (group), if any."""
    if isinstance(exc, ActorFailed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = first_actor_failure(sub)
            if found is not None:
                return found
    return None
