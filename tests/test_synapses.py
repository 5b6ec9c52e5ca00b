"""Synapse array: quantisation and sign rows, chip limits, label routing, effective weights, gradients."""

import numpy as np
import pytest

from neurosplit.chip import _synapses as syn
from neurosplit.chip._params import NEURON_LABEL_BASE
from neurosplit.protocol import ChipLimitError

LSB = syn.CURRENT_LSB_PER_CODE


def test_exact_codes_map_back_exactly():
    rng = np.random.default_rng(0)
    w = rng.integers(-63, 64, size=(12, 9)).astype(float)
    labels = np.r_[np.arange(5), NEURON_LABEL_BASE + np.arange(7)]
    m = syn.map_network(w, labels, np.arange(100, 109))
    np.testing.assert_array_equal(syn.signed_codes(m.array, m.layout), w)
    assert (m.report.n_clipped, m.report.n_sign_blocked, m.report.rms_error, m.report.max_error) == (0, 0, 0.0, 0.0)
    # pair mode: exc then inh row per source, the row signs and labels as the hardware holds them
    np.testing.assert_array_equal(m.layout.exc_row, 2 * np.arange(12))
    np.testing.assert_array_equal(m.layout.inh_row, 2 * np.arange(12) + 1)
    np.testing.assert_array_equal(m.array.row_sign[:24], np.tile([1, -1], 12))
    np.testing.assert_array_equal(m.array.row_label[:24], np.repeat(labels, 2))
    cols = np.arange(100, 109)
    np.testing.assert_array_equal(m.array.weight[0:24:2][:, cols], np.maximum(w, 0))
    np.testing.assert_array_equal(m.array.weight[1:24:2][:, cols], np.maximum(-w, 0))
    assert m.array.weight[:, :100].sum() == 0 and np.all(m.array.row_sign[24:] == 0)


def test_quantisation_report_equals_a_direct_computation():
    rng = np.random.default_rng(1)
    w = rng.normal(0, 40, size=(20, 15))
    w[0, :3] = [0.5, 1.5, -2.5]  # ties: half to even, like Python's round
    m = syn.map_network(w, np.arange(20), np.arange(15))
    direct = np.array([[max(-63, min(63, round(x))) for x in row] for row in w.tolist()], float)
    np.testing.assert_array_equal(syn.signed_codes(m.array, m.layout), direct)
    err = (w - direct).ravel()
    assert m.report.n_weights == w.size
    assert m.report.n_clipped == sum(abs(round(x)) > 63 for x in w.ravel().tolist()) > 0
    assert m.report.rms_error == pytest.approx(float(np.sqrt(np.mean(err ** 2))), rel=1e-12)
    assert m.report.max_error == pytest.approx(float(np.abs(err).max()), rel=1e-12)
    q, report = syn.quantise(w)
    np.testing.assert_array_equal(q, direct)
    assert report == m.report


def test_needed_mode_uses_only_the_signs_present_and_reports_blocked_signs():
    w = np.array([[3.0, 0.0], [-2.0, -5.0], [0.0, 0.2], [4.0, -1.0]])
    m = syn.map_network(w, [10, 11, 12, 13], [0, 1], rows="needed")
    np.testing.assert_array_equal(m.layout.exc_row, [0, -1, -1, 2])
    np.testing.assert_array_equal(m.layout.inh_row, [-1, 1, -1, 3])
    assert m.layout.n_rows_used == 4
    np.testing.assert_array_equal(syn.signed_codes(m.array, m.layout), np.rint(w))
    flipped, report = syn.write_weights(m.array, m.layout, -w)  # every sign flips: only source 3 can follow
    np.testing.assert_array_equal(syn.signed_codes(flipped, m.layout), [[0, 0], [0, 0], [0, 0], [-4, 1]])
    assert report.n_sign_blocked == 3


def test_chip_limit_errors_say_what_does_not_fit_and_by_how_much():
    with pytest.raises(ChipLimitError, match=r"needs 258 synapse rows \(129 sources, rows='pair'\), 256 are free "
                                             r"from row 0 \(2 too many\)"):
        syn.plan_rows(np.arange(129), [0])
    with pytest.raises(ChipLimitError, match=r"needs 20 synapse rows .* 10 are free from row 246 \(10 too many\)"):
        syn.plan_rows(np.arange(10), [0], first_row=246)
    with pytest.raises(ChipLimitError, match=r"uses 513 neurons, the chip has 512 \(1 too many\)"):
        syn.plan_rows([1], np.arange(513))
    with pytest.raises(ChipLimitError, match=r"neuron circuit 600 does not exist: the chip has circuits 0..511"):
        syn.plan_rows([1], [3, 600])
    with pytest.raises(ChipLimitError, match=r"source_label 16384 does not fit the 14-bit spike label \(0..16383\)"):
        syn.plan_rows([1, 16384], [0])
    with pytest.raises(ChipLimitError, match=r"input_label 8192 is not an external label"):
        syn.effective_weights(syn.SynapseArray.empty(), np.ones((256, 512)), [3, 8192], [0])
    with pytest.raises(ValueError, match="must not repeat a label"):
        syn.plan_rows([1, 1], [0])


