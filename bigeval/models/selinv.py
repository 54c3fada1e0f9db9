"""Selected inversion: entries of A⁻¹ on the pattern of its sparse Cholesky factor.

With ``P A Pᵀ = L Lᵀ`` (:mod:`bigeval.models.cholesky`), ``Z = (P A Pᵀ)⁻¹`` satisfies
``Z L = L⁻ᵀ``, an upper-triangular matrix with diagonal ``1/L_jj``. Reading that equation
below the diagonal gives the Takahashi equations (Takahashi, Fagan & Chin 1973; Erisman &
Tinney 1975; the "sparse inverse" of FSPAK/YAMS behind BLUPF90's PEVs), for j = n−1 … 0
and R_j the rows of the non-zeros below the diagonal of column j of L::

    Z_ij = −(1/L_jj) Σ_{k ∈ R_j} Z_ik L_kj            (i ∈ R_j)
    Z_jj = (1/L_jj − Σ_{k ∈ R_j} Z_kj L_kj) / L_jj

Every Z_ik needed lies on the pattern of L (for k, i ∈ R_j the fill of the factorisation puts
L_ik ≠ 0), so the diagonal of A⁻¹ — PEVs and exact reliabilities — and every entry on the
pattern of A (REML traces) come out without forming A⁻¹, in about the time and memory of the
factorisation. The kernel is a simplicial column sweep in numba; its twin in the tests is the
dense inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numba import njit

from bigeval.errors import InputError

__all__ = ["takahashi", "selected_inverse", "SelectedInverse", "inverse_diagonal"]


@njit(cache=True, nogil=True)
def _takahashi_kernel(indptr, indices, data, z):  # pragma: no cover - compiled
    """Fill ``z`` (same layout as ``data``) with (L Lᵀ)⁻¹ on the pattern of L.

    Returns −1 on success, else the first column (from the right) whose pattern is not
    closed under the factorisation's fill (the input is not a Cholesky factor's pattern),
    or −2 − j when column j does not start with its diagonal.
    """
    n = indptr.size - 1
    where = np.full(n, -1, np.int64)  # position of row i in the current column, or -1
    acc = np.zeros(n)                  # acc[i] = Σ_k Z_ik L_kj over k in R_j
    for j in range(n - 1, -1, -1):
        p0 = indptr[j]
        p1 = indptr[j + 1]
        if p1 <= p0 or indices[p0] != j:
            return -2 - j
        ljj = data[p0]
        for p in range(p0 + 1, p1):
            i = indices[p]
            where[i] = p
            acc[i] = 0.0
        for p in range(p0 + 1, p1):
            k = indices[p]
            lkj = data[p]
            q0 = indptr[k]
            acc[k] += z[q0] * lkj          # Z_kk L_kj
            found = 0
            for q in range(q0 + 1, indptr[k + 1]):
                i = indices[q]              # i > k: Z_ik is stored in column k
                w = where[i]
                if w >= 0:
                    zik = z[q]
                    acc[i] += zik * lkj     # row i, summation index k
                    acc[k] += zik * data[w]  # row k, summation index i (Z_ki = Z_ik)
                    found += 1
            if found != p1 - 1 - p:         # rows of R_j below k must all be in column k
                return j
        s = 0.0
        for p in range(p0 + 1, p1):
            i = indices[p]
            v = -acc[i] / ljj
            z[p] = v
            s += v * data[p]
            where[i] = -1
        z[p0] = (1.0 / ljj - s) / ljj
    return -1


@njit(cache=True)
def _lookup_kernel(indptr, indices, z, rows, cols, out):  # pragma: no cover - compiled
    """out[t] = Z[rows[t], cols[t]] (permuted numbering); returns the first t not on the
    pattern, or −1."""
    for t in range(rows.size):
        r = rows[t]
        c = cols[t]
        if r < c:
            r, c = c, r
        lo = indptr[c]
        hi = indptr[c + 1]
        while lo < hi:  # binary search of row r in the sorted column c
            mid = (lo + hi) // 2
            if indices[mid] < r:
                lo = mid + 1
            else:
                hi = mid
        if lo < indptr[c + 1] and indices[lo] == r:
            out[t] = z[lo]
        else:
            return t
    return -1


def takahashi(L) -> sp.csc_matrix:
    """(L Lᵀ)⁻¹ on the pattern of the lower-triangular Cholesky factor L.

    Parameters
    ----------
    L : (n × n) sparse lower-triangular factor with a positive diagonal, whose pattern is
        that of a Cholesky factorisation (closed under fill), e.g. from CHOLMOD.

    Returns
    -------
    scipy.sparse.csc_matrix
        Z with the pattern of L: the lower triangle of (L Lᵀ)⁻¹ there.

    Examples
    --------
    >>> L = sp.csc_matrix(np.linalg.cholesky([[4.0, 2.0], [2.0, 3.0]]))
    >>> takahashi(L).toarray().round(4).tolist()
    [[0.375, 0.0], [-0.25, 0.5]]
    """
    L = sp.csc_matrix(L, dtype=np.float64)
    if L.shape[0] != L.shape[1]:
        raise InputError("the Cholesky factor is not square", value=L.shape)
    if not L.has_sorted_indices:
        L = L.copy()
        L.sort_indices()
    n = L.shape[0]
    # store the diagonal explicitly even where it was dropped (then it is 0 and caught below)
    if L.nnz and np.any(L.diagonal() <= 0):
        raise InputError("the Cholesky factor has a diagonal element <= 0",
                         value=float(L.diagonal().min()),
                         remedy="factor a positive-definite matrix")
    indptr = L.indptr.astype(np.int64, copy=False)
    indices = L.indices.astype(np.int64, copy=False)
    z = np.empty(L.nnz)
    rc = _takahashi_kernel(indptr, indices, L.data, z)
    if rc <= -2:
        raise InputError("the Cholesky factor is not lower triangular with its diagonal first",
                         value=f"column {-2 - rc}", remedy="pass the factor L of A = L Lᵀ")
    if rc >= 0:
        raise InputError("the factor's pattern is not closed under fill (not a Cholesky "
                         "factor's symbolic pattern)", value=f"column {rc}",
                         remedy="keep the explicit zeros of the factor; do not prune L")
    return sp.csc_matrix((z, L.indices, L.indptr), shape=(n, n))


@dataclass(frozen=True)
class SelectedInverse:
    """Entries of A⁻¹ on the pattern of L + Lᵀ of a factor ``A[perm][:, perm] = L Lᵀ``.

    Z : lower triangle of the permuted inverse on the pattern of L. perm : the permutation.
    """

    Z: sp.csc_matrix
    perm: np.ndarray

    @property
    def n(self) -> int:
        return self.Z.shape[0]

    def diagonal(self) -> np.ndarray:
        """diag(A⁻¹), (n,), in A's numbering."""
        d = np.empty(self.n)
        d[self.perm] = self.Z.diagonal()
        return d

    def entries(self, rows, cols) -> np.ndarray:
        """(A⁻¹)[rows[t], cols[t]] for pairs on the pattern of A (or of its factor).

        Raises InputError for a pair outside the factor's pattern (not computed).
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        pinv = np.empty(self.n, dtype=np.int64)
        pinv[self.perm] = np.arange(self.n)
        out = np.empty(rows.size)
        Z = self.Z
        t = _lookup_kernel(Z.indptr.astype(np.int64, copy=False),
                           Z.indices.astype(np.int64, copy=False), Z.data,
                           pinv[rows], pinv[cols], out)
        if t >= 0:
            raise InputError("entry of the inverse outside the selected pattern",
                             value=(int(rows[t]), int(cols[t])),
                             remedy="ask for entries on the pattern of the factored matrix")
        return out

    def trace_product(self, B) -> float:
        """tr(B A⁻¹) = Σ B_ij (A⁻¹)_ij for a symmetric sparse B on the pattern of A."""
        B = sp.coo_matrix(B)
        return float(B.data @ self.entries(B.row, B.col))


def selected_inverse(factor) -> SelectedInverse:
    """Selected inverse from a :class:`bigeval.models.cholesky.SparseCholesky`.

    Examples
    --------
    >>> from bigeval.models.cholesky import cholesky
    >>> A = sp.csc_matrix([[4.0, 2.0, 0.0], [2.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    >>> s = selected_inverse(cholesky(A, "superlu"))
    >>> bool(np.allclose(s.diagonal(), np.diag(np.linalg.inv(A.toarray()))))
    True
    """
    return SelectedInverse(takahashi(factor.L), np.asarray(factor.perm, dtype=np.int64))


def inverse_diagonal(A, method: str = "auto", *, what: str = "the matrix") -> np.ndarray:
    """diag(A⁻¹) of a sparse SPD matrix by factorisation and selected inversion."""
    from bigeval.models.cholesky import cholesky
    return selected_inverse(cholesky(A, method, what=what)).diagonal()
