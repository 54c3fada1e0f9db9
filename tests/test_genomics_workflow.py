"""``bigeval reliability --genotypes``: G*⁻¹ and A22⁻¹ built from a genotype store give the
same reliabilities as the triplet files built from the dense twins (tabular A, VanRaden G,
numpy-free Cholesky inverses of :mod:`tests.test_reliability`), joined by animal ID."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_genotypes import write_csv
from test_reliability import write_inputs

from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.genotypes import import_genotypes
from bigeval.simulate import SimulationConfig, simulate


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    folder = tmp_path_factory.mktemp("genomics")
    pop = simulate(SimulationConfig(n_animals=1_500, n_genotyped=60, n_snps=1_000, n_years=8,
                                    seed=12))
    # blend 0.3: Part II's matrix positive definite on such small data (no warning)
    files = write_inputs(pop, folder / "files", shuffle_seed=3, blend=0.3)
    ids = np.asarray(pop.genotyped, dtype=str)
    perm = np.random.default_rng(4).permutation(len(ids))  # store rows in another order
    csv = write_csv(folder / "g.csv", pop.genotypes[perm], ids[perm])
    files["store"] = import_genotypes(csv, folder / "g.zarr", chunks=(32, 128))
    return files


def _run(files, out, *extra):
    argv = ["reliability", "--pedigree", str(files["pedigree"]), "--records",
            str(files["records"]), "--h2", "0.3", "--out", str(out), "--interbull",
            str(files["interbull"]), "--no-progress", "--rounds", "30", *extra]
    assert main(argv) == 0
    return pd.read_csv(out / "reliability.csv").set_index("animal").sort_index()


def test_reliability_genotypes__equals_triplet_path(population, tmp_path):
    f = population
    via_triplets = _run(f, tmp_path / "a", "--genotyped", str(f["genotyped"]), "--ginv",
                        str(f["ginv"]), "--a22inv", str(f["a22inv"]))
    via_store = _run(f, tmp_path / "b", "--genotypes", str(f["store"]), "--no-qc",
                     "--blend", "0.3", "--a22inv-method", "sparse")
    assert via_store.index.equals(via_triplets.index)
    assert via_store["rel_genomic"].notna().sum() == 60
    for col in via_store.columns:
        np.testing.assert_allclose(via_store[col], via_triplets[col], rtol=1e-9, atol=1e-11,
                                   err_msg=col)
    summary = (tmp_path / "b" / "summary.txt").read_text()
    assert "no QC" in summary and "tuned to A22" in summary and "0.7 G + 0.3 A22" in summary
    assert not (tmp_path / "b" / "qc_report.csv").exists()


def test_reliability_genotypes__qc_report_and_subset(population, tmp_path):
    f = population
    keep = pd.read_csv(f["genotyped"], header=None)[0].astype(str).tolist()[:40]
    listed = tmp_path / "gt.txt"
    listed.write_text("\n".join(keep) + "\n")
    table = _run(f, tmp_path / "c", "--genotypes", str(f["store"]), "--genotyped", str(listed),
                 "--min-maf", "0.02", "--blend", "0.3", "--a22inv-method", "dense")
    genomic = table.index[table["rel_genomic"].notna()]
    assert set(genomic) <= set(keep) and len(genomic) >= 35
    report = pd.read_csv(tmp_path / "c" / "qc_report.csv")
    assert list(report.columns) == ["kind", "id", "reason", "value", "threshold"]
    assert "QC (SNP call rate >= 0.9" in (tmp_path / "c" / "summary.txt").read_text()


def test_reliability_genotypes__bad_combinations(population, tmp_path):
    f = population
    with pytest.raises(InputError, match="not both"):
        from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

        run_reliability(ReliabilityJob(pedigree=f["pedigree"], records=f["records"],
                                       out=tmp_path, h2=0.3, genotypes=f["store"],
                                       ginv=f["ginv"], a22inv=f["a22inv"],
                                       genotyped=f["genotyped"]))
    # a pedigree without some genotyped animals: named, with the store, before G is computed
    ped = pd.read_csv(f["pedigree"], sep=" ", header=None, dtype=str)
    gt = set(pd.read_csv(f["genotyped"], header=None, dtype=str)[0])
    young = [a for a in ped[0] if a in gt and a not in set(ped[1]) | set(ped[2])]
    small = tmp_path / "ped.txt"
    ped[~ped[0].isin(young[:3])].to_csv(small, sep=" ", header=False, index=False)
    rec = pd.read_csv(f["records"], sep=" ", header=None, dtype=str)
    recs = tmp_path / "rec.txt"
    rec[~rec[0].isin(young[:3])].to_csv(recs, sep=" ", header=False, index=False)
    with pytest.raises(InputError, match=r"g\.zarr.*3 genotyped animal\(s\) are not in the "
                                         r"pedigree"):
        run_reliability(ReliabilityJob(pedigree=small, records=recs, out=tmp_path / "x",
                                       h2=0.3, genotypes=f["store"]))


def test_reliability_triplets__out_of_core_writes_the_same_files(population, tmp_path):
    """One driver: out of core, the genomic run writes what the in-memory run writes (the
    genomic flags too), with the same bytes."""
    f = population
    args = ("--genotyped", str(f["genotyped"]), "--ginv", str(f["ginv"]), "--a22inv",
            str(f["a22inv"]))
    mem = _run(f, tmp_path / "mem", *args, "--no-out-of-core")
    disk = _run(f, tmp_path / "ooc", *args, "--out-of-core")
    pd.testing.assert_frame_equal(disk, mem)
    names = {p.name for p in (tmp_path / "mem").iterdir() if not p.name.startswith(".")}
    assert "genomic_flags.csv" in names
    assert names == {p.name for p in (tmp_path / "ooc").iterdir() if not p.name.startswith(".")}
    assert ((tmp_path / "ooc" / "genomic_flags.csv").read_bytes()
            == (tmp_path / "mem" / "genomic_flags.csv").read_bytes())
