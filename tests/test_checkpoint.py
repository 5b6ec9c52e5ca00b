"""Checkpoints: written atomically, refused when they do not fit, and a training killed after any
batch and resumed ends bit-identical to one never interrupted (same weights_sha256, same losses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from neurosplit.actors import SystemConfig, open_system
from neurosplit.chip import N_NEURONS, N_ROWS
from neurosplit.host._checkpoint import (CHECKPOINT_FILE, Checkpointer, TrainState, check_fingerprint, load_checkpoint,
                                         save_checkpoint)
from neurosplit.host._report import weights_sha256
from neurosplit.host._training import TrainConfig, epoch_order, train
from neurosplit.host.cli import main

from helpers import FAST_CORE

SMALL = TrainConfig(epochs=2, n_train=120, n_test=60, batch_size=40, n_hidden=30, seed=3)
SYSTEM = SystemConfig(core=FAST_CORE, chip_seed=4)


def _state(**over) -> TrainState:
    rng = np.random.default_rng(0)
    kw = dict(epoch=1, batch=2, next_run_id=9, sums={"loss_sum": 1.25, "correct": 3, "seen": 80, "hidden_spikes": 77},
              history=[{"epoch": 1, "train_loss": float("nan"), "train_accuracy": 0.5, "test_accuracy": 0.4,
                        "hidden_spikes_per_sample": 1.0, "wall_s": 0.1}],
              info={"ppu_working_set_bytes": 10.0}, fingerprint={"train.seed": 3, "train.hidden_init": [15.0, 8.0]},
              weight_rows=np.arange(4, dtype=np.uint16), weight_columns=np.arange(3, dtype=np.uint16),
              weights=rng.integers(0, 64, (4, 3)).astype(np.uint8), learner_step=6,
              shadow=rng.normal(size=(5, 3)), adam_m=rng.normal(size=(5, 3)), adam_v=rng.random((5, 3)))
    return TrainState(**{**kw, **over})


def test_a_checkpoint_reads_back_exactly(tmp_path):
    state = _state()
    save_checkpoint(tmp_path, state)
    back = load_checkpoint(tmp_path)
    for name in ("weight_rows", "weight_columns", "weights", "shadow", "adam_m", "adam_v"):
        a, b = getattr(state, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (back.epoch, back.batch, back.next_run_id, back.learner_step) == (1, 2, 9, 6)
    assert back.sums == state.sums and back.info == state.info
    assert np.isnan(back.history[0]["train_loss"])  # a diverged loss survives
    assert back.fingerprint == state.fingerprint


def test_writing_replaces_the_old_checkpoint_whole(tmp_path):
    save_checkpoint(tmp_path, _state(batch=1))
    save_checkpoint(tmp_path, _state(batch=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]  # no temporary left behind
    assert load_checkpoint(tmp_path).batch == 2


def test_bad_checkpoints_are_refused_with_a_reason(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint in"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"half a file")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="written with train.seed = 3, this run has 4"):
        check_fingerprint({"train.seed": 3}, {"train.seed": 4})
    check_fingerprint({"train.epochs": 1, "train.hidden_init": [1.0, 2.0]},
                      {"train.epochs": 5, "train.hidden_init": (1.0, 2.0)}, may_differ=("train.epochs",))


def test_each_epoch_has_its_own_order_from_the_seed_alone():
    a, b = epoch_order(SMALL, 0), epoch_order(SMALL, 1)
    assert not np.array_equal(a, b) and np.array_equal(a, epoch_order(SMALL, 0))
    assert sorted(a) == list(range(SMALL.n_train))


# -- kill and resume ------------------------------------------------------------------------
class Killed(Exception):
    """Stands for the process dying: raised from the progress callback after some batches."""


async def _train(cfg: TrainConfig, *, checkpoint=None, resume=None, kill_after: int | None = None):
    batches = 0

    def progress(event):
        nonlocal batches
        if "batch" in event:
            batches += 1
            if kill_after is not None and batches >= kill_after:
                raise Killed()

    async with open_system(SYSTEM) as system:
        report = await train(system.host, cfg, progress=progress, checkpoint=checkpoint, resume=resume)
        weights = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16), np.arange(N_NEURONS, dtype=np.uint16))
        return report, weights_sha256(weights.weight)


def _same_training(a: dict, b: dict) -> None:
    for key in ("train_loss", "train_accuracy", "test_accuracy_per_epoch", "test_accuracy", "spikes_per_hidden_neuron"):
        assert a[key] == b[key], key


@pytest.mark.parametrize("learning", ["on-chip-eventprop", "host-eventprop"])
@pytest.mark.parametrize("kill_after", [2, 4])  # within the first epoch; within the second
async def test_kill_and_resume_ends_bit_identical(tmp_path, learning, kill_after):
    cfg = replace(SMALL, learning=learning)
    whole, whole_sha = await _train(cfg)
    with pytest.raises(BaseExceptionGroup) as info:
        await _train(cfg, checkpoint=Checkpointer(tmp_path, every_batches=1), kill_after=kill_after)
    assert info.group_contains(Killed, depth=None)
    state = load_checkpoint(tmp_path)
    assert state.epoch * 3 + state.batch == kill_after  # 3 batches per epoch: killed right after that checkpoint
    resumed, resumed_sha = await _train(cfg, checkpoint=Checkpointer(tmp_path, every_batches=1), resume=state)
    assert resumed_sha == whole_sha
    _same_training(resumed, whole)
    assert resumed["resumed_from"] == {"epoch": state.epoch, "batch": state.batch}


async def test_resuming_with_more_epochs_continues_the_schedule(tmp_path):
    short, _ = await _train(replace(SMALL, epochs=1), checkpoint=Checkpointer(tmp_path))
    longer, longer_sha = await _train(SMALL)
    resumed, resumed_sha = await _train(SMALL, checkpoint=Checkpointer(tmp_path), resume=load_checkpoint(tmp_path))
    assert resumed_sha == longer_sha
    _same_training(resumed, longer)
    assert short["train_loss"] == longer["train_loss"][:1]


async def test_resuming_under_another_configuration_is_refused(tmp_path):
    await _train(replace(SMALL, epochs=1), checkpoint=Checkpointer(tmp_path))
    with pytest.raises(BaseExceptionGroup) as info:
        await _train(replace(SMALL, lr=0.125), checkpoint=Checkpointer(tmp_path), resume=load_checkpoint(tmp_path))
    assert info.group_contains(ValueError, match=f"written with train.lr = {SMALL.lr}, this run has 0.125", depth=None)


# -- the command line, and a process really killed -----------------------------------------------
ARGS = ["train", "yinyang", "--epochs", "2", "--n-train", "160", "--n-test", "40", "--hidden", "20", "--batch-size",
        "20", "--no-calibrate", "--seed", "5"]


def test_a_killed_process_resumes_to_the_same_weights(tmp_path):
    whole = tmp_path / "whole.json"
    assert main([*ARGS, "--report", str(whole)]) == 0
    ckpt = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen([sys.executable, "-c", "import sys; from neurosplit.host.cli import main; "
                              "sys.exit(main(sys.argv[1:]))", *ARGS, "--checkpoint", str(ckpt), "--checkpoint-every", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (ckpt / CHECKPOINT_FILE).exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL, "the training finished before it could be killed"
    state = load_checkpoint(ckpt)
    assert (state.epoch, state.batch) < (2, 0)  # it did stop part-way
    resumed = tmp_path / "resumed.json"
    assert main([*ARGS, "--checkpoint", str(ckpt), "--resume", "--report", str(resumed)]) == 0
    a, b = json.loads(whole.read_text()), json.loads(resumed.read_text())
    assert a["weights_sha256"] == b["weights_sha256"]
    _same_training(a, b)
    assert b["checkpoint"]["dir"] == str(ckpt)


def test_checkpoint_without_a_directory_goes_beside_the_report(tmp_path):
    report = tmp_path / "out" / "train.json"
    assert main([*ARGS[:3], "1", *ARGS[4:], "--report", str(report), "--checkpoint"]) == 0
    assert (tmp_path / "out" / "train.ckpt" / CHECKPOINT_FILE).is_file()
    assert json.loads(report.read_text())["checkpoint"]["written"] == 1


def test_resume_without_a_checkpoint_is_one_clear_line(tmp_path, capsys):
    assert main([*ARGS, "--checkpoint", str(tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint in" in err and "Traceback" not in err
