"""Links choose the frame form by what carries them: in-process links send sealed FrameParts
without CRC, every other link checked bytes and refuses frames without CRC; the buffer depths the
links and actors count match trio's own statistics (docs/protocol.md, "Checksums and in-process
frames")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio

from neurosplit.actors import Link, open_link
from neurosplit.actors._transport import _Statistics, buffered, memory_transport_pair
from neurosplit.protocol import FrameParts, RemoteProtocolError, Shutdown, SpikeBatch, encode

SPIKES = SpikeBatch(run_id=3, t_ticks=np.array([10, 10, 250]), label=np.array([1, 2, 3]),
                    sample=np.array([0, 1, 1]), horizon_ticks=300)


class _Passing:
    """A transport wrapper that changes nothing: enough to make a link not ideal."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def send_frame(self, frame) -> None:
        await self.inner.send_frame(frame)

    async def receive_frame(self):
        return await self.inner.receive_frame()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def buffer_used(self) -> int:
        return self.inner.buffer_used()


async def test_an_in_process_link_carries_sealed_parts_without_checksum():
    link = open_link("test", buffer=4)
    assert link.ideal and link.a.ideal and link.b.ideal
    await link.a.send(SPIKES)
    raw = await link.b.transport.receive_frame()
    assert type(raw) is FrameParts and bytes(raw) == encode(SPIKES, checksum=False)
    assert link.stats["down"].bytes == len(encode(SPIKES))  # the same count as a checked frame
    await link.a.send(SPIKES)
    assert await link.b.receive() == SPIKES


async def test_a_wrapped_link_carries_checked_bytes_and_refuses_frames_without_checksum():
    a, b = memory_transport_pair(4)
    link = Link("wrapped", transports=(_Passing(a), b))  # one wrapped end is enough
    assert not link.ideal
    await link.a.send(SPIKES)
    raw = await link.b.transport.receive_frame()
    assert type(raw) is bytes and raw == encode(SPIKES)
    await link.a.send_frame(encode(SPIKES, checksum=False))
    with pytest.raises(RemoteProtocolError, match="requires checksummed frames"):
        await link.b.receive()
    assert link.stats["down"].rejected_frames == 1
    await link.a.send(Shutdown(reason="still usable"))
    with trio.fail_after(5):
        assert await link.b.receive() == Shutdown(reason="still usable")


@pytest.mark.parametrize("size", [0, 2, math.inf])
def test_buffered_counts_what_trio_statistics_count(size):
    send, receive = trio.open_memory_channel(size)
    fast, slow = buffered(send), _Statistics(send)
    assert type(fast) is not _Statistics  # this trio keeps its buffer where buffered() looks
    seen = [(len(fast), len(slow), send.statistics().current_buffer_used)]
    for op in ("send", "send", "receive", "send", "receive", "receive"):
        try:
            send.send_nowait(op) if op == "send" else receive.receive_nowait()
        except trio.WouldBlock:  # a rendezvous channel buffers nothing
            assert size == 0
        seen.append((len(fast), len(slow), send.statistics().current_buffer_used))
    assert all(a == b == c for a, b, c in seen)
    assert [a for a, _, _ in seen] == ([0] * 7 if size == 0 else [0, 1, 2, 1, 2, 1, 0])


async def test_in_process_frames_and_checked_bytes_give_the_same_training():
    """The same short on-chip training with every link in-process (sealed FrameParts, no CRC,
    shared arrays) and with every link wrapped (joined bytes, CRC, full checks on decode) ends with
    bit-identical weights, loss and accuracy, and counts the same bytes on every link."""
    from neurosplit.actors import SystemConfig, open_system
    from neurosplit.host._report import weights_sha256
    from neurosplit.host._training import TrainConfig, train

    from helpers import FAST_CORE

    cfg = TrainConfig(epochs=1, n_train=60, n_test=20, n_hidden=10, batch_size=20, seed=4)
    wrap_all = {name: (lambda a, b: (_Passing(a), _Passing(b))) for name in ("host", "chip", "ppu", "synram")}
    outcomes = []
    for wrap in (None, wrap_all):
        async with open_system(SystemConfig(seed=4, core=FAST_CORE), wrap=wrap) as system:
            assert all(link.ideal is (wrap is None) for link in system.links.values())
            report = await train(system.host, cfg)
            weights = (await system.host.read_weights(np.arange(256, dtype=np.uint16),
                                                      np.arange(512, dtype=np.uint16))).weight
        traffic = {(name, d): (s.messages, s.bytes, s.events) for name, link in system.links.items()
                   for d, s in link.stats.items()}
        outcomes.append((weights_sha256(weights), report["test_accuracy"], report["train_loss"], traffic))
    assert outcomes[0] == outcomes[1]
