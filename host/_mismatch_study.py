"""What device mismatch costs: three ways to get weights onto N emulated chips at relative mismatch levels.

- ``ideal-deployed``: train in software on the ideal chip (the nominal time-stepped model, i.e.
  MismatchSpec.ideal()), then write the same codes to every chip.
- ``in-the-loop``: train through each chip (host-surrogate) and test on that chip.
- ``robust``: train in software with parameter noise (a fresh die per batch) and the adversarial
  parameter-noise regulariser (host/_robust.py), then write the same codes to every chip.

Chips are chip seeds ``first_chip_seed ..`` at each relative mismatch level r (``level_spec``:
the default mismatch pattern scaled so that tau_mem's spread is r; Büchel et al. sweep 5-30 %),
uncalibrated by default (the mismatch acts in full, as in Cramer et al.'s decalibration test).
This module plans the points and summarises them; the command line (host/cli/_mismatch.py) runs
them on boards, in parallel processes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._robust import RobustConfig, level_spec, noisy_forward, robust_forward
from ._surrogate import SurrogateConfig, SurrogateModel
from ._surrogate_software import nominal_forward, train_software

__all__ = ["STRATEGIES", "StudyConfig", "Point", "plan_points", "train_reference", "summarise", "plot_study",
           "level_spec"]

STRATEGIES = ("ideal-deployed", "in-the-loop", "robust")


@dataclass(frozen=True)
class StudyConfig:
    """n_chips chip seeds from first_chip_seed, at every relative mismatch level in ``levels``.
    surrogate: the training (task, epochs, sizes, seed) of every strategy; itl_epochs: epochs of each
    in-the-loop training (None: surrogate.epochs). robust: the robust training's noise and attack.
    calibrate: calibrate each chip's neurons before use (default off: the mismatch acts in full)."""

    n_chips: int = 4
    first_chip_seed: int = 1
    levels: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    calibrate: bool = False
    surrogate: SurrogateConfig = field(default_factory=SurrogateConfig)
    itl_epochs: int | None = None
    robust: RobustConfig = field(default_factory=RobustConfig)
    strategies: tuple[str, ...] = STRATEGIES

    def __post_init__(self) -> None:
        if self.n_chips < 1:
            raise ValueError(f"n_chips must be >= 1, got {self.n_chips}")
        if self.first_chip_seed < 0:
            raise ValueError(f"first_chip_seed must be >= 0, got {self.first_chip_seed}")
        if not self.levels or any(not r >= 0 for r in self.levels):
            raise ValueError(f"levels must be relative mismatch values >= 0, got {self.levels}")
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ValueError(f"strategies must be among {', '.join(STRATEGIES)}, got {list(self.strategies)}")

    @property
    def chip_seeds(self) -> list[int]:
        return list(range(self.first_chip_seed, self.first_chip_seed + self.n_chips))

    def itl_config(self) -> SurrogateConfig:
        return dataclasses.replace(self.surrogate, epochs=self.itl_epochs or self.surrogate.epochs)


class Point(NamedTuple):
    """One accuracy measurement: a strategy's weights on chip ``chip_seed`` at relative mismatch ``level``."""

    strategy: str
    level: float
    chip_seed: int


def plan_points(cfg: StudyConfig) -> list[Point]:
    """Every (strategy, level, chip) of the study, strategies in STRATEGIES order, then levels, then chips."""
    return [Point(s, r, c) for s in STRATEGIES if s in cfg.strategies for r in cfg.levels for c in cfg.chip_seeds]


def train_reference(cfg: StudyConfig, strategy: str) -> tuple[SurrogateModel, dict]:
    """The software training of ``ideal-deployed`` or ``robust``: (model holding the codes, summary)."""
    if strategy == "ideal-deployed":
        forward = nominal_forward
    elif strategy == "robust":
        rc = cfg.robust
        forward = robust_forward(rc) if rc.beta_rob > 0 else noisy_forward(rc.noise_level)
    else:
        raise ValueError(f"strategy must be 'ideal-deployed' or 'robust', got {strategy!r}")
    model, history = train_software(cfg.surrogate, forward=forward)
    return model, {"software_test_accuracy": history[-1].test_accuracy,
                   "train_accuracy": [h.train_accuracy for h in history],
                   "wall_s": float(sum(h.wall_s for h in history))}


def _stats(acc: list[float]) -> dict:
    a = np.asarray(acc, np.float64)
    return {"accuracies": [float(x) for x in a], "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min())}


def summarise(cfg: StudyConfig, results: dict[Point, float]) -> dict:
    """The report's ``strategies``: per strategy the accuracies of all its points (levels, then chips),
    their mean, std and min, and the same per level under ``by_level`` (keys are the levels as text)."""
    out = {}
    for s in cfg.strategies:
        pts = [p for p in plan_points(cfg) if p.strategy == s]
        if not all(p in results for p in pts):
            continue
        out[s] = {**_stats([results[p] for p in pts]),
                  "by_level": {f"{r:g}": _stats([results[p] for p in pts if p.level == r]) for r in cfg.levels}}
    return out


def plot_study(report: dict, path) -> str:
    """A PNG of accuracy against relative mismatch (mean, std band, min) per strategy, drawn from the
    report alone. Needs matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("the mismatch plot needs matplotlib: pip install 'neurosplit[plot]'") from exc
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=120)
    for name, s in report["strategies"].items():
        levels = sorted(s["by_level"], key=float)
        x = np.array([float(r) * 100 for r in levels])
        mean = np.array([s["by_level"][r]["mean"] for r in levels])
        std = np.array([s["by_level"][r]["std"] for r in levels])
        low = np.array([s["by_level"][r]["min"] for r in levels])
        (line,) = ax.plot(x, mean * 100, marker="o", label=name)
        ax.fill_between(x, (mean - std) * 100, (mean + std) * 100, color=line.get_color(), alpha=0.2)
        ax.plot(x, low * 100, ls=":", color=line.get_color())
    ax.set_xlabel("relative mismatch (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{report.get('task', '')}: {report.get('n_chips', '')} chips per level (dotted: min)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)
