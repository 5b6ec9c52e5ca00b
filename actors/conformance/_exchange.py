"""Every message type of the catalogue in a valid exchange, and what the board must answer."""

from __future__ import annotations

import numpy as np

from ...protocol import (Ack, Gradients, LearnerState, LearnResult, LinkFrame, MembraneSamples, NeuronTrace,
                         ReadLearnerState, ReadWeights, RunComplete, RunRequest, Shutdown, SpikeBatch, TrainStep,
                         Weights, WriteLearnerState, WriteWeights)
from ..testing import Divergence, ExchangeFailed
from ._common import (SAMPLE_TICKS, check_run_stream, collect_run, configure, expect_error, playback, read_back,
                      small_net)
from ._scenario import Failed, scenario


async def _learning_run(peer, net, t, label, sample, *, n_samples: int = 4, horizon_ticks: int | None = None) -> None:
    """Configure ``net`` with learning on, then play run 0 (learn=True, no spikes recorded): the
    playback ``(t, label, sample)`` up to ``horizon_ticks`` (default: the whole run)."""
    await configure(peer, net)
    await peer.send(net.placement.learning(net.net))
    await peer.send(RunRequest(run_id=0, n_samples=n_samples, sample_ticks=SAMPLE_TICKS, learn=True, record_spikes=False))
    horizon = n_samples * SAMPLE_TICKS if horizon_ticks is None else horizon_ticks
    await peer.send(SpikeBatch(run_id=0, t_ticks=t, label=label, sample=sample, horizon_ticks=horizon))


@scenario("exchange.configure-weights")
async def configure_weights(target):
    """ConfigureNeurons and ConfigureRows are taken without a reply; WriteWeights is confirmed by an
    Ack echoing its request_id and tag; ReadWeights is answered by Weights with the same
    request_id, rows and columns and exactly the codes written (the codes as stored: a board must
    not change what it was told to hold). A second write to part of the block shows in the next read."""
    net = small_net()
    async with target.session() as s:
        await configure(s.peer, net, request_id=11)
        await read_back(s.peer, net, request_id=12)
        rows, cols, block = net.block
        part = np.full((2, 3), 7, np.uint8)
        await s.peer.send(WriteWeights(request_id=13, row=rows[:2], column=cols[:3], weight=part))
        await s.peer.expect(Ack(request_id=13, what="write_weights"))
        changed = block.copy()
        changed[:2, :3] = 7
        await read_back(s.peer, net, request_id=14, weight=changed)


