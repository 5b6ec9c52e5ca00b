"""A long fuzz run of the frame decoder: inputs tried, how they ended, crashes found.

Every input must end in one of two ways: a valid message (which must then round-trip), or
``RemoteProtocolError``. Anything else is a crash, reported with the input that caused it (saved
to ``--crashes DIR`` if given) and a non-zero exit. Inputs are mutations of a corpus of valid
frames, one or more of each message type:

- byte-level: bit flips, byte sets, inserts, deletes, truncation, splices of two frames, with
  the frame's CRC recomputed (so the body parser is reached) or left as it was (the CRC must
  catch it);
- structure-aware: the msgpack header unpacked with the reference msgpack library, one node
  anywhere in it replaced by a random msgpack value (wrong types, huge ints, deep nesting, long
  strings), repacked, CRC recomputed;
- random bytes.

Three inputs in ten (drawn from a generator of their own, so a seed keeps its inputs) go as frames
without checksum (the ``UNCHECKED`` flag set, 0 in the CRC word): no CRC stands before the parser.
A message that decodes must round-trip through ``encode`` and through sealed ``encode_parts``.

As context (guideline 12: a figure beside a peer), the reference msgpack unpacker is run on the
same bodies: it tells how many mutated bodies were still plain msgpack, i.e. reached our checks.

    python -m benchmarks.fuzz_decoder                       # 20 000 inputs
    python -m benchmarks.fuzz_decoder --inputs 1000000 --seed 3 --crashes /tmp/crashes
    python -m benchmarks.fuzz_decoder --seconds 600

The pytest twin (a small budget in CI, NEUROSPLIT_FUZZ_EXAMPLES for more) is
tests/test_hostile_input.py, marker ``fuzz``.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from pathlib import Path

import msgpack
import numpy as np

from benchmarks._common import header_line
from neurosplit.protocol import (Ack, ConfigureLearning, ConfigureNeurons, ConfigureRows, Error, Gradients, Hello,
                                 LearnerState, LearnResult, LinkFrame, MembraneSamples, NeuronTrace, ReadWeights,
                                 RemoteProtocolError, RunComplete, RunRequest, Shutdown, SpikeBatch, TrainStep,
                                 UNCHECKED, Weights, WriteWeights, decode, encode, encode_parts, message_classes)


def corpus() -> list[bytes]:
    """Valid frames: at least one per message type of the catalogue (checked)."""
    n = 5
    msgs = [
        Hello(protocol_version=1, role="host", software="fuzz"),
        ConfigureNeurons(neuron=np.arange(n), **{k: np.full(n, 10.0) for k in
                                                 ("tau_mem_us", "tau_syn_us", "v_leak_lsb", "v_reset_lsb", "v_th_lsb")},
                         t_ref_us=np.ones(n)),
        ConfigureRows(row=[0, 1], source_label=[3, 4], sign=[1, -1]),
        WriteWeights(request_id=1, row=[0, 1], column=[2, 3, 4], weight=np.arange(6, dtype=np.uint8).reshape(2, 3)),
        Weights(request_id=1, row=[0], column=[2], weight=[[7]]),
        ReadWeights(request_id=2, row=[0, 1], column=[5]),
        Ack(request_id=3, what="write_weights"),
        RunRequest(run_id=4, n_samples=2, sample_ticks=5000, cadc_period_ticks=250, madc_neuron=1, learn=True),
        SpikeBatch(run_id=4, t_ticks=[1, 5, 5, 900], label=[1, 2, 8192, 3], sample=[0, 0, 0, 0], horizon_ticks=1000),
        RunComplete(run_id=4, n_samples=2, events_in=4, events_out=9, dropped={"chip_lane_overflow": 1}),
        MembraneSamples(run_id=4, t_ticks=[0, 250], neuron=[0, 1, 2], adc_lsb=np.ones((2, 3), np.uint8)),
        NeuronTrace(run_id=4, neuron=1, t_ticks=[0, 4, 8], adc_lsb=[10, 20, 1023]),
        ConfigureLearning(loss="ttfs", optimiser="adam", input_label=[0, 1], hidden_neuron=[0], output_neuron=[1],
                          trainable=np.ones((4, 2), np.uint8), params={"lr": 0.1}),
        TrainStep(run_id=4, label=[0, 1], learning_rate=0.5),
        Gradients(run_id=4, loss=0.25, grad=np.zeros((3, 2))),
        LearnResult(run_id=4, loss=0.5, n_correct=1, n_samples=2, spike_count=[3, 4], metrics={"x": 1.0}),
        Error(fault="remote", message="spike_batch.t_ticks[1]: ticks must not decrease", in_reply_to="spike_batch"),
        Shutdown(reason="done"),
        LearnerState(request_id=5, step=3, shadow=np.ones((3, 2)), adam_m=np.zeros((3, 2)), adam_v=np.zeros((3, 2))),
        LinkFrame(seq=9, ack=3, payload=np.frombuffer(encode(Shutdown()), np.uint8), sack=np.zeros(2, np.uint8)),
    ]
    for cls in message_classes().values():
        if not any(type(m) is cls for m in msgs):
            msgs.append(_default_instance(cls))
    return [encode(m) for m in msgs]


def _default_instance(cls):
    """An instance of a message class this script does not list yet (all ints 0, arrays empty)."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        if f.name in cls.ARRAYS:
            dtype, ndim = cls.ARRAYS[f.name]
            kw[f.name] = np.zeros((0,) * ndim, dtype)
        else:
            kw[f.name] = {int: 0, float: 0.0, bool: False, str: ""}.get(hints[f.name], {})
    return cls(**kw)


