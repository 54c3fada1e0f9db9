"""Tests of bigeval.genomic.qc: call rates, MAF, monomorphic SNPs and duplicated animals."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigeval.errors import InputError
from bigeval.genomic.qc import QCOptions, qc

N, M = 40, 300
OFF = QCOptions(min_call_rate_snp=0.0, min_call_rate_animal=0.0, min_maf=0.0,
                remove_monomorphic=False, max_concordance=0.0)


def _genotypes(seed=2):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.8, M)
    return rng.binomial(2, p, (N, M)).astype(np.int8)


def _ids(n, prefix):
    return np.array([f"{prefix}{i}" for i in range(n)])


def _reasons(result):
    return sorted(zip(result.report["id"], result.report["reason"]))


def _slow_concordance(G, i, j):
    both = (G[i] >= 0) & (G[j] >= 0)
    return np.mean(G[i, both] == G[j, both])


@pytest.mark.parametrize("chunks", [(40, 300), (7, 64), (13, 1)])
def test_qc__each_check_removes_what_it_should(chunks):
    G = _genotypes()
    G[:, 3] = 2  # monomorphic
    G[:, 5] = 0
    G[0, 5] = 1  # MAF 1/80 = 0.0125 < 0.05
    G[:6, 7] = -1  # call rate 34/40 = 0.85 < 0.9
    G[9, :40] = -1  # animal call rate (299 - 40)/299 < 0.9 after SNP 7 is gone
    G[21] = G[11]
    G[21, :2] = (G[11, :2] + 1) % 3  # a duplicate: concordance 297/299 > 0.99
    result = qc(da.from_array(G, chunks=chunks), _ids(N, "a"), _ids(M, "s"))
    assert _reasons(result) == [("a21", "duplicate"), ("a9", "animal_call_rate"),
                                ("s3", "monomorphic"), ("s5", "maf"), ("s7", "snp_call_rate")]
    assert result.animals.tolist() == [i for i in range(N) if i not in (9, 21)]
    assert result.snps.tolist() == [j for j in range(M) if j not in (3, 5, 7)]
    dup = result.report.set_index("id").loc["a21"]
    kept = np.ix_(result.animals, result.snps)
    sub = G[:, result.snps]
    assert dup["value"] == pytest.approx(_slow_concordance(sub, 11, 21), abs=1e-15)
    assert dup["threshold"] == "> 0.99, duplicate of a11"
    assert G[kept].shape == (38, 297)


def test_qc__numpy_and_dask_agree():
    G = _genotypes()
    G[G == 1] = np.where(np.random.default_rng(0).random((G == 1).sum()) < 0.2, -1, 1)
    a = qc(G, _ids(N, "a"), _ids(M, "s"))
    b = qc(da.from_array(G, chunks=(9, 50)), _ids(N, "a"), _ids(M, "s"))
    assert a.animals.tolist() == b.animals.tolist() and a.snps.tolist() == b.snps.tolist()
    assert _reasons(a) == _reasons(b)


def test_qc__duplicates_match_slow_reference():
    G = _genotypes()
    G[30] = G[4]
    G[35] = G[4]
    G[12] = G[2]
    G[12, :10] = (G[2, :10] + 1) % 3  # concordance 290/300 = 0.967: not a duplicate at 0.99
    opts = QCOptions(min_call_rate_snp=0, min_call_rate_animal=0, min_maf=0,
                     remove_monomorphic=False, max_concordance=0.95)
    result = qc(da.from_array(G, chunks=(8, 70)), _ids(N, "a"), _ids(M, "s"), opts)
    slow = sorted({f"a{j}" for i in range(N) for j in range(i + 1, N)
                   if _slow_concordance(G, i, j) > 0.95})
    assert sorted(result.report["id"]) == slow == ["a12", "a30", "a35"]
    assert dict(zip(result.report["id"], result.report["threshold"]))["a35"].endswith("a4")


def test_qc__switched_off_keeps_everything():
    G = _genotypes()
    G[:, 0] = 1
    result = qc(G, _ids(N, "a"), _ids(M, "s"), OFF)
    assert len(result.report) == 0
    assert len(result.animals) == N and len(result.snps) == M


def test_qc__no_snp_left_raises():
    G = np.full((5, 4), 2, np.int8)
    with pytest.raises(InputError, match=r"no SNP is left after QC.*'monomorphic': 4"):
        qc(G, _ids(5, "a"), _ids(4, "s"))


def test_qc__bad_options_raise():
    with pytest.raises(InputError, match="min_maf"):
        QCOptions(min_maf=0.7)
    with pytest.raises(InputError, match="one ID per row"):
        qc(_genotypes(), _ids(3, "a"), _ids(M, "s"))


# --- parent–progeny conflicts -------------------------------------------------------------


def _family_genotypes(n_snps: int, seed: int):
    """Two founder sires, a founder dam, and progeny inheriting one allele of each parent
    (Mendelian, no errors); returns (genotypes, ids, sire IDs, dam IDs)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, n_snps)
    hap = {name: rng.random((2, n_snps)) < p for name in ("S1", "S2", "D1")}
    ids, sires, dams = ["S1", "S2", "D1"], ["", "", ""], ["", "", ""]
    for t in range(6):
        s, d = ("S1", "D1") if t < 4 else ("S2", "D1")
        pick = lambda h: h[rng.integers(0, 2, n_snps), np.arange(n_snps)]  # noqa: E731
        hap[f"K{t}"] = np.stack([pick(hap[s]), pick(hap[d])])
        ids.append(f"K{t}")
        sires.append(s)
        dams.append(d)
    M = np.stack([hap[i].sum(axis=0) for i in ids]).astype(np.int8)
    return M, np.array(ids), np.array(sires, dtype=object), np.array(dams, dtype=object)


