"""The trio runtime: links, the actor base, the four actors and the system wiring.

Names are imported on first use (PEP 562), so that importing a submodule, such as the pytest
plugin of the test kit, does not load the whole runtime.
"""

from __future__ import annotations

from ._lazy import lazy_exports

_EXPORTS = {
    "Actor": "._actor",
    "ActorFailed": "._actor",
    "BoardLimits": "._admission",
    "admission_problem": "._admission",
    "BoardLost": "._board",
    "BoardServer": "._board",
    "RemoteSystem": "._board",
    "connect_board": "._board",
    "session_config": "._board",
    "CoreActor": "._core",
    "FaultSpec": "._faults",
    "LinkFaults": "._faults",
    "parse_faults": "._faults",
    "BoardError": "._host",
    "HostActor": "._host",
    "RunResult": "._host",
    "DirectionStats": "._link",
    "Link": "._link",
    "LinkEnd": "._link",
    "open_link": "._link",
    "LinkModel": "._link_model",
    "LinkTimeline": "._link_model",
    "Transit": "._link_model",
    "default_link_models": "._link_model",
    "PPU_MEMORY_BYTES": "._ppu",
    "PpuActor": "._ppu",
    "PpuConfig": "._ppu",
    "LinkDownError": "._reliable",
    "ReliableConfig": "._reliable",
    "ReliableTransport": "._reliable",
    "LinkWrapping": "._resilience",
    "wrap_links": "._resilience",
    "Profiler": "._profile",
    "active_profiler": "._profile",
    "profiling": "._profile",
    "RouterActor": "._router",
    "RouterConfig": "._router",
    "StreamTransport": "._socket",
    "parse_address": "._socket",
    "remote_link": "._socket",
    "LINK_NAMES": "._system",
    "Board": "._system",
    "System": "._system",
    "SystemConfig": "._system",
    "TransportWrapper": "._system",
    "first_actor_failure": "._system",
    "open_board": "._system",
    "open_system": "._system",
    "FrameTransport": "._transport",
    "MemoryTransport": "._transport",
    "memory_transport_pair": "._transport",
}
"""Public name -> the module (relative to this package) that defines it."""

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
