"""A22⁻¹ as an operator: products and the GBLUP diagonal without an n_g × n_g matrix.

With the non-genotyped animals (1) and the genotyped ones (2) of the pedigree pruned to the
genotyped animals and their ancestors (:func:`bigeval.genomic.relationships.prune_to_ancestors`),
A22⁻¹ is the Schur complement of the sparse A⁻¹ (Henderson's rules; Misztal, Legarra &
Aguilar 2009; Strandén, Matilainen, Aamand & Mäntysaari 2017):

    A22⁻¹ x = A²² x − A²¹ (A¹¹)⁻¹ A¹² x.

:class:`A22InverseOperator` factors A¹¹ once by a sparse Cholesky (CHOLMOD when installed,
else SuperLU: :func:`bigeval.linalg.cholesky.cholesky`); each product is then two sparse
products and one pair of triangular solves, in memory ``O(nnz(L))``.
:func:`bigeval.genomic.relationships.a22_inverse` (the explicit n_g × n_g matrix) stays for small
n_g and is the twin of the tests.

Part II needs ``diag((W + αA22⁻¹)⁻¹)`` for a diagonal W ≥ 0: that is the genotyped block of
the inverse of the *sparse* matrix ``αA⁻¹ + diag(0, W)`` of the pruned pedigree (its Schur
complement onto the genotyped animals is W + αA22⁻¹), so
:meth:`~A22InverseOperator.gblup_inverse_diagonal` gets it by one sparse factorisation and
selected inversion (:func:`bigeval.linalg.selinv.inverse_diagonal`).

References
----------
Misztal, I., Legarra, A., Aguilar, I. (2009) Computing procedures for genetic evaluation
including phenotypic, full pedigree, and genomic information. J. Dairy Sci. 92:4648-4655.
Strandén, I., Matilainen, K., Aamand, G.P., Mäntysaari, E.A. (2017) Solving efficiently
large single-step genomic best linear unbiased prediction models. J. Anim. Breed. Genet.
134:264-274.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bigeval._resources import check_dense
from bigeval.errors import InputError
from bigeval.linalg.cholesky import cholesky
from bigeval.linalg.selinv import inverse_diagonal
from bigeval.pedigree import ainv_sparse
from bigeval.genomic.relationships import prune_to_ancestors

__all__ = ["A22InverseOperator"]



def check_weights(w, n: int, alpha: float, what: str) -> np.ndarray:
    """The weights W (one finite value ≥ 0 per genotyped animal) and α (> 0) of the GBLUP
    matrix ``what`` (W + αK⁻¹), as float64; a clear error otherwise."""
    w = np.asarray(w, np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError(f"the weights of {what} must be one finite value ≥ 0 per genotyped "
                         "animal", value=f"shape {w.shape}", expected=f"({n},), ≥ 0")
    if not alpha > 0:
        raise InputError("α must be > 0", value=alpha, expected="σe²/σa² > 0")
    return w


class A22InverseOperator:
    """Products with A22⁻¹ from the sparse A⁻¹ of the pruned pedigree (module docstring).

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (-1 unknown); any numbering.
    genotyped
        Numbers of the genotyped animals, in the order of the vectors.
    f
        Inbreeding coefficients (length n); computed when None.
    solver
        Sparse Cholesky of A¹¹: ``auto``, ``cholmod`` or ``superlu``.

    Examples
    --------
    Mrode (2014) Table 2.1, animals 5 and 6 (here 4 and 5): A22⁻¹ = [[1.4187, −0.867], ...].

    >>> op = A22InverseOperator([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5])
    >>> op.matvec(np.array([1.0, 0.0])).round(4).tolist()
    [1.4187, -0.867]
    """

    def __init__(self, sire, dam, genotyped, f=None, *, solver: str = "auto"):
        p = prune_to_ancestors(sire, dam, genotyped)
        fp = None if f is None else np.asarray(f, np.float64)[p.animals]
        self.ainv = ainv_sparse(p.sire, p.dam, fp).tocsc()  # pruned pedigree
        self.genotyped = p.genotyped  # positions in the pruned pedigree, in the given order
        self.n = int(p.genotyped.size)
        is_g = np.zeros(p.sire.size, bool)
        is_g[p.genotyped] = True
        self.other = np.flatnonzero(~is_g)
        self.a22 = self.ainv[p.genotyped][:, p.genotyped].tocsr()  # A²²
        self.factor = None
        if self.other.size:
            self.a12 = self.ainv[self.other][:, p.genotyped].tocsr()  # A¹²
            self.a21 = self.a12.T.tocsr()
            self.factor = cholesky(self.ainv[self.other][:, self.other], solver,
                                   what="A¹¹ (A⁻¹ of the non-genotyped ancestors)")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def method(self) -> str:
        return "none" if self.factor is None else self.factor.method

    def matvec(self, x) -> np.ndarray:
        """``A22⁻¹ x`` for a vector (n_g) or a matrix (n_g × k)."""
        x = np.asarray(x, np.float64)
        y = self.a22 @ x
        if self.factor is not None:
            y -= self.a21 @ self.factor.solve(self.a12 @ x)
        return np.asarray(y)

    def to_dense(self) -> np.ndarray:
        """A22⁻¹ as a dense matrix (small n_g only: the twin of the tests)."""
        check_dense(self.n, what=f"the dense A22⁻¹ of {self.n:,} genotyped animals")
        return self.matvec(np.eye(self.n))

    def gblup_inverse_diagonal(self, w, alpha: float, *, solver: str = "auto") -> np.ndarray:
        """``diag((diag(w) + α A22⁻¹)⁻¹)`` by selected inversion of the sparse
        ``α A⁻¹ + diag(0, w)`` of the pruned pedigree (module docstring).

        Parameters
        ----------
        w
            One value ≥ 0 per genotyped animal, in their order.
        alpha
            > 0.
        """
        w = check_weights(w, self.n, alpha, "W + αA22⁻¹")
        d = np.zeros(self.ainv.shape[0])
        d[self.genotyped] = w
        m = (alpha * self.ainv + sp.diags(d)).tocsc()
        return inverse_diagonal(m, solver, what="αA⁻¹ + diag(0, W) (Part II, pedigree "
                                                "side)")[self.genotyped]
