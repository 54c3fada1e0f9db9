"""The repository's lint configuration holds ([tool.ruff] in pyproject.toml): pyflakes and
pycodestyle over the package, the tests, the benchmarks, the docs scripts and the examples."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff__the_repository_is_clean():
    exe = Path(sys.executable).parent / "ruff"
    ruff = str(exe) if exe.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (./install.sh test installs it)")
    proc = subprocess.run([ruff, "check", "--no-cache", "bigeval", "tests", "benchmarks", "docs",
                           "examples", "cluster"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
