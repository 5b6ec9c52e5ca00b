"""Sweeps: a grid of jobs from a TOML spec, run on Ray or on a local process pool, one JSON report
per point and a summary table, resumable.

The spec names a command of the command line and its options: ``[options]`` holds what every
point shares, ``[grid]`` what varies (every combination is a point)::

    command = "train"
    [options]
    task = "yinyang"
    epochs = 2
    no-calibrate = true
    [grid]
    learning = ["on-chip-eventprop", "host-eventprop"]
    seed = [0, 1]
    chip-seed = { range = [0, 8] }      # 0, 1, ..., 7 (also [start, stop, step])

A point's identity is a hash of its command and options, so reports of a grown or reordered grid
are found again: a re-run skips every point that has a report and retries the ones that failed.
Each point runs in a worker process (its own trio event loop, its own logging); the worker sends
the report back and only this process writes files, so workers need no shared file system.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import itertools
import json
import multiprocessing
import os
import queue
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ._report import write_report

__all__ = ["SweepSpec", "Point", "load_spec", "run_sweep", "SweepOutcome", "summary_rows", "summary_table",
           "comparable", "ENGINES", "TIMING_KEYS", "POINT_FIELDS"]

ENGINES = ("auto", "ray", "pool")
TIMING_KEYS = frozenset({"wall_s", "samples_per_s", "encode_s", "decode_s", "peak_depth"})
"""Report keys (at any depth) measured on the wall clock or shaped by thread scheduling: the only
ones that may differ between two runs of a point (``comparable`` drops them)."""
POINT_FIELDS = ("test_accuracy", "train_loss", "weights_sha256", "spikes_sha256", "events_out",
                "host_link_bytes_per_sample", "wall_s")
"""Report keys copied into the summary table when a point's report has them."""
FORBIDDEN = {"report": "the sweep writes each point's report itself",
             "board": "a board serves one host at a time; sweep points start their own boards"}


@dataclass(frozen=True)
class Point:
    """One job of a sweep: ``command`` with ``options`` (option names as on the command line,
    without dashes: ``{"chip-seed": 3, "no-calibrate": True}``)."""

    command: str
    options: dict
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            canonical = json.dumps({"command": self.command, "options": self.options}, sort_keys=True)
            object.__setattr__(self, "id", hashlib.sha256(canonical.encode()).hexdigest()[:12])

    def label(self, keys: list[str]) -> str:
        return ", ".join(f"{k}={self.options[k]}" for k in keys if k in self.options)


@dataclass(frozen=True)
class SweepSpec:
    command: str
    options: dict
    grid: dict  # name -> list of values, in the order the spec gives them
    source: str = ""

    def points(self) -> list[Point]:
        names = list(self.grid)
        return [Point(self.command, {**self.options, **dict(zip(names, values))})
                for values in itertools.product(*(self.grid[n] for n in names))]


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep spec; errors name the key at fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"command", "options", "grid"})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}, expected command, [options] and [grid]")
    command = data.get("command")
    if not isinstance(command, str):
        raise ValueError(f"{path}: command must be the name of a neurosplit command, got {command!r}")
    options = {_name(k): v for k, v in data.get("options", {}).items()}
    grid = {}
    for key, values in data.get("grid", {}).items():
        values = _values(key, values, path)
        if not values:
            raise ValueError(f"{path}: grid.{key} has no values")
        grid[_name(key)] = values
    for key in list(options) + list(grid):
        if key in FORBIDDEN:
            raise ValueError(f"{path}: {key} cannot be set in a sweep: {FORBIDDEN[key]}")
    both = sorted(set(options) & set(grid))
    if both:
        raise ValueError(f"{path}: {both} are in both [options] and [grid]")
    return SweepSpec(command, options, grid, str(path))


def _name(key: str) -> str:
    return key.replace("_", "-")


def _values(key: str, values, path: Path) -> list:
    if isinstance(values, dict):
        r = values.get("range")
        if set(values) != {"range"} or not isinstance(r, list) or not 2 <= len(r) <= 3 or \
                not all(isinstance(x, int) for x in r):
            raise ValueError(f"{path}: grid.{key} must be a list or {{ range = [start, stop(, step)] }} of integers")
        return list(range(*r))
    if not isinstance(values, list):
        raise ValueError(f"{path}: grid.{key} must be a list of values, got {values!r}")
    return values


# -- running --------------------------------------------------------------------------------------

@dataclass
class SweepOutcome:
    """What a sweep did: points by status, and the figures of this invocation."""

    points: list[Point]
    status: dict[str, str] = field(default_factory=dict)  # id -> ok | failed | skipped
    errors: dict[str, str] = field(default_factory=dict)
    worker: dict[str, dict] = field(default_factory=dict)  # id -> where and how the point ran
    engine: str = ""
    workers: int = 0
    wall_s: float = 0.0
    ran: int = 0

    @property
    def counts(self) -> dict[str, int]:
        out = {"ok": 0, "failed": 0, "skipped": 0}
        for s in self.status.values():
            out[s] = out.get(s, 0) + 1
        return out


