"""EventProp: exact adjoint gradients of a spike-time loss, from spike times alone.

The one reverse sweep of neurosplit (STYLE guideline 6): the plasticity processor runs it on chip on
recorded (tick-quantised) spikes, the host runs it for host EventProp. It needs no membrane trace:
the synaptic currents it uses are rebuilt from the input and neuron spike times and ``w_lsb``, because
I depends on presynaptic spike times only.

Forward model (hardware time t in us, per neuron n; eventprop.md §1.1, chip._params)::

    tau_mem dV/dt = (v_leak - V) + I,   tau_syn dI/dt = -I,   I_post += w[src, post] per spike of src,
    V >= v_th -> spike at t_k, V := v_reset held until the release t_r = t_k + t_ref, then free.

Adjoint (eventprop.md §2; ' = -d/dt, free between events, lambda = 0 at t_end)::

    tau_mem lambda_V' = -lambda_V,   tau_syn lambda_I' = -lambda_I + lambda_V,
    dL/dw[s, j] = -tau_syn_j * sum over spikes of source s of lambda_I,j(t),
    dL/dt_in    = sum_j w[s, j] (lambda_V,j - lambda_I,j)(t_in),
    eps_k       = sum_j w[n_in + n, j] (lambda_V,j - lambda_I,j)(t_k)        (lambda^+ values)

Refractory release of neuron n at t_r < t_end (sensitivities S_V = -tau_mem lambda_V): record
q_n = lambda_V,n(t_r^+) (v_leak - v_reset + I_n(t_r)), then lambda_V,n = 0 until the spike (V is clamped,
so it carries no sensitivity; lambda_I,n keeps evolving). At the spike::

    lambda_V,n(t_k^-) = (q_n + dl/dt_k + eps_k) / (v_leak - v_th + I_n(t_k)),

which is tau_mem dV/dt^- in the denominator. With t_ref = 0 the release coincides with the spike and this
is the paper's jump with (v_th - v_reset) lambda_V^+ in the numerator.

Simultaneous events (tick-quantised records make them common) are one group: every read (weight
gradients, eps, input-time gradients) sees lambda^+, then releases, then spike jumps; I_n(t) at a
spike or release counts presynaptic events strictly before t. Equivalently: a spike's synaptic effect
lands just after every threshold crossing and release of the same instant.

Grazing crossings (denominator -> 0) make dt_k/dw diverge; tick quantisation can even make the rebuilt
denominator negative. The denominator is clamped to ``denom_min_lsb`` (default ``DENOM_MIN_LSB``), and
``Adjoint.n_grazing`` counts how often that happened.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numba import njit

from ._params import NeuronParams

if TYPE_CHECKING:  # the forward's record type; only its fields t_us, neuron, sample are used here
    from ._spikes import SpikeRecord

__all__ = ["Adjoint", "DENOM_MIN_LSB", "adjoint_sweep", "loss_and_grad"]

DENOM_MIN_LSB = 5.0
"""Smallest tau_mem dV/dt^- (LSB) used in a spike jump (7 % of v_th - v_leak on the Yin-Yang targets).