def _frame(body: bytes) -> bytes:
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def _random_value(rng: np.random.Generator, depth: int = 0):
    kind = rng.integers(0, 11)
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.integers(2))
    if kind == 2:
        return int(rng.integers(-(2**63), 2**63 - 1)) if rng.random() < 0.5 else int(rng.integers(-3, 300))
    if kind == 3:
        return float(rng.choice([0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, 1e308]))
    if kind == 4:
        return "x" * int(rng.choice([0, 1, 40, 4096, 5000]))
    if kind == 5:
        return bytes(int(rng.integers(0, 10)))
    if kind == 6 and depth < 4:
        return [_random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 5)))]
    if kind == 7 and depth < 4:
        return {str(rng.integers(100)): _random_value(rng, depth + 1) for _ in range(int(rng.integers(0, 4)))}
    if kind == 8:
        nested = None
        for _ in range(int(rng.choice([10, 1000, 100_000]))):
            nested = [nested]
        return nested
    if kind == 9:
        return ["t_ticks", "<i8", [int(rng.integers(0, 2**40))]]
    return int(rng.choice([0, 1, -1, 2**32, 2**64 - 1]))


def _body(header, datas: list[bytes]) -> bytes:
    """array32 of [header, pad, data, ...] with each data 8-byte aligned (docs/protocol.md), built
    with the reference packer: a changed header keeps the arrays where the decoder looks for them."""
    out = bytearray(struct.pack(">BI", 0xDD, 1 + 2 * len(datas)))
    out += msgpack.packb(header, use_bin_type=True)
    for data in datas:
        k = (-(len(out) + 2 + 5)) % 8
        out += bytes((0xC4, k)) + bytes(k) + struct.pack(">BI", 0xC6, len(data)) + data
    return bytes(out)


def _mutate_header(frame: bytes, rng: np.random.Generator) -> bytes:
    items = msgpack.unpackb(frame[8:], raw=False)
    header, datas = items[0], items[2::2]
    nodes = [(header, k) for k in header] + [(header["f"], k) for k in header["f"]]
    for spec in header["a"]:
        nodes += [(spec, i) for i in range(len(spec))]
    parent, key = nodes[rng.integers(len(nodes))]
    parent[key] = _random_value(rng)
    try:
        return _frame(_body(header, datas))
    except (ValueError, OverflowError, TypeError):  # a value msgpack itself cannot pack (too deep)
        return frame


