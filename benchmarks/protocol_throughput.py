"""Protocol throughput: encode + decode of SpikeBatch frames beside a plain memory copy of the same bytes.

For each batch size, one SpikeBatch (t_ticks int64, label uint16, sample uint32: 14 payload bytes
per event) is encoded into a frame and decoded back into a message whose arrays are read-only,
by the two paths a link uses (docs/protocol.md, "Checksums and in-process frames"):

- ``in-process``: what an ideal in-process link carries (``LinkEnd`` over a ``MemoryTransport``):
  ``encode_parts`` gives the frame as sealed FrameParts (header bytes, then the message's own
  arrays; never joined, no checksum) and ``decode`` hands those arrays to the new message. No
  byte of array data is copied or read; the message's value checks ran when it was built.
- ``wire``: what a socket, a faulty link or reliable delivery carries: ``encode`` joins header
  and arrays into one ``bytes`` frame with its CRC-32, ``decode`` checks the CRC, wraps the
  arrays as views into the frame and re-runs every check of the message (ticks non-decreasing
  and below the horizon, labels in range, equal lengths). ``wire, no CRC``: the same with the
  ``UNCHECKED`` flag (``encode(msg, checksum=False)``), to show what the checksum costs.

Beside them, the same number of bytes is copied:

- ``memcpy``: ``bytes(memoryview(frame))``, one fresh copy of the frame's bytes (what any receive
  path costs at the least); ``memcpy into a buffer``: ``np.copyto`` into a buffer made beforehand;
- ``crc32``: the CRC-32 of the body, with the codec's backend (ISA-L when installed, else zlib).

``ratio_to_memcpy`` = memcpy seconds / (encode + decode seconds) of the in-process path, i.e. our
throughput as a fraction of a copy's; the target is >= 0.5 for 10,000-event batches.
``ratio_to_memcpy_wire`` is the same for the wire path, and ``crc_ceiling`` = memcpy / (2 x crc32)
what the wire ratio could be if encode and decode did nothing but the two checksum passes. Times
are the best of ``--rounds`` short rounds of calls (~``--round-s`` each), measured in thread CPU
time: on a busy machine the best of many short rounds is one nobody interrupted, where a few long
rounds all carry some of the other jobs' cache and scheduler noise (the wall ratio is printed too).

    python -m benchmarks.protocol_throughput
    python -m benchmarks.protocol_throughput --sizes 10000 --json /tmp/protocol.json
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from neurosplit.protocol import SpikeBatch, decode, encode, encode_parts
from neurosplit.protocol import _codec

from ._common import header_line, versions_of_project, write_json

SEED = 2024
PAYLOAD_BYTES_PER_EVENT = 8 + 2 + 4


def spike_batch(n: int, seed: int = SEED) -> SpikeBatch:
    """n events of a 64-sample run with 16384 labels, sorted by tick (as benchmarks/codec_speed.py)."""
    rng = np.random.default_rng([seed, n])
    t = np.sort(rng.integers(0, 64 * 125_000, n))
    return SpikeBatch(run_id=1, t_ticks=t, label=rng.integers(0, 16384, n).astype(np.uint16),
                      sample=(t // 125_000).astype(np.uint32), horizon_ticks=64 * 125_000)


def best_time(fn: Callable[[], object], round_s: float, rounds: int) -> tuple[float, float]:
    """(best thread-CPU seconds, best wall seconds) per call over ``rounds`` rounds."""
    fn()
    t0 = time.perf_counter()
    fn()
    calls = max(1, int(round_s / max(time.perf_counter() - t0, 1e-7)))
    best_cpu = best_wall = float("inf")
    for _ in range(rounds):
        c0, w0 = time.thread_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        best_cpu = min(best_cpu, (time.thread_time() - c0) / calls)
        best_wall = min(best_wall, (time.perf_counter() - w0) / calls)
    return best_cpu, best_wall


def measure(n: int, round_s: float, rounds: int) -> dict:
    msg = spike_batch(n)
    frame = encode(msg)
    unchecked = encode(msg, checksum=False)
    parts = encode_parts(msg)
    assert decode(frame) == msg and decode(unchecked) == msg and decode(parts) == msg
    assert len(parts) == len(frame) == len(unchecked) and bytes(parts) == unchecked
    body = memoryview(frame)[_codec.FRAME_HEADER_BYTES:]
    src = np.frombuffer(frame, np.uint8)
    dst = np.empty_like(src)
    view = memoryview(frame)
    t = {
        "encode": best_time(lambda: encode_parts(msg), round_s, rounds),
        "decode": best_time(lambda: decode(parts), round_s, rounds),
        "encode_decode": best_time(lambda: decode(encode_parts(msg)), round_s, rounds),
        "wire_encode": best_time(lambda: encode(msg), round_s, rounds),
        "wire_decode": best_time(lambda: decode(frame), round_s, rounds),
        "wire_encode_decode": best_time(lambda: decode(encode(msg)), round_s, rounds),
        "wire_unchecked_encode_decode": best_time(lambda: decode(encode(msg, checksum=False)), round_s, rounds),
        "memcpy": best_time(lambda: bytes(view), round_s, rounds),
        "memcpy_into": best_time(lambda: np.copyto(dst, src), round_s, rounds),
        "crc32": best_time(lambda: _codec._crc32(body), round_s, rounds),
    }
    cpu = {k: v[0] for k, v in t.items()}
    wall = {k: v[1] for k, v in t.items()}
    return {
        "events": n, "frame_bytes": len(frame), "payload_bytes": n * PAYLOAD_BYTES_PER_EVENT,
        "cpu_s": cpu, "wall_s": wall,
        "events_per_s": n / cpu["encode_decode"],
        "mb_per_s": len(frame) / cpu["encode_decode"] / 1e6,
        "wire_mb_per_s": len(frame) / cpu["wire_encode_decode"] / 1e6,
        "memcpy_mb_per_s": len(frame) / cpu["memcpy"] / 1e6,
        "ratio_to_memcpy": cpu["memcpy"] / cpu["encode_decode"],
        "ratio_to_memcpy_into": cpu["memcpy_into"] / cpu["encode_decode"],
        "ratio_to_memcpy_wall": wall["memcpy"] / wall["encode_decode"],
        "ratio_to_memcpy_wire": cpu["memcpy"] / cpu["wire_encode_decode"],
        "ratio_to_memcpy_wire_unchecked": cpu["memcpy"] / cpu["wire_unchecked_encode_decode"],
        "crc_ceiling": cpu["memcpy"] / (2 * cpu["crc32"]),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    p.add_argument("--round-s", type=float, default=0.002, help="seconds per round (default 2 ms)")
    p.add_argument("--rounds", type=int, default=200, help="rounds per figure; the best counts")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    backend = getattr(_codec._crc32, "__module__", "") or "zlib"
    print(header_line(versions_of_project(), {"codec": 1}, {"data": SEED},
                      crc32="isal" if "isal" in backend else "zlib"))
    print("encode + decode of one SpikeBatch frame vs a copy of the same bytes; thread CPU time, best of "
          f"{args.rounds} rounds of ~{1e3 * args.round_s:g} ms; in-process = sealed FrameParts, wire = bytes with CRC-32")
    print(f"{'':>8} {'':>10} {'in-process link':^29} {'wire (bytes)':^40} {'':>20}")
    print(f"{'events':>8} {'frame B':>10} {'enc us':>7} {'dec us':>7} {'enc+dec':>8} {'ratio':>5} "
          f"{'enc us':>7} {'dec us':>7} {'enc+dec':>8} {'ratio':>5} {'noCRC':>5} {'ceil':>4} "
          f"{'memcpy us':>9} {'crc32 us':>8}")
    rows = []
    for n in args.sizes:
        r = measure(n, args.round_s, args.rounds)
        rows.append(r)
        c = r["cpu_s"]
        print(f"{n:>8,} {r['frame_bytes']:>10,} {1e6 * c['encode']:>7.1f} {1e6 * c['decode']:>7.1f} "
              f"{1e6 * c['encode_decode']:>8.1f} {r['ratio_to_memcpy']:>5.2f} "
              f"{1e6 * c['wire_encode']:>7.1f} {1e6 * c['wire_decode']:>7.1f} {1e6 * c['wire_encode_decode']:>8.1f} "
              f"{r['ratio_to_memcpy_wire']:>5.2f} {r['ratio_to_memcpy_wire_unchecked']:>5.2f} {r['crc_ceiling']:>4.2f} "
              f"{1e6 * c['memcpy']:>9.1f} {1e6 * c['crc32']:>8.1f}")
    at = min(rows, key=lambda r: abs(r["events"] - 10_000))
    print(f"ratio_to_memcpy at {at['events']:,} events: {at['ratio_to_memcpy']:.2f} in-process (target >= 0.50; "
          f"wall {at['ratio_to_memcpy_wall']:.2f}), {at['ratio_to_memcpy_wire']:.2f} on the wire path "
          f"({at['ratio_to_memcpy_wire_unchecked']:.2f} without CRC; ceiling with two CRC-32 passes: "
          f"{at['crc_ceiling']:.2f})")
    result = {"ratio_to_memcpy": at["ratio_to_memcpy"], "ratio_to_memcpy_wire": at["ratio_to_memcpy_wire"],
              "ratio_events": at["events"], "target": 0.5, "rows": rows,
              "versions": versions_of_project()}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
