"""Sweep scaling and the cost of a board in its own process.

1. The same sweep (``--points`` Yin-Yang trainings over seeds and chip seeds) on 1 and on 2
   workers, on the local process pool and on a local Ray: points per minute and parallel
   efficiency (rate on 2 workers / (2 x rate on 1)). Each sweep starts from an empty output
   directory, so worker start-up (imports, numba cache loads, Ray start) is in the figures, as it
   is for a user. The peer is the engine itself: Ray against the standard library's pool.
2. ``neurosplit demo`` on a board in this process against a board in another process
   (``chip serve``, loopback TCP): wall time of the whole command and of the training loop, the
   bit-identity of the two (weights_sha256, accuracy), and the board process's peak memory.

    python -m benchmarks.sweep_scaling --json out/sweep_scaling.json

The machine's load average is in the header: on a shared machine the figures are upper bounds of
the overheads and lower bounds of the efficiency.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import header_line, load_average, versions_of_project, write_json

SPEC = """
command = "train"
[options]
task = "yinyang"
epochs = {epochs}
n-train = {n_train}
n-test = 200
hidden = {hidden}
no-calibrate = true
[grid]
seed = {seeds}
chip-seed = [0, 1]
"""


def _sweep(engine: str, workers: int, n_points: int, n_train: int, epochs: int, hidden: int) -> dict:
    from neurosplit.host._sweep import load_spec, run_sweep
    from neurosplit.host.cli._sweep import run_point

    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.toml"
        spec_path.write_text(SPEC.format(n_train=n_train, epochs=epochs, hidden=hidden,
                                         seeds=list(range(max(1, n_points // 2)))))
        spec = load_spec(spec_path)
        t0 = time.perf_counter()
        outcome = run_sweep(spec, Path(tmp) / "out", run_point, engine=engine, workers=workers,
                            progress_stream=io.StringIO())
        wall = time.perf_counter() - t0
        reports = [json.loads(p.read_text()) for p in (Path(tmp) / "out" / "points").glob("*.json")]
        sizes = [len(p.read_bytes()) for p in (Path(tmp) / "out" / "points").glob("*.json")]
    assert outcome.counts["ok"] == len(spec.points()), outcome.errors
    return {"engine": engine, "workers": workers, "points": len(reports), "wall_s": wall, "n_train": n_train,
            "epochs": epochs, "hidden": hidden,
            "points_per_minute": 60.0 * len(reports) / wall,
            "point_wall_s_mean": sum(r["wall_s"] for r in reports) / len(reports),
            "worker_max_rss_mb": max(w["max_rss_mb"] for w in outcome.worker.values()),
            "report_bytes_mean": sum(sizes) / len(sizes),
            "hashes": sorted(r["weights_sha256"] for r in reports)}


def _neurosplit(*argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import sys; from neurosplit.host.cli import main; sys.exit(main())",
                             *argv], **kw)


def _demo(extra: list[str], report: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = _neurosplit("demo", "--report", str(report), *extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait() == 0, f"demo {extra} failed"
    return time.perf_counter() - t0, json.loads(report.read_text())


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def demo_overhead(repeats: int, demo_args: list[str]) -> dict:
    server = _neurosplit("chip", "serve", "--listen", "127.0.0.1:0", "--chip-seed", "0", "--log-level", "warning",
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        address = line.split(" on ")[1].split()[0]
        rows = {"in_process": [], "socket": []}
        reports = {}
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(repeats):  # alternate, so that a change of machine load hits both alike
                for kind, extra in (("in_process", []), ("socket", ["--board", address])):
                    wall, report = _demo(demo_args + extra, Path(tmp) / f"{kind}{i}.json")
                    rows[kind].append({"command_wall_s": wall, "training_wall_s": report["wall_s"]})
                    reports[kind] = report
        board_rss = _peak_rss_mb(server.pid)
    finally:
        server.kill()
        server.wait()
    best = {k: {m: min(r[m] for r in v) for m in ("command_wall_s", "training_wall_s")} for k, v in rows.items()}
    a, b = reports["in_process"], reports["socket"]
    return {"demo_args": demo_args, "repeats": rows, "best": best,
            "overhead_command": best["socket"]["command_wall_s"] / best["in_process"]["command_wall_s"] - 1,
            "overhead_training": best["socket"]["training_wall_s"] / best["in_process"]["training_wall_s"] - 1,
            "bit_identical": a["weights_sha256"] == b["weights_sha256"] and a["test_accuracy"] == b["test_accuracy"],
            "test_accuracy": {k: r["test_accuracy"] for k, r in reports.items()},
            "weights_sha256": {k: r["weights_sha256"] for k, r in reports.items()},
            "board_process_peak_rss_mb": board_rss,
            "host_link_bytes": {k: {d: r["traffic"]["host"][d]["bytes"] for d in ("down", "up")}
                                for k, r in reports.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", metavar="PATH", help="write the figures here")
    p.add_argument("--points", type=int, default=8, help="points of the sweep (seeds x 2 chip seeds)")
    p.add_argument("--n-train", type=int, default=1500, help="training samples per point and epoch")
    p.add_argument("--epochs", type=int, default=2, help="epochs per point")
    p.add_argument("--hidden", type=int, default=40, help="hidden neurons")
    p.add_argument("--engines", default="pool,ray", help="comma-separated: pool, ray")
    p.add_argument("--repeats", type=int, default=2, help="runs of each sweep (the fastest is reported)")
    p.add_argument("--demo-repeats", type=int, default=2, help="runs of demo each way (best is reported)")
    p.add_argument("--demo-args", default="", help="extra demo options, e.g. '--epochs 2'")
    p.add_argument("--skip-demo", action="store_true")
    args = p.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    try:
        import ray
        ray_version = ray.__version__
    except ImportError:
        ray_version = "absent"
        engines = [e for e in engines if e != "ray"]
    print(header_line({**versions_of_project(), "ray": ray_version}, {"workers": 2}, {"seed": 0},
                      load_start=f"{load_average():.2f}"))
    out = {"load_average_start": load_average(), "versions": {**versions_of_project(), "ray": ray_version},
           "cpus": os.cpu_count(), "sweeps": []}
    print(f"{'engine':<6} {'workers':>7} {'points':>6} {'wall s':>8} {'points/min':>11} {'efficiency':>10} "
          f"{'point s':>8} {'worker MB':>9}")
    for engine in engines:
        one = None
        for workers in (1, 2):
            runs = [_sweep(engine, workers, args.points, args.n_train, args.epochs, args.hidden)
                    for _ in range(max(1, args.repeats))]
            r = min(runs, key=lambda x: x["wall_s"])
            r["all_wall_s"] = [x["wall_s"] for x in runs]
            one = one or r
            r["efficiency"] = r["points_per_minute"] / (workers * one["points_per_minute"])
            assert r["hashes"] == one["hashes"], "a sweep's results depend on its workers"
            out["sweeps"].append(r)
            print(f"{engine:<6} {workers:>7} {r['points']:>6} {r['wall_s']:>8.1f} {r['points_per_minute']:>11.2f} "
                  f"{r['efficiency']:>10.2f} {r['point_wall_s_mean']:>8.2f} {r['worker_max_rss_mb']:>9.0f}")
    if not args.skip_demo:
        d = demo_overhead(args.demo_repeats, args.demo_args.split())
        out["demo"] = d
        print(f"\nneurosplit demo {' '.join(d['demo_args'])}: best of {args.demo_repeats}")
        print(f"{'board':<11} {'command s':>10} {'training s':>11}")
        for kind in ("in_process", "socket"):
            print(f"{kind:<11} {d['best'][kind]['command_wall_s']:>10.1f} {d['best'][kind]['training_wall_s']:>11.1f}")
        print(f"socket overhead: {100 * d['overhead_command']:+.1f} % (command), {100 * d['overhead_training']:+.1f} % "
              f"(training loop); bit-identical: {d['bit_identical']}; board process peak RSS "
              f"{d['board_process_peak_rss_mb']:.0f} MB")
    out["load_average_end"] = load_average()
    print(f"# load at end {out['load_average_end']:.2f}")
    if args.json:
        print(f"json: {write_json(args.json, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
