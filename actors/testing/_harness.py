"""Systems and boards for tests: started, handed over, torn down (the pytest plugin's fixtures use these).

``running_system`` is a whole system in this process (host actor included); ``board_peer`` is a
fresh board in this process whose host is a ScriptedPeer (the test plays the host, frame by
frame); ``serving_board`` is a board server on an ephemeral TCP port. Each takes the same
``wrap`` as ``open_system`` (fault injection: ``fault_wrapper``, re-exported from
actors._faults) and an optional FrameRecorder that records every link.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping

import trio

from .._board import BoardServer, session_config
from .._link import Link
from .._system import System, SystemConfig, TransportWrapper, open_board, open_system
from .._transport import FrameTransport, memory_transport_pair
from ._peer import ScriptedPeer
from ._recording import FrameRecorder

__all__ = ["quick_config", "running_system", "board_peer", "serving_board", "ScriptEnd"]


def quick_config(chip_seed: int = 0, **session: int) -> SystemConfig:
    """A configuration that starts fast: a mismatched die without calibration (``calibrate=0``)
    unless ``session`` says otherwise. Built from a Hello session, as a board server builds its
    own, so a recording made on it replays on a default replay board."""
    return session_config(chip_seed, {"calibrate": 0, **session})


class ScriptEnd:
    """The script's end of a host link (a ScriptedPeer's, a replay's): passes frames through
    unchanged. It is not an "ideal" in-process transport, so the board's end of the link sends
    real frames (bytes with their CRC), as on a wire: what a script reads, sends and records."""

    def __init__(self, inner: FrameTransport) -> None:
        self.inner = inner

    async def send_frame(self, frame: bytes) -> None:
        await self.inner.send_frame(frame)

    async def receive_frame(self) -> bytes:
        return await self.inner.receive_frame()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def buffer_used(self) -> int:
        return self.inner.buffer_used()


def _wrapping(wrap: Mapping[str, TransportWrapper] | None, recorder: FrameRecorder | None) -> dict:
    return recorder.wrap(wrap) if recorder is not None else dict(wrap or {})


@asynccontextmanager
async def running_system(config: SystemConfig | None = None, *, wrap: Mapping[str, TransportWrapper] | None = None,
                         recorder: FrameRecorder | None = None) -> AsyncIterator[System]:
    """open_system with quick_config() by default, recording into ``recorder`` if given; yields
    the System after the handshake and shuts it down on exit."""
    config = quick_config() if config is None else config
    async with open_system(config, wrap=_wrapping(wrap, recorder)) as system:
        yield system


@asynccontextmanager
async def board_peer(config: SystemConfig | None = None, *, wrap: Mapping[str, TransportWrapper] | None = None,
                     recorder: FrameRecorder | None = None, name: str = "board") -> AsyncIterator[ScriptedPeer]:
    """A fresh board in this process (router, core, PPU) and a ScriptedPeer as its host, before
    any handshake (start with ``await peer.hello(session)``). On exit the board is stopped,
    whether or not the script sent Shutdown."""
    config = quick_config() if config is None else config
    wrap = _wrapping(wrap, recorder)
    a, b = memory_transport_pair(config.link_buffer)
    a = ScriptEnd(a)
    if "host" in wrap:
        a, b = wrap["host"](a, b)
    host_link = Link("host", config.link_buffer, transports=(a, b), model=config.models().get("host"))
    with trio.CancelScope() as scope:
        async with open_board(config, host_link.b, wrap=wrap):
            yield ScriptedPeer(a, name=name)
            scope.cancel()


@asynccontextmanager
async def serving_board(chip_seed: int = 0, *, listen: str = "127.0.0.1", **server_options) -> AsyncIterator[str]:
    """A BoardServer (die ``chip_seed``) on an ephemeral port of ``listen``, in this process;
    yields its address ``"HOST:PORT"`` (for connect_board, replay, ``--board``); stops it on exit.
    server_options: as for BoardServer (make_config, handshake_timeout_s, max_frame_bytes)."""
    server = BoardServer(chip_seed, **server_options)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(server.serve, listen, 0)
        yield f"{listen}:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()
