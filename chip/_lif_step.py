"""Time-stepped LIF integration of a batch on a grid t_k = k dt_us (what surrogate-gradient training uses).

The free evolution over one step is the exact one-step propagator (eventprop.md §1.2), with u = V - v_leak::

    u <- a u + g I,   I <- b I,   a = exp(-dt/tau_mem), b = exp(-dt/tau_syn),
    g = tau_syn/(tau_mem - tau_syn) (a - b)   (dt/tau exp(-dt/tau) when tau_mem == tau_syn),

so only event timing is discretised. At each grid point k (k = 0 .. n_steps), in this order:

1. propagate from t_{k-1} (k > 0); a refractory neuron keeps V = v_reset while its I decays;
2. threshold: a free neuron with V >= v_th (+ offset) spikes at t_k = k dt_us (only for k < n_steps,
   i.e. t_k < t_end_us), V := v_reset, held for n_ref = ceil(t_ref_us / dt_us) steps;
3. inputs binned to k jump I: an input at time t enters at the first grid point at or after it,
   k = ceil(t / dt_us) (times within 1e-9 steps above a grid point count as on it);
4. spikes found in 2. jump their targets' I, so they act on V from the next step on;
5. record (V, I) at t_k, after all jumps of that grid point.

With ``record_pre`` the membrane is also recorded between 1. and 2. (``v_pre_lsb``, k < n_steps): what
a sampler reads at t_k just before that grid point's threshold check, the value a surrogate gradient
evaluates (a neuron that spikes at k shows how far it got, a held one shows v_reset).

Every event thus acts at the first grid point at or after its time and spike times are late by less
than a step, so spike times converge to ``simulate_events`` as O(dt_us).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from ._lif_inputs import positive_float, prepare_inputs, prepare_network, prepare_threshold_offset
from ._spikes import BUFFER_FULL, DONE, SpikeRecord, collect_spikes

__all__ = ["StepResult", "simulate_steps", "step_coefficients"]

_GRID_SLACK = 1e-9  # in steps: a time this close above a grid point is treated as on it


class StepResult(NamedTuple):
    spikes: SpikeRecord  # spike times on the step grid
    v_lsb: np.ndarray | None  # float64[n_samples, n_steps + 1, n]: V at t = k dt_us (if record)
    i_lsb: np.ndarray | None  # same for I
    v_pre_lsb: np.ndarray | None = None  # float64[n_samples, n_steps, n]: V at t_k before its threshold (if record_pre)


def step_coefficients(tau_mem_us, tau_syn_us, dt_us: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, g), each float64[n]: the exact one-step propagator above, g accurate as tau_mem -> tau_syn."""
    tm = np.asarray(tau_mem_us, np.float64)
    ts = np.asarray(tau_syn_us, np.float64)
    d = 1.0 / ts - 1.0 / tm
    e = d * tm
    a, b = np.exp(-dt_us / tm), np.exp(-dt_us / ts)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(d > 0, -a * np.expm1(-dt_us * d) / e, b * np.expm1(dt_us * d) / e)
    g = np.where(d == 0, a * dt_us / tm, g)
    return a, b, g


def grid_index(t_us, dt_us: float) -> np.ndarray:
    """int64: the first grid point at or after each time (within the grid slack)."""
    return np.maximum(np.ceil(np.asarray(t_us, np.float64) / dt_us - _GRID_SLACK), 0).astype(np.int64)


@njit(cache=True, nogil=True)
def _add_row(row, row_ptr, col, val, cur):
    for idx in range(row_ptr[row], row_ptr[row + 1]):
        cur[col[idx]] += val[idx]


