"""The shape of the code base: imports point one way; README and CI run the same test command."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("protocol", "chip", "host", "actors")
ALLOWED = {"protocol": set(), "chip": {"protocol"}, "host": {"protocol", "chip"},
           "actors": {"protocol", "chip", "host", "trio"}}
COMPOSITION_ROOT = ROOT / "host" / "cli"  # the console script's package may start actors


def _imports(path: Path, pkg: str) -> set[str]:
    """Top-level neurosplit packages (and trio) a module imports, absolute or relative."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2:  # from ..chip import x  /  from .. import actors
                names = [node.module or ""] if node.module else [a.name for a in node.names]
            elif node.level == 1:
                names = [pkg]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "neurosplit" and len(parts) > 1:
                parts = parts[1:]
            if parts[0] in PACKAGES or parts[0] == "trio":
                found.add(parts[0])
    return found


def test_imports_point_one_way():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if COMPOSITION_ROOT in path.parents:
                continue
            wrong = _imports(path, pkg) & ((set(ALLOWED) | {"trio"}) - ALLOWED[pkg] - {pkg})
            assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "python -m pytest -q"
    assert command in readme.split("\n\n## ")[0] or command in readme[:3000]
    assert ci.strip().splitlines()[-1].endswith(command)