def _slow_conflicts(M, ids, sires, dams, max_rate, min_common):
    """Pair by pair, SNP by SNP (the obviously correct twin)."""
    out = []
    where = {a: i for i, a in enumerate(ids)}
    for role, parents in (("sire", sires), ("dam", dams)):
        for c, par in enumerate(parents):
            if par not in where:
                continue
            a, b = M[c], M[where[par]]
            common = opp = 0
            for x, y in zip(a, b):
                if x >= 0 and y >= 0:
                    common += 1
                    opp += (x, y) in ((0, 2), (2, 0))
            if common >= min_common and opp / common > max_rate:
                out.append((ids[c], opp / common, f"> {max_rate:g}, {role} {par}"))
    return sorted(out)


@pytest.mark.parametrize("chunks", [None, (3, 40)])
def test_parent_progeny_conflicts__true_parents_pass_and_a_wrong_sire_is_reported(chunks):
    from bigeval.genomic.qc import parent_progeny_conflicts
    M, ids, sires, dams = _family_genotypes(500, seed=5)
    M[5, :7] = -1  # missing calls are not compared
    X = M if chunks is None else da.from_array(M, chunks=chunks)
    assert not len(parent_progeny_conflicts(X, ids, sires, dams))  # Mendelian: no conflict
    wrong = sires.copy()
    wrong[ids.tolist().index("K1")] = "S2"  # K1 recorded with the wrong sire
    wrong[ids.tolist().index("K5")] = "NOT_GENOTYPED"  # a parent without genotypes: skipped
    got = parent_progeny_conflicts(X, ids, wrong, dams)
    assert got["id"].tolist() == ["K1"] and set(got["kind"]) == {"pair"}
    assert got["reason"].tolist() == ["parent_progeny_conflict"]
    want = _slow_conflicts(M, ids, wrong, dams, 0.01, 100)
    assert sorted(zip(got["id"], got["value"], got["threshold"])) == want
    assert 0.05 < got["value"].iloc[0] < 0.5  # unrelated: opposing homozygotes are common


