"""A full small training step on chip, against the host-side learner as the reference."""

from __future__ import annotations

import numpy as np

from ...chip import Learner, LearnerConfig
from ...protocol import TICKS_PER_US, LearnResult, RunComplete, RunRequest, SpikeBatch, TrainStep
from ..testing import Divergence, ExchangeFailed, first_divergence
from ._common import SAMPLE_TICKS, check_run_stream, configure, playback, read_back, small_net
from ._scenario import Failed, scenario

N_SAMPLES = 8
PARAMS = {"lr": 1.5}


@scenario("training.step")
async def training_step(target):
    """An on-chip EventProp step: after ConfigureLearning (ttfs loss, Adam), a learning run with
    recorded spikes and a TrainStep come back as RunComplete and a LearnResult whose loss, correct
    count and spike counts equal what the host-side Learner (chip._learner, the code the host
    EventProp placement runs) computes from the same inputs and recorded spikes, and the weights
    read back afterwards are the placed ones with exactly the rows that Learner changes rewritten
    to its codes. Both placements of EventProp must give bit-identical weights."""
    net = small_net()
    t, label, sample = playback(N_SAMPLES, seed=41)
    labels = np.arange(N_SAMPLES, dtype=np.uint16) % 4
    async with target.session() as s:
        peer = s.peer
        await configure(peer, net)
        learning = net.placement.learning(net.net, loss="ttfs", optimiser="adam", params=PARAMS)
        await peer.send(learning)
        await peer.send(RunRequest(run_id=0, n_samples=N_SAMPLES, sample_ticks=SAMPLE_TICKS, learn=True,
                                   record_spikes=True))
        await peer.send(SpikeBatch(run_id=0, t_ticks=t, label=label, sample=sample,
                                   horizon_ticks=N_SAMPLES * SAMPLE_TICKS))
        await peer.send(TrainStep(run_id=0, label=labels))
        first = len(peer.received)
        got = await peer.receive_until(lambda m: isinstance(m, LearnResult) or m.TAG == "error")
        done = next((m for m in got if isinstance(m, RunComplete)), None)
        result = got[-1]
        if done is None or not isinstance(result, LearnResult):
            raise Failed(f"expected run_complete and learn_result, got {[m.TAG for m in got]}")
        check_run_stream([m for m in got if isinstance(m, (SpikeBatch, RunComplete))], 0, N_SAMPLES,
                         first_index=first)
        if dict(done.dropped):
            raise Failed(f"the learning run dropped events: {dict(done.dropped)}")
        spikes = [m for m in got if isinstance(m, SpikeBatch)]
        rt = np.concatenate([b.t_ticks for b in spikes]) if spikes else np.zeros(0, np.int64)
        rl = np.concatenate([b.label for b in spikes]) if spikes else np.zeros(0, np.uint16)
        rs = np.concatenate([b.sample for b in spikes]) if spikes else np.zeros(0, np.uint32)

        arr = net.placement.array
        learner = Learner.from_synapses(net.net.targets, net.net.input_label, net.net.hidden, net.net.output,
                                        arr.row_label, arr.row_sign, arr.weight[:, net.net.circuits],
                                        net.net.trainable, LearnerConfig.from_params("ttfs", PARAMS))
        inputs, _ = learner.spikes_from_ticks(t, label, sample, SAMPLE_TICKS)
        _, recorded = learner.spikes_from_ticks(rt, rl, rs, SAMPLE_TICKS)
        outcome = learner.step(inputs, recorded, labels, N_SAMPLES, SAMPLE_TICKS / TICKS_PER_US, apply=True)
        want = LearnResult(run_id=0, loss=float(outcome.loss.loss), n_correct=int(outcome.loss.correct.sum()),
                           n_samples=N_SAMPLES, spike_count=outcome.spike_count, metrics=dict(result.metrics))
        found = first_divergence([want], [result])
        if found is not None:
            raise ExchangeFailed(Divergence(first + len(got) - 1, found.expected, found.received, found.field,
                                            found.expected_value, found.received_value,
                                            note="the host-side Learner's figures for the same step"))
        if outcome.write_rows.size == 0:
            raise Failed("the reference step changed no weight code: the scenario proved nothing (raise lr)")
        rows, cols, block = net.block
        expected = block.copy()
        for r, codes in zip(outcome.write_rows, outcome.write_codes):
            expected[np.flatnonzero(rows == r)] = codes
        await read_back(peer, net, request_id=71, weight=expected)
    return {"loss": float(result.loss), "n_correct": int(result.n_correct),
            "rows_changed": int(outcome.write_rows.size),
            "recorded_spikes": int(rt.size)}