@scenario("exchange.run-spikes")
async def run_spikes(target):
    """A RunRequest and its input SpikeBatch (horizon at the end of the run) are answered by the
    recorded spikes (SpikeBatch of the same run_id, ticks non-decreasing, within their sample,
    chip neuron labels) and a RunComplete last, counting every input event played and every spike
    sent, with nothing dropped. This is the exchange every inference and training job is made of."""
    net = small_net()
    t, label, sample = playback(4)
    async with target.session() as s:
        await configure(s.peer, net)
        await s.peer.send(RunRequest(run_id=0, n_samples=4, sample_ticks=SAMPLE_TICKS))
        await s.peer.send(SpikeBatch(run_id=0, t_ticks=t, label=label, sample=sample, horizon_ticks=4 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got = await collect_run(s.peer, 0)
        summary = check_run_stream(got, 0, 4, first_index=first)
        done = got[-1]
        want = RunComplete(run_id=0, n_samples=4, events_in=int(t.size), events_out=done.events_out)
        if done != want:
            raise ExchangeFailed(Divergence(first + len(got) - 1, "run_complete", done.TAG, None, want, done))
        if summary["spikes"] == 0:
            raise Failed("the network recorded no spike at all: the input did not reach the neurons")
    return summary


@scenario("exchange.observables")
async def observables(target):
    """A run with CADC sampling (cadc_period_ticks) and an MADC trace (madc_neuron) and no spike
    recording sends MembraneSamples (every configured neuron, one row per sample time, times on the
    period's grid of each sample) and a NeuronTrace of the asked neuron, no SpikeBatch, then
    RunComplete. Surrogate-gradient training in the loop reads exactly these observables."""
    net = small_net()
    t, label, sample = playback(2, seed=4)
    period = 250
    async with target.session() as s:
        await configure(s.peer, net)
        await s.peer.send(RunRequest(run_id=0, n_samples=2, sample_ticks=SAMPLE_TICKS, cadc_period_ticks=period,
                                     madc_neuron=3, record_spikes=False))
        await s.peer.send(SpikeBatch(run_id=0, t_ticks=t, label=label, sample=sample, horizon_ticks=2 * SAMPLE_TICKS))
        first = len(s.peer.received)
        got = await collect_run(s.peer, 0)
        summary = check_run_stream(got, 0, 2, first_index=first)
        if summary["by_type"].get("spike_batch"):
            raise Failed("spikes were sent up for a run with record_spikes=False")
        cadc = [m for m in got if isinstance(m, MembraneSamples)]
        traces = [m for m in got if isinstance(m, NeuronTrace)]
        if not cadc or not traces:
            raise Failed(f"expected membrane_samples and neuron_trace, got {summary['by_type']}")
        times = np.concatenate([m.t_ticks for m in cadc])
        grid = np.arange(0, SAMPLE_TICKS, period)
        want = np.concatenate([k * SAMPLE_TICKS + grid for k in range(2)])
        if times.shape != want.shape or np.any(times != want):
            k = int(np.flatnonzero(times[: want.size] != want[: times.size])[0]) if times.size and want.size else 0
            raise ExchangeFailed(Divergence(first + got.index(cadc[0]), "membrane_samples", "membrane_samples",
                                            f"t_ticks[{k}]", int(want[k]) if k < want.size else None,
                                            int(times[k]) if k < times.size else None,
                                            note=f"{times.size} sample times, expected {want.size}"))
        neurons = np.unique(net.net.circuits)
        for m in cadc:
            if not np.array_equal(np.sort(m.neuron), neurons):
                raise ExchangeFailed(Divergence(first + got.index(m), "membrane_samples", "membrane_samples", "neuron",
                                                neurons.tolist(), m.neuron.tolist()))
        for m in traces:
            if m.neuron != 3:
                raise ExchangeFailed(Divergence(first + got.index(m), "neuron_trace", "neuron_trace", "neuron", 3,
                                                m.neuron))
    return {**summary, "cadc_samples": int(times.size), "madc_samples": int(sum(m.t_ticks.size for m in traces))}


@scenario("exchange.learning")
async def learning(target):
    """The learning messages: ConfigureLearning; a run with learn=True followed by a TrainStep that
    only evaluates (apply_update false) and reports gradients is answered by RunComplete, Gradients
    (shape sources x model neurons) and LearnResult (same run, n_samples, spike counts per model
    neuron); ReadLearnerState answers LearnerState with step 0; WriteLearnerState is confirmed by an
    Ack and a second read returns exactly the state written. Checkpoints rely on this round trip."""
    net = small_net()
    n_src, n_model = net.net.trainable.shape
    t, label, sample = playback(4, seed=5)
    async with target.session() as s:
        peer = s.peer
        await _learning_run(peer, net, t, label, sample)
        await peer.send(TrainStep(run_id=0, label=np.array([0, 1, 2, 3], np.uint16), apply_update=False,
                                  report_gradients=True))
        first = len(peer.received)
        got = await peer.receive_until(lambda m: isinstance(m, LearnResult))
        tags = [m.TAG for m in got]
        if tags != ["run_complete", "gradients", "learn_result"]:
            want = [RunComplete, Gradients, LearnResult]
            for i, m in enumerate(got):
                if i >= len(want) or not isinstance(m, want[i]):
                    raise ExchangeFailed(Divergence(first + i, want[i].TAG if i < len(want) else None, m.TAG,
                                                    None, None, m))
        check_run_stream(got[:1], 0, 4, first_index=first)
        grads, result = got[1], got[2]
        if grads.run_id != 0 or grads.grad.shape != (n_src, n_model):
            raise ExchangeFailed(Divergence(first + 1, "gradients", "gradients", "grad.shape", (n_src, n_model),
                                            grads.grad.shape))
        if result.run_id != 0 or result.n_samples != 4 or result.spike_count.shape != (n_model,):
            raise ExchangeFailed(Divergence(first + 2, "learn_result", "learn_result", "spike_count.shape",
                                            (n_model,), result.spike_count.shape))
        if not np.isfinite(result.loss) or result.loss != grads.loss:
            raise ExchangeFailed(Divergence(first + 2, "learn_result", "learn_result", "loss", grads.loss,
                                            result.loss, note="the loss of the step, as in its gradients"))
        await peer.send(ReadLearnerState(request_id=21))
        state = await peer.expect(lambda m: isinstance(m, LearnerState) and m.request_id == 21 and m.step == 0)
        rng = np.random.default_rng(7)
        shadow = np.where(net.net.trainable, np.round(rng.normal(10, 5, state.shadow.shape), 3), 0.0)
        m1, m2 = rng.normal(0, 1, shadow.shape), rng.uniform(0, 1, shadow.shape)
        await peer.send(WriteLearnerState(request_id=22, step=3, shadow=shadow, adam_m=m1, adam_v=m2))
        await peer.expect(Ack(request_id=22, what="write_learner_state"))
        await peer.send(ReadLearnerState(request_id=23))
        await peer.expect(LearnerState(request_id=23, step=3, shadow=shadow, adam_m=m1, adam_v=m2))
    return {"loss": float(result.loss), "n_correct": int(result.n_correct)}


@scenario("exchange.shutdown")
async def shutdown(target):
    """After Shutdown the board finishes what it accepted and closes the link, sending nothing
    unasked: a Weights reply requested just before the Shutdown still arrives, then the stream
    ends. A host that says goodbye must be able to tell the board is gone, not wait for ever."""
    net = small_net()
    async with target.session() as s:
        await configure(s.peer, net)
        rows, cols, block = net.block
        await s.peer.send(ReadWeights(request_id=31, row=rows, column=cols))
        await s.peer.send(Shutdown(reason="conformance"))
        await s.peer.expect(Weights(request_id=31, row=rows, column=cols, weight=block))
        await s.peer.expect_end()


@scenario("exchange.shutdown-while-learning")
async def shutdown_while_learning(target):
    """A Shutdown sent right after a learning run (whole input given) and its TrainStep: the board
    finishes what it accepted, so the RunComplete and the LearnResult of that step still arrive,
    then the link closes. A host that ends a training session with its last step in flight must
    not lose that step (docs/protocol.md, shutdown: the receiver finishes what it accepted)."""
    net = small_net()
    t, label, sample = playback(4, seed=8)
    async with target.session() as s:
        peer = s.peer
        await _learning_run(peer, net, t, label, sample)
        await peer.send(TrainStep(run_id=0, label=np.array([0, 1, 2, 3], np.uint16)))
        await peer.send(Shutdown(reason="conformance: the last step is in flight"))
        done = await peer.expect(RunComplete)
        if done.run_id != 0 or done.dropped:
            raise Failed(f"run_complete: expected run 0 with nothing dropped, got run {done.run_id}, "
                         f"dropped {dict(done.dropped)}")
        result = await peer.expect(LearnResult)
        if result.run_id != 0 or result.n_samples != 4:
            raise Failed(f"learn_result: expected run 0 over 4 samples, got run {result.run_id}, "
                         f"{result.n_samples} samples")
        await peer.expect_end()


@scenario("exchange.shutdown-cuts-a-run")
async def shutdown_cuts_a_run(target):
    """A Shutdown while a learning run still waits for its playback (2 of its 4 samples and half of
    the third played) and its TrainStep is queued: the board closes the run with a RunComplete whose
    dropped map names cut_by_shutdown (the events received for samples never run), answers the
    TrainStep with an Error instead of learning on half a record, then closes the link. Nothing the
    host is owed may hang, and a cut run must not look like a finished one."""
    net = small_net()
    t, label, sample = playback(4, seed=9)
    horizon = 2 * SAMPLE_TICKS + SAMPLE_TICKS // 2  # samples 0 and 1 complete, half of sample 2 played
    played = t < horizon
    t, label, sample = t[played], label[played], sample[played]
    late = int(np.count_nonzero(sample >= 2))
    async with target.session() as s:
        peer = s.peer
        await _learning_run(peer, net, t, label, sample, horizon_ticks=horizon)
        await peer.send(TrainStep(run_id=0, label=np.array([0, 1, 2, 0], np.uint16)))
        await peer.send(Shutdown(reason="conformance: a run is cut short"))
        done = await peer.expect(RunComplete)
        cut = done.dropped.get("cut_by_shutdown", 0)
        if done.run_id != 0 or done.n_samples != 2 or cut != late:
            raise Failed(f"run_complete: expected run 0, 2 samples run, dropped cut_by_shutdown={late}; got run "
                         f"{done.run_id}, {done.n_samples} samples, dropped {dict(done.dropped)}")
        await expect_error(peer, mentions="cut short", in_reply_to="train_step", run_id=0)
        await peer.expect_end()
    return {"cut_events": cut}


@scenario("exchange.refused-learning-run")
async def refused_learning_run(target):
    """A learning run the chip cannot hold (CADC period below the converter's minimum) is refused
    with a chip-limit Error for its run_id, and the TrainStep queued on it is answered with an Error
    too (the plasticity processor must not wait for a run that will never complete); afterwards
    the board serves the next run and learning step as usual."""
    net = small_net()
    t, label, sample = playback(2, seed=10)
    async with target.session() as s:
        peer = s.peer
        await configure(peer, net)
        await peer.send(net.placement.learning(net.net))
        await peer.send(RunRequest(run_id=5, n_samples=2, sample_ticks=SAMPLE_TICKS, learn=True, record_spikes=False,
                                   cadc_period_ticks=1))
        await expect_error(peer, mentions="cadc_period_ticks", in_reply_to="run_request", fault="chip-limit",
                           run_id=5)
        await peer.send(TrainStep(run_id=5, label=np.array([0, 1], np.uint16)))
        await expect_error(peer, mentions="refused", in_reply_to="train_step", run_id=5)
        await peer.send(RunRequest(run_id=6, n_samples=2, sample_ticks=SAMPLE_TICKS, learn=True, record_spikes=False))
        await peer.send(SpikeBatch(run_id=6, t_ticks=t, label=label, sample=sample, horizon_ticks=2 * SAMPLE_TICKS))
        await peer.send(TrainStep(run_id=6, label=np.array([0, 1], np.uint16)))
        done = await peer.expect(RunComplete)
        result = await peer.expect(LearnResult)
        if done.run_id != 6 or result.run_id != 6:
            raise Failed(f"after the refusal: expected run 6's RunComplete and LearnResult, got runs "
                         f"{done.run_id} and {result.run_id}")


@scenario("exchange.wrong-direction")
async def wrong_direction(target):
    """Messages only a board sends, sent by a host, are refused, each with an Error in reply to its
    own tag, and change nothing: Weights (which has WriteWeights' fields), LearnerState (which has
    WriteLearnerState's), RunComplete, and a LinkFrame on a link without reliable delivery. A board
    that took Weights for a write would let a host's echo of a reply overwrite the synapse array."""
    net = small_net()
    rows, cols, block = net.block
    junk = [Weights(request_id=81, row=rows[:1], column=cols[:1], weight=np.full((1, 1), 63, np.uint8)),
            LearnerState(request_id=82, step=1, shadow=np.zeros((1, 1)), adam_m=np.zeros((1, 1)),
                         adam_v=np.zeros((1, 1))),
            RunComplete(run_id=83, n_samples=1, events_in=0, events_out=0),
            LinkFrame(seq=0, ack=0, payload=np.zeros(4, np.uint8), sack=np.zeros(0, np.uint8))]
    async with target.session() as s:
        await configure(s.peer, net)
        for msg in junk:
            await s.peer.send(msg)
            await expect_error(s.peer, mentions=msg.TAG, in_reply_to=msg.TAG)
        await read_back(s.peer, net, request_id=84)
