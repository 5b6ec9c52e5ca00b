"""Slow, independent float64 twin of ``chip._surrogate.surrogate_backward``: forward-mode sensitivities.

Instead of a reverse sweep, it carries dI[k]/dW and dU[k]/dW (one array [n_src, n, n] each) forward
through the grid, in the model's own terms (module docstring of chip/_surrogate.py), and contracts them
with the loss seeds at the end. Shares no code with the kernel; numpy and Python loops only.
"""

from __future__ import annotations

import math

import numpy as np


def surrogate_grad_forward_mode(w, params, in_t, in_src, in_sample, spikes_k, v_rec, dl_dv, dl_dcount, dt,
                                beta, spiking=None):
    w = np.asarray(w, float)
    tm, ts, vl, vr, vth, tref = (np.asarray(x, float) for x in params)
    n = tm.size
    n_src = w.shape[0]
    n_in = n_src - n
    n_samples, n_steps, _ = v_rec.shape
    spiking = np.ones(n, bool) if spiking is None else np.asarray(spiking, bool)
    a, b = np.exp(-dt / tm), np.exp(-dt / ts)
    g = np.where(np.isclose(tm, ts, rtol=0, atol=0), dt / tm * a,
                 ts / np.where(tm == ts, 1.0, tm - ts) * (a - b))
    n_ref = [max(math.ceil(x / dt - 1e-9), 0) for x in tref]
    grad = np.zeros((n_src, n))
    for smp in range(n_samples):
        inputs_at = {}
        for t, s, m in zip(in_t, in_src, in_sample):
            if m == smp:
                inputs_at.setdefault(max(math.ceil(t / dt - 1e-9), 0), []).append(int(s))
        d_i = np.zeros((n_src, n, n))  # d I_j / d W_{s, q}, indexed [s, q, j]
        d_u = np.zeros((n_src, n, n))
        s_prev = np.zeros(n)
        refc = np.zeros(n, int)
        for k in range(n_steps):
            held = np.zeros(n, bool)
            if k > 0:
                held = refc > 0
                refc = np.where(held, refc - 1, refc)
                free = (~held).astype(float)
                post = (1.0 - np.minimum(s_prev, 1.0))  # detached reset of the previous grid point
                d_u = free[None, None, :] * (a * post * d_u + g * d_i)
                d_i = b * d_i
            else:
                d_u = np.zeros_like(d_u)
            s_now = spikes_k[smp, k].astype(float)
            surr = np.where(spiking & ~held, 1.0 / (1.0 + beta * np.abs(v_rec[smp, k] - vth)) ** 2, 0.0)
            d_s = surr[None, None, :] * d_u  # d S_h / dW
            # I jumps at k: direct terms of inputs and recorded spikes, and the spikes' dependence on W
            for src in inputs_at.get(k, []):
                for j in range(n):
                    d_i[src, j, j] += 1.0
            for h in range(n):
                if s_now[h] > 0:
                    for j in range(n):
                        d_i[n_in + h, j, j] += s_now[h]
            d_i = d_i + np.einsum("sqh,hj->sqj", d_s, w[n_in:])
            grad += np.einsum("sqj,j->sq", d_u, dl_dv[smp, k]) + np.einsum("sqh,h->sq", d_s, dl_dcount[smp])
            for h in range(n):
                if s_now[h] > 0:
                    refc[h] = n_ref[h]
            s_prev = s_now
    return grad