The exact jump scales as 1/(tau_mem dV/dt^-), so spikes that barely cross carry huge gradients. On a
mismatched chip the sweep rebuilds the denominator with the nominal threshold and time constants, and a
neuron whose real threshold sits a few LSB lower can look grazing or even non-crossing; tick quantisation
shifts it further. Training on the mismatched Yin-Yang benchmark (benchmarks/yinyang_software.py, 6
seeds) was unstable with a floor of 0.1 LSB (sudden accuracy drops from single outlier gradients) and
stable with 5 LSB, where the clamp fires for under 0.2 % of the spikes. Every spike above the floor
gets its exact jump; ``Adjoint.n_grazing`` counts the clamped ones. Pass ``denom_min_lsb`` for another
trade-off (the finite-difference tests use configurations far above the floor)."""

_SMALL_Z = 0.5
"""|Delta (tau_m - tau_s) / (tau_m tau_s)| below which the lambda_I coupling uses expm1 (tau_m ~ tau_s)."""


class Adjoint(NamedTuple):
    """Gradients of the loss from one reverse sweep, summed over the samples of the batch."""

    grad_w: np.ndarray  # float64[n_in + n, n], dL/dw_lsb (row = source, column = postsynaptic neuron)
    grad_in_t: np.ndarray  # float64[m], dL/d in_t_us for each input spike
    n_grazing: int  # spike jumps whose denominator was clamped to denom_min_lsb


@njit(cache=True, nogil=True)
def _decay_lambda(lv, li, tau_m, tau_s, dt, act, n_act):
    """Exact backward propagation of (lambda_V, lambda_I) over dt >= 0 us, in place, for the neurons act[:n_act]
    (every other neuron has lambda = 0)."""
    a = b = c = 0.0
    last_tm = last_ts = -1.0
    for idx in range(n_act):
        j = act[idx]
        if tau_m[j] != last_tm or tau_s[j] != last_ts:  # equal constants (nominal params) share the exps
            last_tm, last_ts = tau_m[j], tau_s[j]
            a = math.exp(-dt / tau_m[j])
            b = math.exp(-dt / tau_s[j])
            z = dt * (tau_m[j] - tau_s[j]) / (tau_m[j] * tau_s[j])
            if abs(z) < _SMALL_Z:
                phi = 1.0 if z == 0.0 else math.expm1(z) / z
                c = b * (dt / tau_s[j]) * phi
            else:
                c = tau_m[j] / (tau_m[j] - tau_s[j]) * (a - b)
        li[j] = li[j] * b + lv[j] * c
        lv[j] = lv[j] * a


@njit(cache=True, nogil=True)
def _decay_current(cur, tau_s, dt):
    """Forward decay of the synaptic currents over dt >= 0 us, in place."""
    b = 0.0
    last_ts = -1.0
    for j in range(cur.shape[0]):
        if tau_s[j] != last_ts:
            last_ts = tau_s[j]
            b = math.exp(-dt / tau_s[j])
        cur[j] *= b


@njit(cache=True, nogil=True)
def _adjoint_kernel(w, tau_m, tau_s, v_leak, v_reset, v_th, t_ref,
                    in_t, in_src, in_off, sp_t, sp_n, sp_off, dl_dt, t_end, denom_min,
                    grad_w, grad_in, n_grazing):
    n = w.shape[1]
    n_in = w.shape[0] - n
    n_samples = in_off.shape[0] - 1
    max_k = 0
    for s in range(n_samples):
        max_k = max(max_k, sp_off[s + 1] - sp_off[s])
    i_spike = np.empty(max_k)  # I_n(t_k^-) of each spike of the sample
    rel_t = np.empty(max_k)
    rel_n = np.empty(max_k, np.int64)
    i_rel = np.empty(max_k)  # I_n(t_r^-) at each release, in release-time order
    eps = np.empty(max_k)
    cur = np.empty(n)
    lv = np.empty(n)
    li = np.empty(n)
    q = np.empty(n)
    # neurons whose lambda may be nonzero, ascending; skipping the others changes no bit of any sum
    act = np.empty(n, np.int64)
    is_act = np.zeros(n, np.bool_)
    for s in range(n_samples):
        i0, i1 = in_off[s], in_off[s + 1]
        k0, k1 = sp_off[s], sp_off[s + 1]
        # releases inside the trial, sorted by time (stable: ties keep spike order)
        nr = 0
        for k in range(k0, k1):
            tr = sp_t[k] + t_ref[sp_n[k]]
            if tr < t_end:
                rel_t[nr] = tr
                rel_n[nr] = sp_n[k]
                nr += 1
        order = np.argsort(rel_t[:nr], kind="mergesort")
        rt = rel_t[:nr][order]
        rn = rel_n[:nr][order]
        for r in range(nr):
            rel_t[r] = rt[r]
            rel_n[r] = rn[r]

        # forward: rebuild I_n(t^-) at every spike and release from presynaptic spike times
        cur[:] = 0.0
        t_cur = 0.0
        pi, pk = i0, k0  # next presynaptic input / neuron spike to apply
        qk, qr = k0, 0  # next spike / release query
        while qk < k1 or qr < nr:
            if qr >= nr or (qk < k1 and sp_t[qk] <= rel_t[qr]):
                tq, nq, is_spike = sp_t[qk], sp_n[qk], True
            else:
                tq, nq, is_spike = rel_t[qr], rel_n[qr], False
            while True:  # apply every presynaptic event strictly before tq, in time order
                use_in = pi < i1 and in_t[pi] < tq
                use_sp = pk < k1 and sp_t[pk] < tq
                if use_in and use_sp:
                    use_in = in_t[pi] <= sp_t[pk]
                if not (use_in or use_sp):
                    break
                te = in_t[pi] if use_in else sp_t[pk]
                if te > t_cur:
                    _decay_current(cur, tau_s, te - t_cur)
                    t_cur = te
                row = in_src[pi] if use_in else n_in + sp_n[pk]
                for j in range(n):
                    cur[j] += w[row, j]
                if use_in:
                    pi += 1
                else:
                    pk += 1
            value = cur[nq] * math.exp(-(tq - t_cur) / tau_s[nq]) if tq > t_cur else cur[nq]
            if is_spike:
                i_spike[qk - k0] = value
                qk += 1
            else:
                i_rel[qr] = value
                qr += 1

        # reverse sweep
        lv[:] = 0.0
        li[:] = 0.0
        q[:] = 0.0
        is_act[:] = False
        n_act = 0
        t_cur = t_end
        ip, kp, rp = i1 - 1, k1 - 1, nr - 1
        while ip >= i0 or kp >= k0 or rp >= 0:
            t = -np.inf
            if ip >= i0:
                t = max(t, in_t[ip])
            if kp >= k0:
                t = max(t, sp_t[kp])
            if rp >= 0:
                t = max(t, rel_t[rp])
            if t < t_cur:
                _decay_lambda(lv, li, tau_m, tau_s, t_cur - t, act, n_act)
                t_cur = t
            # (a) reads with lambda^+: inputs and neuron spikes of this instant
            while ip >= i0 and in_t[ip] == t:
                row = in_src[ip]
                acc = 0.0
                for idx in range(n_act):
                    j = act[idx]
                    grad_w[row, j] -= tau_s[j] * li[j]
                    acc += w[row, j] * (lv[j] - li[j])
                grad_in[ip] += acc
                ip -= 1
            ka = kp
            while ka >= k0 and sp_t[ka] == t:
                row = n_in + sp_n[ka]
                acc = 0.0
                for idx in range(n_act):
                    j = act[idx]
                    grad_w[row, j] -= tau_s[j] * li[j]
                    acc += w[row, j] * (lv[j] - li[j])
                eps[ka - k0] = acc
                ka -= 1
            # (b) releases: hand lambda_V to the spike that started the refractory period
            while rp >= 0 and rel_t[rp] == t:
                j = rel_n[rp]
                q[j] = lv[j] * (v_leak[j] - v_reset[j] + i_rel[rp])
                lv[j] = 0.0
                rp -= 1
            # (c) spike jumps
            while kp > ka:
                j = sp_n[kp]
                den = v_leak[j] - v_th[j] + i_spike[kp - k0]
                if den < denom_min:
                    den = denom_min
                    n_grazing[0] += 1
                lv[j] = (q[j] + dl_dt[kp] + eps[kp - k0]) / den
                q[j] = 0.0
                kp -= 1
                if not is_act[j]:
                    is_act[j] = True
                    pos = n_act
                    while pos > 0 and act[pos - 1] > j:
                        act[pos] = act[pos - 1]
                        pos -= 1
                    act[pos] = j
                    n_act += 1


def _check_inputs(p, n_in, n, n_samples, t_end, in_t, in_s, in_smp, sp_t, sp_n, sp_smp, g):
    """adjoint_sweep's argument checks, raising ValueError naming the first fault; returns the sample
    offsets (int64[n_samples + 1]) of inputs and spikes."""
    if np.any(p[0] <= 0) or np.any(p[1] <= 0):
        raise ValueError("params.tau_mem_us and params.tau_syn_us must be > 0")
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if not t_end > 0:
        raise ValueError(f"t_end_us must be > 0, got {t_end}")
    if not in_t.shape == in_s.shape == in_smp.shape or in_t.ndim != 1:
        raise ValueError(f"in_t_us, in_src, in_sample must be 1-d of one length, got "
                         f"{in_t.shape}, {in_s.shape}, {in_smp.shape}")
    if in_s.size and (in_s.min() < 0 or in_s.max() >= n_in):
        raise ValueError(f"in_src must lie in [0, n_in={n_in}), got [{in_s.min()}, {in_s.max()}]")
    if not np.all(np.isfinite(in_t)) or (in_t.size and in_t.min() < 0):
        raise ValueError("in_t_us must be finite and >= 0")
    if not sp_t.shape == sp_n.shape == sp_smp.shape or sp_t.ndim != 1:
        raise ValueError("spikes.t_us, spikes.neuron, spikes.sample must be 1-d of one length")
    if sp_n.size and (sp_n.min() < 0 or sp_n.max() >= n):
        raise ValueError(f"spikes.neuron must lie in [0, {n}), got [{sp_n.min()}, {sp_n.max()}]")
    if sp_t.size and (not np.all(np.isfinite(sp_t)) or sp_t.min() < 0 or sp_t.max() > t_end):
        raise ValueError(f"spikes.t_us must lie in [0, t_end_us={t_end}]")
    if g.shape != sp_t.shape:
        raise ValueError(f"dl_dt must have shape {sp_t.shape} (one per spike), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("dl_dt must be finite")
    _check_sorted(in_t, in_smp, "inputs")
    _check_sorted(sp_t, sp_smp, "spikes")
    return _sample_offsets(in_smp, n_samples, "in_sample"), _sample_offsets(sp_smp, n_samples, "spikes.sample")


@njit(cache=True, nogil=True)
def _sorted_offsets(t, sample, off) -> bool:
    """True if sample (int64[m]) lies in [0, off.size - 1) and (sample, t) is sorted; then off[s] is
    the first index of sample s (searchsorted(sample, s, "left"))."""
    n_samples = off.shape[0] - 1
    s_cur = 0
    off[0] = 0
    for i in range(t.shape[0]):
        s = sample[i]
        if s < 0 or s >= n_samples:
            return False
        if i and (s < sample[i - 1] or (s == sample[i - 1] and t[i] < t[i - 1])):
            return False
        while s_cur < s:
            s_cur += 1
            off[s_cur] = i
    while s_cur < n_samples:
        s_cur += 1
        off[s_cur] = t.shape[0]
    return True


@njit(cache=True, nogil=True)
def _inputs_valid(tau_m, tau_s, in_t, in_s, in_smp, sp_t, sp_n, sp_smp, g, n_in, n, t_end, in_off, sp_off) -> bool:
    """Every check of _check_inputs in one pass (shapes aside): True if all hold, offsets filled."""
    for j in range(tau_m.shape[0]):
        if tau_m[j] <= 0 or tau_s[j] <= 0:
            return False
    for i in range(in_t.shape[0]):
        x = in_t[i]
        if in_s[i] < 0 or in_s[i] >= n_in or not (x >= 0 and x < np.inf):
            return False
    for k in range(sp_t.shape[0]):
        x = sp_t[k]
        if sp_n[k] < 0 or sp_n[k] >= n or not (x >= 0 and x <= t_end and x < np.inf) or not (abs(g[k]) < np.inf):
            return False
    return _sorted_offsets(in_t, in_smp, in_off) and _sorted_offsets(sp_t, sp_smp, sp_off)


def _sample_offsets(sample: np.ndarray, n_samples: int, name: str) -> np.ndarray:
    if sample.size and (sample.min() < 0 or sample.max() >= n_samples):
        raise ValueError(f"{name} must lie in [0, n_samples={n_samples}), got "
                         f"[{sample.min()}, {sample.max()}]")
    return np.searchsorted(sample, np.arange(n_samples + 1), side="left").astype(np.int64)


def _check_sorted(t: np.ndarray, sample: np.ndarray, name: str) -> None:
    bad = np.flatnonzero((np.diff(sample) < 0) | ((np.diff(sample) == 0) & (np.diff(t) < 0)))
    if bad.size:
        raise ValueError(f"{name} must be sorted by (sample, t_us); order breaks at index {bad[0] + 1}")


def adjoint_sweep(w_lsb, params: NeuronParams, in_t_us, in_src, in_sample, spikes: "SpikeRecord",
                  dl_dt, n_samples: int, t_end_us: float, *,
                  denom_min_lsb: float = DENOM_MIN_LSB) -> Adjoint:
    """The EventProp reverse sweep over a batch of samples (each from rest at t = 0 to t_end_us).

    w_lsb: float64[n_in + n, n], jump of I (LSB) per spike; row s < n_in is external input s, row n_in + j
      neuron j; column = postsynaptic neuron. params: NeuronParams of the n neurons (the nominal ones on
      chip: the sweep does not know the mismatch). in_t_us float64[m] (time within sample, us), in_src
      int[m] in [0, n_in), in_sample int[m]: input spikes sorted by (sample, t). spikes: a SpikeRecord
      (t_us float64[k], neuron int[k], sample int[k], sorted by (sample, t_us)); dl_dt float64[k]: dL/dt of
      each recorded spike, already divided by the batch size. Returns the gradients summed over samples.
    """
    w = np.ascontiguousarray(w_lsb, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"w_lsb must be 2-d [n_in + n, n], got shape {w.shape}")
    n = params.n
    if w.shape[1] != n or w.shape[0] < n:
        raise ValueError(f"w_lsb must have shape [n_in + {n}, {n}] for {n} neurons, got {w.shape}")
    n_in = w.shape[0] - n
    p = [np.ascontiguousarray(a, dtype=np.float64) for a in params]
    if any(a.shape != (n,) for a in p):
        raise ValueError(f"every params field must have shape ({n},), got {[a.shape for a in p]}")
    n_samples = int(n_samples)
    t_end = float(t_end_us)
    in_t = np.ascontiguousarray(in_t_us, dtype=np.float64)
    in_s = np.ascontiguousarray(in_src, dtype=np.int64)
    in_smp = np.ascontiguousarray(in_sample, dtype=np.int64)
    sp_t = np.ascontiguousarray(spikes.t_us, dtype=np.float64)
    sp_n = np.ascontiguousarray(spikes.neuron, dtype=np.int64)
    sp_smp = np.ascontiguousarray(spikes.sample, dtype=np.int64)
    g = np.ascontiguousarray(dl_dt, dtype=np.float64)
    in_off = np.empty(max(n_samples, 0) + 1, np.int64)
    sp_off = np.empty(max(n_samples, 0) + 1, np.int64)
    shapes_ok = (in_t.ndim == 1 and in_t.shape == in_s.shape == in_smp.shape and sp_t.ndim == 1
                 and sp_t.shape == sp_n.shape == sp_smp.shape == g.shape)
    # one pass checks everything below and fills the sample offsets; on any fault the numpy checks
    # run to name it
    if not (shapes_ok and n_samples >= 0 and t_end > 0
            and _inputs_valid(p[0], p[1], in_t, in_s, in_smp, sp_t, sp_n, sp_smp, g, n_in, n, t_end, in_off, sp_off)):
        in_off, sp_off = _check_inputs(p, n_in, n, n_samples, t_end, in_t, in_s, in_smp, sp_t, sp_n, sp_smp, g)
    grad_w = np.zeros_like(w)
    grad_in = np.zeros_like(in_t)
    count = np.zeros(1, dtype=np.int64)
    _adjoint_kernel(w, *p, in_t, in_s, in_off, sp_t, sp_n, sp_off, g, t_end, float(denom_min_lsb),
                    grad_w, grad_in, count)
    return Adjoint(grad_w, grad_in, int(count[0]))


def loss_and_grad(w_lsb, params: NeuronParams, in_t_us, in_src, in_sample, n_samples: int,
                  t_end_us: float, label, output_neuron, *, loss: str = "ttfs", loss_params=None,
                  forward_params: NeuronParams | None = None, forward_w_lsb=None,
                  denom_min_lsb: float = DENOM_MIN_LSB):
    """Forward (``simulate_events``), loss and EventProp gradient of one batch.

    label int[n_samples]; output_neuron int[n_out] (neuron indices of the read-out, class c = column c).
    loss: "ttfs" (``ttfs_cross_entropy``) or "mse" (``spike_time_mse``), with keyword ``loss_params``
    (defaults ``TTFS_DEFAULTS`` / ``MSE_DEFAULTS`` of chip._losses). ``forward_params`` / ``forward_w_lsb``
    (default: params / w_lsb) let the forward run a mismatched chip while the sweep uses the nominal
    model, as the plasticity processor does. Returns (LossResult, Adjoint, SpikeRecord).
    """
    from ._lif_event import simulate_events  # the forward lives in its own module
    from ._losses import MSE_DEFAULTS, TTFS_DEFAULTS, spike_time_mse, ttfs_cross_entropy

    if loss == "ttfs":
        fn, kw = ttfs_cross_entropy, dict(TTFS_DEFAULTS)
    elif loss == "mse":
        fn, kw = spike_time_mse, dict(MSE_DEFAULTS)
    else:
        raise ValueError(f"loss must be 'ttfs' or 'mse', got {loss!r}")
    kw.update(loss_params or {})
    fw_params = params if forward_params is None else forward_params
    fw_w = w_lsb if forward_w_lsb is None else forward_w_lsb
    res = simulate_events(fw_w, fw_params, in_t_us, in_src, in_sample, n_samples, t_end_us)
    lres = fn(res.spikes, output_neuron, label, n_samples, t_end_us=t_end_us, **kw)
    adj = adjoint_sweep(w_lsb, params, in_t_us, in_src, in_sample, res.spikes, lres.dl_dt, n_samples,
                        t_end_us, denom_min_lsb=denom_min_lsb)
    return lres, adj, res.spikes
