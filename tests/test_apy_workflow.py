"""``bigeval reliability --genotypes --genomic-inverse apy``: with every animal in the core
APY is G*⁻¹ itself, so the run equals the full path; with fewer, the published values are
valid and the memory of the choice is printed before the work."""

from __future__ import annotations

import numpy as np
import pytest
from test_genomics_workflow import _run, population  # noqa: F401 (the fixture)

from bigeval.apy import resolve_genomic_inverse
from bigeval.cli import main
from bigeval.errors import InputError, ResourceError


def test_reliability_apy__full_core_equals_full_path(population, tmp_path, capsys):  # noqa: F811
    f = population
    # no tuning: the full path still tunes before blending (being changed to blend first)
    common = ("--genotypes", str(f["store"]), "--no-qc", "--blend", "0.3", "--no-tune")
    full = _run(f, tmp_path / "full", *common, "--genomic-inverse", "full")
    apy = _run(f, tmp_path / "apy", *common, "--genomic-inverse", "apy", "--apy-core", "60")
    err = capsys.readouterr().err
    assert "genomic inverse: apy (apy)" in err and "APY G*⁻¹ of 60 genotyped animals, 60 core" \
        in err
    assert apy.index.equals(full.index)
    for col in full.columns:
        np.testing.assert_allclose(apy[col], full[col], rtol=1e-8, atol=1e-10, err_msg=col)
    assert "APY G of 60 animals (60 core)" in (tmp_path / "apy" / "summary.txt").read_text()


def test_reliability_apy__smaller_core_is_valid(population, tmp_path):  # noqa: F811
    f = population
    t = _run(f, tmp_path / "a", "--genotypes", str(f["store"]), "--no-qc", "--blend", "0.3",
             "--genomic-inverse", "apy", "--apy-core", "20")
    rel = t["rel_genomic"].dropna()
    assert len(rel) == 60 and rel.between(0, 1, inclusive="left").all()
    assert t["rel_final"].between(0, 1, inclusive="left").all()


def test_reliability_apy__refusals(population, tmp_path, capsys):  # noqa: F811
    f = population
    base = ["reliability", "--pedigree", str(f["pedigree"]), "--records", str(f["records"]),
            "--h2", "0.3", "--no-progress", "--genotypes", str(f["store"]), "--no-qc",
            "--genomic-inverse", "apy"]
    for extra, message in ((["--exact"], "exact reliabilities (--exact) need the full"),
                           (["--genomic-method", "certified"],
                            "certified Part II needs the dense"),
                           (["--genomic-inverse", "full", "--apy-core", "5"],
                            "--apy-core is for the APY")):
        assert main(base + ["--out", str(tmp_path / "x"), *extra]) != 0
        assert message in capsys.readouterr().err


def test_resolve_genomic_inverse__auto_by_size_and_memory():
    gib = 2**30
    assert resolve_genomic_inverse("auto", 1_000, available=8 * gib) == "full"
    assert resolve_genomic_inverse("auto", 25_000, available=1_000 * gib) == "apy"
    assert resolve_genomic_inverse("auto", 15_000, available=4 * gib) == "apy"  # 5.4 GB
    lines = []
    assert resolve_genomic_inverse("apy", 10, log=lines.append) == "apy"
    assert "full G*⁻¹ needs" in lines[0]
    with pytest.raises(ResourceError, match="use --genomic-inverse apy"):
        resolve_genomic_inverse("full", 50_000, available=8 * gib)
    with pytest.raises(InputError, match="unknown genomic inverse"):
        resolve_genomic_inverse("sparse", 10)
