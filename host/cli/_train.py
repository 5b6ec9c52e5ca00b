"""``neurosplit train`` and ``neurosplit demo``: EventProp training on Yin-Yang."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ... import actors
from .._report import Progress, host_link_bytes, weights_sha256
from .._checkpoint import Checkpointer, load_checkpoint
from .._surrogate import SurrogateConfig
from .._tasks import TASKS
from .._training import LEARNING_SCHEMES, TrainConfig, train
from ._common import (add_record_argument, board_fields, board_session, fault_fields, final_weights, open_job_system,
                      print_traffic)

DEMO_EPOCHS = 5


def add_train_arguments(p, *, epochs_default=None) -> None:
    p.add_argument("--learning", choices=LEARNING_SCHEMES, default="on-chip-eventprop")
    p.add_argument("--epochs", type=int, default=epochs_default)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="Adam step in 6-bit weight codes (default: the scheme's own)")
    p.add_argument("--lr-decay", type=float, metavar="FACTOR",
                   help="the step is multiplied by FACTOR after each epoch, in (0, 1] (default: the scheme's own)")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--checkpoint", nargs="?", const="", default=None, metavar="DIR",
                   help="write checkpoints into DIR (without DIR: beside the report, REPORT.ckpt/) at the end of "
                        "each epoch and every --checkpoint-every batches")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="also checkpoint after every N batches (default: only at the end of each epoch)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in the --checkpoint directory; ends bit-identical to an "
                        "uninterrupted run")


def train_config(args) -> TrainConfig | SurrogateConfig:
    task = getattr(args, "task", "yinyang")
    if args.learning == "host-surrogate":  # its own defaults per task (host/_surrogate.py)
        return SurrogateConfig(task=task, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                               n_train=args.n_train, n_test=args.n_test, n_hidden=args.hidden,
                               **{k: v for k, v in (("lr", args.lr), ("lr_decay", args.lr_decay)) if v is not None})
    if task != "yinyang":
        raise ValueError(f"the EventProp schemes train yinyang; {task} trains with --learning host-surrogate")
    cfg = TrainConfig(learning=args.learning, seed=args.seed)
    fields = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "lr_decay": args.lr_decay,
              "n_train": args.n_train,
              "n_test": args.n_test, "n_hidden": args.hidden}
    return replace(cfg, **{k: v for k, v in fields.items() if v is not None})


def checkpoint_dir(args) -> Path | None:
    """--checkpoint DIR, or beside the report (REPORT.ckpt/, else ./neurosplit.ckpt/) when --checkpoint
    or --resume comes without DIR; None when neither was given."""
    given = getattr(args, "checkpoint", None)
    if given is None and not getattr(args, "resume", False):
        return None
    if given:
        return Path(given)
    return Path(args.report).with_suffix(".ckpt") if args.report else Path("neurosplit.ckpt")


def checkpointing(args):
    """(Checkpointer or None, state to resume from or None) for a training job."""
    directory = checkpoint_dir(args)
    if directory is None:
        return None, None
    if getattr(args, "checkpoint_every", 0) < 0:
        raise ValueError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    session = {k: v for k, v in board_session(args).items() if k != "link_buffer"}  # buffers never change results
    ckpt = Checkpointer(directory, every_batches=getattr(args, "checkpoint_every", 0),
                        fingerprint={"chip_seed": args.chip_seed, **{f"board.{k}": v for k, v in session.items()}})
    return ckpt, (load_checkpoint(directory) if args.resume else None)


async def train_job(args) -> dict:
    cfg = train_config(args)
    ckpt, resume = checkpointing(args)
    try:
        async with open_job_system(args) as system:
            report = await train(system.host, cfg, progress=Progress(), checkpoint=ckpt, resume=resume)
            weights = await final_weights(system)
            traffic, dropped = system.traffic(), system.dropped()
    except BaseException:
        if ckpt is not None and ckpt.last is not None:
            print(f"\nneurosplit: training stopped; last checkpoint: {ckpt.describe()}; continue with --resume",
                  file=sys.stderr)
        raise
    report.update(fault_fields(args))
    if ckpt is not None:
        report["checkpoint"] = {"dir": str(ckpt.directory), "written": ckpt.written,
                                "every_batches": ckpt.every_batches}
    report["traffic"] = traffic
    report["dropped"] = dropped
    report["weights_sha256"] = weights_sha256(weights)
    report.update(board_fields(args, system))
    report["host_link_bytes_per_sample"] = host_link_bytes(traffic) / max(report["_training_samples"], 1)
    if report["learning"] == "on-chip-eventprop":
        report["ppu_memory_bytes"] = actors.PPU_MEMORY_BYTES
    return report


def train_summary(report: dict) -> None:
    print()
    print(f"test accuracy {report['test_accuracy']:.3f}   ({report['learning']}, seed {report['seed']}, "
          f"chip seed {report['chip_seed']}, {report['wall_s']:.1f} s, {report['samples_per_s']:.0f} samples/s)")
    if "ppu_working_set_bytes" in report:
        print(f"PPU working set {report['ppu_working_set_bytes']:,.0f} bytes "
              f"(a BrainScaleS-2 PPU has {report['ppu_memory_bytes']:,} bytes of SRAM)")
    print(f"host link: {report['host_link_bytes_per_sample']:,.0f} bytes per training sample")
    print_traffic(report)


class Train:
    NAME = "train"
    HELP = "train a task with one learning scheme"

    @staticmethod
    def add_arguments(p) -> None:
        p.add_argument("task", choices=list(TASKS))
        add_train_arguments(p)
        add_record_argument(p)

    job = staticmethod(train_job)
    summary = staticmethod(train_summary)


class Demo:
    NAME = "demo"
    HELP = "a short on-chip EventProp training (the README's main job)"

    @staticmethod
    def add_arguments(p) -> None:
        add_train_arguments(p, epochs_default=DEMO_EPOCHS)
        add_record_argument(p)

    job = staticmethod(train_job)
    summary = staticmethod(train_summary)
