"""Sweeps: the spec becomes a grid of points with stable ids; every engine gives the same reports;
a failing point is reported and the rest go on; a re-run skips what is done."""

from __future__ import annotations

import io
import json

import pytest

from neurosplit.host._sweep import comparable, load_spec, run_sweep, summary_rows
from neurosplit.host.cli import main
from neurosplit.host.cli._sweep import point_args, run_point

SPEC = """
command = "run"
[options]
samples = 1
hidden = 8
no-calibrate = true
[grid]
seed = [0, 1]
chip_seed = { range = [3, 5] }
"""


def _spec(tmp_path, text=SPEC, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path)


def _reports(out) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in (out / "points").glob("*.json")}


def test_the_spec_is_a_grid_whose_point_ids_do_not_depend_on_order(tmp_path):
    spec = _spec(tmp_path)
    points = spec.points()
    assert [(p.options["seed"], p.options["chip-seed"]) for p in points] == [(0, 3), (0, 4), (1, 3), (1, 4)]
    assert all(p.options["samples"] == 1 and p.options["no-calibrate"] is True for p in points)
    reordered = _spec(tmp_path, SPEC.replace("seed = [0, 1]\nchip_seed = { range = [3, 5] }",
                                             "chip-seed = [4, 3]\nseed = [1, 0]"), "b.toml")
    assert {p.id for p in reordered.points()} == {p.id for p in points} and len({p.id for p in points}) == 4
    args = point_args(points[1].command, points[1].options)
    assert (args.command, args.samples, args.chip_seed, args.no_calibrate) == ("run", 1, 4, True)


@pytest.mark.parametrize("text, problem", [
    (SPEC.replace('command = "run"', 'command = "sweep"'), "command must be one of"),
    (SPEC.replace("samples = 1", "sampels = 1"), "run has no option 'sampels'"),
    (SPEC.replace("samples = 1", "samples = 'many'"), "--samples: invalid int value: 'many'"),
    (SPEC.replace("samples = 1", "board = '127.0.0.1:1'"), "board cannot be set in a sweep"),
    (SPEC.replace("seed = [0, 1]", "seed = 3"), "grid.seed must be a list"),
    (SPEC.replace("no-calibrate = true", "no-calibrate = 1"), "no-calibrate is a switch"),
])
def test_a_bad_spec_is_refused_naming_the_key(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace("'", "'")):
        for point in _spec(tmp_path, text).points():
            point_args(point.command, point.options, point.id)


def test_four_points_give_identical_reports_on_the_local_pool_and_on_local_ray(tmp_path):
    pytest.importorskip("ray")
    spec = _spec(tmp_path)
    pool = run_sweep(spec, tmp_path / "pool", run_point, engine="pool", workers=2, progress_stream=io.StringIO())
    ray = run_sweep(spec, tmp_path / "ray", run_point, engine="ray", workers=2, progress_stream=io.StringIO())
    assert pool.counts == ray.counts == {"ok": 4, "failed": 0, "skipped": 0}
    a, b = _reports(tmp_path / "pool"), _reports(tmp_path / "ray")
    assert sorted(a) == sorted(p.id for p in spec.points())
    assert {k: comparable(v) for k, v in a.items()} == {k: comparable(v) for k, v in b.items()}
    # the points really differ: each chip seed is another die
    assert len({r["spikes_sha256"] for r in a.values()}) == 4
    assert all(r["point"]["id"] == k and r["chip_seed"] == r["point"]["options"]["chip-seed"] for k, r in a.items())


def test_a_failing_point_is_reported_the_others_go_on_and_a_rerun_skips_what_is_done(tmp_path):
    spec = _spec(tmp_path, SPEC.replace("seed = [0, 1]\n", "inputs = [16, 400]\n").replace("[3, 5]", "[3, 4]"))
    out, stream = tmp_path / "out", io.StringIO()
    first = run_sweep(spec, out, run_point, engine="pool", workers=2, progress_stream=stream)
    assert first.counts == {"ok": 1, "failed": 1, "skipped": 0}
    bad = next(p for p in spec.points() if p.options["inputs"] == 400)
    failed = json.loads((out / "points" / f"{bad.id}.failed.json").read_text())
    assert failed["status"] == "failed" and "synapse rows" in failed["error"] and failed["point"]["id"] == bad.id
    assert "1 failed" in stream.getvalue() and "running" in stream.getvalue() and "done" in stream.getvalue()
    rows = {r["id"]: r for r in summary_rows(out, spec)}
    assert rows[bad.id]["status"] == "failed" and "synapse rows" in rows[bad.id]["error"]
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("id,inputs,chip-seed,status") and len(csv_lines) == 3
    again = run_sweep(spec, out, run_point, engine="pool", workers=1, progress_stream=io.StringIO())
    assert again.counts == {"ok": 0, "failed": 1, "skipped": 1} and again.ran == 1  # only the failed point ran again


def test_the_command_line_checks_the_spec_and_lists_the_points(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 points (dry run" in out and "chip-seed" in out
    path.write_text(SPEC.replace("samples = 1", "sampels = 1"))
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "has no option 'sampels'" in capsys.readouterr().err
