"""The sparse exact path at scale, checked against its dense twin on small populations.

The sparse path (lower-triangle LHS with the genomic block merged in, CHOLMOD or SuperLU,
selected inversion with the genomic supernode inverted by dense LAPACK) must give the
numbers of ``method='dense'`` (LAPACK inverse of the whole LHS) whatever the ordering, the
numbering of the animals, the solver and the path each supernode takes.
"""

from __future__ import annotations

import numpy as np
import pytest

import bigeval.linalg.schur as schur
import bigeval.linalg.selinv as selinv
from bigeval.genomic import vanraden_g
from bigeval.linalg.cholesky import HAVE_CHOLMOD
from bigeval.pedigree import a_matrix_dense
from bigeval.reliability.exact import _caa_diagonal

from conftest import local_pedigree, shuffled

SOLVERS = ["superlu"] + (["cholmod"] if HAVE_CHOLMOD else [])
TOL = 1e-10


def population(n: int, ng: int, seed: int, shuffle: bool):
    """Random pedigree (optionally shuffled numbering), repeated records, and G⁻¹, A22⁻¹ of
    ng random genotyped animals (G blended with A22 so that it is positive definite)."""
    rng = np.random.default_rng(seed)
    sire, dam = local_pedigree(n, rng, n_founders=8, window=30)
    if shuffle:
        sire, dam = shuffled(sire, dam, rng)
    rec_animal = rng.choice(rng.choice(n, int(0.7 * n), replace=False), size=2 * n)
    rec_cg = rng.integers(0, max(2, n // 15), size=2 * n)
    if not ng:
        return sire, dam, rec_animal, rec_cg, {}
    g = rng.choice(n, ng, replace=False)
    a22 = a_matrix_dense(sire, dam)[np.ix_(g, g)]
    G, _ = vanraden_g(rng.integers(0, 3, size=(ng, 4 * ng)))
    gstar = 0.9 * G + 0.1 * a22
    kw = {"genotyped": g, "ginv": np.linalg.inv(gstar), "a22inv": np.linalg.inv(a22)}
    return sire, dam, rec_animal, rec_cg, kw


def both(pop, alpha, tau, **sparse_kw):
    sire, dam, rec_animal, rec_cg, kw = pop
    args = (sire, dam, rec_animal, rec_cg, alpha)
    dense = _caa_diagonal(*args, tau=tau, f=None, method="dense", **_full(kw))
    sparse = _caa_diagonal(*args, tau=tau, f=None, method="sparse", **_full(kw), **sparse_kw)
    return dense, sparse


def _full(kw):
    return {"genotyped": kw.get("genotyped"), "ginv": kw.get("ginv"),
            "a22inv": kw.get("a22inv")}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("ng", [0, 40])
@pytest.mark.parametrize("tau", [None, 2.0])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sparse_exact__equals_dense_twin(solver, ng, tau, shuffle):
    pop = population(300, ng, seed=7 + ng + int(shuffle), shuffle=shuffle)
    dense, sparse = both(pop, 2.5, tau, solver=solver)
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=TOL)


@pytest.mark.parametrize("paths", [
    {"SUPERNODE_MIN": 10**9, "SUPERNODE_MIN_ROWS": 10**9},   # scalar sweep only
    {"SUPERNODE_MIN": 2, "SUPERNODE_MIN_ROWS": 2},            # BLAS-3 wherever possible
    {"SUPERNODE_MIN": 32, "SUPERNODE_MIN_ROWS": 5, "BLOCKED_FROM": 16, "_POTRI_BLOCK": 7},
])
def test_sparse_exact__every_supernode_path_equals_dense(monkeypatch, paths):
    for name, value in paths.items():
        monkeypatch.setattr(selinv, name, value)
    pop = population(260, 60, seed=3, shuffle=True)
    dense, sparse = both(pop, 1.5, 3.0, solver=SOLVERS[-1])
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=TOL)


def test_sparse_exact__blocked_genomic_block_equals_dense(monkeypatch):
    # the dense genotyped block (70 columns) factored and inverted by the blocked potrf,
    # trtri and lauum of bigeval.linalg in tiles of 16 rows
    import bigeval.linalg
    monkeypatch.setattr(bigeval.linalg, "BLOCKED_FROM", 32)
    monkeypatch.setattr(bigeval.linalg, "BLOCK", 16)
    calls = []
    inner = schur.lower_factor_inverse
    monkeypatch.setattr(schur, "lower_factor_inverse",
                        lambda m, block=None: calls.append(m.shape[0]) or inner(m, block))
    pop = population(400, 70, seed=11, shuffle=False)
    dense, sparse = both(pop, 3.0, None, solver=SOLVERS[-1])
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=TOL)
    assert calls == [70]  # the genotyped block, and only it, went the dense way


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("dense_row_min", [1, 4, 10**9])
def test_sparse_exact__dense_rows_of_l21_equal_dense(monkeypatch, solver, dense_row_min):
    # rows of L21ᵀ (non-genotyped equations linked to many genotyped) subtracted from the
    # Schur complement by BLAS panels (all of them, some, none), in tiles and panels smaller
    # than the block, with a deep pedigree whose ancestors link to every genotyped animal
    monkeypatch.setattr(schur, "DENSE_ROW_MIN", dense_row_min)
    monkeypatch.setattr(schur, "_PANEL_ROWS", 3)
    monkeypatch.setattr(schur, "_TILE", 7)
    pop = population(250, 45, seed=21, shuffle=True)
    dense, sparse = both(pop, 2.0, 1.5, solver=solver)
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=TOL)


def test_sparse_exact__genotyped_founders_and_every_animal_genotyped():
    # the dense block holds whole families (founders, then every animal but one), and
    # G⁻¹ / A22⁻¹ given in Fortran order
    for ng, seed in ((12, 4), (79, 5)):
        rng = np.random.default_rng(seed)
        sire, dam, rec_animal, rec_cg, _ = population(80, 0, seed=seed, shuffle=False)
        g = np.arange(ng) if ng < 40 else np.delete(np.arange(80), 40)
        g = rng.permutation(g)
        a22 = a_matrix_dense(sire, dam)[np.ix_(g, g)]
        G, _ = vanraden_g(rng.integers(0, 3, size=(g.size, 3 * g.size)))
        kw = {"genotyped": g, "ginv": np.asfortranarray(np.linalg.inv(0.8 * G + 0.2 * a22)),
              "a22inv": np.asfortranarray(np.linalg.inv(a22))}
        dense, sparse = both((sire, dam, rec_animal, rec_cg, kw), 1.7, None)
        np.testing.assert_allclose(sparse, dense, rtol=0, atol=TOL)


def test_sparse_exact__public_api_keeps_its_results():
    from bigeval.reliability.exact import exact_pev, exact_reliability
    sire, dam, rec_animal, rec_cg, kw = population(200, 30, seed=9, shuffle=True)
    d = exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, method="dense", **kw)
    s = exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, method="sparse", **kw)
    np.testing.assert_allclose(s, d, rtol=0, atol=TOL)
    pev = exact_pev(sire, dam, rec_animal, rec_cg, 2.0, method="sparse", **kw)
    np.testing.assert_allclose(s, 1.0 - 2.0 * pev, rtol=0, atol=1e-15)
