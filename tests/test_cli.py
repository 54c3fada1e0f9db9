"""The command line: the contract of ``bigeval reliability`` and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bigeval.cli import main

COLUMNS = ["animal", "erc_records", "erc_pedigree", "rel_pedigree", "rel_genomic", "erc_final",
           "rel_final"]


@pytest.fixture()
def files(tmp_path):
    # A hand-checkable family: two founders with a son and a daughter, the son with records.
    (tmp_path / "ped.txt").write_text("s1 0 0\nd1 0 0\nkid1 s1 d1\nkid2 s1 d1\n")
    (tmp_path / "rec.txt").write_text("kid1 g1\nkid2 g1\nkid1 g2\nd1 g2\n")
    (tmp_path / "ib.txt").write_text("s1 0.9\nd1 0.6\n")  # two: a lone bull has ERC 0
    return tmp_path


def test_reliability__writes_contract_columns_with_original_ids(files, capsys):
    out = files / "out"
    rc = main(["reliability", "--pedigree", str(files / "ped.txt"), "--records",
               str(files / "rec.txt"), "--h2", "0.25", "--out", str(out), "--interbull",
               str(files / "ib.txt"), "--exact", "--no-progress"])
    assert rc == 0
    table = pd.read_csv(out / "reliability.csv")
    assert table.columns.tolist() == COLUMNS + ["rel_exact", "exact_below_zero"]
    assert table["rel_exact"].between(0, 1, inclusive="left").all()
    assert sorted(table["animal"]) == ["d1", "kid1", "kid2", "s1"]
    assert table["rel_genomic"].isna().all()
    np.testing.assert_array_equal(table["rel_final"], table["rel_pedigree"])
    assert (out / "summary.txt").read_text().startswith("bigeval")
    assert "Part I: 100 rounds" in capsys.readouterr().out


def test_reliability__tol_reports_rounds_used(files, capsys):
    rc = main(["reliability", "--pedigree", str(files / "ped.txt"), "--records",
               str(files / "rec.txt"), "--alpha", "3", "--out", str(files / "o2"),
               "--tol", "1e-9", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "converged" in text and "Part I: 100 rounds" not in text


@pytest.mark.parametrize(
    "ped, rec, expect",
    [
        ("s1 0 0\nkid s1\n", "kid g\n", "ped.txt, line 2"),
        ("s1 s1 0\n", "s1 g\n", "its own sire"),
        ("s1 0 0\nkid s1 0\nkid 0 s1\n", "kid g\n", "conflicting pedigree rows"),
        ("s1 0 0\n", "s1 g\nstranger g\n", "rec.txt, line 2"),
    ],
)
def test_reliability__bad_input_stops_and_writes_nothing(tmp_path, capsys, ped, rec, expect):
    (tmp_path / "ped.txt").write_text(ped)
    (tmp_path / "rec.txt").write_text(rec)
    out = tmp_path / "out"
    rc = main(["reliability", "--pedigree", str(tmp_path / "ped.txt"), "--records",
               str(tmp_path / "rec.txt"), "--h2", "0.3", "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert expect in err and "error" in err
    assert not out.exists()


def test_reliability__previous_results_survive_a_failed_run(files):
    out = files / "out"
    args = ["reliability", "--pedigree", str(files / "ped.txt"), "--records",
            str(files / "rec.txt"), "--h2", "0.25", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    before = (out / "reliability.csv").read_bytes()
    (files / "rec.txt").write_text("kid1 g1\nnobody g1\n")
    assert main(args) == 2
    assert (out / "reliability.csv").read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "published.json", "reliability.csv", "summary.txt"]


@pytest.mark.parametrize("flags", [["--h2", "1.2"], ["--alpha", "0"], ["--alpha", "-1"],
                                   ["--h2", "0.3", "--repeatability", "0.2"],
                                   ["--alpha", "2", "--tau", "0"]])
def test_reliability__bad_parameters(files, capsys, flags):
    rc = main(["reliability", "--pedigree", str(files / "ped.txt"), "--records",
               str(files / "rec.txt"), "--out", str(files / "o3"), *flags])
    assert rc == 2
    assert "error" in capsys.readouterr().err


# a small demo population has animals whose exact 1 − PEV/σa² is below 0 (warned, published 0)
@pytest.mark.filterwarnings("ignore:.*reliability 1 − PEV/σa² below 0:bigeval.BigevalWarning")
def test_simulate_and_demo__run_end_to_end(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "sim"), "--animals", "800",
                 "--genotyped", "50", "--snps", "300"]) == 0
    assert (tmp_path / "sim" / "pedigree.txt").exists()
    assert main(["demo", "--out", str(tmp_path / "demo"), "--animals", "1500", "--genotyped",
                 "80", "--snps", "500"]) == 0
    text = (tmp_path / "demo" / "summary.txt").read_text()
    assert "Part I vs exact PBLUP" in text and "Part III" in text
    table = pd.read_csv(tmp_path / "demo" / "reliability.csv")
    assert table["rel_genomic"].notna().sum() == 80
    for col in ("rel_pedigree", "rel_genomic", "rel_final", "rel_exact"):
        assert table[col].dropna().between(0, 1, inclusive="left").all(), col