def test_parent_progeny_conflicts__thresholds_match_the_slow_twin():
    from bigeval.genomic.qc import parent_progeny_conflicts
    rng = np.random.default_rng(8)
    M = rng.integers(-1, 3, size=(12, 150)).astype(np.int8)
    ids = np.array([f"a{i}" for i in range(12)])
    sires = np.array([""] * 3 + [f"a{rng.integers(0, 3)}" for _ in range(9)], dtype=object)
    dams = np.array([""] * 4 + [f"a{rng.integers(0, 4)}" for _ in range(8)], dtype=object)
    for max_rate, min_common in ((0.01, 10), (0.2, 50), (0.5, 200)):
        got = parent_progeny_conflicts(M, ids, sires, dams, max_rate=max_rate,
                                       min_common=min_common)
        assert sorted(zip(got["id"], got["value"], got["threshold"])) == _slow_conflicts(
            M, ids, sires, dams, max_rate, min_common)


def test_g_from_store__reports_conflicts_without_removing_animals(tmp_path):
    from bigeval.io.genotypes import import_genotypes
    from bigeval.genomic.qc import describe
    from bigeval.genomic.relationships import inverses_from_store
    M, ids, sires, dams = _family_genotypes(400, seed=9)
    csv = tmp_path / "geno.csv"
    with open(csv, "w") as f:
        f.write("id," + ",".join(f"s{j}" for j in range(M.shape[1])) + "\n")
        for i, row in zip(ids, M):
            f.write(i + "," + ",".join(map(str, row)) + "\n")
    store = import_genotypes(csv, tmp_path / "geno.zarr")
    ped_ids = np.array(["D0"] + ids.tolist())  # an extra pedigree animal, not genotyped
    pos = {a: i for i, a in enumerate(ped_ids)}
    wrong = sires.copy()
    wrong[ids.tolist().index("K4")] = "S1"  # true sire S2
    sire = np.array([-1] + [pos.get(s, -1) for s in wrong])
    dam = np.array([-1] + [pos.get(d, -1) for d in dams])
    qc_opts = QCOptions(min_maf=0.0)
    res = inverses_from_store(store, ped_ids, sire, dam, qc=qc_opts, blend=0.05)
    pairs = res.report[res.report["kind"] == "pair"]
    assert pairs["id"].tolist() == ["K4"] and pairs["threshold"].iloc[0] == "> 0.01, sire S1"
    assert len(res.ids) == len(ids)  # reported, nothing removed
    assert "1 parent-progeny pair in conflict" in describe(res.report)
    assert any("parent-progeny pair in conflict" in line for line in res.lines)
    off = inverses_from_store(store, ped_ids, sire, dam, blend=0.05,
                              qc=QCOptions(min_maf=0.0, max_conflict_rate=0.0))
    assert not (off.report["kind"] == "pair").any()


def test_grm_cli__reports_a_wrong_sire_with_the_pedigree(tmp_path, capsys):
    from bigeval.cli import main
    from bigeval.io.genotypes import import_genotypes
    M, ids, sires, dams = _family_genotypes(300, seed=12)
    csv = tmp_path / "geno.csv"
    csv.write_text("id," + ",".join(f"s{j}" for j in range(M.shape[1])) + "\n" + "".join(
        i + "," + ",".join(map(str, row)) + "\n" for i, row in zip(ids, M)))
    import_genotypes(csv, tmp_path / "g.zarr")
    wrong = sires.copy()
    wrong[ids.tolist().index("K0")] = "S2"  # true sire S1
    (tmp_path / "ped.txt").write_text("".join(
        f"{a} {s or 0} {d or 0}\n" for a, s, d in zip(ids, wrong, dams)))
    rc = main(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--pedigree",
               str(tmp_path / "ped.txt"), "--min-maf", "0", "--out", str(tmp_path / "out")])
    assert rc == 0
    out = capsys.readouterr()
    assert "1 parent-progeny pair in conflict" in out.out + out.err
    report = (tmp_path / "out" / "qc_report.csv").read_text()
    assert "K0,parent_progeny_conflict" in report and "sire S2" in report
