"""Flow control: a host that reads slowly gets everything it is owed, in order, and the board
holds what waits within bounds instead of dropping it or growing a queue without limit."""

from __future__ import annotations

import trio

from ...protocol import ReadWeights, RunRequest, SpikeBatch, Weights
from ..testing import Divergence, ExchangeFailed, first_divergence
from ._common import SAMPLE_TICKS, check_run_stream, configure, playback, small_net
from ._scenario import Failed, scenario

N_READS = 200
N_SAMPLES = 24


@scenario("flow.slow-reader")
async def slow_reader(target):
    """The host sends 200 ReadWeights and a run of 24 samples (membrane samples and spikes) and then
    reads nothing for a while, then slowly: every reply arrives, in the order the requests were
    sent, the run's stream holds together and drops nothing. In this process the board's host link
    never holds more frames than its buffer while the host does not read (backpressure, not an
    unbounded queue); the board's inbox peak is reported. The hardware's host link is a finite
    buffer, and a host that stalls (a garbage collection, a slow disk) must not lose data."""
    net = small_net()
    rows, cols, block = net.block
    t, label, sample = playback(N_SAMPLES, seed=13)
    async with target.session() as s:
        peer = s.peer
        await configure(peer, net)
        for i in range(N_READS):
            await peer.send(ReadWeights(request_id=1000 + i, row=rows[:2], column=cols[:2]))
        await peer.send(RunRequest(run_id=3, n_samples=N_SAMPLES, sample_ticks=SAMPLE_TICKS, cadc_period_ticks=500))
        chunk = len(t) // 4
        for k in range(4):  # four input batches, the last one closing the run
            lo, hi = k * chunk, (len(t) if k == 3 else (k + 1) * chunk)
            horizon = N_SAMPLES * SAMPLE_TICKS if k == 3 else int(t[hi])
            await peer.send(SpikeBatch(run_id=3, t_ticks=t[lo:hi], label=label[lo:hi], sample=sample[lo:hi],
                                       horizon_ticks=horizon))
        await trio.sleep(0.3)  # the host stalls
        held = None
        if s.board is not None:
            link = s.board.links["host"]
            held, bound = link.b.transport.buffer_used(), max(getattr(target, "link_buffer", link.buffer), 1)
            if held > bound:
                raise Failed(f"the board's host link holds {held} frames for a host that does not read, "
                             f"beyond its buffer of {bound}")
        first = len(peer.received)
        got = []
        for _ in range(N_READS):
            got.append(await peer.receive())
            if len(got) % 50 == 0:
                await trio.sleep(0.01)  # and reads slowly
        want = [Weights(request_id=1000 + i, row=rows[:2], column=cols[:2], weight=block[:2, :2])
                for i in range(N_READS)]
        found = first_divergence(want, got)
        if found is not None:
            raise ExchangeFailed(Divergence(first + found.index, found.expected, found.received, found.field,
                                            found.expected_value, found.received_value))
        run = await peer.receive_until(lambda m: m.TAG in ("run_complete", "error"))
        summary = check_run_stream(run, 3, N_SAMPLES, first_index=first + N_READS)
        done = run[-1]
        if dict(done.dropped) or done.events_in != t.size:
            raise ExchangeFailed(Divergence(first + N_READS + len(run) - 1, "run_complete", "run_complete",
                                            "dropped", {}, dict(done.dropped),
                                            note=f"events_in {done.events_in} of {t.size}"))
    details = {**summary, "replies": N_READS + len(run)}
    if s.board is not None:
        details["host_link_peak_depth_up"] = s.board.links["host"].stats["up"].peak_depth
        details["router_inbox_peak"] = s.board.router.inbox_peak
        details["held_while_stalled"] = held
    return details
