"""Spike-time losses of a read-out layer, with dL/dt for every recorded spike (eventprop.md §3).

Both losses look only at the first spike of each output neuron in each sample; every other spike gets
dL/dt = 0. Losses are batch means, so ``dl_dt`` already carries the 1/n_samples the reverse sweep expects.

Silent outputs: a silent output is read as firing at t_end_us, with no gradient (there is no spike to
move; EventProp cannot create spikes, eventprop.md §6.3). In the TTFS softmax this keeps a silent wrong
class in the normaliser as "latest possible", so a sample whose label fires is still pulled the right
way; a sample whose label is silent still has its wrong classes pushed later.

Prediction: the output with the earliest first spike (ties: lowest output index); -1 when no output
fired, which counts as wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._learner_kernels import first_spikes

if TYPE_CHECKING:
    from ._spikes import SpikeRecord

__all__ = ["LossResult", "ttfs_cross_entropy", "spike_time_mse", "first_spike_times",
           "TTFS_DEFAULTS", "MSE_DEFAULTS"]

TTFS_DEFAULTS = dict(tau0_us=0.5, tau1_us=6.0, alpha=3e-3)
"""TTFS cross-entropy hyperparameters for the Yin-Yang targets (tau_syn 6 us); W&P used tau0 0.5 ms,
tau1 6.4 ms, alpha 3e-3 at tau_syn 5 ms (eventprop.md §3.1)."""

MSE_DEFAULTS = dict(t_correct_us=5.4, t_wrong_us=6.6, tau_norm_us=12.0)
"""Spike-time MSE targets of the BSS-2 Yin-Yang example (0.9 / 1.1 tau_syn, normalised by tau_mem;
bss2_facts.md §9)."""


class LossResult(NamedTuple):
    loss: float  # batch mean
    dl_dt: np.ndarray  # float64[k], dL/dt for each spike of the SpikeRecord (0 for most)
    first_t_us: np.ndarray  # float64[n_samples, n_out], inf where silent
    prediction: np.ndarray  # int64[n_samples], -1 when no output spiked
    correct: np.ndarray  # bool[n_samples]


def first_spike_times(spikes: "SpikeRecord", output_neuron, n_samples: int):
    """First spike of each output neuron in each sample.

    Returns (first_t_us float64[n_samples, n_out] with inf where silent, index int64[n_samples, n_out] of
    that spike in the record, -1 where silent)."""
    out = np.asarray(output_neuron, dtype=np.int64).ravel()
    t = np.ascontiguousarray(spikes.t_us, dtype=np.float64)
    neuron = np.ascontiguousarray(spikes.neuron, dtype=np.int64)
    sample = np.ascontiguousarray(spikes.sample, dtype=np.int64)
    n_out = out.size
    first_t = np.full((n_samples, n_out), np.inf)
    first_i = np.full((n_samples, n_out), -1, dtype=np.int64)
    if t.size == 0 or n_out == 0:
        return first_t, first_i
    if np.unique(out).size != n_out:
        raise ValueError(f"output_neuron must not repeat a neuron, got {out.tolist()}")
    lookup = np.full(max(int(neuron.max()), int(out.max())) + 1, -1, dtype=np.int64)
    lookup[out] = np.arange(n_out)
    if out.min() >= 0 and first_spikes(t, neuron, sample, lookup, first_t, first_i):
        return first_t, first_i
    first_t[:], first_i[:] = np.inf, -1  # an index out of the tables: numpy's indexing (and its errors)
    col = lookup[neuron]
    hit = np.flatnonzero(col >= 0)
    if hit.size:
        key = sample[hit] * n_out + col[hit]
        # the record is sorted by (sample, t): the first index of each key is that output's first spike
        order = np.lexsort((t[hit], key))
        key_sorted = key[order]
        first = order[np.r_[True, key_sorted[1:] != key_sorted[:-1]]]
        idx = hit[first]
        first_t[sample[idx], col[idx]] = t[idx]
        first_i[sample[idx], col[idx]] = idx
    return first_t, first_i


def _prepare(spikes, output_neuron, label, n_samples, t_end_us):
    n_samples = int(n_samples)
    lab = np.asarray(label, dtype=np.int64).ravel()
    n_out = np.asarray(output_neuron).size
    if lab.shape != (n_samples,):
        raise ValueError(f"label must have shape ({n_samples},), got {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= n_out):
        raise ValueError(f"label must lie in [0, n_out={n_out}), got [{lab.min()}, {lab.max()}]")
    if not float(t_end_us) > 0:
        raise ValueError(f"t_end_us must be > 0, got {t_end_us}")
    first_t, first_i = first_spike_times(spikes, output_neuron, n_samples)
    fired = first_i >= 0
    t_eff = np.where(fired, np.minimum(first_t, float(t_end_us)), float(t_end_us))
    any_fired = fired.any(axis=1)
    pred = np.where(any_fired, np.argmin(first_t, axis=1), -1).astype(np.int64)
    return lab, first_t, first_i, fired, t_eff, pred, pred == lab


def _scatter(first_i, fired, g, k):
    dl_dt = np.zeros(k)
    dl_dt[first_i[fired]] = g[fired]
    return dl_dt


def ttfs_cross_entropy(spikes: "SpikeRecord", output_neuron, label, n_samples: int, *, tau0_us: float,
                       tau1_us: float, alpha: float, t_end_us: float) -> LossResult:
    """Time-to-first-spike cross-entropy with the W&P regulariser (eventprop.md §3.1), batch mean::

        L_i = -log softmax(-t_i / tau0)[l_i] + alpha (exp(t_i,l / tau1) - 1)

    t_i,k: first spike (us) of output k in sample i; silent outputs read as t_end_us without gradient.
    output_neuron int[n_out]; label int[n_samples] in [0, n_out)."""
    if not (tau0_us > 0 and tau1_us > 0):
        raise ValueError(f"tau0_us and tau1_us must be > 0, got {tau0_us}, {tau1_us}")
    lab, first_t, first_i, fired, t_eff, pred, correct = _prepare(spikes, output_neuron, label,
                                                                 n_samples, t_end_us)
    n = max(int(n_samples), 1)
    rows = np.arange(lab.size)
    z = -t_eff / tau0_us
    z_max = z.max(axis=1, keepdims=True) if z.size else z
    e = np.exp(z - z_max)
    p = e / e.sum(axis=1, keepdims=True)
    t_lab = t_eff[rows, lab]
    reg = np.exp(t_lab / tau1_us)
    losses = -np.log(p[rows, lab]) + alpha * (reg - 1.0)
    # dL_i/dt_k = (1[k = l] - p_k) / tau0 + 1[k = l] alpha / tau1 exp(t_l / tau1)
    g = -p / tau0_us
    g[rows, lab] += 1.0 / tau0_us + alpha / tau1_us * reg
    loss = float(losses.mean()) if losses.size else 0.0
    return LossResult(loss, _scatter(first_i, fired, g / n, np.asarray(spikes.t_us).size), first_t, pred,
                      correct)


def spike_time_mse(spikes: "SpikeRecord", output_neuron, label, n_samples: int, *, t_correct_us: float,
                   t_wrong_us: float, tau_norm_us: float, t_end_us: float) -> LossResult:
    """Squared first-spike-time error against per-class targets (eventprop.md §3.4, jaxsnn mse_loss)::

        L_i = sum_k ((min(t_i,k, t_end) - target_k) / tau_norm)^2,  target = t_correct for k = l_i else t_wrong

    batch mean; silent outputs read as t_end_us without gradient."""
    if not tau_norm_us > 0:
        raise ValueError(f"tau_norm_us must be > 0, got {tau_norm_us}")
    lab, first_t, first_i, fired, t_eff, pred, correct = _prepare(spikes, output_neuron, label,
                                                                 n_samples, t_end_us)
    n = max(int(n_samples), 1)
    target = np.full(t_eff.shape, float(t_wrong_us))
    target[np.arange(lab.size), lab] = float(t_correct_us)
    d = (t_eff - target) / tau_norm_us
    losses = (d * d).sum(axis=1)
    g = 2.0 * d / tau_norm_us
    loss = float(losses.mean()) if losses.size else 0.0
    return LossResult(loss, _scatter(first_i, fired, g / n, np.asarray(spikes.t_us).size), first_t, pred,
                      correct)
