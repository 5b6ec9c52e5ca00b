"""The command line: reports carry the keys DESIGN.md promises, errors are one clear line."""

from __future__ import annotations

import json

import pytest

from neurosplit.host.cli import main


def test_run_writes_a_report_with_seeds_traffic_and_hashes(tmp_path, capsys):
    path = tmp_path / "run.json"
    assert main(["run", "--samples", "3", "--seed", "2", "--chip-seed", "5", "--no-calibrate", "--report", str(path)]) == 0
    report = json.loads(path.read_text())
    assert {"command", "version", "seed", "chip_seed", "traffic", "dropped", "spikes_sha256", "weights_sha256"} <= set(report)
    assert report["seed"] == 2 and report["chip_seed"] == 5 and report["dropped"] == {}
    assert set(report["traffic"]) == {"host", "chip", "ppu", "synram"}
    assert report["traffic"]["host"]["down"]["events"] == report["events_in"]
    out = capsys.readouterr().out
    assert "link" in out and "bytes" in out and "host" in out


def test_run_is_reproducible_from_the_command_line(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p, buffer in ((a, "0"), (b, "7")):
        assert main(["run", "--samples", "2", "--no-calibrate", "--link-buffer", buffer, "--report", str(p)]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["spikes_sha256"] == rb["spikes_sha256"] and ra["events_out"] > 0


def test_train_report_has_the_training_keys(tmp_path):
    path = tmp_path / "train.json"
    argv = ["train", "yinyang", "--epochs", "1", "--n-train", "100", "--n-test", "50", "--hidden", "20",
            "--no-calibrate", "--report", str(path)]
    assert main(argv) == 0
    report = json.loads(path.read_text())
    for key in ("test_accuracy", "train_accuracy", "train_loss", "wall_s", "samples_per_s", "spikes_per_hidden_neuron",
                "traffic", "host_link_bytes_per_sample", "dropped", "weights_sha256", "learning", "task",
                "ppu_working_set_bytes", "ppu_memory_bytes"):
        assert key in report, key
    assert 0.0 <= report["test_accuracy"] <= 1.0 and len(report["train_loss"]) == 1


def test_a_network_that_does_not_fit_is_one_clear_line(capsys):
    assert main(["run", "--inputs", "200", "--hidden", "10", "--no-calibrate"]) == 2
    err = capsys.readouterr().err
    assert "synapse rows" in err and "Traceback" not in err


def test_bad_option_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "yinyang", "--learning", "telepathy"])


def test_a_command_imports_only_its_own_module(capsys):
    """``neurosplit train`` starts without the other commands' imports (the conformance kit, the
    recording replay, the sweep); the full help still lists every command."""
    import subprocess
    import sys

    code = ("import sys\nfrom neurosplit.host.cli import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('neurosplit.actors.conformance', 'neurosplit.actors.testing', "
            "'neurosplit.host.cli._sweep', 'neurosplit.host.cli._train') if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip().splitlines()[-1] == "['neurosplit.host.cli._train']"
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("run", "train", "demo", "conformance", "replay", "sweep", "compare"))


def test_lr_and_its_decay_reach_the_training_config_and_bad_values_are_one_clear_line(capsys):
    from neurosplit.host.cli import _parser
    from neurosplit.host.cli._train import train_config

    args = _parser().parse_args(["train", "yinyang", "--lr", "0.5", "--lr-decay", "0.9"])
    cfg = train_config(args)
    assert (cfg.lr, cfg.lr_decay) == (0.5, 0.9)
    args = _parser().parse_args(["train", "yinyang", "--learning", "host-surrogate", "--lr-decay", "0.8"])
    assert train_config(args).lr_decay == 0.8
    assert main(["train", "yinyang", "--lr-decay", "1.5", "--no-calibrate"]) == 2
    err = capsys.readouterr().err
    assert "lr_decay must lie in (0, 1], got 1.5" in err and "Traceback" not in err
