"""``neurosplit mismatch``: accuracy of ideal-deployed, in-the-loop and robust weights across chips.

Every point (a software training, an in-the-loop training on one chip, a deployment of trained
codes on one chip) runs in a process of a pool with its own ``trio.run`` and its own board; points
are seeded, so results never depend on which process ran them or in which order they finished.
The study itself (configuration, summary, plot) is host/_mismatch_study.py.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

import numpy as np
import trio

from ... import actors
from ...chip import CoreConfig
from .._mismatch_study import STRATEGIES, Point, StudyConfig, level_spec, plan_points, plot_study, summarise, train_reference
from .._robust import RobustConfig
from .._surrogate import SurrogateConfig, deploy, evaluate_on_board, train_surrogate
from .._tasks import TASKS, load_task
from ._common import configure_logging

NAME = "mismatch"
HELP = "accuracy across emulated chips: ideal-deployed vs in-the-loop vs mismatch-robust weights"


def add_arguments(p) -> None:
    p.add_argument("--task", choices=TASKS, default="digits")
    p.add_argument("--chips", type=int, default=4, help="chips per level: chip seeds --chip-seed .. + N - 1")
    p.add_argument("--levels", default="0.05,0.1,0.2,0.3",
                   help="relative mismatch levels, comma separated (tau_mem spread; default 0.05,0.1,0.2,0.3)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma separated, of {', '.join(STRATEGIES)}")
    p.add_argument("--calibrate", action="store_true", help="calibrate each chip's neurons (default: uncalibrated)")
    p.add_argument("--epochs", type=int, help="epochs of every training (default: the task's)")
    p.add_argument("--itl-epochs", type=int, help="epochs of each in-the-loop training (default: --epochs)")
    p.add_argument("--n-train", type=int)
    p.add_argument("--n-test", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--noise-level", type=float, default=RobustConfig.noise_level,
                   help="robust training: relative mismatch of the die drawn per batch")
    p.add_argument("--beta-rob", type=float, default=RobustConfig.beta_rob, help="robust training: adversarial weight")
    p.add_argument("--attack-size", type=float, default=RobustConfig.attack_size, help="robust training: attack box")
    p.add_argument("--attack-steps", type=int, default=RobustConfig.attack_steps, help="robust training: PGA steps")
    p.add_argument("--jobs", type=int, default=0, help="processes (default: the CPUs this process may use)")
    p.add_argument("--plot", metavar="PNG", help="plot here (default: beside --report, as .png)")


def study_config(args) -> StudyConfig:
    if getattr(args, "ideal_chip", False) or getattr(args, "board", None):
        raise ValueError("mismatch draws its own chips: --ideal-chip and --board do not apply "
                         "(the ideal chip is the ideal-deployed strategy's training ground)")
    sur = SurrogateConfig(task=args.task, seed=args.seed, epochs=args.epochs, n_train=args.n_train,
                          n_test=args.n_test, n_hidden=args.hidden)
    try:
        levels = tuple(float(x) for x in args.levels.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--levels must be numbers separated by commas, got {args.levels!r}") from None
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    return StudyConfig(n_chips=args.chips, first_chip_seed=args.chip_seed, levels=levels, calibrate=args.calibrate,
                       surrogate=sur, itl_epochs=args.itl_epochs, strategies=strategies,
                       robust=RobustConfig(noise_level=args.noise_level, beta_rob=args.beta_rob,
                                           attack_size=args.attack_size, attack_steps=args.attack_steps))


# -- the points (module level: they run in worker processes) ------------------------------------
def _system(cfg: StudyConfig, level: float, chip_seed: int) -> actors.SystemConfig:
    return actors.SystemConfig(seed=cfg.surrogate.seed, chip_seed=chip_seed,
                               core=CoreConfig(mismatch=level_spec(level), calibrate=cfg.calibrate))


def software_point(cfg: StudyConfig, strategy: str) -> tuple[np.ndarray, dict]:
    model, summary = train_reference(cfg, strategy)
    return model.learner.signed_codes(), summary


def itl_point(cfg: StudyConfig, level: float, chip_seed: int) -> float:
    async def main() -> float:
        async with actors.open_system(_system(cfg, level, chip_seed)) as system:
            report = await train_surrogate(system.host, cfg.itl_config())
        return float(report["test_accuracy"])

    return trio.run(main)


def deploy_point(cfg: StudyConfig, level: float, chip_seed: int, codes: np.ndarray) -> float:
    data = load_task(cfg.surrogate.task, n_train=0, n_test=cfg.surrogate.n_test)

    async def main() -> float:
        async with actors.open_system(_system(cfg, level, chip_seed)) as system:
            model = await deploy(system.host, cfg.surrogate, codes, data.n_classes)
            return await evaluate_on_board(system.host, model, data.x_test, data.y_test)

    return trio.run(main)


def _init_worker(log_json: bool, log_level: str) -> None:
    configure_logging(log_json, log_level)


def run_study(cfg: StudyConfig, *, jobs: int = 1, log_json: bool = False, log_level: str = "warning",
              out=None) -> dict:
    """Run every point of ``cfg`` on ``jobs`` processes (1: in this process); returns the report fields.
    Progress goes to ``out`` (default: sys.stdout), one line per finished point."""
    out = sys.stdout if out is None else out
    t0 = time.perf_counter()
    points = plan_points(cfg)
    results: dict[Point, float] = {}
    references: dict[str, dict] = {}
    total = len(points) + sum(s != "in-the-loop" for s in cfg.strategies)
    done = 0

    def note(what: str) -> None:
        nonlocal done
        done += 1
        print(f"[{done:3d}/{total}] {time.perf_counter() - t0:7.1f} s  {what}", file=out, flush=True)

    if jobs <= 1:
        for s in cfg.strategies:
            if s == "in-the-loop":
                for p in (p for p in points if p.strategy == s):
                    results[p] = itl_point(cfg, p.level, p.chip_seed)
                    note(f"{s:15s} r={p.level:<5g} chip {p.chip_seed}: {results[p]:.3f}")
                continue
            codes, references[s] = software_point(cfg, s)
            note(f"{s:15s} software training: {references[s]['software_test_accuracy']:.3f} on the ideal chip")
            for p in (p for p in points if p.strategy == s):
                results[p] = deploy_point(cfg, p.level, p.chip_seed, codes)
                note(f"{s:15s} r={p.level:<5g} chip {p.chip_seed}: {results[p]:.3f}")
    else:
        ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no trio or numba state forked
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(log_json, log_level)) as pool:
            pending = {}
            for s in cfg.strategies:  # the long software trainings first, then the in-the-loop points
                if s != "in-the-loop":
                    pending[pool.submit(software_point, cfg, s)] = ("software", s)
            for p in points:
                if p.strategy == "in-the-loop":
                    pending[pool.submit(itl_point, cfg, p.level, p.chip_seed)] = ("point", p)
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    kind, what = pending.pop(fut)
                    if kind == "software":
                        codes, references[what] = fut.result()
                        note(f"{what:15s} software training: {references[what]['software_test_accuracy']:.3f} "
                             "on the ideal chip")
                        for p in points:
                            if p.strategy == what:
                                pending[pool.submit(deploy_point, cfg, p.level, p.chip_seed, codes)] = ("point", p)
                    else:
                        results[what] = fut.result()
                        note(f"{what.strategy:15s} r={what.level:<5g} chip {what.chip_seed}: {results[what]:.3f}")
    sur = cfg.surrogate
    return {
        "task": sur.task,
        "learning": "host-surrogate",
        "n_chips": cfg.n_chips,
        "chip_seeds": cfg.chip_seeds,
        "levels": list(cfg.levels),
        "calibrate": cfg.calibrate,
        "strategies": summarise(cfg, results),
        "points": [{"strategy": p.strategy, "level": p.level, "chip_seed": p.chip_seed, "accuracy": results[p]}
                   for p in points],
        "references": references,
        "config": {"surrogate": asdict(sur), "itl_epochs": cfg.itl_config().epochs, "robust": asdict(cfg.robust)},
        "wall_s": time.perf_counter() - t0,
        "jobs": jobs,
    }


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


async def job(args) -> dict:
    cfg = study_config(args)
    jobs = args.jobs if args.jobs > 0 else _cpus()
    n = len(plan_points(cfg))
    print(f"mismatch study: {cfg.surrogate.task}, {', '.join(cfg.strategies)}; {cfg.n_chips} chips x "
          f"{len(cfg.levels)} levels = {n} points on {jobs} process(es)", flush=True)
    report = await trio.to_thread.run_sync(lambda: run_study(cfg, jobs=jobs, log_json=args.log_json,
                                                               log_level=args.log_level))
    plot = args.plot or (str(Path(args.report).with_suffix(".png")) if args.report else None)
    if plot:
        try:
            report["plot"] = plot_study(report, plot)
        except ImportError as exc:
            print(f"neurosplit: no plot ({exc})", file=sys.stderr)
    return report


def summary(report: dict) -> None:
    levels = [f"{r:g}" for r in report["levels"]]
    print()
    print(f"test accuracy across {report['n_chips']} chips per level ({report['task']}; mean / std / min)")
    print(f"{'strategy':16s}" + "".join(f"{'r=' + r:>22s}" for r in levels) + f"{'all':>22s}")
    for name, s in report["strategies"].items():
        cells = [s["by_level"][r] for r in levels] + [s]
        print(f"{name:16s}" + "".join(f"{c['mean']:>10.3f} {c['std']:5.3f} {c['min']:5.3f}" for c in cells))
    if "plot" in report:
        print(f"plot: {report['plot']}")
    print(f"wall {report['wall_s']:.0f} s on {report['jobs']} process(es)")
