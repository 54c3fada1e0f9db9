"""Dense work that will not fit is refused before it starts, with the numbers."""

from __future__ import annotations

import numpy as np
import pytest

from bigeval import ResourceError, _resources
from bigeval.cli import main
from bigeval.reliability.exact import exact_reliability


def test_check_dense__refuses_with_sizes():
    with pytest.raises(ResourceError, match=r"needs 7\.45 GiB .* only 1\.00 GiB"):
        _resources.check_dense(10_000, copies=10, what="a test matrix", available=2**30)
    assert _resources.check_dense(100, what="small", available=2**30) == 80_000


def test_exact_reliability__too_large_is_refused(monkeypatch):
    monkeypatch.setattr(_resources, "available_memory", lambda: 64)
    sire = np.array([-1, -1, 0])
    dam = np.array([-1, -1, 1])
    with pytest.raises(ResourceError, match="exact MME"):
        exact_reliability(sire, dam, np.array([2]), np.array([0]), 2.0)


def test_cli_exact__refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_resources, "available_memory", lambda: 64)
    (tmp_path / "ped.txt").write_text("a 0 0\nb 0 0\nc a b\n")
    (tmp_path / "rec.txt").write_text("c g\nb g\n")
    rc = main(["reliability", "--pedigree", str(tmp_path / "ped.txt"), "--records",
               str(tmp_path / "rec.txt"), "--alpha", "2", "--exact", "--out",
               str(tmp_path / "out")])
    assert rc == 2
    assert "exact MME inverse" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