@njit(cache=True, nogil=True)
def _run_steps(row_ptr, col, val, n_in, a, b, g, v_leak, v_reset, theta0, n_ref, th_off, use_off,
               in_k, in_src, in_off, n_steps, dt, record, v_out, i_out, record_pre, v_pre_out,
               s_begin, out_t, out_nrn, out_smp, status):
    n = a.shape[0]
    n_samples = in_off.shape[0] - 1
    u_reset = v_reset - v_leak
    u = np.zeros(n)
    cur = np.zeros(n)
    theta = np.zeros(n)
    refc = np.zeros(n, np.int64)
    fired = np.zeros(n, np.int64)
    n_out = 0
    for smp in range(s_begin, n_samples):
        out_start = n_out
        for j in range(n):
            theta[j] = theta0[j] + th_off[smp, j] if use_off else theta0[j]
            u[j] = 0.0
            cur[j] = 0.0
            refc[j] = 0
        ip, ie = in_off[smp], in_off[smp + 1]
        for k in range(n_steps + 1):
            if k > 0:
                for j in range(n):
                    if refc[j] > 0:
                        refc[j] -= 1
                    else:
                        u[j] = a[j] * u[j] + g[j] * cur[j]
                    cur[j] *= b[j]
            n_fired = 0
            if k < n_steps:
                if record_pre:
                    for j in range(n):
                        v_pre_out[smp, k, j] = v_leak[j] + u[j]  # a held neuron sits at u_reset
                for j in range(n):
                    if refc[j] == 0 and u[j] >= theta[j]:
                        fired[n_fired] = j
                        n_fired += 1
                        u[j] = u_reset[j]
                        refc[j] = n_ref[j]
                if n_out + n_fired > out_t.shape[0]:
                    status[0], status[1], status[2] = smp, out_start, BUFFER_FULL
                    return
                t = k * dt
                for f in range(n_fired):
                    out_t[n_out], out_nrn[n_out], out_smp[n_out] = t, fired[f], smp
                    n_out += 1
            while ip < ie and in_k[ip] == k:
                _add_row(in_src[ip], row_ptr, col, val, cur)
                ip += 1
            for f in range(n_fired):
                _add_row(n_in + fired[f], row_ptr, col, val, cur)
            if record:
                for j in range(n):
                    v_out[smp, k, j] = v_reset[j] if refc[j] > 0 else v_leak[j] + u[j]
                    i_out[smp, k, j] = cur[j]
    status[0], status[1], status[2] = n_samples, n_out, DONE


def simulate_steps(w_lsb, params, in_t_us, in_src, in_sample, n_samples, t_end_us, dt_us, *,
                   v_th_offset_lsb=None, record=False, record_pre=False) -> StepResult:
    """Time-stepped LIF dynamics of a batch of independent samples on the grid t_k = k dt_us.

    Arguments as for ``simulate_events`` (w_lsb float64[n_in + n, n], params NeuronParams of n neurons,
    inputs in_t_us float64[m] / in_src int[m] / in_sample int[m] sorted by (sample, t), n_samples,
    t_end_us, v_th_offset_lsb float64[n_samples, n] or None), plus dt_us: float > 0, the step in
    hardware us. The grid has n_steps = ceil(t_end_us / dt_us) steps; spikes can occur at grid points
    k < n_steps. The module docstring gives the order of operations within a grid point.

    Returns StepResult(spikes on the grid, v_lsb, i_lsb); with record=True v_lsb and i_lsb are
    float64[n_samples, n_steps + 1, n] (V and I at each grid point after its jumps), else None;
    with record_pre=True v_pre_lsb is float64[n_samples, n_steps, n], V at each grid point k < n_steps
    before its threshold check (a neuron spiking at k reads its supra-threshold value there).
    """
    net = prepare_network(w_lsb, params)
    inp = prepare_inputs(in_t_us, in_src, in_sample, n_samples, t_end_us, net.n_in)
    dt = positive_float(dt_us, "dt_us")
    off, use_off = prepare_threshold_offset(v_th_offset_lsb, inp.n_samples, net.n)
    p = net.p
    n_steps = int(math.ceil(inp.t_end_us / dt - _GRID_SLACK))
    a, b, g = step_coefficients(p.tau_mem_us, p.tau_syn_us, dt)
    n_ref = grid_index(p.t_ref_us, dt)
    in_k = grid_index(inp.t_us, dt)
    shape = (inp.n_samples, n_steps + 1, net.n) if record else (0, 0, 0)
    v_out, i_out = np.empty(shape), np.empty(shape)
    v_pre = np.empty((inp.n_samples, n_steps, net.n) if record_pre else (0, 0, 0))

    def run(s_begin, out_t, out_nrn, out_smp, status):
        _run_steps(net.row_ptr, net.col, net.val, net.n_in, a, b, g, p.v_leak_lsb, p.v_reset_lsb,
                   p.v_th_lsb - p.v_leak_lsb, n_ref, off, use_off, in_k, inp.src, inp.offsets, n_steps, dt,
                   bool(record), v_out, i_out, bool(record_pre), v_pre, s_begin, out_t, out_nrn, out_smp, status)

    spikes = collect_spikes(run, inp.n_samples, 2 * inp.t_us.size + 8 * net.n + 64)
    return StepResult(spikes, v_out if record else None, i_out if record else None,
                      v_pre if record_pre else None)