def naive_effective(array, gain, input_label, neuron):
    """Slow twin: walk every row and every source as the routing does."""
    sources = list(input_label) + [NEURON_LABEL_BASE + j for j in neuron]
    w = np.zeros((len(sources), len(neuron)))
    for r in range(array.weight.shape[0]):
        if array.row_sign[r] == 0:
            continue
        for s, label in enumerate(sources):
            if label == array.row_label[r]:
                for k, j in enumerate(neuron):
                    w[s, k] += array.row_sign[r] * float(array.weight[r, j]) * gain[r, j] * LSB
    return w


def random_array(rng, n_rows=256, n_cols=512):
    weight = rng.integers(0, 64, size=(n_rows, n_cols), dtype=np.uint8)
    label = rng.choice(np.r_[np.arange(6), NEURON_LABEL_BASE + np.arange(8)], size=n_rows).astype(np.uint16)
    sign = rng.choice(np.array([-1, 0, 1], np.int8), size=n_rows)
    return syn.SynapseArray(weight, label, sign)


def test_effective_weights_match_the_naive_routing():
    rng = np.random.default_rng(2)
    array = random_array(rng)
    gain = rng.lognormal(0, 0.1, size=array.shape)
    input_label, neuron = [4, 0, 2, 5], [7, 3, 1, 0, 500]  # labels 1, 3 and neurons 2, 4..6 are not simulated
    got = syn.effective_weights(array, gain, input_label, neuron)
    np.testing.assert_allclose(got, naive_effective(array, gain, input_label, neuron), rtol=1e-13, atol=1e-12)


def test_rows_for_labels_matches_a_scan():
    rng = np.random.default_rng(3)
    array = random_array(rng, n_rows=40)
    labels = rng.choice(np.r_[np.arange(8), NEURON_LABEL_BASE + np.arange(9)], size=50)
    event, row = syn.rows_for_labels(array, labels)
    expected = [(e, r) for e, lab in enumerate(labels) for r in range(40)
                if array.row_sign[r] != 0 and array.row_label[r] == lab]
    assert list(zip(event.tolist(), row.tolist())) == expected


def test_code_gradient_matches_unit_code_steps():
    rng = np.random.default_rng(4)
    w = rng.integers(-40, 41, size=(5, 4)).astype(float)
    w[0, 0] = 0.0
    input_label, neuron = [7, 9, 8], [11, 12, 13, 14]
    labels = np.r_[input_label, NEURON_LABEL_BASE + np.array([11, 12])]
    m = syn.map_network(w, labels, neuron)
    gain = rng.lognormal(0, 0.1, size=(256, 512))
    g_lsb = rng.normal(size=(7, 4))  # dL/dw_lsb of a linear loss L = sum(g_lsb * w_lsb)
    g_lsb[0, 0] = -abs(g_lsb[0, 0])

    def loss(array):
        return float(np.sum(g_lsb * syn.effective_weights(array, gain, input_label, neuron)))

    grad = syn.code_gradient(g_lsb, m.array, m.layout, gain, input_label, neuron)
    base = loss(m.array)
    for s in range(5):
        for k in range(4):
            for rows, field in ((m.layout.exc_row, grad.exc), (m.layout.inh_row, grad.inh)):
                weight = m.array.weight.copy()
                weight[rows[s], neuron[k]] += 1
                bumped = syn.SynapseArray(weight, m.array.row_label, m.array.row_sign)
                assert field[s, k] == pytest.approx(loss(bumped) - base, rel=1e-9, abs=1e-12)
            # the signed code moves through the row that carries it (exc at 0 when descent goes up)
            c = w[s, k]
            step = 1.0 if (c > 0 or (c == 0 and grad.signed[s, k] < 0)) else -1.0
            moved, _ = syn.write_weights(m.array, m.layout, np.where(np.arange(20).reshape(5, 4) == 4 * s + k,
                                                                     w + step, w))
            assert grad.signed[s, k] * step == pytest.approx(loss(moved) - base, rel=1e-9, abs=1e-12)


def test_array_validation_and_immutability():
    a = syn.SynapseArray.empty()
    with pytest.raises(ValueError):
        a.weight[0, 0] = 1
    with pytest.raises(ValueError, match="weight codes must be <= 63, got 64"):
        syn.SynapseArray(np.full((2, 3), 64, np.uint8), np.zeros(2, np.uint16), np.zeros(2, np.int8))
    with pytest.raises(ValueError, match="rows must be one of"):
        syn.plan_rows([1], [0], rows="both")
