"""Tests of bigeval.linalg.cholesky and bigeval.linalg.selinv against dense inverses."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from bigeval.errors import InputError
from bigeval.linalg.cholesky import HAVE_CHOLMOD, cholesky, symbolic_factor_pattern
from bigeval.linalg.selinv import inverse_diagonal, selected_inverse, takahashi

EXAMPLES = Path(__file__).parents[1] / "examples"
METHODS = ["superlu"] + (["cholmod"] if HAVE_CHOLMOD else [])
TOL = 1e-10  # relative to the largest entry of the inverse


def random_spd(n: int, density: float, seed: int) -> sp.csc_matrix:
    rng = np.random.default_rng(seed)
    B = sp.random(n, n, density=density, random_state=rng)
    return (B @ B.T + 0.5 * sp.identity(n)).tocsc()


def mme_lhs(toml: str) -> sp.csc_matrix:
    from bigeval.models.mme import assemble, load_relationship, model_data
    from bigeval.models.spec import ModelSpec, read_data
    spec = ModelSpec.from_toml(EXAMPLES / toml)
    md = model_data(spec, read_data(spec), load_relationship(spec))
    return assemble(md, sigma_a2=spec.sigma_a2, sigma_pe2=spec.sigma_pe2,
                    sigma_e2=spec.sigma_e2).lhs


@functools.lru_cache(maxsize=2)
def simulated_lhs(n_animals: int = 1_200, seed: int = 7) -> sp.csc_matrix:
    """PBLUP LHS (σe² = 1, α = 3) of a small herd-structured simulated population."""
    from bigeval.prepare import renumber_pedigree
    from bigeval.reliability.exact import _exact_lhs
    from bigeval.simulate import SimulationConfig, simulate
    sim = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=0, n_snps=0, seed=seed))
    ped = sim.pedigree[["animal", "sire", "dam"]].replace("0", "")
    ped["line"] = np.arange(1, len(ped) + 1)
    ids, sire, dam, _ = renumber_pedigree(ped)
    pos = {a: i for i, a in enumerate(ids)}
    rec_animal = sim.records["animal"].map(pos).to_numpy()
    rec_cg = sim.records["cg"].astype("category").cat.codes.to_numpy().astype(np.int64)
    lhs, _, _ = _exact_lhs(sire, dam, rec_animal, rec_cg, 3.0, tau=None, genotyped=None,
                           ginv=None, a22inv=None, f=None)
    return lhs


def check_against_dense(A, method):
    """Selected inverse of A equals the dense inverse on the pattern of L + L'."""
    A = sp.csc_matrix(A)
    Ainv = np.linalg.inv(A.toarray())
    scale = np.abs(Ainv).max()
    f = cholesky(A, method)
    # the factor itself
    Ap = A.toarray()[np.ix_(f.perm, f.perm)]
    np.testing.assert_allclose((f.L @ f.L.T).toarray(), Ap, atol=1e-12 * np.abs(Ap).max())
    s = selected_inverse(f)
    Z = s.Z.tocoo()
    Zdense = Ainv[np.ix_(f.perm, f.perm)]
    np.testing.assert_allclose(Z.data, Zdense[Z.row, Z.col], atol=TOL * scale, rtol=0)
    np.testing.assert_allclose(s.diagonal(), np.diag(Ainv), atol=TOL * scale, rtol=0)
    Ac = A.tocoo()  # every entry on the pattern of A is available
    np.testing.assert_allclose(s.entries(Ac.row, Ac.col), Ainv[Ac.row, Ac.col],
                               atol=TOL * scale, rtol=0)
    np.testing.assert_allclose(f.logdet(), np.linalg.slogdet(A.toarray())[1], rtol=1e-12)
    return s, Ainv


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n,density,seed", [(1, 1.0, 0), (2, 0.5, 1), (7, 0.3, 2),
                                            (60, 0.05, 3), (300, 0.01, 4), (500, 0.004, 5)])
def test_selected_inverse__random_spd_against_dense(method, n, density, seed):
    check_against_dense(random_spd(n, density, seed), method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("toml", ["pblup.toml", "repeatability.toml", "gblup.toml",
                                  "ssgblup.toml"])
def test_selected_inverse__mrode_mme_against_dense(method, toml):
    check_against_dense(mme_lhs(toml), method)


@pytest.mark.parametrize("method", METHODS)
def test_selected_inverse__simulated_pblup_against_dense(method):
    A = simulated_lhs()
    assert A.shape[0] > 1_200
    s, Ainv = check_against_dense(A, method)
    B = A.multiply(0.5).tocsr()  # tr(B A⁻¹) on the pattern of A
    assert np.isclose(s.trace_product(B), np.sum(B.toarray() * Ainv), rtol=1e-10)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), density=st.floats(0.0, 0.4), seed=st.integers(0, 10_000))
