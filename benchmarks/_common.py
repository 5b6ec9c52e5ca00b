"""Helpers shared by the peer benchmarks: peer virtual environments, the header line, best-of timing.

A peer (Brian2, jaxsnn, ...) is installed into its own virtual environment under ``benchmarks/.peers/<name>``
(gitignored), never into the project's: peers pin their own numpy/jax and would otherwise fight ours. The
venv is made once and reused while its recorded requirements are unchanged; ``--refresh-peers`` remakes it.
This module imports only the standard library, so it is cheap to import before numba is configured.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["PEERS_DIR", "REPO_ROOT", "Peer", "best_of", "cpu_model", "find_python", "header_line",
           "git_commit", "load_average", "peer_venv", "versions_of_project", "write_json"]

REPO_ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(os.environ.get("NEUROSPLIT_PEERS_DIR", REPO_ROOT / "benchmarks" / ".peers"))
"""Where peer venvs live; NEUROSPLIT_PEERS_DIR overrides it (e.g. a cache shared between clones)."""

_MARKER = "neurosplit-peer.json"  # what a peer venv was made from, so a changed requirement remakes it


class Peer:
    """A peer's venv: ``python`` (its interpreter, a Path) and ``version`` (of the package it was made for)."""

    def __init__(self, name: str, python: Path, version: str) -> None:
        self.name, self.python, self.version = name, python, version

    def run(self, args: Sequence[str], **kw) -> subprocess.CompletedProcess:
        """Run the peer's interpreter with ``args``; ``kw`` goes to subprocess.run."""
        return subprocess.run([str(self.python), *args], **kw)


def find_python(min_version: tuple[int, int]) -> str | None:
    """An interpreter of at least ``min_version`` on this machine (ours, python3.X on PATH, pyenv), or None.

    Peers may need a newer Python than the project's (Brian2 2.11 requires >= 3.13).
    """
    if sys.version_info[:2] >= min_version:
        return sys.executable
    candidates = [shutil.which(f"python{min_version[0]}.{minor}") for minor in range(min_version[1], min_version[1] + 6)]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{min_version[0]}.*", "bin", "python3")))
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", "import sys, venv; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and tuple(int(x) for x in out.stdout.split()) >= min_version:
            return exe
    return None


def peer_venv(name: str, package: str, version: str, *, extra: Sequence[str] = (), python: str | None = None,
              refresh: bool = False) -> Peer:
    """The venv ``PEERS_DIR/name`` with ``package==version`` (plus ``extra`` requirements), made if needed.

    python: the interpreter the venv is made from (default: the one running this). Installing goes through
    the venv's own pip, so the project's environment is never touched. Progress goes to stderr.
    """
    root = PEERS_DIR / name
    exe = root / "bin" / "python"
    python = python or sys.executable
    want = {"requirements": [f"{package}=={version}", *extra], "python": os.path.realpath(python)}
    marker = root / _MARKER
    if not refresh and exe.exists() and marker.exists():
        try:
            if json.loads(marker.read_text()) == want:
                return Peer(name, exe, version)
        except (OSError, ValueError):
            pass
    print(f"[peer] making {root} with {' '.join(want['requirements'])} (Python {python}) ...", file=sys.stderr)
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
    else:
        subprocess.run([python, "-m", "venv", "--clear", str(root)], check=True)
    t0 = time.perf_counter()
    subprocess.run([str(exe), "-m", "pip", "install", "--quiet", *want["requirements"]], check=True)
    print(f"[peer] {name}: installed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    marker.write_text(json.dumps(want, indent=1))
    return Peer(name, exe, version)


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """1-minute load average (nan where unknown): timings on a busy machine are slower, so it is printed."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def header_line(versions: dict[str, str], threads: dict[str, int], seeds: dict[str, int], **extra: Any) -> str:
    """One line: versions, CPU model and logical CPUs, threads each side uses, load average, seeds."""
    parts = [" ".join(f"{k} {v}" for k, v in versions.items()),
             f"CPU {cpu_model()} ({os.cpu_count()} logical)",
             "threads " + ", ".join(f"{k} {v}" for k, v in threads.items()),
             f"load {load_average():.2f}",
             "seeds " + ", ".join(f"{k} {v}" for k, v in seeds.items())]
    parts += [f"{k} {v}" for k, v in extra.items()]
    return "# " + " | ".join(parts)


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """(best wall seconds, all wall seconds, last result) of ``repeats`` calls of ``fn`` (warm it up first)."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, result


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (parents made); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    return p


def versions_of_project() -> dict[str, str]:
    """python, neurosplit, numpy and numba versions of the running interpreter, and the git commit."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("neurosplit", "numpy", "numba"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "?"
    out["commit"] = git_commit()
    return out


def git_commit() -> str:
    """Short commit of the repository the benchmarks run from, '+dirty' if tracked files changed; '?' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    if head.returncode != 0:
        return "?"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
