"""import-linter contracts of the operator ([tool.importlinter] in pyproject.toml).

grimp (import-linter's graph builder) walks the ``ptlab`` folder on disk and cannot follow
setup.py's package_dir mapping (operator/ → ptlab.operator), so the test lays out the
installed package tree with symlinks and runs the real ``lint-imports`` on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {"operator": "operator", "algorithms": "algorithms", "trainer": "trainer_image"}


@pytest.mark.slow
def test_operator_layers_and_pure_modules(tmp_path):
    tree = tmp_path / "ptlab"
    tree.mkdir()
    for item in (ROOT / "ptlab").iterdir():
        (tree / item.name).symlink_to(item)
    for name, folder in MAPPED.items():
        (tree / name).symlink_to(ROOT / folder)
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "operator layers" in result.stdout and "0 broken" in result.stdout
