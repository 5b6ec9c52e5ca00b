"""Yin-Yang EventProp: our two placements against jaxsnn's software EventProp example.

    . /work/venv/bin/activate && python -m benchmarks.eventprop_vs_jaxsnn --json out/eventprop_vs_jaxsnn.json

- jaxsnn 0.3.0 (in its own venv, ``benchmarks/.peers/jaxsnn``; it pulls jax, run on the CPU):
  ``python -m jaxsnn.examples.event.yinyang_layered_event_prop --epochs 10 --seed SEED``, its own defaults
  otherwise (100 hidden, 4992 training / 2944 test samples, batch 64, float weights, MSE on spike times). Its
  test accuracy is the "Acc: X after N epochs" line it logs (the last epoch's test accuracy); per-epoch
  test accuracies come from its "acc: X" lines.
- ours: ``neurosplit train yinyang --learning on-chip-eventprop`` and ``--learning host-eventprop`` (the
  project venv's ``neurosplit`` console script, beside ``sys.executable``) with our default settings
  (``--epochs`` only if ``--ours-epochs`` is given), each writing a JSON report whose ``test_accuracy``,
  ``wall_s`` and ``host_link_bytes_per_sample`` are read back.

Each run is a fresh process, one after the other; wall_s is that process's wall time (start-up, jit or
numba cache loading and the test pass included); ours' reports also carry the training loop's own wall_s.
The host-link bytes per training sample compare the placements: EventProp on the emulated PPU sends only
inputs and weights over the host link, host EventProp must send every spike up.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _common

JAXSNN_VERSION = "0.3.0"
JAXSNN_MODULE = "jaxsnn.examples.event.yinyang_layered_event_prop"
PLACEMENTS = ("on-chip-eventprop", "host-eventprop")

_FINAL_ACC = re.compile(r"Acc:\s*([0-9.eE+-]+)\s+after\s+(\d+)\s+epochs")
_EPOCH_ACC = re.compile(r"\bacc:\s*([0-9.eE+-]+)")


def parse_jaxsnn(text: str) -> dict:
    """Test accuracy (final, and per epoch) from the example's log; raises if the final line is missing."""
    final = _FINAL_ACC.findall(text)
    if not final:
        raise RuntimeError("jaxsnn output has no 'Acc: X after N epochs' line:\n" + text[-2000:])
    acc, epochs = final[-1]
    return {"test_accuracy": float(acc), "epochs": int(epochs),
            "test_accuracy_per_epoch": [float(a) for a in _EPOCH_ACC.findall(text)]}


