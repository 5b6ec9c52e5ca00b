"""The reliable host link (actors/_reliable.py) under each kind of fault the network can do."""

from __future__ import annotations

import trio

from ...protocol import ReadWeights, RunRequest, SpikeBatch
from .._faults import FaultSpec
from .._reliable import ReliableConfig
from .._system import first_actor_failure
from ..testing import first_divergence
from ._common import SAMPLE_TICKS, collect_run, configure, playback, small_net
from ._scenario import Failed, scenario
from ._target import NotApplicable

RELIABLE = ReliableConfig(rto_s=0.01, max_rto_s=0.1, ack_delay_s=0.001, link_timeout_s=60.0)
KINDS = {
    "drop": FaultSpec(drop=0.25),
    "duplicate": FaultSpec(dup=0.3),
    "reorder": FaultSpec(reorder=0.3),
    "corrupt": FaultSpec(corrupt=0.2),
}
_FIELD = {"drop": "drop", "duplicate": "dup", "reorder": "reorder", "corrupt": "corrupt"}


async def _exchange(target, seen: list, **session_kw) -> tuple[list, object]:
    """A configuration, weight reads and two runs; every message received, and the session.
    ``seen`` gets the peer's list of received messages, to show how far a failed exchange came."""
    net = small_net()
    rows, cols, _ = net.block
    async with target.session(**session_kw) as s:
        seen.append(s.peer.received)
        await configure(s.peer, net)
        for i in range(6):
            await s.peer.send(ReadWeights(request_id=50 + i, row=rows[i:i + 3], column=cols))
        for _ in range(6):
            await s.peer.receive()
        for run_id in (0, 1):
            t, label, sample = playback(2, seed=20 + run_id)
            await s.peer.send(RunRequest(run_id=run_id, n_samples=2, sample_ticks=SAMPLE_TICKS))
            await s.peer.send(SpikeBatch(run_id=run_id, t_ticks=t, label=label, sample=sample,
                                         horizon_ticks=2 * SAMPLE_TICKS))
            await collect_run(s.peer, run_id)
        return list(s.peer.received), s


def _make(kind: str):
    spec = KINDS[kind]

    async def run(target):
        if not target.injects_faults:
            raise NotApplicable("fault injection and reliable delivery go under the host link of a board in this "
                                "process; a board server's end of its socket is out of reach")
        clean, _ = await _exchange(target, [])
        seen: list = []
        try:
            faulty, s = await _exchange(target, seen, faults={"host": spec},
                                        reliable=getattr(target, "reliable_config", None) or RELIABLE)
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except BaseException as exc:  # name how far the exchange came before it broke
            found = first_divergence(clean, seen[0] if seen else [])
            leaf = first_actor_failure(exc) or exc
            where = f"at {found}" if found is not None else "after the whole exchange"
            raise Failed(f"through {kind} faults the exchange broke off {where}: {leaf}", found) from exc
        injected = sum(c[_FIELD[kind]] for c in s.faults.statistics().values())
        if injected == 0:
            raise Failed(f"the fault injection did no {kind} at all: the scenario proved nothing")
        found = first_divergence(clean, faulty)
        if found is not None:
            raise Failed(f"through {kind} faults the host received another exchange than over a clean link: {found}",
                         found)
        stats = {side: st.as_dict() for side, st in s.reliable.items()}
        repaired = sum(st["retransmissions"] + st["duplicates_discarded"] + st["out_of_order"] + st["corrupt_discarded"]
                       for st in stats.values())
        if repaired == 0:
            raise Failed(f"{injected} {kind} faults were injected but reliable delivery repaired none")
        return {"injected": int(injected), "messages": len(faulty),
                "retransmissions": sum(st["retransmissions"] for st in stats.values()),
                "duplicates_discarded": sum(st["duplicates_discarded"] for st in stats.values()),
                "out_of_order": sum(st["out_of_order"] for st in stats.values()),
                "corrupt_discarded": sum(st["corrupt_discarded"] for st in stats.values())}

    run.__doc__ = (f"With {kind} faults injected on both directions of the host link ({getattr(spec, _FIELD[kind]):g} "
                   f"of frames, seeded) and reliable delivery (sequence numbers, acknowledgements, retransmission) on "
                   f"both ends, a configuration, six weight reads and two runs give the host exactly the messages, in "
                   f"the order, that a clean link gives. The hardware's host link is UDP with HostARQ: frames are "
                   f"lost, doubled, reordered and corrupted, and no result may depend on it.")
    return run


for _kind in KINDS:
    scenario(f"reliable.{_kind}")(_make(_kind))
