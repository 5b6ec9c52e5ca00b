"""The learner's numba glue (chip/_learner_kernels.py) against its numpy twin, bit for bit, on sorted
and unsorted streams; adjoint_sweep's one-pass argument check names the same faults as its numpy checks."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.chip._eventprop import adjoint_sweep
from neurosplit.chip._learner import Learner, RowMap
from neurosplit.chip._losses import first_spike_times
from neurosplit.chip._optim import adam_step
from neurosplit.chip._params import NEURON_LABEL_BASE, uniform_params
from neurosplit.chip._spikes import SpikeRecord
from reference import learner_naive as ref

N_IN, N = 4, 6


def params(n=6):
    return uniform_params(n, tau_mem_us=10.0, tau_syn_us=5.0, v_leak_lsb=80.0, v_reset_lsb=60.0, v_th_lsb=150.0,
                          t_ref_us=0.5)
SAMPLE_TICKS = 3750


def learner(seed=0):
    rng = np.random.default_rng(seed)
    circuits = np.array([10, 3, 7, 20, 21, 22])  # not ascending: label order differs from source order
    exc = np.arange(N_IN + N)
    inh = np.where(rng.random(N_IN + N) < 0.7, 100 + np.arange(N_IN + N), -1)
    codes = rng.uniform(-63, 63, (N_IN + N, N))
    mask = rng.random((N_IN + N, N)) < 0.8
    return Learner(params(N), np.array([1, 2, 3, 4]), circuits, np.array([3, 4, 5]),
                   RowMap(exc, inh, circuits), codes, mask)


def stream(rng, m, *, sort):
    labels = np.concatenate([[1, 2, 3, 4, 99], NEURON_LABEL_BASE + np.array([10, 3, 7, 20, 21, 22, 5])])
    sample = rng.integers(0, 5, m)
    t = sample * SAMPLE_TICKS + rng.integers(0, 40, m)  # few ticks: many ties
    label = rng.choice(labels, m).astype(np.uint16)
    if sort:
        order = np.lexsort((label, t))
        t, label, sample = t[order], label[order], sample[order]
    return t.astype(np.int64), label, sample.astype(np.uint32)


@pytest.mark.parametrize("sort", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_spikes_from_ticks_matches_numpy(seed, sort):
    L = learner(seed)
    t, label, sample = stream(np.random.default_rng(seed), 300, sort=sort)
    inputs, spikes = L.spikes_from_ticks(t, label, sample, SAMPLE_TICKS)
    want_in, want_sp = ref.spikes_from_ticks(L._src_of_label, N_IN, t, label, sample, SAMPLE_TICKS)
    for got, want in zip((*inputs, *spikes), (*want_in, *want_sp)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert isinstance(spikes, SpikeRecord)


def test_spikes_from_ticks_of_nothing_and_bad_labels():
    L = learner()
    inputs, spikes = L.spikes_from_ticks(np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint32), 10)
    assert inputs[0].size == 0 and spikes.t_us.size == 0
    with pytest.raises(ValueError, match="label must lie in"):
        L.spikes_from_ticks(np.zeros(1, np.int64), np.array([-1]), np.zeros(1, np.uint32), 10)


@pytest.mark.parametrize("seed", range(4))
def test_first_spike_times_matches_twin(seed):
    rng = np.random.default_rng(seed)
    k = 200
    sample = np.sort(rng.integers(0, 6, k))
    t = np.round(rng.uniform(0, 5, k), 1)  # ties
    neuron = rng.integers(0, 8, k)
    rec = SpikeRecord(t, neuron.astype(np.int32), sample.astype(np.int32))
    got = first_spike_times(rec, [5, 2, 7], 6)
    want = ref.first_spike_times(t, neuron, sample, [5, 2, 7], 6)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_first_spike_times_out_of_range_sample_keeps_numpy_error():
    rec = SpikeRecord(np.array([1.0]), np.array([0], np.int32), np.array([3], np.int32))
    with pytest.raises(IndexError):
        first_spike_times(rec, [0], 2)


@pytest.mark.parametrize("lr", [0.3, 2.0, 50.0])
@pytest.mark.parametrize("seed", range(3))
def test_apply_gradient_matches_numpy(seed, lr):
    L = learner(seed)
    rng = np.random.default_rng(100 + seed)
    grad = rng.normal(0, 1, L.shadow.shape) * L.mask
    old, state = L.shadow.copy(), L.adam
    raw, _ = adam_step(old, grad, state, lr=lr)  # the shared Adam kernel; what follows it is under test
    rows, codes = L.apply_gradient(grad, lr=lr)
    shadow, after, changed = ref.clip_mask_changed(old, raw, L.mask)
    np.testing.assert_array_equal(L.shadow, shadow)
    want_rows, want_codes = ref.rows_of(L.rows.exc_row, L.rows.inh_row, np.flatnonzero(changed), after)
    assert rows.dtype == want_rows.dtype and codes.dtype == np.uint8
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(codes, want_codes)
    assert 0 < rows.size  # the step moved some codes


def _sweep_args(seed=0):
    rng = np.random.default_rng(seed)
    in_t = np.sort(rng.uniform(0, 10, 8))
    in_smp = np.repeat([0, 1], 4)
    in_t = np.concatenate([np.sort(in_t[:4]), np.sort(in_t[4:])])
    sp = SpikeRecord(np.array([1.0, 2.0, 3.0]), np.array([0, 1, 2], np.int32), np.array([0, 0, 1], np.int32))
    return dict(w_lsb=rng.normal(0, 10, (N_IN + N, N)), params=params(N), in_t_us=in_t,
                in_src=rng.integers(0, N_IN, 8), in_sample=in_smp, spikes=sp, dl_dt=np.ones(3), n_samples=2,
                t_end_us=20.0)


@pytest.mark.parametrize("change, match", [
    (lambda a: a["params"].tau_syn_us.__setitem__(0, 0.0), "must be > 0"),
    (lambda a: a.update(n_samples=-1), "n_samples must be >= 0"),
    (lambda a: a.update(t_end_us=float("nan")), "t_end_us must be > 0"),
    (lambda a: a["in_t_us"].__setitem__(0, np.inf), "in_t_us must be finite"),
    (lambda a: a["in_t_us"].__setitem__(0, -1.0), "in_t_us must be finite"),
    (lambda a: a["in_src"].__setitem__(0, -1), "in_src must lie in"),
    (lambda a: a.update(spikes=SpikeRecord(np.array([1.0, 2.0, 30.0]), *a["spikes"][1:])), "spikes.t_us must lie"),
    (lambda a: a.update(spikes=SpikeRecord(np.array([1.0, 2.0, np.nan]), *a["spikes"][1:])), "spikes.t_us must lie"),
    (lambda a: a.update(t_end_us=np.inf, spikes=SpikeRecord(np.array([1.0, 2.0, np.inf]), *a["spikes"][1:])),
     "spikes.t_us must lie"),
    (lambda a: a.update(spikes=SpikeRecord(a["spikes"][0], np.array([0, N, 1], np.int32), a["spikes"][2])),
     "spikes.neuron must lie"),
    (lambda a: a.update(spikes=SpikeRecord(np.array([2.0, 1.0, 3.0]), *a["spikes"][1:])), "spikes must be sorted"),
    (lambda a: a.update(spikes=SpikeRecord(a["spikes"][0], a["spikes"][1], np.array([0, 0, 2], np.int32))),
     "spikes.sample must lie"),
    (lambda a: a["dl_dt"].__setitem__(1, np.nan), "dl_dt must be finite"),
    (lambda a: a.update(dl_dt=np.ones(2)), "dl_dt must have shape"),
    (lambda a: a.update(in_sample=np.repeat([1, 0], 4)), "inputs must be sorted"),
])
def test_adjoint_sweep_one_pass_check_names_each_fault(change, match):
    args = _sweep_args()
    adjoint_sweep(**args)  # valid as built
    change(args)
    with pytest.raises(ValueError, match=match):
        adjoint_sweep(**args)


def test_adjoint_sweep_offsets_with_empty_samples():
    """Samples without inputs or spikes (first, middle, last) get empty ranges: same gradient as the
    sweep over the non-empty samples alone."""
    a = _sweep_args(1)
    whole = adjoint_sweep(**a)
    shifted = dict(a, in_sample=a["in_sample"] * 2 + 1, n_samples=5,
                   spikes=SpikeRecord(a["spikes"][0], a["spikes"][1], a["spikes"][2] * 2 + 1))
    np.testing.assert_array_equal(adjoint_sweep(**shifted).grad_w, whole.grad_w)
