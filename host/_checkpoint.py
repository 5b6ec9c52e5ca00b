"""Training checkpoints: everything a killed training needs to end as if it had never stopped.

A checkpoint holds the weights as stored on chip (the placed block of 6-bit codes, read back from
the board), the learner's state (shadow weights at the learner's precision and Adam's moments and
step: read from the plasticity processor for on-chip EventProp, from the host's own learner for
host EventProp), the position (epoch, batches of it done), the next run id (trial noise on the
board is drawn per run id, so a resumed job must number its runs on), the per-epoch sums and
history that make the report, and a fingerprint of the configuration. The data order needs no
generator state: each epoch's shuffle is drawn from (seed, epoch) alone.

One file, ``checkpoint.npz`` in the checkpoint directory, replaced atomically (written to a
temporary file, flushed to disk, renamed over the old one), so a kill at any moment leaves either
the previous checkpoint or the new one, never half of one. Arrays are stored as arrays, the rest
as JSON (no pickle: loading a checkpoint runs no code).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..chip._optim import AdamState

__all__ = ["CHECKPOINT_FILE", "CHECKPOINT_VERSION", "TrainState", "Checkpointer", "save_checkpoint",
           "load_checkpoint", "check_fingerprint"]

CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_VERSION = 1
_ARRAYS = ("weight_rows", "weight_columns", "weights", "shadow", "adam_m", "adam_v")


@dataclass
class TrainState:
    """A training's position and state between two batches.

    epoch: the epoch in progress (0-based); batch: batches of it done. next_run_id: the id of the
    board's next run. sums: loss_sum, correct, seen, hidden_spikes of the epoch in progress.
    history: finished epochs (EpochStats fields). info: the PPU's last reported metrics.
    fingerprint: the configuration that wrote it. weight_rows uint16[r], weight_columns uint16[c],
    weights uint8[r, c]: the placed block as stored on chip. learner_step: optimiser steps;
    shadow, adam_m, adam_v: float64[s, n] the learner's state.
    """

    epoch: int
    batch: int
    next_run_id: int
    sums: dict
    history: list
    info: dict
    fingerprint: dict
    weight_rows: np.ndarray
    weight_columns: np.ndarray
    weights: np.ndarray
    learner_step: int
    shadow: np.ndarray
    adam_m: np.ndarray
    adam_v: np.ndarray

    def adam(self) -> AdamState:
        return AdamState(np.array(self.adam_m), np.array(self.adam_v), int(self.learner_step))


def save_checkpoint(directory: str | os.PathLike, state: TrainState) -> Path:
    """Write ``state`` to ``directory/checkpoint.npz`` atomically; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in asdict(state).items() if k not in _ARRAYS}
    meta["version"] = CHECKPOINT_VERSION
    buf = io.BytesIO()
    np.savez(buf, meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8),
             **{name: np.ascontiguousarray(getattr(state, name)) for name in _ARRAYS})
    path = directory / CHECKPOINT_FILE
    tmp = directory / (CHECKPOINT_FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(buf.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def load_checkpoint(directory: str | os.PathLike) -> TrainState:
    """The state in ``directory/checkpoint.npz``; ValueError saying what is wrong if it cannot be used."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        raise ValueError(f"--resume: no checkpoint in {directory} (expected {path})")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            arrays = {name: np.array(data[name]) for name in _ARRAYS}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"--resume: {path} is not a readable checkpoint: {exc}") from None
    if meta.pop("version", None) != CHECKPOINT_VERSION:
        raise ValueError(f"--resume: {path} was written by another checkpoint version (we read {CHECKPOINT_VERSION})")
    return TrainState(**meta, **arrays)


def check_fingerprint(saved: dict, current: dict, *, may_differ: tuple[str, ...] = ("epochs",)) -> None:
    """Refuse to resume under another configuration: ValueError naming the first difference."""
    for key in sorted(set(saved) | set(current)):
        if key in may_differ:
            continue
        a, b = saved.get(key), current.get(key)
        if _canonical(a) != _canonical(b):
            raise ValueError(f"--resume: the checkpoint was written with {key} = {a!r}, this run has {b!r}")


def _canonical(value):
    """JSON's view of a value (tuples become lists), so a loaded fingerprint compares with a fresh one."""
    return json.loads(json.dumps(value, sort_keys=True))


@dataclass
class Checkpointer:
    """Writes a training's checkpoints. directory: where; every_batches: also after every that
    many batches within an epoch (0: only at the end of each epoch); fingerprint: what a resumed
    run must match (the training configuration is added by the training loop)."""

    directory: Path
    every_batches: int = 0
    fingerprint: dict = field(default_factory=dict)
    written: int = 0
    last: tuple[int, int] | None = None  # (epoch, batch) of the last checkpoint written

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if self.every_batches < 0:
            raise ValueError(f"every_batches must be >= 0, got {self.every_batches}")

    def due(self, batches_done: int) -> bool:
        """Whether a checkpoint is due after ``batches_done`` batches of the epoch."""
        return self.every_batches > 0 and batches_done % self.every_batches == 0

    async def save(self, board, *, epoch: int, batch: int, sums: dict, history: list, info: dict,
                   placement, learner=None) -> Path:
        """Read the weights (and, for on-chip learning, the learner state) from ``board`` and write
        a checkpoint. ``learner``: the host's own chip.Learner (host EventProp), None on chip."""
        weights = await board.read_weights(placement.weight_rows, placement.weight_columns)
        if learner is None:
            ls = await board.read_learner_state()
            step, shadow, m, v = ls.step, ls.shadow, ls.adam_m, ls.adam_v
        else:
            step, shadow, m, v = learner.adam.step, learner.shadow, learner.adam.m, learner.adam.v
        state = TrainState(epoch=epoch, batch=batch, next_run_id=board.next_run_id,
                           sums={k: (float(x) if isinstance(x, float) else int(x)) for k, x in sums.items()},
                           history=[dict(h) for h in history], info=dict(info), fingerprint=self.fingerprint,
                           weight_rows=np.asarray(weights.row), weight_columns=np.asarray(weights.column),
                           weights=np.asarray(weights.weight), learner_step=int(step), shadow=np.asarray(shadow),
                           adam_m=np.asarray(m), adam_v=np.asarray(v))
        path = save_checkpoint(self.directory, state)
        self.written += 1
        self.last = (epoch, batch)
        return path

    def describe(self) -> str:
        """Where training would resume from, for messages: 'epoch 2, after batch 5 (DIR)'."""
        if self.last is None:
            return f"no checkpoint written yet ({self.directory})"
        epoch, batch = self.last
        where = f"start of epoch {epoch + 1}" if batch == 0 else f"epoch {epoch + 1}, after batch {batch}"
        return f"{where} ({self.directory / CHECKPOINT_FILE})"

