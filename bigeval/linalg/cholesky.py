"""Sparse Cholesky factors of the MME: CHOLMOD when installed, SuperLU otherwise.

``P A Pᵀ = L Lᵀ``: ``A[perm][:, perm] = L @ L.T`` with L lower triangular (CSC, sorted row
indices, the diagonal first in every column). One object serves the solve, log|A| (REML)
and the selected inversion of :mod:`bigeval.linalg.selinv`.

* ``cholmod``: supernodal CHOLMOD (scikit-sparse, an optional extra that builds against the
  system SuiteSparse; AMD/METIS ordering). A herd-structured 215 000-equation PBLUP MME
  factors in 2-5 s, the 1 063 023-equation one of a 1 M-animal pedigree in 55 s (2 busy
  cores, threaded OpenBLAS; benchmarks/bench_mme.py).
* ``superlu``: the fallback that needs nothing beyond scipy — SuperLU in symmetric mode
  (minimum degree on AᵀA+A, no pivoting off the diagonal: ``diag_pivot_thresh=0``) so that
  ``A[perm][:, perm] = L U`` with ``U = D Lᵤᵀ``, hence the Cholesky factor ``Lᵤ D^½``, put
  on the symbolic pattern of the factor (SuperLU leaves out exact zeros). 30-50× slower
  than CHOLMOD on large MMEs (111-160 s at 215 000 equations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit

from bigeval.errors import InputError

try:  # optional supernodal CHOLMOD
    from sksparse.cholmod import CholmodNotPositiveDefiniteError
    from sksparse.cholmod import cholesky as _cholmod_cholesky
except ImportError:  # pragma: no cover - depends on the environment
    _cholmod_cholesky = None
    CholmodNotPositiveDefiniteError = None

HAVE_CHOLMOD = _cholmod_cholesky is not None
METHODS = ("auto", "cholmod", "superlu")

_NOT_PD_REMEDY = ("check that every variance is positive, that every fixed-effect level has "
                  "records, and that G (or H) is positive definite (blend G with A22 or add "
                  "a ridge)")


def _not_pd(what: str, detail: str = "") -> InputError:
    return InputError(f"{what} is not positive definite{detail}", remedy=_NOT_PD_REMEDY)


@njit(cache=True)
def _symbolic_kernel(indptr, indices):  # pragma: no cover - compiled
    """Pattern of the Cholesky factor of a symmetric matrix (CSC, both triangles).

    Elimination tree by Liu's algorithm with path compression, then the pattern of every row
    i of L as the reach of row i of A's lower triangle in the tree (Davis 2006, *Direct
    Methods for Sparse Linear Systems*, cs_etree and cs_ereach). Rows come out sorted within
    each column, the diagonal first. O(nnz(L)).
    """
    n = indptr.size - 1
    parent = np.full(n, -1, np.int64)
    ancestor = np.full(n, -1, np.int64)
    for k in range(n):
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            while i != -1 and i < k:  # traverse from i to the root of its subtree
                nxt = ancestor[i]
                ancestor[i] = k
                if nxt == -1:
                    parent[i] = k
                i = nxt
    mark = np.full(n, -1, np.int64)
    count = np.ones(n, np.int64)  # the diagonal
    for k in range(n):  # pass 1: column counts
        mark[k] = k
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            while i < k and mark[i] != k:
                count[i] += 1
                mark[i] = k
                i = parent[i]
    colptr = np.zeros(n + 1, np.int64)
    for j in range(n):
        colptr[j + 1] = colptr[j] + count[j]
    rows = np.empty(colptr[n], np.int64)
    nxt = colptr[:n].copy()
    mark[:] = -1
    for k in range(n):  # pass 2: rows in increasing order, so sorted, diagonal first
        rows[nxt[k]] = k
        nxt[k] += 1
        mark[k] = k
        for p in range(indptr[k], indptr[k + 1]):
            i = indices[p]
            while i < k and mark[i] != k:
                rows[nxt[i]] = k
                nxt[i] += 1
                mark[i] = k
                i = parent[i]
    return colptr, rows


@njit(cache=True)
def _scatter_kernel(colptr, rows, lptr, lrows, lvals):  # pragma: no cover - compiled
    """Values of a factor (sorted CSC) on a symbolic pattern that contains it; returns
    (values, -1) or (values, first column with an entry outside the pattern)."""
    vals = np.zeros(rows.size)
    n = colptr.size - 1
    for j in range(n):
        q = colptr[j]
        for p in range(lptr[j], lptr[j + 1]):
            r = lrows[p]
            while q < colptr[j + 1] and rows[q] < r:
                q += 1
            if q == colptr[j + 1] or rows[q] != r:
                return vals, j
            vals[q] = lvals[p]
    return vals, -1


def symbolic_factor_pattern(A) -> sp.csc_matrix:
    """Pattern of the Cholesky factor of a symmetric sparse matrix, in A's order (no
    permutation), as a lower-triangular CSC matrix of ones, sorted, the diagonal first."""
    A = sp.csc_matrix(A)
    colptr, rows = _symbolic_kernel(A.indptr.astype(np.int64), A.indices.astype(np.int64))
    n = A.shape[0]
    return sp.csc_matrix((np.ones(rows.size), rows, colptr), shape=(n, n))


@dataclass
class SparseCholesky:
    """``A[perm][:, perm] = L Lᵀ`` (see the module docstring).

    Attributes
    ----------
    n : order of A. perm : (n,) the fill-reducing permutation. method : cholmod or superlu.
    """

    n: int
    perm: np.ndarray
    method: str
    _diag: np.ndarray = field(repr=False)          # diag(L), in the permuted order
    _L: sp.csc_matrix | None = field(default=None, repr=False)
    _solver: object = field(default=None, repr=False)  # callable b -> A⁻¹ b

    @property
    def L(self) -> sp.csc_matrix:
        """The lower-triangular factor (CSC, sorted indices, diagonal first)."""
        if self._L is None:  # CHOLMOD keeps its supernodal factor until L is asked for
            L = sp.csc_matrix(self._solver.L())
            L.sort_indices()
            self._L = L
        return self._L

    @property
    def nnz(self) -> int:
        """Non-zeros of L (the fill); extracts L from CHOLMOD's supernodal factor."""
        return int(self.L.nnz)

    def logdet(self) -> float:
        """log|A| = 2 Σ log L_jj."""
        return 2.0 * float(np.log(self._diag).sum())

    def solve(self, b) -> np.ndarray:
        """A⁻¹ b for a vector or a matrix (n × k) b."""
        b = np.asarray(b, dtype=np.float64)
        return np.asarray(self._solver(b)).reshape(b.shape)