def _mutate_bytes(frame: bytes, other: bytes, rng: np.random.Generator) -> bytes:
    body = bytearray(frame[8:])
    for _ in range(int(rng.integers(1, 5))):
        op = rng.integers(0, 6)
        i = int(rng.integers(0, max(len(body), 1)))
        if op == 0 and body:
            body[i] ^= 1 << int(rng.integers(8))
        elif op == 1 and body:
            body[i] = int(rng.integers(256))
        elif op == 2:
            body[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif op == 3 and body:
            del body[i:i + int(rng.integers(1, 9))]
        elif op == 4:
            del body[i:]
        else:
            cut = int(rng.integers(8, len(other) + 1))
            body = body[:i] + bytearray(other[cut:])
    return _frame(bytes(body)) if rng.random() < 0.85 else frame[:8] + bytes(body)


def run(n_inputs: int, seed: int, seconds: float | None, crash_dir: Path | None) -> dict:
    rng = np.random.default_rng(seed)
    flag_rng = np.random.default_rng([seed, 1])  # apart, so that a seed still gives the inputs it gave before
    frames = corpus()
    counts = {"tried": 0, "decoded": 0, "refused": 0, "crashes": 0, "msgpack_ok": 0}
    slowest = (0.0, b"")
    t_start = time.perf_counter()
    while counts["tried"] < n_inputs and (seconds is None or time.perf_counter() - t_start < seconds):
        base = frames[rng.integers(len(frames))]
        how = rng.random()
        if how < 0.6:
            data = _mutate_bytes(base, frames[rng.integers(len(frames))], rng)
        elif how < 0.95:
            data = _mutate_header(base, rng)
        else:
            data = bytes(rng.integers(0, 256, int(rng.integers(0, 200)), dtype=np.uint8))
        if len(data) >= 8 and flag_rng.random() < 0.3:  # the same bytes as a frame without checksum
            (word,) = struct.unpack_from("<I", data)
            data = struct.pack("<II", word | UNCHECKED, 0) + data[8:]
        counts["tried"] += 1
        try:
            msgpack.unpackb(data[8:], raw=False)
            counts["msgpack_ok"] += 1
        except Exception:  # the reference library may refuse anything, any way it likes
            pass
        t0 = time.perf_counter()
        try:
            msg = decode(data)
            if decode(encode(msg)) != msg or decode(encode_parts(msg)) != msg:
                raise AssertionError(f"{msg.TAG} does not round-trip")
            counts["decoded"] += 1
        except RemoteProtocolError:
            counts["refused"] += 1
        except Exception as exc:  # a crash: anything but a valid message or RemoteProtocolError
            counts["crashes"] += 1
            print(f"CRASH {type(exc).__name__}: {exc} on {len(data)} bytes: {data[:64].hex()}...", file=sys.stderr)
            if crash_dir is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                (crash_dir / f"crash-{counts['tried']:09d}.bin").write_bytes(data)
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, data)
    counts["wall_s"] = time.perf_counter() - t_start
    counts["slowest_decode_s"] = slowest[0]
    counts["slowest_input_bytes"] = len(slowest[1])
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=20_000, help="inputs to try (default 20000)")
    p.add_argument("--seconds", type=float, help="stop after this long instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crashes", type=Path, metavar="DIR", help="save each crashing input here")
    args = p.parse_args(argv)
    n = args.inputs if args.seconds is None else sys.maxsize
    print(header_line({"numpy": np.__version__, "msgpack": ".".join(map(str, msgpack.version))},
                      {"decoder": 1}, {"fuzz": args.seed}))
    c = run(n, args.seed, args.seconds, args.crashes)
    print(f"{'inputs tried':>16} {'decoded':>10} {'refused':>10} {'crashes':>8} {'inputs/s':>10} "
          f"{'slowest ms':>11} {'msgpack ok':>11}")
    print(f"{c['tried']:>16,} {c['decoded']:>10,} {c['refused']:>10,} {c['crashes']:>8,} "
          f"{c['tried'] / c['wall_s']:>10,.0f} {1e3 * c['slowest_decode_s']:>11.2f} {c['msgpack_ok']:>11,}")
    print("msgpack ok: bodies the reference msgpack library still reads, i.e. inputs that reached our own checks")
    return 1 if c["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
