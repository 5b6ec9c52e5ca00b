"""host-surrogate training without a board: the time-stepped model is the chip.

``train_software`` runs the scheme's loop (host/_surrogate.py) with a ``forward`` that gives each
batch's step: the nominal model's own forward pass (``nominal_forward``, an ideal chip: what the
mismatch study's ``ideal-deployed`` weights are trained on), or one with injected parameter noise
(host/_robust.py). ``evaluate_software`` scores codes on the nominal (or a given) model.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..chip import NeuronParams
from ._network import place
from ._surrogate import EpochRecord, SurrogateConfig, SurrogateModel, SurrogateStep, batches, build_network, encode_ticks
from ._tasks import load_task

__all__ = ["ForwardFn", "nominal_forward", "train_software", "evaluate_software"]

ForwardFn = Callable[["SurrogateModel", tuple, np.ndarray, np.ndarray, np.random.Generator], SurrogateStep]


def nominal_forward(model: SurrogateModel, inputs, x, y, rng: np.random.Generator) -> SurrogateStep:
    """The ideal chip: the nominal model's own forward pass and its surrogate gradient."""
    raster, v_rec = model.simulate(inputs, x.shape[0])
    return model.gradient(inputs, raster, v_rec, y)


def train_software(cfg: SurrogateConfig, *, forward: ForwardFn = nominal_forward,
                   progress: Callable[[dict], None] | None = None, evaluate_every: int = 0
                   ) -> tuple[SurrogateModel, list[EpochRecord]]:
    """Train on the model itself (``forward`` gives each batch's step; default the nominal model).
    Returns the model (its learner holds the trained shadow weights and codes) and per-epoch records
    (test accuracy on the nominal model every ``evaluate_every`` epochs and after the last; else nan)."""
    data = load_task(cfg.task, n_train=cfg.n_train, n_test=cfg.n_test)
    net = build_network(cfg, data.n_classes)
    model = SurrogateModel(cfg, net, place(net))
    rng = np.random.default_rng([cfg.seed, 2])
    noise_rng = np.random.default_rng([cfg.seed, 3])
    drop_rng = np.random.default_rng([cfg.seed, 4])
    history = []
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        lr = cfg.lr * cfg.lr_decay ** epoch
        loss_sum, correct, seen, spikes = 0.0, 0, 0, 0.0
        for idx in batches(rng, data.x_train.shape[0], cfg.batch_size):
            _, inputs = encode_ticks(cfg, data.x_train[idx], net.input_label, drop_rng)
            step = forward(model, inputs, data.x_train[idx], data.y_train[idx], noise_rng)
            model.apply(step.grad_codes, lr)
            loss_sum += step.loss * idx.size
            correct += int(step.correct.sum())
            seen += idx.size
            spikes += float(step.hidden_counts.sum())
        last = epoch + 1 == cfg.epochs
        test = (evaluate_software(model, data.x_test, data.y_test)
                if last or (evaluate_every and (epoch + 1) % evaluate_every == 0) else float("nan"))
        history.append(EpochRecord(epoch + 1, loss_sum / seen, correct / seen, test, spikes / seen,
                                   time.perf_counter() - t_epoch))
        if progress is not None:
            progress({"epoch": epoch + 1, "epochs": cfg.epochs, "done": True, **history[-1]._asdict()})
    return model, history


def evaluate_software(model: SurrogateModel, x, y, *, w_lsb=None, params: NeuronParams | None = None,
                      batch: int = 500) -> float:
    """Accuracy of the model's current codes on the nominal (or given) model."""
    correct = 0
    for lo in range(0, x.shape[0], batch):
        xs = x[lo:lo + batch]
        _, inputs = encode_ticks(model.cfg, xs, model.net.input_label)
        _, v_rec = model.simulate(inputs, xs.shape[0], w_lsb=w_lsb, params=params)
        correct += int(np.sum(model.predict(v_rec) == y[lo:lo + batch]))
    return correct / max(x.shape[0], 1)
