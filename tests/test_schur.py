"""A matrix with a dense block factored by its Schur complement, against the dense inverse
and solve (its twins)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import bigeval.linalg.schur as schur
from bigeval.errors import InputError
from bigeval.linalg.cholesky import HAVE_CHOLMOD

SOLVERS = ["superlu"] + (["cholmod"] if HAVE_CHOLMOD else [])


def spd_with_dense_block(n1: int, n2: int, density: float, seed: int) -> np.ndarray:
    """A random SPD matrix: sparse on its first n1 rows, dense on the last n2."""
    rng = np.random.default_rng(seed)
    n = n1 + n2
    m = sp.random(n, n, density=density, random_state=seed).toarray()
    m[n1:, n1:] = rng.standard_normal((n2, n2))
    c = m @ m.T
    c[np.diag_indices(n)] += 1.0 + rng.random(n)
    return c


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n1, n2, density", [(1, 1, 0.5), (60, 0, 0.05), (0, 9, 0.1),
                                             (120, 25, 0.02), (200, 40, 0.005)])
@pytest.mark.parametrize("dense_row_min", [2, 10**9])
def test_schur_factor__diagonal_equals_dense_inverse(monkeypatch, solver, n1, n2, density,
                                                     dense_row_min):
    monkeypatch.setattr(schur, "DENSE_ROW_MIN", dense_row_min)
    monkeypatch.setattr(schur, "_TILE", 8)
    c = spd_with_dense_block(n1, n2, density, seed=n1 + n2)
    inv = np.linalg.inv(c)
    s = np.array(c[n1:, n1:], order="F")  # a copy: it is overwritten
    s[np.triu_indices(n2, 1)] = np.nan  # the strictly upper triangle is not read
    f = schur.schur_factor(sp.csc_matrix(c), np.arange(n1, n1 + n2), c22=s,
                           keep_factor=False, solver=solver)
    np.testing.assert_allclose(f.diagonal(), np.diag(inv), rtol=1e-10, atol=1e-13)
    # s now holds Z22, the dense block of the inverse, in its lower triangle
    np.testing.assert_allclose(np.tril(s), np.tril(inv[n1:, n1:]), rtol=1e-9, atol=1e-12)
    if n1:
        with pytest.raises(InputError, match="kept no factor"):
            f.solve(np.ones(n1 + n2))


def test_schur_factor__not_positive_definite_block_is_an_error():
    c = spd_with_dense_block(30, 6, 0.1, seed=3)
    c[32, 32] = -5.0
    with pytest.raises(InputError, match="Schur complement"):
        schur.schur_factor(sp.csc_matrix(c), np.arange(30, 36), remedy="blend G with A22")


def test_schur_factor__c_ordered_or_misfit_block_is_an_error():
    c = spd_with_dense_block(10, 4, 0.2, seed=4)
    with pytest.raises(InputError, match="Fortran"):
        schur.schur_factor(sp.csc_matrix(c), np.arange(10, 14),
                           c22=np.ascontiguousarray(c[10:, 10:]) + 0.0 * np.eye(4)[::-1])
    with pytest.raises(InputError, match="do not fit"):
        schur.schur_factor(sp.csc_matrix(c), np.arange(10, 14),
                           c22=np.asfortranarray(c[11:, 11:]))


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("n1, n2", [(0, 5), (50, 0), (70, 15)])
def test_schur_factor__solve_logdet_entries_equal_dense(solver, n1, n2):
    c = spd_with_dense_block(n1, n2, 0.04, seed=11 + n1)
    order = np.random.default_rng(2).permutation(n1 + n2)  # the dense block anywhere
    c = c[np.ix_(order, order)]
    dense_eq = np.flatnonzero(order >= n1)
    f = schur.schur_factor(sp.csc_matrix(c), dense_eq, solver=solver)
    assert f.method == solver
    inv = np.linalg.inv(c)
    B = np.random.default_rng(3).standard_normal((n1 + n2, 3))
    np.testing.assert_allclose(f.solve(B), np.linalg.solve(c, B), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.solve(B[:, 0]), np.linalg.solve(c, B[:, 0]), rtol=1e-9,
                               atol=1e-12)
    assert np.isclose(f.logdet, np.linalg.slogdet(c)[1], rtol=1e-12)
    np.testing.assert_allclose(f.diagonal(), np.diag(inv), rtol=1e-10)
    r, k = np.nonzero(c)  # every entry on the pattern of C
    np.testing.assert_allclose(f.entries(r, k), inv[r, k], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.entries(r, k), inv[r, k], rtol=1e-9, atol=1e-12)  # cached
