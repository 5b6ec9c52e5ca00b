"""The trio runtime: links, the actor base, the four actors and the system wiring."""

from ._actor import Actor, ActorFailed
from ._admission import BoardLimits, admission_problem
from ._board import BoardLost, BoardServer, RemoteSystem, connect_board, session_config
from ._core import CoreActor
from ._faults import FaultSpec, LinkFaults, parse_faults
from ._host import BoardError, HostActor, RunResult
from ._link import DirectionStats, Link, LinkEnd, open_link
from ._link_model import LinkModel, LinkTimeline, Transit, default_link_models
from ._ppu import PPU_MEMORY_BYTES, PpuActor, PpuConfig
from ._reliable import LinkDownError, ReliableConfig, ReliableTransport
from ._resilience import LinkWrapping, wrap_links
from ._profile import Profiler, active_profiler, profiling
from ._router import RouterActor, RouterConfig
from ._socket import StreamTransport, parse_address, remote_link
from ._system import (LINK_NAMES, Board, System, SystemConfig, TransportWrapper, first_actor_failure, open_board,
                      open_system)
from ._transport import FrameTransport, MemoryTransport, memory_transport_pair

__all__ = [
    "Actor", "ActorFailed", "CoreActor", "BoardError", "HostActor", "RunResult", "DirectionStats", "Link",
    "LinkEnd", "open_link", "PPU_MEMORY_BYTES", "PpuActor", "PpuConfig", "RouterActor", "RouterConfig",
    "LINK_NAMES", "System", "SystemConfig", "TransportWrapper", "first_actor_failure", "open_system",
    "FrameTransport", "MemoryTransport", "memory_transport_pair",
    "BoardLost", "BoardServer", "RemoteSystem", "connect_board", "session_config",
    "StreamTransport", "parse_address", "remote_link", "Board", "open_board",
    "LinkModel", "LinkTimeline", "Transit", "default_link_models", "Profiler", "active_profiler", "profiling",
    "BoardLimits", "admission_problem", "FaultSpec", "LinkFaults", "parse_faults", "LinkDownError", "ReliableConfig",
    "ReliableTransport", "LinkWrapping", "wrap_links",
]
