"""The A22⁻¹ operator (bigeval.genomic.a22op) against its dense twins: the inverse of Colleau's A22
(bigeval.pedigree.a22_dense), and diag((W + αA22⁻¹)⁻¹) by a dense inverse."""

from __future__ import annotations

import numpy as np
import pytest
from test_pedigree import simulated_pedigree

from bigeval.genomic.a22op import A22InverseOperator
from bigeval.errors import InputError
from bigeval.linalg.cholesky import HAVE_CHOLMOD
from bigeval.pedigree import a22_dense

SOLVERS = ["superlu"] + (["cholmod"] if HAVE_CHOLMOD else [])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("seed", [1, 2])
def test_a22_operator__equals_inverse_of_dense_a22(seed, solver):
    sire, dam = simulated_pedigree(300, seed)
    g = np.random.default_rng(seed).choice(300, 60, replace=False)  # any order
    op = A22InverseOperator(sire, dam, g, solver=solver)
    twin = np.linalg.inv(a22_dense(sire, dam, g))
    np.testing.assert_allclose(op.to_dense(), twin, rtol=1e-8, atol=1e-8)
    x = np.random.default_rng(0).normal(size=(60, 2))
    np.testing.assert_allclose(op.matvec(x), twin @ x, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(op.matvec(x[:, 1]), twin @ x[:, 1], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS)
def test_a22_operator__gblup_inverse_diagonal_equals_dense_twin(solver):
    sire, dam = simulated_pedigree(250, 4)
    g = np.random.default_rng(4).choice(250, 50, replace=False)
    w = np.random.default_rng(5).gamma(1.0, 2.0, 50)
    w[:10] = 0.0  # animals without own information
    alpha = 2.5
    op = A22InverseOperator(sire, dam, g, solver=solver)
    twin = np.diag(np.linalg.inv(np.diag(w) + alpha * np.linalg.inv(a22_dense(sire, dam, g))))
    np.testing.assert_allclose(op.gblup_inverse_diagonal(w, alpha, solver=solver), twin,
                               rtol=1e-9)
    with pytest.raises(InputError, match="≥ 0"):
        op.gblup_inverse_diagonal(-w, alpha)


def test_a22_operator__every_animal_genotyped():
    sire, dam = simulated_pedigree(40, 7)
    g = np.arange(40)[::-1]
    op = A22InverseOperator(sire, dam, g)
    assert op.method == "none"
    np.testing.assert_allclose(op.to_dense(), np.linalg.inv(a22_dense(sire, dam, g)),
                               rtol=1e-9, atol=1e-9)
