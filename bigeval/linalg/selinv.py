"""Selected inversion: entries of A⁻¹ on the pattern of its sparse Cholesky factor.

With ``P A Pᵀ = L Lᵀ`` (:mod:`bigeval.linalg.cholesky`), ``Z = (P A Pᵀ)⁻¹`` satisfies
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
import scipy.linalg
import scipy.sparse as sp
from numba import njit

from bigeval.errors import InputError

__all__ = ["takahashi", "takahashi_dense_tail", "selected_inverse", "SelectedInverse",
           "inverse_diagonal"]


@njit(cache=True, nogil=True)
def _takahashi_kernel(indptr, indices, data, z, j_lo, j_hi, where, acc, n1,
                      zd):  # pragma: no cover
    """Fill columns j_hi−1 … j_lo of ``z`` (same layout as ``data``) with (L Lᵀ)⁻¹ on the
    pattern of L; the columns right of j_hi must be done. ``z`` may be ``data`` itself
    (in place): column j of L is read only before column j of Z is written.

    Rows from ``n1`` on belong to a dense trailing block whose inverse is given, lower
    triangle, in ``zd`` (Z[i, k] = zd[i − n1, k − n1] for n1 ≤ k ≤ i; see
    :func:`takahashi_dense_tail`); ``n1`` = n and an empty ``zd`` when there is none.

    ``where`` (n, all −1; not used by this kernel) and ``acc`` (n) are work arrays. Returns
    −1 on success, else the first column (from the right) whose pattern is not closed under
    the factorisation's fill (the input is not a Cholesky factor's pattern), or −2 − j when
    column j does not start with its diagonal.
    """
    for j in range(j_hi - 1, j_lo - 1, -1):
        p0 = indptr[j]
        p1 = indptr[j + 1]
        if p1 <= p0 or indices[p0] != j:
            return -2 - j
        ljj = data[p0]
        for p in range(p0 + 1, p1):
            acc[indices[p]] = 0.0
        for p in range(p0 + 1, p1):
            k = indices[p]
            lkj = data[p]
            if k >= n1:  # the dense trailing block: every row below k is in it too
                kk = k - n1
                acc[k] += zd[kk, kk] * lkj
                for pp in range(p + 1, p1):
                    i = indices[pp]
                    zik = zd[i - n1, kk]
                    acc[i] += zik * lkj
                    acc[k] += zik * data[pp]
                continue
            q0 = indptr[k]
            qe = indptr[k + 1]
            acc[k] += z[q0] * lkj          # Z_kk L_kj
            # the rows of R_j below k must all be in column k (closure under fill): find
            # them by a merge of the two sorted lists, or by binary search when column k is
            # much longer (a genotyped row k: its column spans the whole genomic block)
            q = q0 + 1
            gallop = qe - q > 8 * (p1 - 1 - p)
            for pp in range(p + 1, p1):
                i = indices[pp]
                if gallop:
                    lo = q
                    hi = qe
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if indices[mid] < i:
                            lo = mid + 1
                        else:
                            hi = mid
                    q = lo
                else:
                    while q < qe and indices[q] < i:
                        q += 1
                if q == qe or indices[q] != i:
                    return j
                zik = z[q]                  # i > k: Z_ik is stored in column k
                acc[i] += zik * lkj         # row i, summation index k
                acc[k] += zik * data[pp]    # row k, summation index i (Z_ki = Z_ik)
                q += 1
        s = 0.0
        for p in range(p0 + 1, p1):
            i = indices[p]
            v = -acc[i] / ljj
            s += v * data[p]  # read L_ij before Z_ij is written (z may be data itself)
            z[p] = v
        z[p0] = (1.0 / ljj - s) / ljj
    return -1


@njit(cache=True)
def _supernodes(indptr, indices):  # pragma: no cover - compiled
    """Fundamental supernodes: first columns of runs j..j+s−1 in which column j+1 has the
    pattern of column j without row j (returned with n appended)."""
    n = indptr.size - 1
    starts = [0]
    for j in range(n - 1):
        cnt = indptr[j + 1] - indptr[j]
        same = (cnt >= 2 and indices[indptr[j] + 1] == j + 1
                and indptr[j + 2] - indptr[j + 1] == cnt - 1)
        if not same:
            starts.append(j + 1)
    starts.append(n)
    return np.array(starts, dtype=np.int64)


@njit(cache=True)
def _gather_block(indptr, indices, data, f, l):  # pragma: no cover - compiled
    """L_SSᵀ (s × s, upper: C order, so that its transpose is L_SS in Fortran order) and
    L_RSᵀ (s × r) of supernode [f, l), its rows R, and whether the columns have the
    supernode's layout (rows f+t … l−1, then R; diagonal first). Every column of L is read
    and written contiguously (a 20 000-column genomic supernode is 3.2 GB)."""
    s = l - f
    p0 = indptr[f]
    rows = indices[p0 + s:indptr[f + 1]].copy()
    r = rows.size
    LssT = np.zeros((s, s))
    LrsT = np.empty((s, r))
    ok = True
    for t in range(s):
        q = indptr[f + t]
        ok = ok and indptr[f + t + 1] - q == s - t + r
        if not ok:
            break
        for u in range(t, s):
            ok = ok and indices[q + u - t] == f + u
            LssT[t, u] = data[q + u - t]
        q += s - t
        for a in range(r):
            LrsT[t, a] = data[q + a]
    return LssT, LrsT, rows, ok


@njit(cache=True)
def _gather_z(indptr, indices, z, rows, where, n1, zd):  # pragma: no cover - compiled
    """Z[R, R] as a dense symmetric matrix; returns (Zrr, found off-diagonal pairs). Rows
    from ``n1`` on are read from the dense trailing block ``zd`` (see the kernel)."""
    r = rows.size
    out = np.empty((r, r))
    for a in range(r):
        where[rows[a]] = a
    found = 0
    for a in range(r):
        c = rows[a]
        if c >= n1:  # rows are sorted: every row after c is in the dense block too
            for b in range(a, r):
                v = zd[rows[b] - n1, c - n1]
                out[b, a] = v
                out[a, b] = v
            found += r - 1 - a
            continue
        q0 = indptr[c]
        out[a, a] = z[q0]
        for q in range(q0 + 1, indptr[c + 1]):
            b = where[indices[q]]
            if b >= 0:
                out[b, a] = z[q]
                out[a, b] = z[q]
                found += 1
    for a in range(r):
        where[rows[a]] = -1
    return out, found


@njit(cache=True)
def _scatter_block(indptr, z, f, l, ZssT, ZrsT):  # pragma: no cover - compiled
    """Write Z_SS (its lower triangle, given as the upper one of ``ZssT``) and Z_RS (given
    as ``ZrsT``, s × r) into the columns of supernode [f, l) of ``z``."""
    s = l - f
    for t in range(s):
        q = indptr[f + t]
        for u in range(t, s):
            z[q + u - t] = ZssT[t, u]
        q += s - t
        for a in range(ZrsT.shape[1]):
            z[q + a] = ZrsT[t, a]


def _supernode_inverse(L, z, f, l, where, n1, zd):
    """Z on the columns of supernode [f, l) by BLAS-3 (its rows R done already)::

        Y = L_RS L_SS⁻¹,  Z_RS = −Z_RR Y,  Z_SS = (L_SS L_SSᵀ)⁻¹ − Yᵀ Z_RS

    Only the lower triangle of Z_SS is formed and stored (no symmetrised copies: the
    20 000-column genomic supernode of ssGBLUP is 3.2 GB per dense copy). (L_SS L_SSᵀ)⁻¹ is
    LAPACK's potri on the factor in place; from :data:`bigeval.linalg.BLOCKED_FROM` columns
    on, the blocked trtri + lauum of :mod:`bigeval.linalg` (crash-safe tiles for the
    OpenBLAS of the wheels, multithreaded).
    """
    LssT, LrsT, rows, ok = _gather_block(L.indptr, L.indices, L.data, f, l)
    if not ok:
        return False
    r = rows.size
    s = l - f
    Lss = LssT.T  # lower triangle of L_SS, Fortran order (the same memory)
    if r:
        # Yᵀ = L_SS⁻ᵀ L_RSᵀ  (s × r)
        YT = scipy.linalg.solve_triangular(Lss, LrsT, lower=True, trans="T",
                                           check_finite=False, overwrite_b=True)
        del LrsT
    # (L_SS L_SSᵀ)⁻¹ in place: its lower triangle in Lss (Fortran), i.e. upper in LssT (C)
    if s >= BLOCKED_FROM:
        from bigeval.linalg import lower_factor_inverse
        lower_factor_inverse(Lss, block=_POTRI_BLOCK)
    else:
        Lss, info = scipy.linalg.lapack.dpotri(Lss, lower=1, overwrite_c=1)
        if info != 0:  # pragma: no cover - diagonal checked positive before
            raise InputError("the Cholesky factor is singular", value=f"column {f}")
    ZssT = Lss.T  # LssT itself: dpotri works in place on a Fortran array
    if r:
        Zrr, found = _gather_z(L.indptr, L.indices, z, rows, where, n1, zd)
        if found != r * (r - 1) // 2:
            return False
        ZrsT = YT @ Zrr  # (Z_RR Y)ᵀ = Yᵀ Z_RR (Z_RR symmetric), s × r
        del Zrr
        np.negative(ZrsT, out=ZrsT)
        # Z_SS -= Yᵀ Z_RS, lower triangle of Z_SS = upper of ZssT; (Yᵀ Z_RS)ᵀ = Z_RSᵀ Y
        ZssT -= ZrsT @ YT.T  # the lower triangle of ZssT is not used
        del YT
    else:
        ZrsT = np.empty((s, 0))
    _scatter_block(L.indptr, z, f, l, ZssT, np.ascontiguousarray(ZrsT))
    return True


# a supernode is done with BLAS-3 when it has at least this many columns (below, the
# scalar column sweep is faster than the Python and gather overhead) ...
SUPERNODE_MIN = 32
# ... or at least 2 columns and this many rows below them (the columns of non-genotyped
# animals just before the genomic supernode have thousands of genotyped rows each, where the
# scalar sweep costs r² scattered reads per column)
SUPERNODE_MIN_ROWS = 1_000
# from this many columns the inverse of a supernode's diagonal block goes through the blocked
# potri of bigeval.linalg (the OpenBLAS of the wheels crashes in its own multithreaded
# routines from n ≈ 16 300); tests lower both
from bigeval.linalg import BLOCKED_FROM  # noqa: E402
_POTRI_BLOCK = None
# BLAS calls on blocks below this many flops run on one thread: on a busy 2-core machine
# small multithreaded OpenBLAS calls were measured 5-10x slower than single-threaded ones
# (spinning threads of the two OpenBLAS copies numpy and CHOLMOD load)
_THREADED_FLOPS = 1e9


def _sweep(L, z, starts, supernode_min, supernode_min_rows, where, acc, zd) -> int:
    """Right-to-left sweep: big supernodes by BLAS-3, the columns between by the kernel.
    L may have rows below its columns: they belong to the dense block ``zd``."""
    from threadpoolctl import ThreadpoolController
    ctl = ThreadpoolController()
    blas = ctl.select(user_api="blas")
    threads = max([i["num_threads"] for i in blas.info()] or [1])
    indptr, indices, data = L.indptr, L.indices, L.data
    n = L.shape[1]
    hi = n  # columns >= hi are done
    with ctl.limit(limits=1, user_api="blas"):
        for t in range(starts.size - 2, -1, -1):
            f, l = int(starts[t]), int(starts[t + 1])
            s = l - f
            r = int(indptr[f + 1] - indptr[f]) - s
            if s < supernode_min and not (s >= 2 and r >= supernode_min_rows):
                continue
            rc = _takahashi_kernel(indptr, indices, data, z, l, hi, where, acc, n, zd)
            if rc != -1:
                return rc
            flops = s ** 3 / 3.0 + s * r * (r + s)
            if flops >= _THREADED_FLOPS and threads > 1:
                with ctl.limit(limits=threads, user_api="blas"):
                    ok = _supernode_inverse(L, z, f, l, where, n, zd)
            else:
                ok = _supernode_inverse(L, z, f, l, where, n, zd)
            if not ok:
                return f
            hi = f
        return _takahashi_kernel(indptr, indices, data, z, 0, hi, where, acc, n, zd)


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


def takahashi(L, *, supernode_min: int | None = None,
              supernode_min_rows: int | None = None, overwrite: bool = False) -> sp.csc_matrix:
    """(L Lᵀ)⁻¹ on the pattern of the lower-triangular Cholesky factor L.

    Columns are swept right to left; supernodes (runs of columns with nested patterns, as
    CHOLMOD's factor has) of at least ``supernode_min`` columns are done as dense blocks
    with LAPACK/BLAS (potri, trsm, gemm), the other columns by the scalar Takahashi
    recurrence in numba. ``supernode_min=0`` or a huge value selects one path throughout
    (the tests check both against the dense inverse). Supernodes of at least 2 columns
    with at least ``supernode_min_rows`` rows below them go by BLAS-3 too (default
    :data:`SUPERNODE_MIN_ROWS` when ``supernode_min`` is not given (:data:`SUPERNODE_MIN`), else
    ``max(2, supernode_min)``, so that 0 and a huge value still select one path).

    ``overwrite=True`` computes Z in the memory of ``L.data`` (float64 CSC; L is destroyed
    and the result shares its arrays): one copy of the factor less at national size.

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
    inplace = overwrite and sp.isspmatrix_csc(L) and L.dtype == np.float64
    L = L if inplace else sp.csc_matrix(L, dtype=np.float64)
    if L.shape[0] != L.shape[1]:
        raise InputError("the Cholesky factor is not square", value=L.shape)
    z = _takahashi(L, np.empty((0, 0), order="F"), supernode_min, supernode_min_rows, inplace)
    n = L.shape[0]
    return sp.csc_matrix((z, L.indices, L.indptr), shape=(n, n))


def takahashi_dense_tail(L, zd, *, supernode_min: int | None = None,
                         supernode_min_rows: int | None = None,
                         overwrite: bool = False) -> np.ndarray:
    """Selected inversion of the leading columns of a factor whose trailing block is dense.

    ``L`` ((n1 + n2) × n1, CSC, sorted) holds the first n1 columns of the Cholesky factor of
    ``[[A11, A12], [A21, A22]]`` (L11 above, L21 = (L11⁻¹ A12)ᵀ below, on the symbolic
    pattern); ``zd`` (n2 × n2, Fortran) holds Z22, the inverse of the Schur complement
    A22 − A21 A11⁻¹ A12, in its lower triangle. Returns Z on the pattern of ``L`` (the values,
    in the layout of ``L.data``; in that memory with ``overwrite``): Z11 on the pattern of L11
    and Z21 on that of L21. The sweep is :func:`takahashi`'s with every read of Z in the
    dense block taken from ``zd``; its twin in the tests is the dense inverse.
    """
    inplace = overwrite and sp.isspmatrix_csc(L) and L.dtype == np.float64
    L = L if inplace else sp.csc_matrix(L, dtype=np.float64)
    n1, n2 = L.shape[1], zd.shape[0]
    if L.shape[0] != n1 + n2 or zd.shape != (n2, n2) or not zd.flags.f_contiguous:
        raise InputError("the factor's columns and the dense block do not fit",
                         value=f"L {L.shape}, block {zd.shape}",
                         expected="L (n1 + n2) x n1 and a Fortran-ordered n2 x n2 block")
    return _takahashi(L, zd, supernode_min, supernode_min_rows, inplace)


def _takahashi(L, zd, supernode_min, supernode_min_rows, inplace) -> np.ndarray:
    """The checks and the sweep shared by :func:`takahashi` and
    :func:`takahashi_dense_tail`; returns Z's values on the pattern of L."""
    if supernode_min_rows is None:
        supernode_min_rows = SUPERNODE_MIN_ROWS if supernode_min is None else \
            max(2, supernode_min)
    if supernode_min is None:
        supernode_min = SUPERNODE_MIN
    if not L.has_sorted_indices:
        if not inplace:
            L = L.copy()
        L.sort_indices()
    n = L.shape[1]
    # a missing (or zero) diagonal entry reads as 0 here
    if L.nnz and n and np.any(L.diagonal() <= 0):
        raise InputError("the Cholesky factor has a diagonal element <= 0",
                         value=float(L.diagonal().min()),
                         remedy="factor a positive-definite matrix")
    # the kernels take L's int32 or int64 indices as they are
    z = L.data if inplace else np.empty(L.nnz)
    where = np.full(L.shape[0], -1, np.int64)
    acc = np.zeros(L.shape[0])
    rc = -1
    if n:
        starts = _supernodes(L.indptr, L.indices)
        rc = _sweep(L, z, starts, supernode_min, supernode_min_rows, where, acc, zd)
    if rc <= -2:
        raise InputError("the Cholesky factor is not lower triangular with its diagonal first",
                         value=f"column {-2 - rc}", remedy="pass the factor L of A = L Lᵀ")
    if rc >= 0:
        raise InputError("the factor's pattern is not closed under fill (not a Cholesky "
                         "factor's symbolic pattern)", value=f"column {rc}",
                         remedy="keep the explicit zeros of the factor; do not prune L")
    return z


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
    """Selected inverse from a :class:`bigeval.linalg.cholesky.SparseCholesky`.

    Examples
    --------
    >>> from bigeval.linalg.cholesky import cholesky
    >>> A = sp.csc_matrix([[4.0, 2.0, 0.0], [2.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    >>> s = selected_inverse(cholesky(A, "superlu"))
    >>> bool(np.allclose(s.diagonal(), np.diag(np.linalg.inv(A.toarray()))))
    True
    """
    return SelectedInverse(takahashi(factor.L), np.asarray(factor.perm, dtype=np.int64))


def inverse_diagonal(A, method: str = "auto", *, what: str = "the matrix") -> np.ndarray:
    """diag(A⁻¹) of a sparse SPD matrix by factorisation and selected inversion."""
    from bigeval.linalg.cholesky import cholesky
    f = cholesky(A, method, what=what)
    L, perm = f.L, f.perm
    del f  # frees CHOLMOD's copy of the factor before the inversion
    return SelectedInverse(takahashi(L, overwrite=True),
                           np.asarray(perm, dtype=np.int64)).diagonal()