def test_takahashi__hypothesis_any_spd_pattern(n, density, seed):
    A = random_spd(n, density, seed)
    check_against_dense(A, "superlu")


def test_takahashi__dense_factor_by_hand():
    # A = [[4, 2], [2, 3]]: A⁻¹ = [[3, -2], [-2, 4]] / 8
    L = sp.csc_matrix(np.linalg.cholesky([[4.0, 2.0], [2.0, 3.0]]))
    np.testing.assert_allclose(takahashi(L).toarray(), [[0.375, 0.0], [-0.25, 0.5]])


def test_takahashi__pattern_not_closed_raises():
    # arrow matrix whose factor has L[2, 1] = 0 by cancellation: dropping it breaks closure
    A = np.array([[4.0, 2.0, 2.0], [2.0, 2.0, 1.0], [2.0, 1.0, 3.0]])
    L = np.linalg.cholesky(A)
    assert abs(L[2, 1]) < 1e-15
    with pytest.raises(InputError, match="not closed"):
        takahashi(sp.csc_matrix(L))  # csc_matrix drops the exact zero
    # with the structural zero kept (the symbolic pattern is full here), the result is exact
    P = symbolic_factor_pattern(sp.csc_matrix(A))
    assert P.nnz == 6
    Lfull = sp.csc_matrix((L.T[np.triu_indices(3)], P.indices, P.indptr), shape=(3, 3))
    assert Lfull.nnz == 6 and Lfull.data[4] == L[2, 1]
    Z = takahashi(Lfull)
    assert np.allclose(Z.diagonal(), np.diag(np.linalg.inv(A)))


def test_takahashi__bad_factor_raises():
    with pytest.raises(InputError, match="diagonal"):
        takahashi(sp.csc_matrix(np.array([[1.0, 0.0], [0.5, 0.0]])))
    with pytest.raises(InputError, match="not square"):
        takahashi(sp.csc_matrix(np.ones((2, 3))))
    upper = sp.csc_matrix(np.triu(np.ones((4, 4))) + np.eye(4))
    for supernode_min in (0, 10**9):  # the block path checks the layout too
        with pytest.raises(InputError, match="not lower triangular|not closed"):
            takahashi(upper, supernode_min=supernode_min)


def test_symbolic_factor_pattern__contains_numeric_pattern():
    A = random_spd(80, 0.03, 11)
    P = symbolic_factor_pattern(A).toarray() != 0
    L = np.linalg.cholesky(A.toarray())
    assert not np.any((np.abs(L) > 1e-14) & ~P)
    assert np.all(np.diag(P)) and not np.any(np.triu(P, 1))


def test_selected_inverse__entries_outside_pattern_raise():
    A = sp.csc_matrix(np.diag([1.0, 2.0, 4.0]))
    s = selected_inverse(cholesky(A, "superlu"))
    np.testing.assert_allclose(s.diagonal(), [1.0, 0.5, 0.25])
    with pytest.raises(InputError, match="outside the selected pattern"):
        s.entries([0], [2])


@pytest.mark.parametrize("method", METHODS)
def test_cholesky__not_positive_definite_raises(method):
    A = sp.csc_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(InputError, match="not positive definite"):
        cholesky(A, method)


def test_cholesky__clear_errors():
    with pytest.raises(InputError, match="diagonal element <= 0"):
        cholesky(sp.csc_matrix(np.diag([1.0, 0.0])))  # e.g. an empty effect level
    with pytest.raises(InputError, match="non-finite"):
        cholesky(sp.csc_matrix(np.diag([1.0, np.inf])))  # e.g. a variance of zero
    with pytest.raises(InputError, match="unknown factorization"):
        cholesky(sp.csc_matrix(np.eye(2)), "lu")


@pytest.mark.skipif(HAVE_CHOLMOD, reason="CHOLMOD is installed")
def test_cholesky__cholmod_missing_says_what_to_do():
    with pytest.raises(InputError, match="install"):
        cholesky(sp.csc_matrix(np.eye(2)), "cholmod")


