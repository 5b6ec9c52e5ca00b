"""Wiring: four actors, four links. The board (router, core, PPU and the three links between
them) is started by ``open_board`` on any host link end or transport; ``open_system`` puts the
host in the same process, ``actors._board`` puts the board behind a socket.

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
from ._faults import link_fault_drops
from ._host import HostActor
from ._link import Link, LinkEnd
from ._link_model import LinkModel, default_link_models
from ._socket import remote_link
from ._transport import FrameTransport, memory_transport_pair
from ._ppu import PpuActor, PpuConfig
from ._profile import active_profiler
from ._router import RouterActor, RouterConfig

__all__ = ["SystemConfig", "System", "Board", "open_board", "open_system", "LINK_NAMES", "first_actor_failure",
           "TransportWrapper"]

LINK_NAMES = ("host", "chip", "ppu", "synram")
"""host: host <-> router (the 1 GbE-like host link); chip: router <-> analog core (event lanes);
ppu: router <-> plasticity processor; synram: plasticity processor <-> analog core (on-chip bus).
``down`` is the direction away from the host (for synram: PPU -> core)."""


@dataclass(frozen=True)
class SystemConfig:
    """Everything that fixes a system's behaviour. seed: trial-to-trial noise and learning;
    chip_seed: the die (device mismatch); link_buffer: frames each link direction buffers
    (0: rendezvous); window: runs the host keeps in flight. session: what the host's Hello asks
    of the board (actors._board.session_config builds a whole config from it and a chip seed).
    link_models: the hardware model of each link by name (actors/_link_model.py); None puts the
    defaults on (1 GbE host link; event lanes on the chip link, from ``lanes``), ``{}`` leaves
    every link ideal. Without a queue overflow a model changes only the emulated times it reports."""

    seed: int = 0
    chip_seed: int = 0
    link_buffer: int = 4
    window: int = 4
    chunk_events: int = 65536
    lanes: EventLaneModel = field(default_factory=EventLaneModel)
    core: CoreConfig = field(default_factory=CoreConfig)
    ppu: PpuConfig = field(default_factory=PpuConfig)
    session: dict[str, int] = field(default_factory=dict)
    link_models: Mapping[str, LinkModel | None] | None = None

    def models(self) -> dict[str, LinkModel]:
        """The link models in force, by link name."""
        chosen = default_link_models(self.lanes) if self.link_models is None else self.link_models
        return {name: m for name, m in chosen.items() if m is not None}

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
        return _dropped(self)

    def link_models(self) -> dict:
        """``{link: {model, dropped, down, up}}``: each modelled link's parameters and emulated-time
        counters (ticks of 8 ns; actors/_link_model.py)."""
        return {name: link.timeline.statistics() for name, link in self.links.items() if link.timeline is not None}


@dataclass
class Board:
    """The board's side: router, core, PPU and its links (``host`` is the board's view of the host
    link; when the host is in another process it counts both directions from this end)."""

    config: SystemConfig
    links: dict[str, Link]
    router: RouterActor
    core: CoreActor
    ppu: PpuActor

    def traffic(self) -> dict:
        return {name: link.statistics() for name, link in self.links.items()}

    def dropped(self) -> dict[str, int]:
        return _dropped(self)

    def link_models(self) -> dict:
        return {name: link.timeline.statistics() for name, link in self.links.items() if link.timeline is not None}


def _dropped(system) -> dict[str, int]:
    """Events dropped by the router, the core, the link models and fault injection, by reason."""
    out: dict[str, int] = {}
    parts = [system.router.dropped_total, system.core.dropped_total]
    parts += [link.timeline.dropped_total for link in system.links.values() if link.timeline is not None]
    parts += [link_fault_drops(link) for link in system.links.values()]
    for part in parts:
        for reason, n in part.items():
            out[reason] = out.get(reason, 0) + n
    return out


TransportWrapper = Callable[[FrameTransport, FrameTransport], tuple[FrameTransport, FrameTransport]]


def _board_links(config: SystemConfig, wrap: Mapping[str, TransportWrapper] | None) -> dict[str, Link]:
    links = {}
    models = config.models()
    for name in LINK_NAMES[1:]:
        pair = memory_transport_pair(config.link_buffer)
        if wrap and name in wrap:
            pair = wrap[name](*pair)
        links[name] = Link(name, config.link_buffer, transports=pair, model=models.get(name))
    return links


@asynccontextmanager
async def open_board(config: SystemConfig, host: FrameTransport | LinkEnd, *,
                     wrap: Mapping[str, TransportWrapper] | None = None,
                     host_link: Link | None = None) -> AsyncIterator[Board]:
    """Start router, core and PPU serving one host link; yield the board; on exit wait until
    they have stopped (a Shutdown from the host stops them; cancel the scope to stop them at once).

    host: the board's end of the host link (a LinkEnd whose link is ``host_link``, host in this
    process), or a FrameTransport to a host elsewhere (a socket). wrap: as for open_system, for the
    board's own links (chip, ppu, synram). An actor that fails stops the board: an ExceptionGroup
    holding an ActorFailed that names it leaves this context.
    """
    links = _board_links(config, wrap)
    if isinstance(host, LinkEnd):
        links = {"host": host_link if host_link is not None else host.link, **links}
        host_end = host
    else:
        links = {"host": remote_link("host", host, "b", buffer=config.link_buffer)[0], **links}
        host_end = links["host"].b
    router = RouterActor(host_end, links["chip"].a, links["ppu"].a,
                         RouterConfig(chunk_events=config.chunk_events, lanes=config.lanes, chip_id=config.chip_seed))
    core = CoreActor(links["chip"].b, links["synram"].b, config.core, chip_seed=config.chip_seed, seed=config.seed)
    ppu = PpuActor(links["ppu"].b, links["synram"].a, config.ppu, seed=config.seed)
    board = Board(config, links, router, core, ppu)
    async with trio.open_nursery() as nursery:
        for actor in (router, core, ppu):
            nursery.start_soon(actor.serve, name=actor.name)
        yield board


@asynccontextmanager
async def open_system(config: SystemConfig = SystemConfig(), *,
                      wrap: Mapping[str, TransportWrapper] | None = None, profiler=None) -> AsyncIterator[System]:
    """Start the four actors, shake hands, yield the system; shut it down cleanly on exit.

    wrap: per link name, a function that takes the link's two in-process transports (host side,
    chip side) and returns the transports to use instead (fault injection, link models).
    profiler: an actors.Profiler to attach (wall-clock latency per hop, busy time, queue depth
    over time); by default the one ``actors.profiling()`` made active, if any.

    An actor that fails stops the whole system: the exception that leaves this context is an
    ExceptionGroup holding an ActorFailed that names the actor (see first_actor_failure).
    """
    pair = memory_transport_pair(config.link_buffer)
    if wrap and "host" in wrap:
        pair = wrap["host"](*pair)
    host_link = Link("host", config.link_buffer, transports=pair, model=config.models().get("host"))
    host = HostActor(host_link.a, window=config.window)
    async with open_board(config, host_link.b, wrap=wrap) as board:
        system = System(config, {**board.links}, host, board.router, board.core, board.ppu)
        profiler = profiler if profiler is not None else active_profiler()
        if profiler is not None:
            profiler.attach(system)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(host.serve, name=host.name)
            await host.handshake(config.session)
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