def _cholmod(A: sp.csc_matrix, what: str) -> SparseCholesky:
    try:
        f = _cholmod_cholesky(A)
    except CholmodNotPositiveDefiniteError as exc:
        raise _not_pd(what, f" (CHOLMOD: {exc})") from None
    perm = np.asarray(f.P(), dtype=np.int64)
    d = np.asarray(f.D())  # LDLᵀ diagonal = diag(L)² of LLᵀ (no copy of the factor)
    if not np.all(d > 0):
        raise _not_pd(what)
    return SparseCholesky(A.shape[0], perm, "cholmod", np.sqrt(d), None, f)


def _superlu(A: sp.csc_matrix, what: str) -> SparseCholesky:
    n = A.shape[0]
    try:
        lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
    except RuntimeError as exc:  # "Factor is exactly singular"
        raise _not_pd(what, f" (SuperLU: {exc})") from None
    perm_c = np.asarray(lu.perm_c, dtype=np.int64)
    perm_r = np.asarray(lu.perm_r, dtype=np.int64)
    # perm_c[i] is the new position of equation i (checked in the tests: A[q][:, q] = L U
    # with q = argsort(perm_c)); rows follow the columns iff nothing pivoted off the diagonal
    if not np.array_equal(perm_r, perm_c):  # pragma: no cover - SPD input
        raise _not_pd(what, " (SuperLU had to pivot off the diagonal)")
    perm = np.argsort(perm_c)
    U = lu.U.tocsc()
    d = U.diagonal()
    if not (np.all(np.isfinite(d)) and np.all(d > 0)):
        raise _not_pd(what)
    sd = np.sqrt(d)
    # SuperLU's L (unit lower triangular) leaves out entries that are exactly zero, so its
    # pattern is not closed under fill, which selected inversion needs: put its values on
    # the symbolic pattern of the factor of A[perm][:, perm].
    Lu = sp.csc_matrix(lu.L)
    Lu.sort_indices()
    Ap = A[perm][:, perm].tocsc()
    colptr, rows = _symbolic_kernel(Ap.indptr.astype(np.int64), Ap.indices.astype(np.int64))
    vals, bad = _scatter_kernel(colptr, rows, Lu.indptr.astype(np.int64),
                                Lu.indices.astype(np.int64), Lu.data)
    if bad >= 0:  # pragma: no cover - SuperLU never fills outside the symbolic pattern
        raise _not_pd(what, f" (SuperLU factor outside the symbolic pattern, column {bad})")
    vals *= sd[np.repeat(np.arange(n), np.diff(colptr))]  # L = Lᵤ D^½
    L = sp.csc_matrix((vals, rows, colptr), shape=(n, n))

    def solve(b):
        return lu.solve(b)
    return SparseCholesky(n, perm, "superlu", sd, L, solve)


def cholesky(A, method: str = "auto", *, what: str = "the MME left-hand side") -> SparseCholesky:
    """Sparse Cholesky factor of a symmetric positive-definite matrix.

    Parameters
    ----------
    A : (n × n) sparse SPD matrix (both triangles stored).
    method : ``auto`` (CHOLMOD when installed, else SuperLU), ``cholmod`` or ``superlu``.
    what : the matrix, for error messages.

    Raises
    ------
    InputError
        A is not positive definite (a variance of zero, an empty fixed-effect level, a G that
        is not positive definite, ...), or CHOLMOD was asked for and is not installed.

    Examples
    --------
    >>> f = cholesky(sp.csc_matrix([[4.0, 2.0], [2.0, 3.0]]), "superlu")
    >>> f.solve(np.array([2.0, 1.0])).round(4).tolist(), round(f.logdet(), 4)
    ([0.5, 0.0], 2.0794)
    """
    if method not in METHODS:
        raise InputError("unknown factorization", value=method,
                         expected=", ".join(METHODS))
    A = sp.csc_matrix(A, dtype=np.float64)
    if A.shape[0] != A.shape[1]:
        raise InputError(f"{what} is not square", value=A.shape)
    d = A.diagonal()
    if not np.all(np.isfinite(A.data)):
        raise InputError(f"{what} holds non-finite values", value="nan or inf",
                         remedy="check the variances (a variance of zero divides by zero)")
    if np.any(d <= 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise InputError(f"{what} has a diagonal element <= 0 (equation {i})",
                         value=float(d[i]), expected="> 0",
                         remedy="remove effect levels without records; " + _NOT_PD_REMEDY)
    if method == "auto":
        method = "cholmod" if HAVE_CHOLMOD else "superlu"
    if method == "cholmod":
        if not HAVE_CHOLMOD:
            raise InputError("CHOLMOD is not installed", value="cholmod",
                             remedy="run ./install.sh (SuiteSparse + scikit-sparse), "
                                    "or use method 'auto'")
        return _cholmod(A, what)
    return _superlu(A, what)
