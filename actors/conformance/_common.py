"""What the scenarios share: a small network, its playback, and checks of common replies."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...chip import GENERIC_TARGETS, NEURON_LABEL_BASE
from ...host._network import Network, Placement, feedforward, place
from ...protocol import Ack, Error, Message, ReadWeights, RunComplete, SpikeBatch, Weights, WriteWeights
from ..testing import Divergence, ExchangeFailed, ScriptedPeer
from ._scenario import Failed

__all__ = ["SAMPLE_TICKS", "Net", "small_net", "playback", "configure", "expect_error", "collect_run",
           "read_back", "check_run_stream"]

SAMPLE_TICKS = 40 * 125
"""40 hardware us per sample."""


@dataclass(frozen=True)
class Net:
    net: Network
    placement: Placement

    @property
    def block(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.placement
        return p.weight_rows, p.weight_columns, p.weight_block


@lru_cache(maxsize=1)
def small_net() -> Net:
    """16 inputs -> 24 hidden -> 4 outputs, weights strong enough that hidden neurons fire."""
    rng = np.random.default_rng(5)
    net = feedforward(16, 24, 4, GENERIC_TARGETS, rng, hidden_init=(6.0, 12.0), output_init=(10.0, 12.0))
    return Net(net, place(net))


def playback(n_samples: int, rate_per_tick: float = 0.01, seed: int = 3, n_inputs: int = 16):
    """Poisson input events (t_ticks int64, label uint16, sample uint32) of ``n_samples`` samples."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_per_tick * n_samples * SAMPLE_TICKS)
    t = np.sort(rng.integers(0, n_samples * SAMPLE_TICKS, n))
    label = rng.integers(0, n_inputs, n).astype(np.uint16)
    return t.astype(np.int64), label, (t // SAMPLE_TICKS).astype(np.uint32)


async def configure(peer: ScriptedPeer, net: Net, request_id: int = 1) -> None:
    """Neurons, rows and the weight block of ``net``; waits for the write's Ack."""
    p = net.placement
    await peer.send(p.neurons)
    await peer.send(p.rows)
    await peer.send(WriteWeights(request_id=request_id, row=p.weight_rows, column=p.weight_columns,
                                 weight=p.weight_block))
    await peer.expect(Ack(request_id=request_id, what="write_weights"))


async def read_back(peer: ScriptedPeer, net: Net, request_id: int, weight: np.ndarray | None = None) -> Weights:
    """Read the network's weight block; it must be ``weight`` (default: as placed)."""
    rows, cols, block = net.block
    await peer.send(ReadWeights(request_id=request_id, row=rows, column=cols))
    want = Weights(request_id=request_id, row=rows, column=cols, weight=block if weight is None else weight)
    return await peer.expect(want)


async def expect_error(peer: ScriptedPeer, *, mentions: str, in_reply_to: str | tuple[str, ...] | None = None,
                       fault: str = "remote", run_id: int | None = None, timeout_s: float | None = None) -> Error:
    """The next message must be an Error with ``fault``, replying to ``in_reply_to`` (one of, if a
    tuple), for ``run_id`` (if given), whose text names ``mentions``."""
    index = len(peer.received)
    err = await peer.expect(Error, timeout_s=timeout_s)
    allowed = (in_reply_to,) if isinstance(in_reply_to, str) else in_reply_to
    checks = [("fault", fault, err.fault, err.fault == fault)]
    if allowed is not None:
        checks.append(("in_reply_to", " or ".join(allowed), err.in_reply_to, err.in_reply_to in allowed))
    if run_id is not None:
        checks.append(("run_id", run_id, err.run_id, err.run_id == run_id))
    checks.append(("message", f"a text naming {mentions!r}", err.message, mentions in err.message))
    for name, want, got, ok in checks:
        if not ok:
            raise ExchangeFailed(Divergence(index, "error", "error", name, want, got))
    return err


def check_run_stream(messages: list[Message], run_id: int, n_samples: int, *, first_index: int = 0) -> dict:
    """What a run sends up must hold together: every message names ``run_id``; spike ticks never
    decrease across batches, lie in the run and their sample's window; chip labels only; horizons
    never move back; RunComplete comes last and counts the spikes sent. Returns counts by type."""
    end = n_samples * SAMPLE_TICKS
    last_t, last_h, n_spikes, by = 0, 0, 0, {}
    for i, msg in enumerate(messages):
        where = first_index + i
        by[msg.TAG] = by.get(msg.TAG, 0) + 1
        if getattr(msg, "run_id", run_id) != run_id:
            raise ExchangeFailed(Divergence(where, msg.TAG, msg.TAG, "run_id", run_id, msg.run_id))
        if isinstance(msg, RunComplete) and i != len(messages) - 1:
            raise Failed(f"message {where}: run_complete of run {run_id} came before {len(messages) - 1 - i} "
                         f"more message(s) of the run")
        if isinstance(msg, SpikeBatch):
            t = msg.t_ticks
            if msg.horizon_ticks < last_h:
                raise ExchangeFailed(Divergence(where, "spike_batch", "spike_batch", "horizon_ticks",
                                                f">= {last_h}", msg.horizon_ticks, note="horizon moved back"))
            last_h = msg.horizon_ticks
            if t.size:
                if t[0] < last_t:
                    raise ExchangeFailed(Divergence(where, "spike_batch", "spike_batch", "t_ticks[0]",
                                                    f">= {last_t}", int(t[0]), note="ticks went back across batches"))
                bad = np.flatnonzero((t >= end) | (msg.sample.astype(np.int64) != t // SAMPLE_TICKS))
                if bad.size:
                    k = int(bad[0])
                    raise ExchangeFailed(Divergence(where, "spike_batch", "spike_batch", f"sample[{k}]",
                                                    int(t[k] // SAMPLE_TICKS), int(msg.sample[k]),
                                                    note=f"tick {int(t[k])} of a run of {end} ticks"))
                bad = np.flatnonzero(msg.label < NEURON_LABEL_BASE)
                if bad.size:
                    k = int(bad[0])
                    raise ExchangeFailed(Divergence(where, "spike_batch", "spike_batch", f"label[{k}]",
                                                    f">= {NEURON_LABEL_BASE}", int(msg.label[k]),
                                                    note="recorded spikes carry chip neuron labels"))
                last_t = int(t[-1])
            n_spikes += int(t.size)
    if not messages or not isinstance(messages[-1], RunComplete):
        raise Failed(f"run {run_id} ended without run_complete")
    done = messages[-1]
    if by.get("spike_batch") and done.events_out != n_spikes:
        raise ExchangeFailed(Divergence(first_index + len(messages) - 1, "run_complete", "run_complete",
                                        "events_out", n_spikes, done.events_out,
                                        note="spikes received for the run"))
    return {"by_type": by, "spikes": n_spikes}


async def collect_run(peer: ScriptedPeer, run_id: int, *, timeout_s: float | None = None) -> list[Message]:
    """Everything up to and including the next RunComplete (an Error ends it too); check it with
    check_run_stream, which names a RunComplete of another run as a divergence."""
    return await peer.receive_until(lambda m: isinstance(m, (RunComplete, Error)), timeout_s=timeout_s)
