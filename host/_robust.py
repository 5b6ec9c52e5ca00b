"""Mismatch-robust surrogate training in software: parameter noise injection and the adversarial
parameter-noise regulariser of Büchel, Faber & Muir (arXiv 2106.05009, peers.md §2).

Each training batch runs on a freshly drawn emulated die (``draw_die`` at ``noise_level`` relative
mismatch, not calibrated): its realised neuron parameters and synapse gains give the forward pass
and the task-loss gradient, so the weights learn to work on many chips at once. The adversarial
term looks for the worst weight perturbation inside the box |dw| <= attack_size |w| by projected
sign-gradient ascent (attack_steps steps of attack_size / attack_steps, from a tiny random start,
as Rockpool's ``pga_attack``) on the KL divergence between the nominal and the attacked output
distributions, and adds beta_rob times that divergence to the loss; its gradient flows through both
the nominal and the attacked network (the perturbation itself is held fixed). The adversary acts on
the weights (the synapse gains it stands for); neuron parameters enter through the injected noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..chip import nominal_codes, realised_params
from ..chip._mismatch import MismatchSpec, draw_die
from ..chip._surrogate import readout_grad, softmax
from ..chip._synapses import CURRENT_LSB_PER_CODE
from ._surrogate import HIDDEN_TARGETS, SurrogateModel, SurrogateStep

__all__ = ["RobustConfig", "level_spec", "distance_spread", "robust_forward", "noisy_forward", "REFERENCE_SPREAD"]

def distance_spread(spec: MismatchSpec, targets: dict = HIDDEN_TARGETS) -> float:
    """Relative spread (std / mean) of an uncalibrated neuron's leak-to-threshold distance under ``spec``:
    the offsets and the CapMem gain deviations of leak and threshold, independent, over the distance
    v_th - v_leak of ``targets`` (the parameter a LIF neuron's firing depends on most)."""
    leak, th = targets["v_leak_lsb"], targets["v_th_lsb"]
    var = (spec.v_leak_offset_lsb ** 2 + spec.v_th_offset_lsb ** 2 + (leak * spec.v_leak_gain_cv) ** 2
           + (th * spec.v_th_gain_cv) ** 2)
    return float(np.sqrt(var) / (th - leak))


REFERENCE_SPREAD = distance_spread(MismatchSpec())
"""The default spec's distance spread for the hidden targets (about 0.35; tau_mem's spread is 0.2)."""


def level_spec(relative_mismatch: float) -> MismatchSpec:
    """The mismatch of an uncalibrated die at relative level r: the default pattern scaled,
    ``MismatchSpec().scaled(r / REFERENCE_SPREAD)``, so that the hidden neurons' leak-to-threshold
    distance spreads by r (time constants then by ~0.6 r, synapse gains by ~0.3 r); trial noise kept."""
    if not relative_mismatch >= 0:
        raise ValueError(f"relative_mismatch must be >= 0, got {relative_mismatch}")
    return MismatchSpec().scaled(relative_mismatch / REFERENCE_SPREAD)


@dataclass(frozen=True)
class RobustConfig:
    """noise_level: relative mismatch of the die drawn for every batch (0: nominal forward).
    beta_rob: weight of the adversarial KL term (0: off). attack_size: the box, relative to |w|.
    attack_steps: projected sign-gradient ascent steps. Defaults: 2106.05009's beta_rob 0.25 and
    attack size 0.1 (its experiments), 10 steps."""

    noise_level: float = 0.2
    beta_rob: float = 0.25
    attack_size: float = 0.1
    attack_steps: int = 10

    def __post_init__(self) -> None:
        for name in ("noise_level", "beta_rob", "attack_size"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.attack_steps < 1:
            raise ValueError(f"attack_steps must be >= 1, got {self.attack_steps}")


def _random_chip(model: SurrogateModel, level: float, rng: np.random.Generator):
    """(params, code_gain float64[n_src, n]) of a die drawn at relative mismatch ``level``."""
    die = draw_die(int(rng.integers(1 << 31)), level_spec(level))
    circuits = model.net.circuits
    params = realised_params(die, nominal_codes(model.params), circuits)
    # the rows each source uses (exc where the code is >= 0, else inh) carry that synapse's gain
    rows = model.learner.rows
    codes = model.learner.signed_codes()
    row = np.where(codes >= 0, rows.exc_row[:, None], rows.inh_row[:, None])
    gain = np.where(row >= 0, die.synapse_gain[np.maximum(row, 0), circuits[None, :]], 1.0)
    return params, CURRENT_LSB_PER_CODE * gain


def noisy_forward(level: float):
    """A train_software ``forward``: every batch on a freshly drawn die at relative mismatch ``level``."""

    def forward(model: SurrogateModel, inputs, x, y, rng: np.random.Generator) -> SurrogateStep:
        params, code_gain = _random_chip(model, level, rng)
        w = model.learner.signed_codes() * code_gain
        raster, v_rec = model.simulate(inputs, x.shape[0], w_lsb=w, params=params)
        return model.gradient(inputs, raster, v_rec, y, w_lsb=w, params=params, code_gain=code_gain)

    return forward


def _logits(model: SurrogateModel, v_rec: np.ndarray):
    return model.logits(v_rec)


def _grad_from_logits(model: SurrogateModel, inputs, raster, v_rec, k_max, dl_dz, w_lsb) -> np.ndarray:
    """dL/d(code) of a loss on the logits, through the nominal model at weights w_lsb."""
    cfg, nh = model.cfg, model.n_hidden
    dl_dv = np.zeros(v_rec.shape)
    dl_dv[:, :, nh:] = readout_grad(dl_dz, k_max, v_rec.shape[1], readout=cfg.readout, scale_lsb=cfg.scale_lsb)
    from ..chip._surrogate import surrogate_backward

    g = surrogate_backward(w_lsb, model.params, *inputs, raster, v_rec, dl_dv, np.zeros((v_rec.shape[0], model.net.n)),
                           cfg.dt_us, beta_per_lsb=cfg.beta_per_lsb, spiking=model.spiking)
    return np.where(model.learner.mask, g * CURRENT_LSB_PER_CODE, 0.0)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.sum(p * (np.log(np.maximum(p, 1e-300)) - np.log(np.maximum(q, 1e-300))), axis=1)


def robust_forward(rc: RobustConfig):
    """A train_software ``forward``: task loss on a freshly drawn die (noise injection) plus beta_rob
    times the KL divergence between the nominal network and its worst weight perturbation in the box."""
    inject = noisy_forward(rc.noise_level)

    def forward(model: SurrogateModel, inputs, x, y, rng: np.random.Generator) -> SurrogateStep:
        step = inject(model, inputs, x, y, rng) if rc.noise_level > 0 else None
        if step is None:
            raster, v_rec = model.simulate(inputs, x.shape[0])
            step = model.gradient(inputs, raster, v_rec, y)
        if rc.beta_rob == 0:
            return step
        n = x.shape[0]
        w = model.learner.signed_codes() * CURRENT_LSB_PER_CODE
        r_nom, v_nom = model.simulate(inputs, n, w_lsb=w)
        z_nom, k_nom = _logits(model, v_nom)
        p_nom = softmax(z_nom)
        box = rc.attack_size * np.abs(w)
        delta = 1e-3 * np.abs(w) * rng.standard_normal(w.shape)
        for _ in range(rc.attack_steps):  # ascend KL(p_nom || p_adv) in sign steps, projected on the box
            r_adv, v_adv = model.simulate(inputs, n, w_lsb=w + delta)
            z_adv, k_adv = _logits(model, v_adv)
            g = _grad_from_logits(model, inputs, r_adv, v_adv, k_adv, (softmax(z_adv) - p_nom) / n, w + delta)
            delta = np.clip(delta + box / rc.attack_steps * np.sign(g), -box, box)
        r_adv, v_adv = model.simulate(inputs, n, w_lsb=w + delta)
        z_adv, k_adv = _logits(model, v_adv)
        p_adv = softmax(z_adv)
        kl = _kl(p_nom, p_adv)
        log_ratio = np.log(np.maximum(p_nom, 1e-300)) - np.log(np.maximum(p_adv, 1e-300))
        dz_nom = p_nom * (log_ratio - kl[:, None]) / n  # d KL / d z_nom
        dz_adv = (p_adv - p_nom) / n  # d KL / d z_adv
        g_rob = (_grad_from_logits(model, inputs, r_nom, v_nom, k_nom, dz_nom, w)
                 + _grad_from_logits(model, inputs, r_adv, v_adv, k_adv, dz_adv, w + delta))
        return step._replace(loss=step.loss + rc.beta_rob * float(kl.mean()),
                             grad_codes=step.grad_codes + rc.beta_rob * g_rob)

    return forward