class _Progress:
    """done / running / failed / pending, on one rewritten line on a terminal, else a line per change."""

    def __init__(self, total: int, skipped: int, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.skipped = total, skipped
        self.done = self.failed = self.running = 0
        self.t0 = time.perf_counter()

    def update(self, *, running: int | None = None, done: int = 0, failed: int = 0, note: str = "") -> None:
        self.done += done
        self.failed += failed
        self.running = max(0, self.running - done - failed) if running is None else running
        pending = self.total - self.skipped - self.done - self.failed - self.running
        line = (f"sweep: {self.done + self.skipped}/{self.total} done ({self.skipped} from earlier), "
                f"{self.running} running, {self.failed} failed, {pending} pending  "
                f"[{time.perf_counter() - self.t0:.0f} s]")
        if self.tty:
            self.stream.write("\r\x1b[K" + line + (f"\n  {note}\n" if note else ""))
        elif done or failed or note:
            self.stream.write(line + (f"  {note}" if note else "") + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def report_path(out_dir: Path, point: Point, failed: bool = False) -> Path:
    return out_dir / "points" / (f"{point.id}.failed.json" if failed else f"{point.id}.json")


def run_sweep(spec: SweepSpec, out_dir: str | os.PathLike, run_point: Callable[[dict], dict], *,
              engine: str = "auto", workers: int = 0, address: str | None = None,
              init_worker: Callable[[], None] | None = None, progress_stream=None) -> SweepOutcome:
    """Run every point of ``spec`` that has no report in ``out_dir`` yet; write one report per
    point (``points/<id>.json``, or ``points/<id>.failed.json`` with the error) and the summary
    (``summary.csv``, ``sweep.json``).

    run_point(task) -> {"status": "ok", "report": {...}} or {"status": "failed", "error": str, ...}:
    a module-level function (it is pickled by reference), run in worker processes. engine: "ray",
    "pool" (a local process pool) or "auto" (Ray when installed). workers: processes (local Ray's
    CPUs); 0: this machine's cores. address: an existing Ray cluster to join.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if engine == "auto":
        engine = "ray" if _ray_available() else "pool"
    if engine == "ray" and not _ray_available():
        raise ValueError("engine ray: ray is not installed (pip install 'neurosplit[cluster]')")
    if address and engine != "ray":
        raise ValueError("--address joins a Ray cluster: it needs the ray engine")
    out_dir = Path(out_dir)
    points = spec.points()
    outcome = SweepOutcome(points, engine=engine)
    todo = []
    for p in points:
        if report_path(out_dir, p).exists():
            outcome.status[p.id] = "skipped"
        else:
            todo.append(p)
    progress = _Progress(len(points), len(points) - len(todo), progress_stream)
    t0 = time.perf_counter()

    def finished(point: Point, result: dict) -> None:
        if "worker" in result:
            outcome.worker[point.id] = result["worker"]
        if result.get("status") == "ok":
            write_report(report_path(out_dir, point), result["report"])
            report_path(out_dir, point, failed=True).unlink(missing_ok=True)
            outcome.status[point.id] = "ok"
            progress.update(done=1)
        else:
            error = result.get("error", "unknown error")
            write_report(report_path(out_dir, point, failed=True),
                         {"point": {"id": point.id, "command": point.command, "options": point.options},
                          "status": "failed", **{k: v for k, v in result.items() if k not in ("status", "worker")}})
            outcome.status[point.id] = "failed"
            outcome.errors[point.id] = error
            progress.update(failed=1, note=f"point {point.id} failed: {error}")

    tasks = [(p, {"command": p.command, "options": p.options, "id": p.id}) for p in todo]
    if tasks:
        if engine == "ray":
            outcome.workers = _run_ray(tasks, run_point, finished, progress, workers, address)
        else:
            outcome.workers = _run_pool(tasks, run_point, finished, progress, workers or os.cpu_count() or 1,
                                        init_worker)
    progress.close()
    outcome.wall_s = time.perf_counter() - t0
    outcome.ran = len(tasks)
    _write_summary(out_dir, spec, outcome)
    return outcome


def _ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _run_pool(tasks, run_point, finished, progress: _Progress, workers: int, init_worker) -> int:
    """A local process pool (spawned workers). A worker that dies (out of memory, a crash) breaks
    the pool: it is rebuilt and the points in flight are run again, except a point that was
    running during two breaks, which is reported failed."""
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Queue()  # workers say which point they start, so "running" is exact
    suspects: dict[str, int] = {}
    pending = list(tasks)
    while pending:
        round_started: set[str] = set()
        round_done: set[str] = set()
        broken: list = []
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init,
                                    initargs=(started, init_worker)) as pool:
            futures = {pool.submit(_pool_task, run_point, task): (point, task) for point, task in pending}
            pending = []
            not_done = set(futures)
            while not_done:
                done, not_done = cf.wait(not_done, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                round_started |= _drain(started)
                for fut in done:
                    point, task = futures[fut]
                    try:
                        result = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken.append((point, task))
                        continue
                    except Exception as exc:  # the result did not come back (e.g. not picklable)
                        result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    round_done.add(point.id)
                    finished(point, result)
                progress.update(running=len(round_started - round_done - {p.id for p, _ in broken}))
        round_started |= _drain(started)
        for point, task in broken:
            if point.id in round_started:  # it was running when a worker died
                suspects[point.id] = suspects.get(point.id, 0) + 1
                if suspects[point.id] >= 2:
                    finished(point, {"status": "failed", "error": "its worker process died twice "
                                     "(out of memory, or a crash in compiled code?)"})
                    continue
            pending.append((point, task))
        progress.update(running=0)
    return workers


def _pool_init(started, init_worker) -> None:
    global _STARTED
    _STARTED = started
    if init_worker is not None:
        init_worker()


_STARTED = None


def _pool_task(run_point, task: dict) -> dict:
    _STARTED.put(task["id"])
    return run_point(task)


def _drain(q) -> set[str]:
    out = set()
    while True:
        try:
            out.add(q.get_nowait())
        except queue.Empty:
            return out


def _run_ray(tasks, run_point, finished, progress: _Progress, workers: int, address: str | None) -> int:
    """Each point is a Ray task (one CPU). At most as many are in flight as the cluster has CPUs,
    so the ones in flight are the ones running."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_retries=1)(run_point)
        queue_ = list(tasks)
        in_flight: dict = {}
        while queue_ or in_flight:
            while queue_ and len(in_flight) < slots:
                point, task = queue_.pop(0)
                in_flight[remote.remote(task)] = point
            progress.update(running=len(in_flight))
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                point = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died or the task could not run
                    result = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                finished(point, result)
        return slots
    finally:
        if started_here:
            ray.shutdown()


def comparable(report):
    """A report without its TIMING_KEYS (at any depth): equal for two runs of the same point."""
    if isinstance(report, dict):
        return {k: comparable(v) for k, v in report.items() if k not in TIMING_KEYS}
    if isinstance(report, list):
        return [comparable(v) for v in report]
    return report


# -- summary --------------------------------------------------------------------------------------

def summary_rows(out_dir: str | os.PathLike, spec: SweepSpec) -> list[dict]:
    """One row per point of the spec: id, status, the grid values, the report's headline figures."""
    out_dir = Path(out_dir)
    rows = []
    for p in spec.points():
        row = {"id": p.id}
        row.update({k: p.options[k] for k in spec.grid})
        ok, failed = report_path(out_dir, p), report_path(out_dir, p, failed=True)
        if ok.exists():
            report = json.loads(ok.read_text())
            row["status"] = "ok"
            for key in POINT_FIELDS:
                if key in report:
                    value = report[key]
                    row[key] = value[-1] if isinstance(value, list) and value else value
            row["error"] = ""
        elif failed.exists():
            row["status"] = "failed"
            row["error"] = json.loads(failed.read_text()).get("error", "")
        else:
            row["status"] = "missing"
            row["error"] = ""
        rows.append(row)
    return rows


def _columns(rows: list[dict]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols and k != "error"]
    return cols + ["error"]


def summary_table(rows: list[dict], max_rows: int = 40) -> str:
    """The summary as aligned text (hashes cut to 12 characters; at most ``max_rows`` rows)."""
    if not rows:
        return "(no points)"
    cols = _columns(rows)

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, str) and len(v) == 64:
            return v[:12]
        return str(v) if v is not None else ""

    shown = rows if len(rows) <= max_rows else rows[:max_rows]
    table = [[c for c in cols]] + [[cell(r.get(c, "")) for c in cols] for r in shown]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in table]
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more rows in summary.csv")
    return "\n".join(lines)


def _write_summary(out_dir: Path, spec: SweepSpec, outcome: SweepOutcome) -> None:
    rows = summary_rows(out_dir, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = _columns(rows)
    tmp = out_dir / "summary.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out_dir / "summary.csv")
    write_report(out_dir / "sweep.json", {
        "spec": {"source": spec.source, "command": spec.command, "options": spec.options, "grid": spec.grid},
        "engine": outcome.engine, "workers": outcome.workers, "points": len(outcome.points),
        "counts": outcome.counts, "ran": outcome.ran, "wall_s": outcome.wall_s,
        "points_per_minute": 60.0 * outcome.ran / outcome.wall_s if outcome.ran and outcome.wall_s else None,
        "errors": outcome.errors, "worker": outcome.worker,
    })
