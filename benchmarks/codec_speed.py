"""Encode + decode throughput of SpikeBatch frames: our codec beside two plain-msgpack peers.

Each scheme turns one SpikeBatch of n events (t_ticks int64, label uint16, sample uint32: 14 bytes
of payload per event) into bytes and back into numpy arrays:

- ``neurosplit``: ``decode(encode(msg))``, arrays out of band as 8-byte aligned bin32, decoded
  as read-only views (no copy); the decode also validates (tick order, label range, lengths),
  which the peers do not.
- ``msgpack lists``: ``msgpack.packb`` of a map whose arrays are ``arr.tolist()``, then
  ``msgpack.unpackb`` and ``np.asarray(list, dtype)``: what a naive message type would do.
- ``msgpack bin copy``: arrays as bin via ``arr.tobytes()``, then ``np.frombuffer(...).copy()``:
  raw bytes, but copied on both sides.

MB/s counts the array payload (14 bytes per event) for every scheme, so the columns compare;
the wire bytes per message are printed apart. Times are the best of several rounds, each the mean
of enough calls to last about ``--round-s`` seconds.

Our frames carry a CRC-32 of the body, computed on encode and checked on decode; the peers carry
none. For large batches that checksum is most of our time, so the CRC-32 throughput of zlib (and
of ISA-L, which the codec uses when the optional ``isal`` package is installed) is printed too.

    python -m benchmarks.codec_speed
    python -m benchmarks.codec_speed --sizes 100 10000 1000000 --json /tmp/codec.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable

import zlib

import msgpack
import numpy as np

from neurosplit.protocol import PROTOCOL_VERSION, SpikeBatch, decode, encode
from neurosplit.protocol import _codec

SEED = 2024
FIELDS = {"t_ticks": np.int64, "label": np.uint16, "sample": np.uint32}
PAYLOAD_BYTES_PER_EVENT = 8 + 2 + 4


def spike_batch(n: int, seed: int = SEED) -> SpikeBatch:
    """n events of a 64-sample run with 16384 labels, sorted by tick."""
    rng = np.random.default_rng([seed, n])
    t = np.sort(rng.integers(0, 64 * 125_000, n))
    return SpikeBatch(run_id=1, t_ticks=t, label=rng.integers(0, 16384, n).astype(np.uint16),
                      sample=(t // 125_000).astype(np.uint32), horizon_ticks=64 * 125_000)


# -- the schemes: each is (to_bytes, from_bytes), from_bytes returning the three arrays -----------
def ours() -> tuple[Callable, Callable]:
    def back(frame: bytes):
        msg = decode(frame)
        return msg.t_ticks, msg.label, msg.sample
    return encode, back


def msgpack_lists() -> tuple[Callable, Callable]:
    def to_bytes(msg: SpikeBatch) -> bytes:
        return msgpack.packb({"t": "spike_batch", "run_id": msg.run_id, "horizon_ticks": msg.horizon_ticks,
                              **{name: getattr(msg, name).tolist() for name in FIELDS}})

    def back(data: bytes):
        d = msgpack.unpackb(data)
        return tuple(np.asarray(d[name], dtype) for name, dtype in FIELDS.items())
    return to_bytes, back


def msgpack_bin_copy() -> tuple[Callable, Callable]:
    def to_bytes(msg: SpikeBatch) -> bytes:
        return msgpack.packb({"t": "spike_batch", "run_id": msg.run_id, "horizon_ticks": msg.horizon_ticks,
                              **{name: getattr(msg, name).tobytes() for name in FIELDS}}, use_bin_type=True)

    def back(data: bytes):
        d = msgpack.unpackb(data)
        return tuple(np.frombuffer(d[name], dtype).copy() for name, dtype in FIELDS.items())
    return to_bytes, back


SCHEMES = {"neurosplit": ours, "msgpack lists": msgpack_lists, "msgpack bin copy": msgpack_bin_copy}


def time_round_trip(to_bytes: Callable, back: Callable, msg: SpikeBatch, round_s: float, rounds: int) -> float:
    """Best-of-``rounds`` mean seconds of one encode + decode."""
    def once():
        return back(to_bytes(msg))
    t0 = time.perf_counter()
    once()  # warm up, and size the rounds
    per_call = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, int(round_s / per_call))
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            once()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def crc_backends() -> dict[str, Callable]:
    backends = {"zlib": zlib.crc32}
    try:
        from isal.isal_zlib import crc32
        backends["isal"] = crc32
    except ImportError:
        pass
    return backends


def crc_throughput(round_s: float, rounds: int) -> dict[str, float]:
    """GB/s of each CRC-32 implementation over 14 MB (the body of a 1e6-event batch)."""
    data = np.random.default_rng(SEED).integers(0, 256, 14_000_000, dtype=np.uint8).tobytes()
    out = {}
    for name, crc32 in crc_backends().items():
        assert crc32(data) == zlib.crc32(data), name
        sec = time_round_trip(lambda d: d, crc32, data, round_s, rounds)
        out[name] = len(data) / sec / 1e9
    return out


def cpu_line() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    from importlib.metadata import version
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "msgpack": ".".join(map(str, msgpack.version)),
        "neurosplit": version("neurosplit"),
        "protocol_version": PROTOCOL_VERSION,
        "crc32": "isal" if _codec._crc32.__module__.startswith("isal") else "zlib",
        "cpu": cpu_line(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "seed": SEED,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000, 1_000_000], help="events per batch")
    parser.add_argument("--round-s", type=float, default=0.2, help="seconds per timing round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is kept")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    env = environment()
    print(f"python {env['python']}  numpy {env['numpy']}  msgpack {env['msgpack']}  neurosplit {env['neurosplit']}"
          f"  (protocol v{env['protocol_version']})")
    print(f"cpu: {env['cpu']}  ({env['cpu_count']} logical)  single thread  seed {SEED}  crc32: {env['crc32']}")
    print("encode + decode of one SpikeBatch; MB/s of array payload (14 B/event), best of "
          f"{args.rounds} rounds of ~{args.round_s} s")
    print(f"{'events':>9} {'scheme':>17} {'wire bytes':>11} {'us/msg':>11} {'msgs/s':>10} {'MB/s':>9} {'vs ours':>8}")
    results = []
    for n in args.sizes:
        msg = spike_batch(n)
        payload = n * PAYLOAD_BYTES_PER_EVENT
        ours_s = None
        for name, make in SCHEMES.items():
            to_bytes, back = make()
            got = back(to_bytes(msg))
            for arr, field in zip(got, FIELDS):  # every scheme must give the arrays back intact
                assert np.array_equal(arr, getattr(msg, field)) and arr.dtype == FIELDS[field], (name, field)
            wire = len(to_bytes(msg))
            sec = time_round_trip(to_bytes, back, msg, args.round_s, args.rounds)
            ours_s = sec if ours_s is None else ours_s
            row = {"events": n, "scheme": name, "wire_bytes": wire, "seconds_per_message": sec,
                   "messages_per_s": 1.0 / sec, "payload_mb_per_s": payload / sec / 1e6,
                   "slowdown_vs_neurosplit": sec / ours_s}
            results.append(row)
            print(f"{n:>9} {name:>17} {wire:>11} {sec * 1e6:>11.1f} {1 / sec:>10.0f} "
                  f"{payload / sec / 1e6:>9.1f} {sec / ours_s:>7.1f}x")
    crc = crc_throughput(args.round_s, args.rounds)
    print("CRC-32 over 14 MB: " + "  ".join(f"{name} {gbs:.2f} GB/s" for name, gbs in crc.items())
          + f"  (ours uses {env['crc32']}, once on encode and once on decode)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"command": "benchmarks.codec_speed", "environment": env, "args": vars(args),
                       "results": results, "crc32_gb_per_s": crc}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
