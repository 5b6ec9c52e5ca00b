"""The analog core actor: moves messages in and out of chip.AnalogCore."""

from __future__ import annotations

import trio

from ..chip import AnalogCore, CoreConfig
from ..protocol import (
    PROTOCOL_VERSION,
    ChipLimitError,
    ConfigureNeurons,
    ConfigureRows,
    Error,
    Hello,
    Message,
    ReadWeights,
    RunRequest,
    Shutdown,
    SpikeBatch,
    WriteWeights,
)
from ._actor import STOP, Actor
from ._link import LinkEnd

__all__ = ["CoreActor", "CoreConfig", "INLINE_SAMPLES"]

INLINE_SAMPLES = 64
"""Runs of fewer samples are simulated on the event loop's thread, bigger ones in a worker thread
(CoreActor._feed says why)."""


class CoreActor(Actor):
    """Links: ``router`` (configuration, playback in; spikes, samples out) and ``synram`` (the PPU's
    weight reads and writes)."""

    name = "core"

    def __init__(self, router: LinkEnd, synram: LinkEnd, config: CoreConfig = CoreConfig(), *,
                 chip_seed: int = 0, seed: int = 0) -> None:
        super().__init__({"router": router, "synram": synram})
        self.model = AnalogCore(config, chip_seed=chip_seed, seed=seed)
        self.log = self.log.bind(chip_seed=chip_seed)
        self.dropped_total: dict[str, int] = {}
        self._shut: set[str] = set()  # links whose Shutdown came: router (no more runs), synram (PPU done)

    async def handle(self, link: str, msg: Message) -> None:
        reply_to = self.links[link]
        try:
            if isinstance(msg, Hello):
                await reply_to.send(Hello(protocol_version=PROTOCOL_VERSION, role="core", chip_id=self.model.chip_seed))
            elif isinstance(msg, ConfigureNeurons):
                # The calibration integrates for seconds (numba, GIL released): off the event loop
                # too, or every other actor would stall meanwhile (the profiler showed it).
                await trio.to_thread.run_sync(self.model.configure_neurons, msg)
                self.log.info("neurons_configured", n=int(msg.neuron.size))
            elif isinstance(msg, ConfigureRows):
                self.model.configure_rows(msg)
            elif isinstance(msg, WriteWeights):
                await reply_to.send(self.model.write_weights(msg))
            elif isinstance(msg, ReadWeights):
                await reply_to.send(self.model.read_weights(msg))
            elif isinstance(msg, RunRequest):
                self.model.start_run(msg)
            elif isinstance(msg, SpikeBatch):
                replies = await self._feed(msg)
                for reply in replies:
                    await reply_to.send(reply)
            elif isinstance(msg, Shutdown):
                await self._shutdown(link)
            else:
                await reply_to.send(Error(fault="remote", in_reply_to=msg.TAG,
                                          message=f"core: cannot handle {msg.TAG}"))
        except ChipLimitError as exc:
            await reply_to.send(Error(fault="chip-limit", in_reply_to=msg.TAG, message=str(exc),
                                      run_id=getattr(msg, "run_id", -1)))
        except ValueError as exc:
            await reply_to.send(Error(fault="remote", in_reply_to=msg.TAG, message=str(exc),
                                      run_id=getattr(msg, "run_id", -1)))

    async def _feed(self, msg: SpikeBatch) -> list[Message]:
        """Simulate what the batch completes. The integrators are numba kernels that release the GIL:
        a big run goes to a worker thread so the other actors keep moving while the core computes.
        The hand-off costs ~0.3 ms each way on 2 loaded cores, as much as the whole forward pass of a
        16-sample training batch (~1 ms), and in a training step nothing else has work meanwhile (the
        PPU waits for these spikes): fewer than ``INLINE_SAMPLES`` samples are simulated on the event
        loop's thread, blocking it for a few milliseconds at most. Where they run never changes a
        result (the same data, the same kernels)."""
        if self.model.samples_due(msg) < INLINE_SAMPLES:
            return self.model.feed(msg)
        return await trio.to_thread.run_sync(self.model.feed, msg)

    async def _shutdown(self, link: str) -> None:
        """Stop once both sides are done. The router's Shutdown comes after every run it played: runs
        still open then are closed with what was cut (their RunComplete says so), so nobody waits for
        them. The PPU's comes on synram after its last weight write: until then the core serves it."""
        if link == "router" and "router" not in self._shut:
            for reply in self.model.cut_open_runs():
                await self.links["router"].send(reply)
        self._shut.add(link)
        if self._shut >= {"router", "synram"}:
            self.stop()

    async def _pump_until_closed(self, link_name: str, end) -> None:
        await super()._pump_until_closed(link_name, end)
        if link_name == "synram" and "synram" not in self._shut:  # the PPU is gone: it has nothing more to write
            self._shut.add("synram")
            if "router" in self._shut:
                self._inbox_send.send_nowait((link_name, STOP))

