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


def test_refreshing_changed_rows_gives_the_bits_of_a_full_recomputation():
    rng = np.random.default_rng(7)
    array = random_array(rng)  # ~18 rows answer each label: the sums' order matters for the bits
    gain = rng.lognormal(0, 0.1, size=array.shape)
    input_label, neuron = np.array([4, 0, 2, 5]), np.array([7, 3, 1, 0, 500])
    src, rows = syn.row_sources(array.row_label, array.row_sign, input_label, neuron)
    w = syn.effective_weights(array, gain, input_label, neuron)
    weight = array.weight.copy()
    for _ in range(20):
        changed = rng.choice(256, size=int(rng.integers(1, 40)), replace=False)
        weight[np.ix_(changed, neuron)] = rng.integers(0, 64, size=(changed.size, neuron.size))
        syn.refresh_effective_weights(w, changed, src, rows, neuron, array.row_sign.astype(float), weight, gain)
        full = syn.effective_weights(syn.SynapseArray(weight, array.row_label, array.row_sign), gain, input_label, neuron)
        np.testing.assert_array_equal(w, full)


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


def test_core_weight_writes_keep_the_effective_weights_of_its_array():
    """AnalogCore updates its effective matrix row by row after each write: always the bits of
    effective_weights on its array; a snapshot of ``array`` taken before a write stays as it was."""
    from neurosplit.chip import AnalogCore, CoreConfig
    from neurosplit.protocol import ConfigureNeurons, ConfigureRows, WriteWeights

    rng = np.random.default_rng(11)
    core = AnalogCore(CoreConfig(calibrate=False), chip_seed=2)
    circuits = np.array([3, 9, 40, 41, 300], np.uint16)
    n = circuits.size
    core.configure_neurons(ConfigureNeurons(neuron=circuits, tau_mem_us=np.full(n, 10.0), tau_syn_us=np.full(n, 5.0),
                                            v_leak_lsb=np.full(n, 80.0), v_reset_lsb=np.full(n, 80.0),
                                            v_th_lsb=np.full(n, 110.0), t_ref_us=np.full(n, 2.0)))
    rows = np.arange(0, 120, 2, dtype=np.uint16)  # several rows per label, of both signs
    labels = rng.choice(np.r_[np.arange(6), NEURON_LABEL_BASE + circuits.astype(int)], size=rows.size).astype(np.uint16)
    core.configure_rows(ConfigureRows(row=rows, source_label=labels, sign=rng.choice([-1, 1], rows.size).astype(np.int8)))

    def expected():
        return syn.effective_weights(core.array, core.die.synapse_gain, np.unique(labels[labels < NEURON_LABEL_BASE]),
                                     core.circuits)

    core.weights_lsb()
    before = core.array
    for k in range(12):
        row = np.sort(rng.choice(rows, size=int(rng.integers(1, 20)), replace=False))
        cols = circuits if k % 3 else np.array([9, 100], np.uint16)  # also columns outside the network
        held = core.weights_lsb()
        held_bits = held.copy()
        core.write_weights(WriteWeights(request_id=k, row=row, column=cols,
                                        weight=rng.integers(0, 64, (row.size, cols.size)).astype(np.uint8)))
        np.testing.assert_array_equal(core.weights_lsb(), expected())
        np.testing.assert_array_equal(held, held_bits)  # a matrix handed out earlier is never changed in place
    assert before.weight.sum() == 0 and not before.weight.flags.writeable


def test_block_write_kernel_matches_numpy_fancy_assignment():
    rng = np.random.default_rng(12)
    weight = rng.integers(0, 64, size=(256, 512), dtype=np.uint8)
    rows = np.array([5, 0, 255, 17], np.int64)
    cols = rng.choice(512, size=40, replace=False).astype(np.int64)
    block = rng.integers(0, 64, size=(rows.size, cols.size), dtype=np.uint8)
    expected = weight.copy()
    expected[np.ix_(rows, cols)] = block
    syn._write_block(weight, rows, cols, block)
    np.testing.assert_array_equal(weight, expected)
