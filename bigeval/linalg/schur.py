"""A sparse SPD matrix with one dense block, factored by the Schur complement of the block.

The single-step MME is sparse except for the genotyped animals' equations, where
α(G⁻¹ − A22⁻¹) makes an n2 × n2 dense block. Ordered ``[sparse (n1), dense (n2)]``::

    C = [[C11, C12], [C21, C22]],   L = [[L11, 0], [L21, L22]]
    C11 = L11 L11ᵀ (sparse Cholesky, fill-reducing order of C11 alone)
    L21 = (L11⁻¹ C12)ᵀ            (sparse triangular solves, on the symbolic pattern)
    S = C22 − L21 L21ᵀ = L22 L22ᵀ (dense, in place),   Z22 = S⁻¹ (potri, in place)

and the Takahashi sweep of :func:`bigeval.linalg.selinv.takahashi_dense_tail` gives Z11 and
Z21 on the pattern of L11 and L21, reading Z22 where it needs it. Only one dense n2 × n2
array exists (S, then Z22 in its memory); the dense block is exactly the genotyped, where a
fill-reducing order of the whole matrix (CHOLMOD's AMD on the full LHS) put a final
supernode of 8 474 columns for 5 000 genotyped animals in a 200 000-animal pedigree, with
most of its 54 M factor entries in it (L11 + L21 here: 3.8 M).

Rows of L21ᵀ (one per sparse equation, its genotyped entries) with many entries — a
non-genotyped ancestor of most genotyped animals — go into S by dense BLAS in panels, the
others by a scalar scatter in numba.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from bigeval.errors import InputError
from bigeval.linalg import cholesky_lower, lower_factor_inverse
from bigeval.linalg.cholesky import cholesky
from bigeval.linalg.selinv import takahashi_dense_tail

__all__ = ["schur_factor", "SchurFactor"]

# rows of L21ᵀ with at least this many entries are subtracted from S by BLAS (gemm on a
# dense panel), the others by the scalar scatter; tests lower it
DENSE_ROW_MIN = 512
_PANEL_ROWS = 512  # rows of such a dense panel
_TILE = 2048  # columns of S updated by one gemm


@njit(cache=True)
def _etree(indptr, indices):  # pragma: no cover - compiled
    """Parent of every column of a Cholesky factor (its first row below the diagonal)."""
    n = indptr.size - 1
    parent = np.full(n, -1, np.int64)
    for j in range(n):
        if indptr[j + 1] - indptr[j] > 1:
            parent[j] = indices[indptr[j] + 1]
    return parent


@njit(cache=True)
def _reach_counts(parent, bptr, bidx):  # pragma: no cover - compiled
    """Entries of each column of L11⁻¹ B: the union of the paths from B's rows to the root
    of the elimination tree (Gilbert & Peierls 1988)."""
    n = parent.size
    m = bptr.size - 1
    mark = np.full(n, -1, np.int64)
    count = np.zeros(m, np.int64)
    for c in range(m):
        for q in range(bptr[c], bptr[c + 1]):
            i = bidx[q]
            while i != -1 and mark[i] != c:
                mark[i] = c
                count[c] += 1
                i = parent[i]
    return count


@njit(cache=True, parallel=True)
def _lower_solve_kernel(indptr, indices, data, parent, bptr, bidx, bval, wptr, widx,
                        wval, nchunks):  # pragma: no cover - compiled
    """W = L11⁻¹ B column by column on the symbolic pattern (sorted rows), ``nchunks``
    groups of columns in parallel, each with its own work vectors."""
    n = parent.size
    m = bptr.size - 1
    for t in prange(nchunks):
        x = np.zeros(n)
        mark = np.full(n, -1, np.int64)
        for c in range(t, m, nchunks):
            p0 = wptr[c]
            cnt = 0
            for q in range(bptr[c], bptr[c + 1]):
                i = bidx[q]
                while i != -1 and mark[i] != c:
                    mark[i] = c
                    widx[p0 + cnt] = i
                    cnt += 1
                    i = parent[i]
                x[bidx[q]] += bval[q]
            rows = np.sort(widx[p0:p0 + cnt])  # parents come after children: topological
            for a in range(cnt):
                j = rows[a]
                widx[p0 + a] = j
                xj = x[j] / data[indptr[j]]
                x[j] = xj
                for q in range(indptr[j] + 1, indptr[j + 1]):
                    x[indices[q]] -= data[q] * xj
            for a in range(cnt):
                j = rows[a]
                wval[p0 + a] = x[j]
                x[j] = 0.0


@njit(cache=True, parallel=True)
def _scatter_gram_kernel(rptr, ridx, rval, s, skip, nchunks):  # pragma: no cover
    """S[c_b, c_a] −= w_b w_a (c_b ≥ c_a) for every row of W (CSR) not in ``skip``; the
    columns of S are shared among ``nchunks`` threads by their number (no two threads
    write one column)."""
    m = rptr.size - 1
    for t in prange(nchunks):
        for r in range(m):
            if skip[r]:
                continue
            for a in range(rptr[r], rptr[r + 1]):
                ca = ridx[a]
                if ca % nchunks != t:
                    continue
                wa = rval[a]
                for b in range(a, rptr[r + 1]):
                    s[ridx[b], ca] -= rval[b] * wa


def _subtract_dense_rows(s: np.ndarray, wr: sp.csr_matrix, rows: np.ndarray) -> None:
    """S −= Pᵀ P (lower triangle) for the dense rows ``rows`` of W (CSR), in panels of
    :data:`_PANEL_ROWS` rows and tiles of :data:`_TILE` columns (no BLAS call on the whole
    n2 × n2: the OpenBLAS of the wheels crashes in some from n ≈ 16 300)."""
    n2 = s.shape[0]
    for r0 in range(0, rows.size, _PANEL_ROWS):
        panel = wr[rows[r0:r0 + _PANEL_ROWS]].toarray(order="F")
        for j0 in range(0, n2, _TILE):
            j1 = min(n2, j0 + _TILE)
            s[j0:, j0:j1] -= panel[:, j0:].T @ panel[:, j0:j1]


@dataclass
class SchurFactor:
    """A sparse SPD matrix with a dense block, factored by the Schur complement of that block
    (:func:`schur_factor`): ``diagonal`` and ``entries`` of its inverse on the pattern,
    ``logdet`` and (when the factor of the sparse part was kept) ``solve``, all in the
    matrix's own numbering — what PEVs, exact reliabilities and REML's traces need."""

    e1: np.ndarray        # the sparse equations, in the matrix's numbering
    e2: np.ndarray        # the dense block's equations
    fac: object           # SparseCholesky of C11 (None when not kept)
    c12: sp.csc_matrix
    z22: np.ndarray       # Z22 = S⁻¹, lower triangle (Fortran)
    Lc: sp.csc_matrix     # Z on the pattern of the first n1 columns of L (permuted C11 order)
    perm: np.ndarray      # L11's permutation of C11
    logdet: float         # log|C|
    method: str           # the sparse Cholesky of C11 (cholmod or superlu)
    _diag: np.ndarray = field(repr=False, default=None)
    _order: np.ndarray = field(repr=False, default=None)

    @property
    def n(self) -> int:
        return self.e1.size + self.e2.size

    def solve(self, b) -> np.ndarray:
        """C⁻¹ b for a vector or an (n × k) matrix b::

            x2 = S⁻¹ (b2 − C21 C11⁻¹ b1),   x1 = C11⁻¹ (b1 − C12 x2)
        """
        from scipy.linalg.blas import dsymm
        if self.fac is None and self.e1.size:
            raise InputError("this factorisation kept no factor of the sparse part",
                             remedy="call schur_factor(..., keep_factor=True) to solve")
        b = np.asarray(b, dtype=np.float64)
        b1, b2 = b[self.e1], b[self.e2]
        y1 = self.fac.solve(b1) if self.e1.size else b1
        t = b2 - self.c12.T @ y1
        x2 = (dsymm(1.0, self.z22, np.asfortranarray(t.reshape(t.shape[0], -1)), lower=1)
              .reshape(t.shape) if t.size else t)
        x = np.empty_like(b)
        x[self.e2] = x2
        if self.e1.size:
            x[self.e1] = self.fac.solve(b1 - self.c12 @ x2)
        return x

    def diagonal(self) -> np.ndarray:
        """diag(C⁻¹) in the matrix's numbering."""
        if self._diag is None:
            d = np.empty(self.n)
            d[self.e1[self.perm]] = self.Lc.data[self.Lc.indptr[:-1]]
            d[self.e2] = np.diagonal(self.z22)
            self._diag = d
        return self._diag

    def entries(self, rows, cols) -> np.ndarray:
        """(C⁻¹)[rows[t], cols[t]] for pairs on the pattern of C (or of its factor)."""
        from bigeval.linalg.selinv import _lookup_kernel
        n1 = self.e1.size
        if self._order is None:  # each equation's place in the factor: L11's order, then S
            q = np.empty(self.n, np.int64)
            q[self.e1[self.perm]] = np.arange(n1)
            q[self.e2] = n1 + np.arange(self.e2.size)
            self._order = q
        r = self._order[np.asarray(rows, np.int64).ravel()]
        c = self._order[np.asarray(cols, np.int64).ravel()]
        r, c = np.maximum(r, c), np.minimum(r, c)
        out = np.empty(r.size)
        both = c >= n1
        out[both] = self.z22[r[both] - n1, c[both] - n1]
        sel = ~both
        if sel.any():
            got = np.empty(int(sel.sum()))
            t = _lookup_kernel(self.Lc.indptr, self.Lc.indices, self.Lc.data, r[sel], c[sel],
                               got)
            if t >= 0:
                raise InputError("entry of the inverse outside the selected pattern",
                                 remedy="ask for entries on the pattern of the factored matrix")
            out[sel] = got
        return out


