"""The import-linter contracts in pyproject.toml fail when a forbidden import is added: each
case copies the package, adds one import, and runs `lint-imports` on the copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "gcd", tmp_path / "gcd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_unchanged_tree_keeps_every_contract(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/plan.py", "import gcd.host.lock", "layers"),
        ("core/evaluate.py", "import gcd.engine.client", "layers"),
        ("engine/snapshot.py", "import gcd.cycle", "layers"),
        ("host/disk.py", "import gcd.engine.client", "layers"),
        ("core/records.py", "import pydantic", "the core is pure"),
        ("core/units.py", "import yaml", "the core is pure"),
        ("errors.py", "import structlog", "the core is pure"),
        ("core/kinds/images.py", "import gcd.core.kinds.second", "kinds are independent"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    (tree / "gcd/core/kinds/second.py").write_text('"""A second kind, for the contract."""\n')
    path = tree / "gcd" / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = lint(tree)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    # An import of the shell from the core may break the purity contract too, indirectly.
    assert any(row.startswith(contract) for row in broken), result.stdout
