"""Tests of bigeval.qc: call rates, MAF, monomorphic SNPs and duplicated animals."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigeval.errors import InputError
from bigeval.qc import QCOptions, qc

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
