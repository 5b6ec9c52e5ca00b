"""Reports: the JSON every job can write, the hashes that prove bit-identity, readable tables."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["weights_sha256", "spikes_sha256", "traffic_table", "write_report", "Progress", "host_link_bytes"]


def weights_sha256(weight: np.ndarray) -> str:
    """sha256 of the synapse array as stored: uint8[rows, columns] codes, C order."""
    return hashlib.sha256(np.ascontiguousarray(weight, dtype=np.uint8).tobytes()).hexdigest()


def spikes_sha256(t_ticks, label, sample) -> str:
    """sha256 of recorded spikes in canonical order (tick, label, sample): int64 ticks, then
    uint16 labels, then uint32 samples, little endian."""
    t = np.asarray(t_ticks, "<i8")
    lab = np.asarray(label, "<u2")
    smp = np.asarray(sample, "<u4")
    order = np.lexsort((smp, lab, t))
    h = hashlib.sha256()
    for a in (t[order], lab[order], smp[order]):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def host_link_bytes(traffic: dict) -> int:
    host = traffic.get("host", {})
    return int(sum(host.get(d, {}).get("bytes", 0) for d in ("down", "up")))


def traffic_table(traffic: dict) -> str:
    """Messages, bytes and spike events per link and direction, as aligned text."""
    lines = [f"{'link':<8} {'dir':<5} {'messages':>10} {'bytes':>14} {'events':>12}"]
    for link, dirs in traffic.items():
        for d in ("down", "up"):
            s = dirs[d]
            lines.append(f"{link:<8} {d:<5} {s['messages']:>10,} {s['bytes']:>14,} {s['events']:>12,}")
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_report(path: str | os.PathLike, report: dict) -> Path:
    """Write the report atomically (temp file, then rename) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(report), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


class Progress:
    """One status line on a terminal (rewritten in place), or a line per epoch when not a terminal."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, event: dict) -> None:
        if event.get("done"):
            line = (f"epoch {event['epoch']:>3}/{event['epochs']}  loss {event['train_loss']:.4f}  "
                    f"train acc {event['train_accuracy']:.3f}  test acc {event['test_accuracy']:.3f}  "
                    f"hidden spikes/sample {event['hidden_spikes_per_sample']:.1f}  {event['wall_s']:.1f} s")
            self._write(line, final=True)
            return
        now = time.monotonic()
        if self.tty and now - self._last > 0.1:
            self._last = now
            done = event["batch"] / event["batches"]
            bar = "#" * int(30 * done) + "-" * (30 - int(30 * done))
            self._write(f"epoch {event['epoch']:>3}/{event['epochs']} [{bar}] {event['batch']}/{event['batches']}  "
                        f"loss {event['loss']:.4f}  acc {event['accuracy']:.3f}", final=False)

    def _write(self, line: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def training_report(*, task: str, learning: str, seed: int, history: list, samples: int, wall_s: float,
                    n_hidden: int, quantisation: dict, config: dict, net, **extra) -> dict:
    """The report of a training (DESIGN.md "Reports"): accuracies, losses and wall seconds per epoch from
    ``history`` (records with train_accuracy, train_loss, test_accuracy, hidden_spikes_per_sample, wall_s,
    resumed epochs included), throughput over
    ``samples`` trained in ``wall_s`` seconds, and ``extra`` keys. Keys with a leading underscore are
    for the command line and are not written."""
    return {
        "task": task,
        "learning": learning,
        "seed": seed,
        "test_accuracy": history[-1].test_accuracy,
        "train_accuracy": [h.train_accuracy for h in history],
        "train_loss": [h.train_loss for h in history],
        "test_accuracy_per_epoch": [h.test_accuracy for h in history],
        "epoch_wall_s": [h.wall_s for h in history],
        "wall_s": wall_s,
        "samples_per_s": samples / wall_s,
        "spikes_per_hidden_neuron": float(np.mean([h.hidden_spikes_per_sample for h in history]) / n_hidden),
        "quantisation": quantisation,
        "config": config,
        **extra,
        "_training_samples": samples,
        "_net": net,
    }

