"""Surrogate-gradient backward pass through recorded samples (in-the-loop training, Cramer et al. 2022).

The forward pass happened elsewhere (on the chip, or in ``simulate_steps``); what comes back is, per
sample, the spikes binned to the grid t_k = k dt_us (k < K) and the membrane V_rec[k] read at each
grid point just before its threshold check. The backward pass differentiates the time-stepped model
of ``chip/_lif_step.py`` (u = V - v_leak, nominal parameters)::

    I[k]     = b I[k-1] + sum_i W[i, :] S_i[k]                         (inputs and spikes at k)
    U[k]     = free[k] (a Upost[k-1] + g I[k-1]) + (1 - free[k]) u_reset (k > 0; U[0] = 0)
    Upost[k] = (1 - S[k]) U[k] + S[k] u_reset                           (reset, S detached)
    S[k]     = H(U[k] - theta) when free[k] (spiking neurons only)

with the values taken from the recording (Cramer Eq. 4: forward values from the chip, derivatives
from the model) and the SuperSpike surrogate dS/dU = 1 / (1 + beta |V_rec - v_th|)^2 (Eq. 5).
free[k] = 0 while a neuron is held after a recorded spike (nominal refractory steps
n_ref = ceil(t_ref / dt)). No gradient flows through the reset: dUpost/dU = 1 - S. The synaptic
currents are never measured; the recursion is linear in them, so their values are not needed.

Losses on the output membranes (max- or mean-over-time softmax cross entropy) and spike-count
regularisers give the seeds dL/dV_rec and dL/dcount of the sweep. Everything is batch-vectorised:
one numba kernel walks all samples; no Python runs per time step.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._lif_inputs import positive_float, prepare_inputs, prepare_network
from ._lif_step import grid_index, step_coefficients
from ._params import NeuronParams
from ._spikes import SpikeRecord

__all__ = ["READOUTS", "SUPERSPIKE_BETA_PER_LSB", "ReadoutLoss", "spike_raster", "superspike",
           "surrogate_backward", "readout_logits", "readout_grad", "readout_cross_entropy", "softmax",
           "count_regulariser"]

READOUTS = ("max", "mean")
"""Output read-outs: max over time (Cramer MNIST) or mean over time (Cramer SHD's sum, scaled by 1/K)."""

SUPERSPIKE_BETA_PER_LSB = 0.5
"""Default surrogate steepness per membrane LSB: beta = 35 in units of a 70 LSB leak-to-threshold
distance, inside the 10..150 that SpyTorch, Norse and hxtorch use (eventprop.md §7)."""


def superspike(v_lsb, v_th_lsb, beta_per_lsb: float) -> np.ndarray:
    """dS/dV = 1 / (1 + beta |V - v_th|)^2, float64 of the broadcast shape (per LSB: S is a count)."""
    x = np.abs(np.asarray(v_lsb, np.float64) - np.asarray(v_th_lsb, np.float64))
    return 1.0 / (1.0 + float(beta_per_lsb) * x) ** 2


def spike_raster(spikes: SpikeRecord, n_samples: int, n_steps: int, n: int, dt_us: float) -> np.ndarray:
    """Spike counts per grid bin, uint8[n_samples, n_steps, n]: a spike at t enters bin ceil(t / dt_us)
    (the first grid point at or after it, as inputs do in ``simulate_steps``); later bins are dropped.
    Counts saturate at 255."""
    dt = positive_float(dt_us, "dt_us")
    k = grid_index(spikes.t_us, dt)
    smp = np.asarray(spikes.sample, np.int64)
    nrn = np.asarray(spikes.neuron, np.int64)
    if smp.size and (smp.min() < 0 or smp.max() >= n_samples):
        raise ValueError(f"spikes.sample must lie in [0, {n_samples}), got [{smp.min()}, {smp.max()}]")
    if nrn.size and (nrn.min() < 0 or nrn.max() >= n):
        raise ValueError(f"spikes.neuron must lie in [0, {n}), got [{nrn.min()}, {nrn.max()}]")
    keep = k < n_steps
    flat = (smp[keep] * n_steps + k[keep]) * n + nrn[keep]
    counts = np.bincount(flat, minlength=n_samples * n_steps * n)
    return np.minimum(counts, 255).astype(np.uint8).reshape(n_samples, n_steps, n)


@njit(cache=True, nogil=True)
def _held_steps(s_rec, smp, n_ref, held):
    """held[k, j] = 1 where neuron j is clamped at grid point k after a recorded spike (k < K)."""
    n_steps, n = held.shape
    for j in range(n):
        refc = 0
        for k in range(n_steps):
            h = 0
            if k > 0 and refc > 0:
                h = 1
                refc -= 1
            held[k, j] = h
            if s_rec[smp, k, j] > 0:
                refc = n_ref[j]


@njit(cache=True, nogil=True)
def _backward(row_ptr, col, val, n_in, a, b, g, v_th, beta, spiking, n_ref, in_k, in_src, in_off,
              s_rec, v_rec, dl_dv, dl_dcount, grad_w):
    n_samples, n_steps, n = v_rec.shape
    held = np.zeros((n_steps, n), np.uint8)
    g_u = np.zeros(n)  # dL/dU[k + 1] while step k is processed
    g_i = np.zeros(n)  # dL/dI[k + 1], then dL/dI[k]
    carry = np.zeros(n)  # dL/dUpost[k]
    for smp in range(n_samples):
        _held_steps(s_rec, smp, n_ref, held)
        for j in range(n):
            g_u[j] = 0.0
            g_i[j] = 0.0
        ip = in_off[smp + 1] - 1
        while ip >= in_off[smp] and in_k[ip] >= n_steps:  # inputs after the last sampled grid point
            ip -= 1
        for k in range(n_steps - 1, -1, -1):
            for j in range(n):
                free_next = 1.0 if k + 1 >= n_steps else 1.0 - held[k + 1, j]
                carry[j] = a[j] * free_next * g_u[j]
                g_i[j] = b[j] * g_i[j] + g[j] * free_next * g_u[j]
            while ip >= in_off[smp] and in_k[ip] == k:
                src = in_src[ip]
                for j in range(n):
                    grad_w[src, j] += g_i[j]
                ip -= 1
            for h in range(n):
                s = s_rec[smp, k, h]
                if s > 0:
                    for j in range(n):
                        grad_w[n_in + h, j] += s * g_i[j]
                gu = dl_dv[smp, k, h]
                if s == 0:
                    gu += carry[h]
                if spiking[h] and held[k, h] == 0:
                    gs = dl_dcount[smp, h]
                    for idx in range(row_ptr[n_in + h], row_ptr[n_in + h + 1]):
                        gs += val[idx] * g_i[col[idx]]
                    x = abs(v_rec[smp, k, h] - v_th[h])
                    gu += gs / ((1.0 + beta * x) * (1.0 + beta * x))
                g_u[h] = gu


def surrogate_backward(w_lsb, params: NeuronParams, in_t_us, in_src, in_sample, spikes_k, v_rec_lsb, dl_dv,
                       dl_dcount, dt_us: float, *, beta_per_lsb: float = SUPERSPIKE_BETA_PER_LSB,
                       spiking=None) -> np.ndarray:
    """dL/dw_lsb of a batch, float64[n_in + n, n] summed over samples (the seeds carry any batch mean).

    w_lsb float64[n_in + n, n]: the weights the model assumes (source rows: inputs, then neurons).
    params: nominal NeuronParams of the n neurons (a, b, g, thresholds, refractory steps come from it).
    in_t_us float64[m], in_src int[m], in_sample int[m]: the inputs, sorted by (sample, t), binned to
    the grid like ``simulate_steps`` does. spikes_k uint8[n_samples, K, n]: recorded spike counts per
    bin (``spike_raster``). v_rec_lsb float64[n_samples, K, n]: recorded V at each grid point before
    its threshold check (LSB). dl_dv float64[n_samples, K, n]: dL/dV_rec. dl_dcount float64[n_samples, n]:
    dL/d(spike count of each neuron in each sample). dt_us > 0: the grid step. beta_per_lsb >= 0:
    SuperSpike steepness. spiking bool[n] (default all): neurons whose spikes carry a surrogate (a
    non-spiking read-out neuron gets none).
    """
    net = prepare_network(w_lsb, params)
    dt = positive_float(dt_us, "dt_us")
    v_rec = np.ascontiguousarray(v_rec_lsb, np.float64)
    if v_rec.ndim != 3 or v_rec.shape[2] != net.n:
        raise ValueError(f"v_rec_lsb must be float64[n_samples, K, {net.n}], got shape {v_rec.shape}")
    n_samples, n_steps, _ = v_rec.shape
    s_rec = np.ascontiguousarray(spikes_k)
    if s_rec.shape != v_rec.shape or s_rec.dtype != np.uint8:
        raise ValueError(f"spikes_k must be uint8{list(v_rec.shape)}, got {s_rec.dtype} shape {s_rec.shape}")
    g_v = np.ascontiguousarray(dl_dv, np.float64)
    if g_v.shape != v_rec.shape:
        raise ValueError(f"dl_dv must have the shape of v_rec_lsb {v_rec.shape}, got {g_v.shape}")
    g_c = np.ascontiguousarray(dl_dcount, np.float64)
    if g_c.shape != (n_samples, net.n):
        raise ValueError(f"dl_dcount must have shape ({n_samples}, {net.n}), got {g_c.shape}")
    if not (np.isfinite(beta_per_lsb) and beta_per_lsb >= 0):
        raise ValueError(f"beta_per_lsb must be >= 0 and finite, got {beta_per_lsb}")
    spk = np.ones(net.n, np.bool_) if spiking is None else np.asarray(spiking, np.bool_)
    if spk.shape != (net.n,):
        raise ValueError(f"spiking must be bool[{net.n}], got shape {spk.shape}")
    # the inputs' window is the trial, one step past the last sampled grid point at least
    inp = prepare_inputs(in_t_us, in_src, in_sample, n_samples, max(n_steps * dt, np.max(in_t_us, initial=0.0) + dt),
                         net.n_in)
    p = net.p
    a, b, g = step_coefficients(p.tau_mem_us, p.tau_syn_us, dt)
    grad = np.zeros((net.n_in + net.n, net.n))
    _backward(net.row_ptr, net.col, net.val, net.n_in, a, b, g, np.ascontiguousarray(p.v_th_lsb), float(beta_per_lsb),
              spk, grid_index(p.t_ref_us, dt), grid_index(inp.t_us, dt), inp.src, inp.offsets, s_rec, v_rec, g_v, g_c,
              grad)
    return grad


class ReadoutLoss(NamedTuple):
    loss: float  # batch mean of the cross entropy (+ the read-out regulariser)
    dl_dv: np.ndarray  # float64[n_samples, K, n_out]: dL/dV_rec of the read-out neurons
    logits: np.ndarray  # float64[n_samples, n_out]
    prediction: np.ndarray  # int64[n_samples]
    correct: np.ndarray  # bool[n_samples]


def readout_logits(v_out_lsb, v_leak_lsb, *, readout: str = "max", scale_lsb: float = 10.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Logits of the read-out membranes v_out_lsb float64[n_samples, K, n_out] against a baseline
    v_leak_lsb, float64[n_out] (the nominal leak) or float64[n_samples, n_out] (e.g. each sample's
    own resting reading, which is constant: no gradient flows into it)::

        z_o = (max_k V_o[k] - v_leak_o) / scale   ('max')   or   mean_k (V_o[k] - v_leak_o) / scale   ('mean')

    Returns (z float64[n_samples, n_out], k_max int64[n_samples, n_out]: first grid point of each maximum)."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    scale = positive_float(scale_lsb, "scale_lsb")
    v = np.asarray(v_out_lsb, np.float64)
    if v.ndim != 3 or v.shape[1] == 0:
        raise ValueError(f"v_out_lsb must be float64[n_samples, K >= 1, n_out], got shape {v.shape}")
    leak = np.asarray(v_leak_lsb, np.float64)
    if leak.shape not in ((v.shape[2],), (v.shape[0], v.shape[2])):
        raise ValueError(f"v_leak_lsb must have shape ({v.shape[2]},) or ({v.shape[0]}, {v.shape[2]}), got {leak.shape}")
    k_max = np.argmax(v, axis=1)
    if readout == "max":
        z = (np.take_along_axis(v, k_max[:, None, :], axis=1)[:, 0, :] - leak) / scale
    else:
        z = (v.mean(axis=1) - leak) / scale
    return z, k_max


def readout_grad(dl_dz, k_max, n_steps: int, *, readout: str = "max", scale_lsb: float = 10.0) -> np.ndarray:
    """dL/dV float64[n_samples, n_steps, n_out] from dL/dz float64[n_samples, n_out] (``readout_logits``):
    the max read-out sends each gradient to its k_max, the mean read-out spreads it over the grid."""
    dz = np.asarray(dl_dz, np.float64)
    scale = positive_float(scale_lsb, "scale_lsb")
    dl_dv = np.zeros((dz.shape[0], int(n_steps), dz.shape[1]))
    if readout == "max":
        np.put_along_axis(dl_dv, np.asarray(k_max)[:, None, :], (dz / scale)[:, None, :], axis=1)
    elif readout == "mean":
        dl_dv[:] = (dz / (scale * n_steps))[:, None, :]
    else:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    return dl_dv


def readout_cross_entropy(v_out_lsb, label, v_leak_lsb, *, readout: str = "max", scale_lsb: float = 10.0,
                          rho_max: float = 0.0) -> ReadoutLoss:
    """Softmax cross entropy on the read-out logits (``readout_logits``), batch mean::

        L = -log softmax(z)[label] + rho_max mean_o z_o^2   (rho_max: Cramer's rho_a on the max read-out)

    v_out_lsb float64[n_samples, K, n_out]: recorded output membranes; label int[n_samples] in [0, n_out);
    v_leak_lsb float64[n_out] (nominal leak); scale_lsb > 0. Prediction: argmax z (ties: lowest index).
    """
    z, k_max = readout_logits(v_out_lsb, v_leak_lsb, readout=readout, scale_lsb=scale_lsb)
    n_samples, n_out = z.shape
    lab = np.asarray(label, np.int64).ravel()
    if lab.shape != (n_samples,) or (lab.size and (lab.min() < 0 or lab.max() >= n_out)):
        raise ValueError(f"label must be int[{n_samples}] in [0, {n_out}), got shape {lab.shape}")
    rows = np.arange(n_samples)
    p = softmax(z)
    losses = -np.log(np.maximum(p[rows, lab], 1e-300)) + rho_max * np.mean(z * z, axis=1)
    dz = p.copy()
    dz[rows, lab] -= 1.0
    dz += 2.0 * rho_max * z / n_out
    dz /= max(n_samples, 1)
    dl_dv = readout_grad(dz, k_max, np.shape(v_out_lsb)[1], readout=readout, scale_lsb=scale_lsb)
    pred = np.argmax(z, axis=1).astype(np.int64)
    return ReadoutLoss(float(losses.mean()) if n_samples else 0.0, dl_dv, z, pred, pred == lab)


def softmax(z) -> np.ndarray:
    """Row-wise softmax of float64[n, k]."""
    z = np.asarray(z, np.float64)
    e = np.exp(z - (z.max(axis=1, keepdims=True) if z.size else 0.0))
    return e / e.sum(axis=1, keepdims=True)


def count_regulariser(counts, *, rho_upper: float = 0.0, nu_upper: float = 0.0, rho_lower: float = 0.0,
                      nu_lower: float = 0.0) -> tuple[float, np.ndarray]:
    """Spike-count regulariser on counts float64[n_samples, n_h] (spikes per hidden neuron and sample)::

        R = rho_upper mean_s mean_i relu(c_si - nu_upper)^2 + rho_lower mean_s mean_i relu(nu_lower - c_si)^2

    (rho_upper with nu_upper = 0 is Cramer's rho_b (1/N_H) sum_i c_i^2; the lower term revives silent
    neurons, Zenke & Vogels 2021). Returns (R, dR/dc float64[n_samples, n_h])."""
    c = np.asarray(counts, np.float64)
    if c.ndim != 2:
        raise ValueError(f"counts must be 2-d [n_samples, n_h], got shape {c.shape}")
    if c.size == 0:
        return 0.0, np.zeros_like(c)
    up = np.maximum(c - nu_upper, 0.0)
    lo = np.maximum(nu_lower - c, 0.0)
    norm = c.size
    value = float((rho_upper * np.sum(up * up) + rho_lower * np.sum(lo * lo)) / norm)
    return value, (2.0 * rho_upper * up - 2.0 * rho_lower * lo) / norm