def run_jaxsnn(peer: _common.Peer, epochs: int, seed: int, log_dir: Path) -> dict:
    """Run the jaxsnn example once in its venv; accuracy, wall time and its settings."""
    found = peer.run(["-c", f"import importlib.util as u; print(u.find_spec('{JAXSNN_MODULE}') is not None)"],
                     capture_output=True, text=True)
    if found.stdout.strip() != "True":
        raise RuntimeError(f"jaxsnn {peer.version} has no module {JAXSNN_MODULE}: {found.stderr[-500:]}")
    args = ["-m", JAXSNN_MODULE, "--epochs", str(epochs), "--seed", str(seed)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    print(f"[run] jaxsnn {' '.join(args)}", file=sys.stderr)
    t0 = time.perf_counter()
    proc = peer.run(args, capture_output=True, text=True, env=env, cwd=log_dir)
    wall = time.perf_counter() - t0
    (log_dir / "jaxsnn.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"jaxsnn example failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    res = parse_jaxsnn(proc.stdout + proc.stderr)
    defaults = peer.run(["-c", f"from {JAXSNN_MODULE} import get_parser; import json; "
                               "print(json.dumps(vars(get_parser().parse_args([]))))"],
                        capture_output=True, text=True, env=env)
    settings = json.loads(defaults.stdout.strip().splitlines()[-1]) if defaults.returncode == 0 else {}
    settings.update(epochs=epochs, seed=seed)
    train = settings.get("trainset_size", 0) // max(settings.get("batch_size", 1), 1) * settings.get("batch_size", 0)
    return {"version": peer.version, "command": f"python {' '.join(args)}", **res, "wall_s": wall,
            "train_samples_seen": train * epochs, "settings": settings}


def neurosplit_command() -> list[str]:
    """The project venv's ``neurosplit`` console script, or the same entry point through this interpreter."""
    script = Path(sys.executable).with_name("neurosplit")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from neurosplit.host.cli import main; sys.exit(main(sys.argv[1:]))"]


def run_ours(learning: str, epochs: int | None, seed: int, chip_seed: int, log_dir: Path) -> dict:
    """Run ``neurosplit train yinyang --learning LEARNING`` once; figures from its JSON report."""
    report = log_dir / f"{learning}.json"
    args = ["train", "yinyang", "--learning", learning, "--seed", str(seed), "--chip-seed", str(chip_seed),
            "--report", str(report)] + (["--epochs", str(epochs)] if epochs is not None else [])
    print(f"[run] neurosplit {' '.join(args)}", file=sys.stderr)
    t0 = time.perf_counter()
    proc = subprocess.run([*neurosplit_command(), *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (log_dir / f"{learning}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"neurosplit train failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    rep = json.loads(report.read_text())
    cfg = rep.get("config", {})
    n_epochs = cfg.get("epochs", epochs)
    return {"learning": learning, "command": f"neurosplit {' '.join(args)}",
            "test_accuracy": rep["test_accuracy"], "wall_s": wall, "report_wall_s": rep.get("wall_s"),
            "samples_per_s": rep.get("samples_per_s"), "epochs": n_epochs,
            "train_samples_seen": cfg["n_train"] * n_epochs if "n_train" in cfg else None,
            "host_link_bytes_per_sample": rep["host_link_bytes_per_sample"],
            "traffic": rep.get("traffic"), "weights_sha256": rep.get("weights_sha256"),
            "test_accuracy_per_epoch": rep.get("test_accuracy_per_epoch"), "epoch_wall_s": rep.get("epoch_wall_s"),
            "train_accuracy": rep.get("train_accuracy"), "config": cfg}


def time_to_accuracy(run: dict, target: float) -> tuple[int, float] | None:
    """(first epoch whose test accuracy reaches ``target``, the process's wall seconds had it stopped
    after that epoch: its whole wall time minus the epochs after it), or None if it never does."""
    acc, walls = run.get("test_accuracy_per_epoch") or [], run.get("epoch_wall_s") or []
    for i, a in enumerate(acc):
        if a >= target and len(walls) == len(acc):
            return i + 1, run["wall_s"] - float(sum(walls[i + 1:]))
    return None


def print_table(jax: dict, ours: dict[str, dict]) -> None:
    print(f"{'run':<46} {'test acc':>8} {'epochs':>6} {'train samples':>13} {'wall s':>8} {'host link B/sample':>19}")
    print(f"{'jaxsnn ' + jax['version'] + ' yinyang_layered_event_prop':<46} {jax['test_accuracy']:>8.3f} "
          f"{jax['epochs']:>6} {jax['train_samples_seen']:>13,} {jax['wall_s']:>8.1f} {'-':>19}")
    for learning, r in ours.items():
        seen = f"{r['train_samples_seen']:,}" if r["train_samples_seen"] else "?"
        print(f"{'neurosplit ' + learning:<46} {r['test_accuracy']:>8.3f} {r['epochs']:>6} {seen:>13} "
              f"{r['wall_s']:>8.1f} {r['host_link_bytes_per_sample']:>19,.0f}")
    on, host = ours["on-chip-eventprop"], ours["host-eventprop"]
    ratio = host["host_link_bytes_per_sample"] / on["host_link_bytes_per_sample"]
    print()
    print(f"host link per training sample: on-chip EventProp {on['host_link_bytes_per_sample']:,.0f} B, "
          f"host EventProp {host['host_link_bytes_per_sample']:,.0f} B ({ratio:.1f}x more on the host placement)")
    same = on["weights_sha256"] is not None and on["weights_sha256"] == host["weights_sha256"]
    print(f"final weights of the two placements bit-identical: {'yes' if same else 'NO'}")
    jacc = jax["test_accuracy"]
    for learning, r in ours.items():
        d = r["test_accuracy"] - jacc
        print(f"{learning}: test accuracy {d:+.3f} vs jaxsnn ({'ours better' if d > 0 else 'ours WORSE' if d < 0 else 'equal'}), "
              f"wall {r['wall_s'] / jax['wall_s']:.2f}x jaxsnn's")
        reached = time_to_accuracy(r, jacc)
        r["time_to_peer_accuracy"] = None if reached is None else {"epoch": reached[0], "wall_s": reached[1]}
        if reached is not None:
            print(f"{learning}: reaches jaxsnn's final {jacc:.3f} at epoch {reached[0]}, after {reached[1]:.1f} s "
                  f"({jax['wall_s'] / reached[1]:.1f}x faster than jaxsnn's {jax['wall_s']:.1f} s to it)")
        else:
            print(f"{learning}: never reaches jaxsnn's final {jacc:.3f}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.eventprop_vs_jaxsnn", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="seed of both trainings (data, initialisation)")
    p.add_argument("--chip-seed", type=int, default=0, help="our emulated die")
    p.add_argument("--jaxsnn-epochs", type=int, default=10, help="epochs of the jaxsnn example")
    p.add_argument("--ours-epochs", type=int, default=None, help="epochs of ours (default: our own default)")
    p.add_argument("--logs", metavar="DIR", help="keep the runs' logs and reports here (default: a temp dir)")
    p.add_argument("--refresh-peers", action="store_true", help="remake the jaxsnn venv")
    p.add_argument("--json", metavar="PATH", help="write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    peer = _common.peer_venv("jaxsnn", "jaxsnn", JAXSNN_VERSION, refresh=args.refresh_peers)
    jax_version = peer.run(["-c", "import jax; print(jax.__version__)"], capture_output=True, text=True,
                           env={**os.environ, "JAX_PLATFORMS": "cpu"}).stdout.strip() or "?"
    with tempfile.TemporaryDirectory(prefix="neurosplit_eventprop_") as tmp:
        log_dir = Path(args.logs) if args.logs else Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        load_before = _common.load_average()
        jax = run_jaxsnn(peer, args.jaxsnn_epochs, args.seed, log_dir)
        ours = {learning: run_ours(learning, args.ours_epochs, args.seed, args.chip_seed, log_dir)
                for learning in PLACEMENTS}

    versions = {**_common.versions_of_project(), "jaxsnn": JAXSNN_VERSION, "jax": jax_version}
    threads = {"ours": 1, "jaxsnn": f"XLA CPU, up to {os.cpu_count()}"}
    seeds = {"seed": args.seed, "chip_seed": args.chip_seed}
    print(_common.header_line(versions, threads, seeds, load_before=f"{load_before:.2f}"))
    s = jax["settings"]
    c = ours["on-chip-eventprop"]["config"]
    print(f"# jaxsnn: {s.get('hidden_size')} hidden, {s.get('trainset_size')} train / {s.get('testset_size')} test, "
          f"batch {s.get('batch_size')}, float weights, MSE spike-time loss, ideal neurons | ours (defaults): "
          f"{c.get('n_hidden')} hidden, {c.get('n_train')} train / {c.get('n_test')} test, batch {c.get('batch_size')}, "
          f"6-bit weights, {c.get('loss')} loss, mismatched calibrated die (chip seed {args.chip_seed})")
    print()
    print_table(jax, ours)
    if args.json:
        on = ours["on-chip-eventprop"]
        doc = {
            "benchmark": "eventprop_vs_jaxsnn",
            "header": {"versions": versions, "cpu": _common.cpu_model(), "logical_cpus": os.cpu_count(),
                       "threads": threads, "load_before": load_before, "load_after": _common.load_average(),
                       **seeds},
            "ours": {"learning": on["learning"], "test_accuracy": on["test_accuracy"], "wall_s": on["wall_s"],
                     "host_link_bytes_per_sample": {k: v["host_link_bytes_per_sample"] for k, v in ours.items()},
                     "placements": ours},
            "jaxsnn": jax,
        }
        print(f"json: {_common.write_json(args.json, doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