def test_cholesky__solve_matches_dense():
    A = random_spd(200, 0.02, 21)
    b = np.arange(200.0)
    for method in METHODS:
        f = cholesky(A, method)
        np.testing.assert_allclose(f.solve(b), np.linalg.solve(A.toarray(), b), rtol=1e-9)
        B = np.stack([b, -b], 1)
        np.testing.assert_allclose(f.solve(B)[:, 1], -f.solve(b), rtol=1e-12)


@pytest.mark.skipif(not HAVE_CHOLMOD, reason="CHOLMOD not installed")
def test_cholesky__cholmod_and_superlu_agree():
    A = simulated_lhs(1_000, seed=3)
    d1 = inverse_diagonal(A, "cholmod")
    d2 = inverse_diagonal(A, "superlu")
    np.testing.assert_allclose(d1, d2, rtol=1e-10)


def dense_block_lhs(n_animals: int = 1_000, ng: int = 120, seed: int = 5) -> sp.csc_matrix:
    """simulated_lhs plus a dense SPD block on random animals, as G⁻¹ − A22⁻¹ adds."""
    A = simulated_lhs(n_animals, seed=7)
    rng = np.random.default_rng(seed)
    g = np.sort(rng.choice(A.shape[0], ng, replace=False))
    X = rng.standard_normal((ng, 50))
    r, c = np.meshgrid(g, g, indexing="ij")
    add = sp.csc_matrix(((0.1 * X @ X.T / 50).ravel(), (r.ravel(), c.ravel())), shape=A.shape)
    return (A + add).tocsc()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("supernode_min", [0, 4, 10**9])
def test_takahashi__supernodal_and_column_paths_against_dense(method, supernode_min):
    A = dense_block_lhs()
    f = cholesky(A, method)
    Z = takahashi(f.L, supernode_min=supernode_min).tocoo()
    Zdense = np.linalg.inv(A.toarray())[np.ix_(f.perm, f.perm)]
    np.testing.assert_allclose(Z.data, Zdense[Z.row, Z.col], atol=TOL * np.abs(Zdense).max(),
                               rtol=0)
    # the same on small random matrices, whose supernodes are short
    B = random_spd(150, 0.03, 17)
    f = cholesky(B, method)
    Z = takahashi(f.L, supernode_min=supernode_min).tocoo()
    Bi = np.linalg.inv(B.toarray())[np.ix_(f.perm, f.perm)]
    np.testing.assert_allclose(Z.data, Bi[Z.row, Z.col], atol=TOL * np.abs(Bi).max(), rtol=0)


def test_takahashi__int32_and_int64_indices():
    A = dense_block_lhs()
    f = cholesky(A, METHODS[-1])
    L = f.L
    L64 = sp.csc_matrix((L.data, L.indices.astype(np.int64), L.indptr.astype(np.int64)),
                        shape=L.shape)
    np.testing.assert_array_equal(takahashi(L64).data, takahashi(L).data)


def test_takahashi__supernode_detection():
    from bigeval.linalg.selinv import _supernodes
    A = dense_block_lhs()
    L = cholesky(A, METHODS[-1]).L
    starts = _supernodes(L.indptr.astype(np.int64), L.indices.astype(np.int64))
    assert starts[0] == 0 and starts[-1] == A.shape[0] and np.all(np.diff(starts) > 0)
    cnt = np.diff(L.indptr)
    for f, l in zip(starts[:-1], starts[1:]):  # nested patterns inside every supernode
        rows_f = set(L.indices[L.indptr[f]:L.indptr[f + 1]])
        for j in range(f + 1, l):
            assert set(L.indices[L.indptr[j]:L.indptr[j + 1]]) == rows_f - set(range(f, j))
            assert cnt[j] == cnt[f] - (j - f)
    assert np.diff(starts).max() >= 32  # the dense block makes a big supernode


@pytest.mark.parametrize("supernode_min", [0, None, 10**9])
def test_takahashi__in_place_equals_copy(supernode_min):
    A = dense_block_lhs()
    L = cholesky(A, METHODS[-1]).L
    Z = takahashi(L, supernode_min=supernode_min)
    L2 = L.copy()
    Z2 = takahashi(L2, supernode_min=supernode_min, overwrite=True)
    assert np.shares_memory(Z2.data, L2.data)
    np.testing.assert_allclose(Z2.data, Z.data, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(L.data, cholesky(A, METHODS[-1]).L.data)  # L untouched
