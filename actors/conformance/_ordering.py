"""Out-of-order and duplicate requests: what the protocol defines for run ids, request ids,
horizons, and the matching of replies to requests."""

from __future__ import annotations

import numpy as np

from ...protocol import (Ack, LearnResult, ReadWeights, RunComplete, RunRequest, SpikeBatch, TrainStep, Weights,
                         WriteWeights)
from ..testing import Divergence, ExchangeFailed, first_divergence
from ._common import SAMPLE_TICKS, check_run_stream, collect_run, configure, expect_error, playback, small_net
from ._scenario import Failed, scenario


def _batch(run_id, t, label, sample, horizon) -> SpikeBatch:
    return SpikeBatch(run_id=run_id, t_ticks=t, label=label, sample=sample, horizon_ticks=horizon)


@scenario("ordering.duplicate-run-id")
async def duplicate_run_id(target):
    """A second RunRequest with the run_id of a run still open is refused with an Error naming
    run_request.run_id and that run, and the open run is unharmed: its input, sent afterwards,
    plays in full and it completes once, with every event counted. Replies are matched to runs by
    run_id, so two live runs with one id would make every reply ambiguous."""
    net = small_net()
    t, label, sample = playback(2, seed=6)
    async with target.session() as s:
        await configure(s.peer, net)
        await s.peer.send(RunRequest(run_id=5, n_samples=2, sample_ticks=SAMPLE_TICKS))
        await s.peer.send(RunRequest(run_id=5, n_samples=2, sample_ticks=SAMPLE_TICKS))
        await expect_error(s.peer, mentions="run_request.run_id", in_reply_to="run_request", run_id=5)
        await s.peer.send(_batch(5, t, label, sample, 2 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got = await collect_run(s.peer, 5)
        check_run_stream(got, 5, 2, first_index=first)
        done = got[-1]
        if (done.events_in, dict(done.dropped)) != (t.size, {}):
            raise ExchangeFailed(Divergence(first + len(got) - 1, "run_complete", done.TAG, "events_in", int(t.size),
                                            done.events_in))


@scenario("ordering.unknown-run")
async def unknown_run(target):
    """Input spikes for a run that was never requested are refused with an Error naming
    spike_batch.run_id and carrying that run_id, and nothing runs: a host that lost track of its
    runs must hear so, not have its events played into nowhere."""
    async with target.session() as s:
        await s.peer.send(_batch(99, np.array([1], np.int64), np.array([0], np.uint16), np.array([0], np.uint32), 10))
        await expect_error(s.peer, mentions="spike_batch.run_id", in_reply_to="spike_batch", run_id=99)


@scenario("ordering.horizon-back")
async def horizon_back(target):
    """Within a run, a SpikeBatch whose events lie before the horizon already played breaks the
    horizon promise (docs/protocol.md, Time): it is refused with an Error for that run naming
    spike_batch.t_ticks, its events are counted as dropped (rejected_batch) in the RunComplete, and
    the events accepted before and after it play normally."""
    net = small_net()
    t, label, sample = playback(2, seed=7)
    half = SAMPLE_TICKS
    early, late = t < half, t >= half
    async with target.session() as s:
        await configure(s.peer, net)
        await s.peer.send(RunRequest(run_id=1, n_samples=2, sample_ticks=SAMPLE_TICKS))
        await s.peer.send(_batch(1, t[early], label[early], sample[early], half))
        stale = np.array([half // 2], np.int64)  # a tick before the horizon already played
        await s.peer.send(_batch(1, stale, np.array([0], np.uint16), np.array([0], np.uint32), half + 1))
        await s.peer.send(_batch(1, t[late], label[late], sample[late], 2 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got = await s.peer.receive_until(lambda m: isinstance(m, RunComplete))
        errors = [m for m in got if m.TAG == "error"]
        if len(errors) != 1 or "spike_batch.t_ticks" not in errors[0].message or errors[0].run_id != 1:
            raise Failed(f"expected one Error for run 1 naming spike_batch.t_ticks, got {[repr(e) for e in errors]}")
        rest = [m for m in got if m.TAG != "error"]
        check_run_stream(rest, 1, 2, first_index=first)
        done = rest[-1]
        want = RunComplete(run_id=1, n_samples=2, events_in=int(t.size) + 1, events_out=done.events_out,
                           dropped={"rejected_batch": 1})
        if done != want:
            found = first_divergence([want], [done])
            raise ExchangeFailed(Divergence(first + got.index(done), found.expected, found.received, found.field,
                                            found.expected_value, found.received_value))


@scenario("ordering.request-ids")
async def request_ids(target):
    """Replies carry the request_id of their request, whatever the ids (not increasing, repeated):
    writes and reads sent back to back with ids 9, 3, 3, 7 are answered Ack 9, Weights 3, Weights 3,
    Ack 7, each read seeing every write sent before it. A host matches replies by id, so a board
    must echo them exactly and keep a reader's view consistent with its own writes."""
    net = small_net()
    rows, cols, block = net.block
    r, c = rows[:3], cols[:4]
    one, two = np.full((3, 4), 11, np.uint8), np.full((3, 4), 22, np.uint8)
    async with target.session() as s:
        await configure(s.peer, net)
        for msg in (WriteWeights(request_id=9, row=r, column=c, weight=one), ReadWeights(request_id=3, row=r, column=c),
                    ReadWeights(request_id=3, row=r, column=c), WriteWeights(request_id=7, row=r, column=c, weight=two),
                    ReadWeights(request_id=8, row=r, column=c)):
            await s.peer.send(msg)
        want = [Ack(request_id=9, what="write_weights"), Weights(request_id=3, row=r, column=c, weight=one),
                Weights(request_id=3, row=r, column=c, weight=one), Ack(request_id=7, what="write_weights"),
                Weights(request_id=8, row=r, column=c, weight=two)]
        first = len(s.peer.received)
        got = [await s.peer.receive() for _ in want]
        found = first_divergence(want, got)
        if found is not None:
            raise ExchangeFailed(Divergence(first + found.index, found.expected, found.received, found.field,
                                            found.expected_value, found.received_value))


@scenario("ordering.interleaved-runs")
async def interleaved_runs(target):
    """Two runs open at once whose inputs arrive interleaved (request 1, request 2, input of 2, input
    of 1) each complete with replies that carry their own run_id, and each run's recorded spikes
    equal those of the same run played alone in a fresh session: results are keyed by run id and
    ordered by tick, never by the order in which messages arrived."""
    net = small_net()
    runs = {1: playback(2, seed=11), 2: playback(2, seed=12)}
    alone = {}
    for run_id, (t, label, sample) in runs.items():
        async with target.session() as s:
            await configure(s.peer, net)
            await s.peer.send(RunRequest(run_id=run_id, n_samples=2, sample_ticks=SAMPLE_TICKS))
            await s.peer.send(_batch(run_id, t, label, sample, 2 * SAMPLE_TICKS))
            alone[run_id] = await collect_run(s.peer, run_id)
    async with target.session() as s:
        await configure(s.peer, net)
        for run_id in (1, 2):
            await s.peer.send(RunRequest(run_id=run_id, n_samples=2, sample_ticks=SAMPLE_TICKS))
        for run_id in (2, 1):
            await s.peer.send(_batch(run_id, *runs[run_id], 2 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got, complete = [], set()
        while complete != {1, 2}:
            msg = await s.peer.receive()
            got.append(msg)
            if isinstance(msg, RunComplete):
                complete.add(msg.run_id)
            if getattr(msg, "run_id", 1) not in (1, 2):
                raise ExchangeFailed(Divergence(first + len(got) - 1, msg.TAG, msg.TAG, "run_id", "1 or 2", msg.run_id))
    for run_id in (1, 2):
        mine = [m for m in got if getattr(m, "run_id", None) == run_id]
        check_run_stream(mine, run_id, 2)
        found = first_divergence(alone[run_id], mine)
        if found is not None:
            raise Failed(f"run {run_id} interleaved differs from run {run_id} alone: {found}", found)
    return {"messages": len(got)}


@scenario("ordering.duplicate-train-step")
async def duplicate_train_step(target):
    """A TrainStep sent twice for the same learning run is taken once: the first is answered by a
    LearnResult, the second by an Error for that run (in reply to train_step), and the weights read
    back afterwards equal those after a single step of the same run in a fresh session. A host that
    repeats a request it believes lost must not make the board apply an update twice."""
    net = small_net()
    t, label, sample = playback(4, seed=51)
    labels = np.array([0, 1, 2, 3], np.uint16)
    weights = []
    for repeat in (1, 2):
        async with target.session() as s:
            peer = s.peer
            await configure(peer, net)
            await peer.send(net.placement.learning(net.net, params={"lr": 1.5}))
            await peer.send(RunRequest(run_id=0, n_samples=4, sample_ticks=SAMPLE_TICKS, learn=True,
                                       record_spikes=False))
            await peer.send(_batch(0, t, label, sample, 4 * SAMPLE_TICKS))
            for _ in range(repeat):
                await peer.send(TrainStep(run_id=0, label=labels))
            first = len(peer.received)
            got = await peer.receive_until(lambda m: isinstance(m, LearnResult))
            tags = [m.TAG for m in got]
            if tags != ["run_complete", "learn_result"]:
                raise Failed(f"message {first}: expected run_complete, learn_result, got {', '.join(tags)}")
            check_run_stream(got[:1], 0, 4, first_index=first)
            if repeat == 2:
                await expect_error(peer, mentions="train_step", in_reply_to="train_step", run_id=0)
            rows, cols, _ = net.block
            await peer.send(ReadWeights(request_id=52, row=rows, column=cols))
            weights.append(await peer.expect(Weights))
    once, twice = weights
    found = first_divergence([once], [twice])
    if found is not None:
        raise Failed(f"the weights after a repeated train step differ from those after one step: {found}", found)
    if np.array_equal(once.weight, net.block[2]):
        raise Failed("one train step changed no weight: the scenario proved nothing")
