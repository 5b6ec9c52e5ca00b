"""Actor hop overhead: messages through one in-process link into an actor, and what the actors and
the protocol cost inside ``neurosplit demo``.

Part 1, one hop: a sender task sends ``--messages`` messages over one Link (encode, bounded
in-process channel, receive, decode) into a sink Actor (pump, inbox, dispatch to ``handle``),
for three sizes: an Ack, a SpikeBatch of 100 and one of 10,000 events. Printed: messages/s
(wall and per CPU-second of this process) and codec time, from a run with the always-on counters
only (as the demo runs), best of ``--repeats``; and the per-message latency from send to the
start of ``handle`` (p50, p99), from a second run with the detailed profiler attached (its side
table stamps each frame; nothing is added to the frames), whose hooks cost CPU of their own.

Part 2, the demo: the demo's training (on-chip EventProp, Yin-Yang, ``--epochs``) with the
always-on counters. The actor and protocol overhead is estimated twice:

- in CPU time (robust on a busy machine): part 1 gives the CPU cost of a hop (encode, channel,
  decode, pump, inbox, dispatch, the sender's loop): a message without arrays costs what the Ack
  costs; one with arrays what the 100-event SpikeBatch costs, plus its bytes beyond that at the
  per-byte cost between the 100- and the 10,000-event batch. Applied to the demo's frames (every
  link, by message type), as a fraction of the demo process's CPU time (all threads);
- in wall time: codec seconds measured on every frame + frames x (the Ack hop's wall time beyond
  its codec), as a fraction of the demo's wall time.

Target: under 10 %. The same demo is then
run with the detailed profiler attached, so its overhead is measured directly (wall A/B) and
compared with the profiler's own estimate (hook calls x the cost of one hook call).

    python -m benchmarks.actor_hop
    python -m benchmarks.actor_hop --epochs 1 --json /tmp/actor_hop.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import trio

from neurosplit.actors import Actor, Profiler, SystemConfig, open_link, open_system
from neurosplit.actors._profile import _ActorProbe
from neurosplit.chip import CoreConfig
from neurosplit.host._training import TrainConfig, train
from neurosplit.protocol import Ack, SpikeBatch

from ._common import header_line, versions_of_project, write_json

SEED = 2024


class _Sink(Actor):
    name = "sink"

    def __init__(self, end, n: int) -> None:
        super().__init__({"in": end})
        self.n, self.seen, self.done = n, 0, trio.Event()

    async def handle(self, link_name, msg) -> None:
        self.seen += 1
        if self.seen == self.n:
            self.done.set()
            self.stop()


def _messages(kind: str, n: int) -> list:
    if kind == "ack":
        return [Ack(request_id=i, what="write_weights") for i in range(n)]
    events = {"spikes100": 100, "spikes10k": 10_000}[kind]
    rng = np.random.default_rng([SEED, events])
    t = np.sort(rng.integers(0, 50 * 3750, events))
    base = SpikeBatch(run_id=1, t_ticks=t, label=rng.integers(0, 8192, events).astype(np.uint16),
                      sample=(t // 3750).astype(np.uint32), horizon_ticks=50 * 3750)
    return [base] * n


async def _one_hop(kind: str, n: int, buffer: int, profiled: bool) -> dict:
    msgs = _messages(kind, n)
    link = open_link("hop", buffer=buffer)
    sink = _Sink(link.b, n)
    if profiled:
        profiler = Profiler(detailed=True)

        class _System:  # what Profiler.attach reads
            links = {"hop": link}

        profiler.attach(_System())
        sink.probe = _ActorProbe(profiler, sink)  # the sink is no system actor: hook it by hand
    t0, c0 = time.perf_counter(), time.process_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.serve)
        for m in msgs:
            await link.a.send(m)
        await sink.done.wait()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = link.stats["down"]
    out = {"kind": kind, "messages": n, "frame_bytes": stats.bytes // n, "wall_s": wall, "cpu_s": cpu,
           "messages_per_s": n / wall, "messages_per_cpu_s": n / cpu,
           "cpu_us_per_message": 1e6 * cpu / n, "wall_us_per_message": 1e6 * wall / n,
           "codec_us_per_message": 1e6 * (stats.encode_s + stats.decode_s) / n}
    if profiled:
        profiler.stop()
        hop = np.asarray(link.probe.latency_s["down"])
        wait = np.asarray(sink.probe.wait_s)
        to_handle = hop[:wait.size] + wait  # send -> receive -> start of handle
        out["latency_p50_us"] = float(np.percentile(to_handle, 50)) * 1e6
        out["latency_p99_us"] = float(np.percentile(to_handle, 99)) * 1e6
    return out


def _hop(kind: str, n: int, buffer: int, repeats: int) -> dict:
    """The best of ``repeats`` plain runs (CPU per message), with the latencies of a profiled run."""
    plain = min((trio.run(_one_hop, kind, n, buffer, False) for _ in range(repeats)),
                key=lambda r: r["cpu_us_per_message"])
    profiled = trio.run(_one_hop, kind, n, buffer, True)
    return {**plain, "latency_p50_us": profiled["latency_p50_us"], "latency_p99_us": profiled["latency_p99_us"],
            "profiled_cpu_us_per_message": profiled["cpu_us_per_message"]}


async def _demo(epochs: int, n_train: int, detailed: bool | None) -> dict:
    cfg = TrainConfig(epochs=epochs, n_train=n_train, seed=0)
    profiler = Profiler(detailed=detailed) if detailed is not None else None
    t0, c0 = time.perf_counter(), time.process_time()
    async with open_system(SystemConfig(core=CoreConfig()), profiler=profiler) as system:
        t1 = time.perf_counter()
        report = await train(system.host, cfg)
        t2 = time.perf_counter()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    links = system.links.values()
    codec = sum(s.encode_s + s.decode_s for link in links for s in link.stats.values())
    frames = sum(s.messages for link in links for s in link.stats.values())
    frame_bytes = sum(s.bytes for link in links for s in link.stats.values())
    by_type: dict[str, list[int]] = {}
    for link in links:
        for st in link.stats.values():
            for tag, (m, b, _) in st.by_tag.items():
                row = by_type.setdefault(tag, [0, 0])
                row[0] += m
                row[1] += b
    out = {"by_type": by_type, "wall_s": wall, "cpu_s": cpu, "train_s": t2 - t1, "codec_s": codec, "frames": frames,
           "frame_bytes": frame_bytes,
           "test_accuracy": report["test_accuracy"],
           "busy_s": {a.name: a.busy_s for a in (system.host, system.router, system.core, system.ppu)}}
    if profiler is not None:
        out["profile_overhead"] = profiler.report()["overhead"]
    return out


_NO_ARRAYS = {"hello", "ack", "run_request", "run_complete", "shutdown", "error"}


def _cpu_overhead_s(hops: list[dict], by_type: dict) -> float:
    """CPU seconds the demo's frames cost in hops, from the part-1 costs (see the module docstring)."""
    ack, small, big = (next(h for h in hops if h["kind"] == k) for k in ("ack", "spikes100", "spikes10k"))
    per_byte = (big["cpu_us_per_message"] - small["cpu_us_per_message"]) / (big["frame_bytes"] - small["frame_bytes"])
    us = 0.0
    for tag, (m, b) in by_type.items():
        if tag in _NO_ARRAYS:
            us += m * ack["cpu_us_per_message"]
        else:
            us += m * small["cpu_us_per_message"] + max(b - m * small["frame_bytes"], 0) * max(per_byte, 0.0)
    return us * 1e-6


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20_000, help="messages per size in part 1")
    p.add_argument("--buffer", type=int, default=4, help="link buffer (frames)")
    p.add_argument("--repeats", type=int, default=3, help="plain runs per size in part 1; the best counts")
    p.add_argument("--epochs", type=int, default=1, help="demo epochs in part 2 (the demo itself runs 5)")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    hops = []
    for kind in ("ack", "spikes100", "spikes10k"):
        n = args.messages if kind != "spikes10k" else max(args.messages // 10, 100)
        hops.append(_hop(kind, n, args.buffer, args.repeats))
    trio.run(_demo, 1, 100, None)  # warm-up: numba caches load, calibration compiles
    plain = trio.run(_demo, args.epochs, args.n_train, None)
    profiled = trio.run(_demo, args.epochs, args.n_train, True)
    plain2 = trio.run(_demo, args.epochs, args.n_train, None)
    ack = hops[0]
    overhead_cpu_s = _cpu_overhead_s(hops, plain["by_type"])
    # wall clock on both sides, like the codec counters (perf_counter) it is added to
    fixed_us = max(ack["wall_us_per_message"] - ack["codec_us_per_message"], 0.0)
    overhead_s = plain["codec_s"] + plain["frames"] * fixed_us * 1e-6
    print(header_line(versions_of_project(), {"actors": 1}, {"data": SEED}, buffer=args.buffer))
    print("one hop: sender -> Link (encode, channel, decode) -> Actor (pump, inbox, handle)")
    print(f"{'message':<10} {'B/frame':>9} {'msgs/s':>10} {'msgs/cpu-s':>11} {'cpu us/msg':>11} {'codec us':>9} "
          f"{'p50 us':>8} {'p99 us':>8} {'cpu us/msg profiled':>20}")
    for h in hops:
        print(f"{h['kind']:<10} {h['frame_bytes']:>9,} {h['messages_per_s']:>10,.0f} {h['messages_per_cpu_s']:>11,.0f} "
              f"{h['cpu_us_per_message']:>11.1f} {h['codec_us_per_message']:>9.1f} {h['latency_p50_us']:>8.1f} "
              f"{h['latency_p99_us']:>8.1f} {h['profiled_cpu_us_per_message']:>20.1f}")
    print("(msgs/s, CPU and codec: counters only, best of --repeats runs; p50/p99: a run with the detailed profiler)")
    print(f"\ndemo training ({args.epochs} epoch(s) of {args.n_train} samples, on-chip EventProp):")
    print(f"  wall {plain['wall_s']:.2f} s (training {plain['train_s']:.2f} s), CPU {plain['cpu_s']:.2f} s, "
          f"{plain['frames']:,} frames, {plain['frame_bytes'] / 1e6:.1f} MB")
    print(f"  CPU: actor + protocol {overhead_cpu_s:.3f} s = "
          f"{100 * overhead_cpu_s / plain['cpu_s']:.1f} % of the demo's CPU time (target < 10 %)")
    print(f"  wall: codec {plain['codec_s']:.3f} s + frames x {fixed_us:.1f} us = {overhead_s:.3f} s = "
          f"{100 * overhead_s / plain['wall_s']:.1f} % of wall")
    print("  busy s inside handle: " + ", ".join(f"{k} {v:.2f}" for k, v in plain["busy_s"].items()))
    est = profiled["profile_overhead"]
    base = 0.5 * (plain["wall_s"] + plain2["wall_s"])
    delta = profiled["wall_s"] - base
    print(f"  detailed profiler: wall {profiled['wall_s']:.2f} s vs {plain['wall_s']:.2f} / {plain2['wall_s']:.2f} s "
          f"without ({100 * delta / base:+.1f} %, run-to-run noise included); its own estimate "
          f"{est['estimated_s'] * 1e3:.1f} ms ({100 * est['fraction_of_wall']:.2f} %)")
    result = {"hops": hops, "demo": plain, "demo_profiled": profiled, "fixed_hop_us": fixed_us,
              "overhead_cpu_s": overhead_cpu_s,
              "overhead_cpu_fraction": overhead_cpu_s / plain["cpu_s"],
              "overhead_s": overhead_s, "overhead_fraction": overhead_s / plain["wall_s"],
              "profiler_wall_delta_fraction": delta / base, "demo_again": plain2, "args": vars(args),
              "versions": versions_of_project()}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
