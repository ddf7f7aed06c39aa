"""The package layout's guard rails (docs/architecture.md): short modules, no symlinks, layers declared."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 400


def test_a_long_module_says_why_at_its_top() -> None:
    long = []
    for f in sorted([*ROOT.joinpath("fxmeter").rglob("*.py"), *ROOT.joinpath("rules").rglob("*.py")]):
        text = f.read_text()
        if text.count("\n") > LIMIT:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Why one long module:" not in doc:
                long.append(f"{f.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, f"over {LIMIT} lines with no 'Why one long module:' in the docstring: {long}"


def test_no_symlinks_are_tracked() -> None:
    out = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (an sdist): nothing to check
        return
    assert not [ln for ln in out.stdout.splitlines() if ln.startswith("120000")]


def test_layers_are_declared_for_import_linter() -> None:
    """`lint-imports` (run by .ci/run) checks these; here: the layers name every package of fxmeter."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in cfg["contracts"] if c["type"] == "layers")["layers"]
    packages = {p.name for p in (ROOT / "fxmeter").iterdir() if (p / "__init__.py").exists()} - {"data", "rules"}
    assert {f"fxmeter.{p}" for p in packages} <= set(layers), sorted({f"fxmeter.{p}" for p in packages} - set(layers))
    ci = (ROOT / ".ci" / "run").read_text()
    assert "lint-imports" in ci
