"""Training through the running system: both EventProp placements agree and learning works."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from neurosplit.actors import SystemConfig, open_system
from neurosplit.chip import N_NEURONS, N_ROWS
from neurosplit.host._report import weights_sha256
from neurosplit.host._training import TrainConfig, train

from helpers import FAST_CORE

SMALL = TrainConfig(epochs=1, n_train=120, n_test=60, batch_size=40, n_hidden=40, seed=3)


async def _train(cfg: TrainConfig, system_cfg: SystemConfig = SystemConfig(core=FAST_CORE, chip_seed=4)):
    async with open_system(system_cfg) as system:
        report = await train(system.host, cfg)
        weights = await system.host.read_weights(np.arange(N_ROWS, dtype=np.uint16),
                                                 np.arange(N_NEURONS, dtype=np.uint16))
        return report, weights.weight, system.traffic()


async def test_on_chip_and_host_eventprop_end_with_identical_weights():
    on_chip, w_chip, traffic_chip = await _train(replace(SMALL, learning="on-chip-eventprop"))
    host, w_host, traffic_host = await _train(replace(SMALL, learning="host-eventprop"))
    assert weights_sha256(w_chip) == weights_sha256(w_host)
    assert on_chip["train_loss"] == host["train_loss"] and on_chip["test_accuracy"] == host["test_accuracy"]
    # the weights did move: training wrote rows
    assert traffic_chip["synram"]["down"]["messages"] > 1
    # on chip, no spikes travel up the host link; on the host placement they all do
    assert traffic_chip["host"]["up"]["events"] == 0 and traffic_host["host"]["up"]["events"] > 0


async def test_short_on_chip_training_beats_chance_by_far():
    cfg = replace(SMALL, n_train=1000, n_test=300, epochs=2, batch_size=50, n_hidden=60)
    report, *_ = await _train(cfg)
    assert report["test_accuracy"] > 0.6  # chance is 1/3
    assert report["train_loss"][-1] < report["train_loss"][0]


async def test_same_seeds_train_bit_identically_with_tiny_buffers():
    a, wa, _ = await _train(SMALL)
    b, wb, _ = await _train(SMALL, SystemConfig(core=FAST_CORE, chip_seed=4, link_buffer=0, window=1, chunk_events=5))
    assert weights_sha256(wa) == weights_sha256(wb) and a["train_loss"] == b["train_loss"]


async def test_fixed_point_ppu_stays_within_one_code_of_float_learning():
    from neurosplit.actors import PpuConfig

    cfg = replace(SMALL, learning="on-chip-eventprop")
    _, w_float, _ = await _train(cfg)
    _, w_fixed, _ = await _train(cfg, SystemConfig(core=FAST_CORE, chip_seed=4, ppu=PpuConfig(fixed_point_bits=16)))
    diff = np.abs(w_float.astype(int) - w_fixed.astype(int))
    assert diff.max() <= 1  # 16-bit accumulators (9 fraction bits) round differently, never by more than a code
    assert np.count_nonzero(diff) <= 0.02 * np.count_nonzero(w_float)


async def test_a_pass_without_update_or_gradients_skips_the_adjoint_sweep_and_says_so():
    """The PPU scores such a pass (a test pass) without the sweep: the same loss, accuracy and spike
    counts as a pass that computes the gradient, and no adjoint_guard_count (not computed, not 0)."""
    from neurosplit.host._network import place
    from neurosplit.host._training import build_network, encode_batch
    from neurosplit.host._yinyang import YINYANG_SEEDS, yin_yang

    net = build_network(SMALL)
    pl = place(net)
    x, y = yin_yang(20, YINYANG_SEEDS["test"])
    t, lab, smp = encode_batch(x, SMALL, net.input_label)
    async with open_system(SystemConfig(core=FAST_CORE, chip_seed=4)) as system:
        host = system.host
        await host.configure(pl.neurons, pl.rows)
        await host.write_weights(pl.weight_rows, pl.weight_columns, pl.weight_block)
        await host.configure(pl.learning(net, loss=SMALL.loss, params=SMALL.learner_params()))
        results = []
        for gradients in (False, True):
            host.set_next_run_id(7)  # the same run id: the same trial noise, the same spikes
            results.append(await host.run(t, lab, smp, n_samples=20, sample_ticks=SMALL.sample_ticks,
                                          record_spikes=False, train_labels=y.astype(np.uint16),
                                          apply_update=False, report_gradients=gradients))
    scored, swept = results
    assert (scored.learn.loss, scored.learn.n_correct) == (swept.learn.loss, swept.learn.n_correct)
    np.testing.assert_array_equal(scored.learn.spike_count, swept.learn.spike_count)
    assert "adjoint_guard_count" not in scored.learn.metrics and "adjoint_guard_count" in swept.learn.metrics
    assert scored.gradients is None and swept.gradients is not None