def schur_factor(lhs, dense_eq, *, c22: np.ndarray | None = None, keep_factor: bool = True,
                 solver: str = "auto", what: str = "the MME left-hand side",
                 remedy: str = "check that the matrix is positive definite",
                 timings: dict | None = None) -> SchurFactor:
    """Factor a sparse SPD ``lhs`` whose equations ``dense_eq`` form a dense block by the
    Schur complement of that block (see the module docstring).

    Parameters
    ----------
    lhs : (n × n) sparse SPD matrix (both triangles).
    dense_eq : the equations of the dense block (distinct), in the order of ``c22``.
    c22 : the dense block itself, (n2 × n2) float64 Fortran-ordered (only its lower triangle
        is read; it is overwritten with Z22, and the block of ``lhs`` is then not read), for a
        caller that builds it apart (exact single step: from G⁻¹ and A22⁻¹, without a
        sparse copy of the block); by default the block of ``lhs``, densified.
    keep_factor : keep the factor of the sparse part (for ``solve``); without it the factor
        is freed before the dense work.
    solver : sparse Cholesky of the sparse part (:func:`bigeval.linalg.cholesky.cholesky`).
    timings : if given, the seconds of each step are written into it (``factor``,
        ``solve`` (L21), ``schur`` (S), ``dense`` (potrf + potri), ``sweep``) and the sizes
        (``nnz_L11``, ``nnz_L21``, ``dense_rows``).

    Examples
    --------
    >>> c = np.array([[4.0, 1.0, 1.0], [1.0, 3.0, 0.5], [1.0, 0.5, 2.0]])
    >>> f = schur_factor(sp.csc_matrix(c), [2, 0])
    >>> bool(np.allclose(f.diagonal(), np.diag(np.linalg.inv(c))))
    True
    >>> bool(np.allclose(f.solve([1.0, 2.0, 3.0]), np.linalg.solve(c, [1.0, 2.0, 3.0])))
    True
    """
    lhs = sp.csc_matrix(lhs, dtype=np.float64)
    e2 = np.asarray(dense_eq, np.int64)
    rest = np.ones(lhs.shape[0], bool)
    rest[e2] = False
    e1 = np.flatnonzero(rest)
    rows = lhs[e1]
    c11, c12 = rows[:, e1], rows[:, e2].tocsc()
    del rows
    if c22 is None:
        c22 = np.asfortranarray(lhs[e2][:, e2].toarray())
    del lhs
    if solver == "auto":
        from bigeval.linalg.cholesky import HAVE_CHOLMOD
        solver = "cholmod" if HAVE_CHOLMOD else "superlu"
    fac, perm, Lc, logdet = _schur(c11, c12, c22, solver, what, remedy, timings, keep_factor)
    return SchurFactor(e1, e2, fac, c12, c22, Lc, perm, logdet, solver)


