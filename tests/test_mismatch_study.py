"""Digits data and code, the host-surrogate scheme on boards, and the mismatch study (small and fast).

- the digits split is fixed, stratified and disjoint; the latency code puts every lit pixel once;
- in-the-loop training on an ideal chip reproduces training on the model (the chip path adds only
  CADC rounding), so the board round trip (step runs, samples, spikes, weight writes) is right;
- in-the-loop training on a strongly mismatched chip beats deploying ideal-chip weights on it;
- the adversary of the robust training finds a perturbation that hurts more than a random one of
  the same size; the study's report has the documented shape.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("sklearn")

from neurosplit import actors  # noqa: E402
from neurosplit.chip import CoreConfig, MismatchSpec  # noqa: E402
from neurosplit.host._digits import encode_latency, load_digits_split  # noqa: E402
from neurosplit.host._mismatch_study import (  # noqa: E402
    STRATEGIES,
    Point,
    StudyConfig,
    plan_points,
    summarise,
    train_reference,
)
from neurosplit.host._robust import REFERENCE_SPREAD, RobustConfig, distance_spread, level_spec  # noqa: E402
from neurosplit.host._surrogate import SurrogateConfig, encode_ticks, train_surrogate  # noqa: E402
from neurosplit.host._surrogate_software import train_software  # noqa: E402
from neurosplit.host.cli._mismatch import deploy_point, itl_point, run_study  # noqa: E402

SMALL = dict(epochs=4, n_train=240, n_test=100, n_hidden=30, batch_size=20, lr=1.0, readout="mean", scale_lsb=2.0)
"""A short training: the mean read-out gives every output a gradient from the first step on."""


def test_digits_split_is_fixed_stratified_and_disjoint():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    assert x_tr.shape == (1438, 64) and x_te.shape == (359, 64)
    assert np.all(np.bincount(y_te, minlength=10) >= 35) and np.all(np.bincount(y_te, minlength=10) <= 37)
    train_rows = {r.tobytes() for r in x_tr}
    assert sum(r.tobytes() in train_rows for r in x_te) < 5  # the UCI set holds a few duplicate images
    again = load_digits_split()
    np.testing.assert_array_equal(again[3], y_te)
    np.testing.assert_array_equal(again[0], x_tr)
    assert not np.array_equal(load_digits_split(seed=1)[3], y_te)


def test_latency_code():
    x = np.array([[0.0, 1.0, 0.5, 0.05], [0.25, 0.0, 0.0, 1.0]])
    t, src, smp = encode_latency(x, t_early_us=2.0, t_late_us=10.0, v_min=0.1, t_bias_us=1.0)
    # sample 0: bias at 1, pixel 1 (v=1) at 2, pixel 2 (v=.5) at 6; pixel 3 (v=.05 <= v_min) and 0 are dark
    np.testing.assert_allclose(t, [1.0, 2.0, 6.0, 1.0, 2.0, 8.0])
    np.testing.assert_array_equal(src, [4, 1, 2, 4, 3, 0])
    np.testing.assert_array_equal(smp, [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="x must lie in"):
        encode_latency(x * 2, t_early_us=0, t_late_us=1)


def test_simultaneous_inputs_leave_one_tick_apart_and_the_host_bins_what_was_played():
    cfg = SurrogateConfig(task="digits")
    x, _, _, _ = load_digits_split()
    (ticks, label, smp), (t_us, src, smp2) = encode_ticks(cfg, x[:20], np.arange(65, dtype=np.uint16))
    assert np.all(np.diff(ticks) > 0)  # never two events on one tick
    np.testing.assert_array_equal(ticks, smp * cfg.sample_ticks + np.rint(t_us * 125).astype(np.int64))
    np.testing.assert_array_equal(label, src)


def board_config(spec, chip_seed=1):
    return actors.SystemConfig(chip_seed=chip_seed, core=CoreConfig(mismatch=spec, calibrate=False))


async def test_in_the_loop_on_an_ideal_chip_follows_the_model():
    cfg = SurrogateConfig(epochs=2, n_train=120, n_test=60, n_hidden=20, batch_size=20, lr=1.0)
    async with actors.open_system(board_config(MismatchSpec.ideal())) as system:
        report = await train_surrogate(system.host, cfg)
        traffic = system.traffic()
    _, history = train_software(cfg)
    # the chip rounds each sample to a CADC code: the losses agree to that noise, not bit for bit
    np.testing.assert_allclose(report["train_loss"], [h.train_loss for h in history], rtol=0.05)
    assert abs(report["test_accuracy"] - history[-1].test_accuracy) <= 0.1
    assert traffic["host"]["up"]["bytes"] > 120 * 2 * cfg.n_steps * 30  # CADC samples came up


def test_in_the_loop_beats_ideal_weights_on_a_mismatched_chip():
    study = StudyConfig(n_chips=1, levels=(0.3,), surrogate=SurrogateConfig(**SMALL))
    model, summary = train_reference(study, "ideal-deployed")
    deployed = deploy_point(study, 0.3, 1, model.learner.signed_codes())
    in_the_loop = itl_point(study, 0.3, 1)
    assert summary["software_test_accuracy"] > deployed + 0.15  # what mismatch costs the ideal weights ...
    assert in_the_loop > deployed + 0.1  # ... and what training on the chip wins back (0.70 vs 0.52 here)


def test_the_adversary_hurts_more_than_random_noise_of_its_size():
    from neurosplit.chip._surrogate import softmax
    from neurosplit.host import _robust

    cfg = SurrogateConfig(**{**SMALL, "epochs": 2})
    model, _ = train_software(cfg)
    x, y, _, _ = load_digits_split()
    _, inputs = encode_ticks(cfg, x[:40], model.net.input_label)
    seen = {}
    original = _robust._kl

    def spy(p, q):
        seen["kl"] = original(p, q)
        return seen["kl"]

    _robust._kl = spy
    try:
        rc = RobustConfig(noise_level=0.0, beta_rob=1.0, attack_size=0.1, attack_steps=5)
        _robust.robust_forward(rc)(model, inputs, x[:40], y[:40], np.random.default_rng(0))
    finally:
        _robust._kl = original
    w = model.learner.signed_codes() * 70.0 / 58.0
    z_nom = model.logits(model.simulate(inputs, 40, w_lsb=w)[1])[0]
    rng = np.random.default_rng(1)
    random_kl = []
    for _ in range(3):
        _, v = model.simulate(inputs, 40, w_lsb=w + 0.1 * np.abs(w) * rng.choice([-1.0, 1.0], w.shape))
        random_kl.append(original(softmax(z_nom), softmax(model.logits(v)[0])).mean())
    assert seen["kl"].mean() > 2 * max(random_kl)


def test_level_spec_scales_the_distance_spread():
    assert abs(distance_spread(level_spec(0.3)) - 0.3) < 1e-12
    assert abs(distance_spread(MismatchSpec()) - REFERENCE_SPREAD) < 1e-12
    assert level_spec(0.0).threshold_jitter_lsb == MismatchSpec().threshold_jitter_lsb  # trial noise kept


def test_study_report_shape(tmp_path):
    cfg = StudyConfig(n_chips=2, levels=(0.1, 0.2), surrogate=SurrogateConfig(**SMALL))
    points = plan_points(cfg)
    assert len(points) == 3 * 2 * 2 and points[0] == Point("ideal-deployed", 0.1, 1)
    fake = {p: 0.5 + 0.1 * i for i, p in enumerate(points)}
    out = summarise(cfg, fake)
    assert list(out) == list(STRATEGIES)
    s = out["robust"]
    assert s["accuracies"] == pytest.approx([0.5 + 0.1 * i for i in range(8, 12)])
    assert s["mean"] == pytest.approx(np.mean(s["accuracies"])) and s["min"] == pytest.approx(1.3)
    assert s["std"] == pytest.approx(np.std(s["accuracies"]))
    assert s["by_level"]["0.2"]["accuracies"] == pytest.approx([1.5, 1.6])


def test_run_study_in_one_process(tmp_path):
    """The whole pipeline on one chip at one level, robust training without the adversary (fast)."""
    cfg = StudyConfig(n_chips=1, levels=(0.2,), surrogate=SurrogateConfig(**{**SMALL, "epochs": 1, "n_train": 60}),
                      robust=dataclasses.replace(RobustConfig(), beta_rob=0.0))
    lines = []

    class Out:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    report = run_study(cfg, jobs=1, out=Out())
    assert set(report["strategies"]) == set(STRATEGIES)
    for s in report["strategies"].values():
        assert len(s["accuracies"]) == 1 and 0.0 <= s["min"] <= s["mean"] <= 1.0
    assert sum("/5]" in x for x in lines) == 5  # 2 software trainings + 3 points
    pytest.importorskip("matplotlib")
    from neurosplit.host._mismatch_study import plot_study

    png = plot_study(report, tmp_path / "m.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_command_lines(tmp_path, capsys):
    import json

    from neurosplit.host.cli import main

    path = tmp_path / "t.json"
    assert main(["train", "digits", "--learning", "host-surrogate", "--epochs", "1", "--n-train", "60", "--n-test", "30",
                 "--hidden", "10", "--no-calibrate", "--report", str(path)]) == 0
    report = json.loads(path.read_text())
    assert report["task"] == "digits" and report["learning"] == "host-surrogate"
    assert report["host_link_bytes_per_sample"] > 20 * 40  # the CADC samples of 20 neurons at 20 grid points came up
    assert main(["train", "digits", "--learning", "host-eventprop"]) == 2
    assert "host-surrogate" in capsys.readouterr().err

    path = tmp_path / "m.json"
    assert main(["mismatch", "--chips", "1", "--levels", "0.2", "--epochs", "1", "--n-train", "40", "--n-test", "20",
                 "--hidden", "10", "--attack-steps", "1", "--jobs", "1", "--chip-seed", "3", "--report", str(path)]) == 0
    report = json.loads(path.read_text())
    assert set(report["strategies"]) == set(STRATEGIES) and report["chip_seeds"] == [3]
    assert {"accuracies", "mean", "std", "min", "by_level"} <= set(report["strategies"]["in-the-loop"])
    out = capsys.readouterr().out
    assert "in-the-loop" in out and "[  5/5]" in out
    if "plot" in report:
        assert (tmp_path / "m.png").exists()
