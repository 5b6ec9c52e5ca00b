"""``neurosplit train`` and ``neurosplit demo``: EventProp training on Yin-Yang."""

from __future__ import annotations

from dataclasses import replace

from ... import actors
from .._report import Progress, host_link_bytes, weights_sha256
from .._surrogate import SurrogateConfig
from .._tasks import TASKS
from .._training import LEARNING_SCHEMES, TrainConfig, train
from ._common import board_fields, final_weights, open_job_system, print_traffic

DEMO_EPOCHS = 5


def add_train_arguments(p, *, epochs_default=None) -> None:
    p.add_argument("--learning", choices=LEARNING_SCHEMES, default="on-chip-eventprop")
    p.add_argument("--epochs", type=int, default=epochs_default)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--hidden", type=int)


def train_config(args) -> TrainConfig | SurrogateConfig:
    task = getattr(args, "task", "yinyang")
    if args.learning == "host-surrogate":  # its own defaults per task (host/_surrogate.py)
        return SurrogateConfig(task=task, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                               n_train=args.n_train, n_test=args.n_test, n_hidden=args.hidden,
                               **({} if args.lr is None else {"lr": args.lr}))
    if task != "yinyang":
        raise ValueError(f"the EventProp schemes train yinyang; {task} trains with --learning host-surrogate")
    cfg = TrainConfig(learning=args.learning, seed=args.seed)
    fields = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "n_train": args.n_train,
              "n_test": args.n_test, "n_hidden": args.hidden}
    return replace(cfg, **{k: v for k, v in fields.items() if v is not None})


async def train_job(args) -> dict:
    cfg = train_config(args)
    async with open_job_system(args) as system:
        report = await train(system.host, cfg, progress=Progress())
        weights = await final_weights(system)
        traffic, dropped = system.traffic(), system.dropped()
    report["traffic"] = traffic
    report["dropped"] = dropped
    report["weights_sha256"] = weights_sha256(weights)
    report.update(board_fields(args, system))
    report["host_link_bytes_per_sample"] = host_link_bytes(traffic) / report["_training_samples"]
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

    job = staticmethod(train_job)
    summary = staticmethod(train_summary)


class Demo:
    NAME = "demo"
    HELP = "a short on-chip EventProp training (the README's main job)"

    @staticmethod
    def add_arguments(p) -> None:
        add_train_arguments(p, epochs_default=DEMO_EPOCHS)

    job = staticmethod(train_job)
    summary = staticmethod(train_summary)