def _schur(c11, c12, s, solver, what, remedy, timings, keep_factor):
    """The work of :func:`schur_factor` on the blocks: returns (the factor of C11 or None,
    its permutation, Z on the pattern of the first n1 columns of L, log|C|); Z22 in ``s``."""
    c11 = sp.csc_matrix(c11, dtype=np.float64)
    n1, n2 = c11.shape[0], s.shape[0]
    if c11.shape != (n1, n1) or c12.shape != (n1, n2) or s.shape != (n2, n2):
        raise InputError("the blocks of the matrix do not fit", value=f"C11 {c11.shape}, "
                         f"C12 {c12.shape}, C22 {s.shape}", expected="n1 x n1, n1 x n2, n2 x n2")
    if s.dtype != np.float64 or not s.flags.f_contiguous:
        raise InputError("the dense block must be a Fortran-ordered float64 array",
                         value=f"{s.dtype}, {'F' if s.flags.f_contiguous else 'C'} order")
    if n1 == 0:
        empty = sp.csc_matrix((n2, 0))
        return None, np.empty(0, np.int64), empty, _invert_in_place(s, what, remedy)
    clock = _Clock(timings)
    try:
        fac = cholesky(sp.tril(c11, format="csc") if solver == "cholmod" else c11, solver,
                       what=what)
    except InputError as exc:
        raise InputError(exc.message, remedy=remedy) from None
    L11, perm = fac.L, np.asarray(fac.perm, dtype=np.int64)
    logdet = fac.logdet()
    if not keep_factor:
        fac = None  # frees CHOLMOD's copy before the dense work
    clock.lap("factor", nnz_L11=L11.nnz)
    indptr, indices = L11.indptr.astype(np.int64), L11.indices.astype(np.int64)
    parent = _etree(indptr, indices)
    pinv = np.empty(n1, np.int64)
    pinv[perm] = np.arange(n1)
    b = sp.csc_matrix(c12, dtype=np.float64)
    b.sum_duplicates()
    bidx = pinv[b.indices]
    bptr = b.indptr.astype(np.int64)
    count = _reach_counts(parent, bptr, bidx)
    wptr = np.zeros(n2 + 1, np.int64)
    np.cumsum(count, out=wptr[1:])
    widx = np.empty(wptr[-1], np.int64)
    wval = np.empty(wptr[-1])
    nchunks = max(1, numba.get_num_threads())
    _lower_solve_kernel(indptr, indices, L11.data, parent, bptr, bidx, b.data, wptr, widx,
                        wval, nchunks)
    del b, bidx
    W = sp.csc_matrix((wval, widx, wptr), shape=(n1, n2))  # L21ᵀ
    del wval, widx, wptr
    wr = W.tocsr()  # row j: the dense-block rows of column j of L
    del W
    wr.sort_indices()
    clock.lap("solve", nnz_L21=wr.nnz)
    per_row = np.diff(wr.indptr)
    dense_rows = np.flatnonzero(per_row >= DENSE_ROW_MIN)
    skip = np.zeros(n1, np.bool_)
    skip[dense_rows] = True
    _scatter_gram_kernel(wr.indptr.astype(np.int64), wr.indices.astype(np.int64), wr.data,
                         s, skip, nchunks)
    if dense_rows.size:
        _subtract_dense_rows(s, wr, dense_rows)
    clock.lap("schur", dense_rows=dense_rows.size)
    logdet += _invert_in_place(s, what, remedy)  # Z22 in the lower triangle of s
    clock.lap("dense")
    # the first n1 columns of the whole factor: L11 above, L21 below (rows n1 + c)
    Lc = _stack(L11, wr, n1, n2)
    del L11, wr
    Lc.data = takahashi_dense_tail(Lc, s, overwrite=True)  # Z, in the memory of L's values
    clock.lap("sweep")
    return fac, perm, Lc, logdet


