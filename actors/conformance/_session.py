"""Disconnect and reconnect against a board server: the next host gets a clean board."""

from __future__ import annotations

import numpy as np
import trio

from ...protocol import RunComplete, RunRequest, SpikeBatch, encode
from ..testing import Divergence, ExchangeFailed
from ._common import SAMPLE_TICKS, check_run_stream, collect_run, configure, playback, read_back, small_net
from ._scenario import Failed, scenario
from ._target import NotApplicable


@scenario("session.reconnect")
async def reconnect(target):
    """A host that configures the board, writes weights and leaves in the middle of a run without
    Shutdown, then a peer that closes its connection inside a frame, are followed by a host that is
    served a clean board: the weights read back are all zero, run id 0 is free again and its run
    completes normally, with nothing of the earlier sessions in it. A board server outlives its
    hosts, and a crashed host must not leave state that changes the next one's results."""
    if not target.reconnects:
        raise NotApplicable("the in-process board serves one host link for its lifetime; reconnecting needs a "
                            "board server (--server, or --board HOST:PORT)")
    net = small_net()
    t, label, sample = playback(2, seed=31)
    peer, _ = await target.connect_and_greet()
    try:
        await configure(peer, net)
        await peer.send(RunRequest(run_id=0, n_samples=2, sample_ticks=SAMPLE_TICKS))
        half = t < SAMPLE_TICKS
        await peer.send(SpikeBatch(run_id=0, t_ticks=t[half], label=label[half], sample=sample[half],
                                   horizon_ticks=SAMPLE_TICKS))
        await trio.sleep(0.05)
    finally:
        await peer.aclose()  # gone, mid-run, without a word
    partial = await target.connect()
    try:
        await partial.send_frame(encode(RunRequest(run_id=0, n_samples=1, sample_ticks=100))[:12])
    finally:
        await partial.aclose()  # closed inside a frame
    async with target.session() as s:
        rows, cols, block = net.block
        await read_back(s.peer, net, request_id=61, weight=np.zeros_like(block))
        await configure(s.peer, net, request_id=62)
        await s.peer.send(RunRequest(run_id=0, n_samples=2, sample_ticks=SAMPLE_TICKS))
        await s.peer.send(SpikeBatch(run_id=0, t_ticks=t, label=label, sample=sample, horizon_ticks=2 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got = await collect_run(s.peer, 0)
        check_run_stream(got, 0, 2, first_index=first)
        done = got[-1]
        if not isinstance(done, RunComplete) or done.events_in != t.size or dict(done.dropped):
            raise ExchangeFailed(Divergence(first + len(got) - 1, "run_complete", done.TAG, "events_in", int(t.size),
                                            getattr(done, "events_in", None)))
    server = getattr(target, "server", None)
    if server is not None:
        outcomes = [rec.outcome.split(":")[0] for rec in server.sessions[-3:]]
        if outcomes[:1] != ["disconnected"] or outcomes[-1] != "done":
            raise Failed(f"the server recorded the sessions as {outcomes}, expected disconnected, ..., done")
        return {"sessions": outcomes}