class _Clock:
    """Seconds of each step into a caller's dict (or nowhere)."""

    def __init__(self, out: dict | None):
        self.out, self.t = out, time.perf_counter()

    def lap(self, step: str, **sizes) -> None:
        if self.out is not None:
            t = time.perf_counter()
            self.out[step] = t - self.t
            self.out.update(sizes)
            self.t = t


def _invert_in_place(s: np.ndarray, what: str, remedy: str) -> float:
    """The lower triangle of ``s`` ← that of s⁻¹ (blocked potrf + potri); returns log|s|."""
    if not s.shape[0]:
        return 0.0
    cholesky_lower(s, what=f"{what} (the Schur complement of its dense block)", remedy=remedy)
    logdet = 2.0 * float(np.log(np.diagonal(s)).sum())
    lower_factor_inverse(s)
    return logdet


@njit(cache=True)
def _stack_kernel(lptr, lidx, lval, rptr, ridx, rval, n1, optr, oidx, oval):  # pragma: no cover
    for j in range(n1):
        q = optr[j]
        for p in range(lptr[j], lptr[j + 1]):
            oidx[q] = lidx[p]
            oval[q] = lval[p]
            q += 1
        for p in range(rptr[j], rptr[j + 1]):
            oidx[q] = n1 + ridx[p]
            oval[q] = rval[p]
            q += 1


def _stack(L11, wr, n1: int, n2: int) -> sp.csc_matrix:
    """The (n1 + n2) × n1 CSC of column j = [L11[:, j]; row j of W], sorted."""
    optr = np.zeros(n1 + 1, np.int64)
    np.cumsum(np.diff(L11.indptr) + np.diff(wr.indptr), out=optr[1:])
    itype = np.int32 if max(optr[-1], n1 + n2) < np.iinfo(np.int32).max else np.int64
    oidx = np.empty(optr[-1], itype)
    oval = np.empty(optr[-1])
    _stack_kernel(L11.indptr.astype(np.int64), L11.indices, L11.data,
                  wr.indptr.astype(np.int64), wr.indices, wr.data, n1, optr, oidx, oval)
    out = sp.csc_matrix((oval, oidx, optr.astype(itype)), shape=(n1 + n2, n1))
    out.has_sorted_indices = True
    return out
