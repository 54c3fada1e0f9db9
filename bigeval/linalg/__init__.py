"""Dense symmetric positive-definite inverses through LAPACK Cholesky (potrf + potri).

Never ``numpy.linalg.inv`` of a general matrix: potrf + potri works in place on one
triangle, needs about one n × n array, and is 2-3× faster (shared/notes: n = 20 000 takes
92-126 s and 1× n² memory, against 229-369 s and 4× n² for ``inv``).

Everything works in place on a Fortran-ordered float64 array through LAPACK/BLAS function
pointers (SciPy's ``cython_lapack``/``cython_blas``, called with ctypes, which releases the
GIL): no copy of the matrix is made beyond what the caller asks for.

**OpenBLAS crash guard.** The OpenBLAS in the NumPy/SciPy wheels segfaults in its
multithreaded ``dpotrf`` for n ≳ 16 300 (measured here at n = 17 000, 2 threads; n = 15 000
is fine). The cause, measured: a multithreaded ``dsyrk`` whose result spans more than 2 GiB
(16 300² doubles ≈ 2³¹ bytes); dgemm, dtrsm and dtrmm on the same spans are fine. From
``BLOCKED_FROM`` on, the Cholesky factor, the triangular inverse and the product ``L⁻ᵀL⁻¹``
are computed by the blocked algorithms of LAPACK (dpotrf, dtrtri, dlauum) written out here:
LAPACK is only ever called on diagonal blocks of ``BLOCK`` rows, the rest is level-3 BLAS
(dtrsm, dtrmm, dgemm, and dsyrk on tiles of at most ``BLOCK`` columns), multithreaded.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import scipy.linalg

from bigeval.errors import BigevalWarning, InputError

__all__ = ["cholesky_lower", "lower_factor_inverse", "mirror_lower", "spd_inverse",
           "spd_inverse_diag", "symmetric_inverse_diag"]

#: Order from which the factorisations are blocked (well below the ~16 300 of the crash).
BLOCKED_FROM = 8192
#: Rows of the diagonal blocks handed to LAPACK in the blocked algorithms.
BLOCK = 4096


# --------------------------------------------------------------------------------------
# LAPACK / BLAS on views of a Fortran array, through SciPy's function pointers
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _fn(module: str, name: str, nargs: int):
    from numba.extending import get_cython_function_address

    address = get_cython_function_address(f"scipy.linalg.cython_{module}", name)
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * nargs))(address)


def _c(ch: str):
    return ctypes.byref(ctypes.c_char(ch.encode()))


def _i(v: int):
    return ctypes.byref(ctypes.c_int(int(v)))


def _d(v: float):
    return ctypes.byref(ctypes.c_double(v))


class _View:
    """Pointers to the (i, j) element of a Fortran-ordered float64 square array."""

    def __init__(self, a: np.ndarray):
        if not (a.flags.f_contiguous and a.dtype == np.float64 and a.ndim == 2
                and a.shape[0] == a.shape[1]):  # pragma: no cover - internal contract
            raise ValueError("need a square Fortran-ordered float64 array")
        self.base, self.n = a.ctypes.data, a.shape[0]
        self.ld = _i(self.n)

    def at(self, i: int, j: int):
        return ctypes.c_void_p(self.base + 8 * (i + j * self.n))


def _potrf_blocked(a: np.ndarray, block: int) -> int:
    """Lower Cholesky factor in place (right-looking, LAPACK dpotrf's blocking); info.

    The trailing update ``A22 -= L21 L21ᵀ`` is done in column tiles of at most ``block``
    columns (dsyrk on the diagonal tile, dgemm below it): the wheels' OpenBLAS segfaults in
    a multithreaded dsyrk whose result spans more than 2 GiB of memory (measured: n = 16 100
    columns of a 17 000-row array crash, 12 000 do not; one thread, or dgemm, is fine) —
    the crash behind its dpotrf's from n ≈ 16 300.
    """
    potrf, trsm, syrk, gemm = (_fn("lapack", "dpotrf", 5), _fn("blas", "dtrsm", 11),
                               _fn("blas", "dsyrk", 10), _fn("blas", "dgemm", 13))
    v, n = _View(a), a.shape[0]
    for k in range(0, n, block):
        b = min(block, n - k)
        info = ctypes.c_int(0)
        potrf(_c("L"), _i(b), v.at(k, k), v.ld, ctypes.byref(info))
        if info.value:
            return k + info.value
        r = n - k - b
        if r:  # L21 = A21 L11⁻ᵀ;  A22 -= L21 L21ᵀ (lower triangle only), by column tiles
            trsm(_c("R"), _c("L"), _c("T"), _c("N"), _i(r), _i(b), _d(1.0), v.at(k, k), v.ld,
                 v.at(k + b, k), v.ld)
            for j0 in range(k + b, n, block):
                j1 = min(n, j0 + block)
                syrk(_c("L"), _c("N"), _i(j1 - j0), _i(b), _d(-1.0), v.at(j0, k), v.ld,
                     _d(1.0), v.at(j0, j0), v.ld)
                if j1 < n:
                    gemm(_c("N"), _c("T"), _i(n - j1), _i(j1 - j0), _i(b), _d(-1.0),
                         v.at(j1, k), v.ld, v.at(j0, k), v.ld, _d(1.0), v.at(j1, j0), v.ld)
    return 0


def _trtri_blocked(a: np.ndarray, block: int) -> int:
    """Inverse of a lower triangular matrix in place (LAPACK dtrtri's blocking); info."""
    trtri, trmm, trsm = _fn("lapack", "dtrtri", 6), _fn("blas", "dtrmm", 11), \
        _fn("blas", "dtrsm", 11)
    v, n = _View(a), a.shape[0]
    for j in range(((n - 1) // block) * block, -1, -block):
        jb = min(block, n - j)
        r = n - j - jb
        if r:  # rows below the diagonal block: -L22⁻¹ L21 L11⁻¹ (L22⁻¹ already in place)
            trmm(_c("L"), _c("L"), _c("N"), _c("N"), _i(r), _i(jb), _d(1.0),
                 v.at(j + jb, j + jb), v.ld, v.at(j + jb, j), v.ld)
            trsm(_c("R"), _c("L"), _c("N"), _c("N"), _i(r), _i(jb), _d(-1.0), v.at(j, j), v.ld,
                 v.at(j + jb, j), v.ld)
        info = ctypes.c_int(0)
        trtri(_c("L"), _c("N"), _i(jb), v.at(j, j), v.ld, ctypes.byref(info))
        if info.value:  # pragma: no cover - a Cholesky factor has a positive diagonal
            return j + info.value
    return 0


def _lauum_blocked(a: np.ndarray, block: int) -> None:
    """``Lᵀ L`` of a lower triangular L in place, lower triangle (LAPACK dlauum's blocking)."""
    lauum, trmm, gemm, syrk = (_fn("lapack", "dlauum", 5), _fn("blas", "dtrmm", 11),
                               _fn("blas", "dgemm", 13), _fn("blas", "dsyrk", 10))
    v, n = _View(a), a.shape[0]
    for i in range(0, n, block):
        ib = min(block, n - i)
        r = n - i - ib
        if i:
            trmm(_c("L"), _c("L"), _c("T"), _c("N"), _i(ib), _i(i), _d(1.0), v.at(i, i), v.ld,
                 v.at(i, 0), v.ld)
        info = ctypes.c_int(0)
        lauum(_c("L"), _i(ib), v.at(i, i), v.ld, ctypes.byref(info))
        if r:
            if i:
                gemm(_c("T"), _c("N"), _i(ib), _i(i), _i(r), _d(1.0), v.at(i + ib, i), v.ld,
                     v.at(i + ib, 0), v.ld, _d(1.0), v.at(i, 0), v.ld)
            syrk(_c("L"), _c("T"), _i(ib), _i(r), _d(1.0), v.at(i + ib, i), v.ld, _d(1.0),
                 v.at(i, i), v.ld)


def _block_for(n: int, block: int | None) -> int:
    """Diagonal-block size: the whole matrix below BLOCKED_FROM, else BLOCK (or ``block``)."""
    if block is not None:
        return max(1, int(block))
    return n if n < BLOCKED_FROM else BLOCK


def _as_work(a: np.ndarray, overwrite: bool) -> np.ndarray:
    """A Fortran float64 array to work in: ``a`` itself (or its transpose) when allowed.

    A C-ordered symmetric matrix is its own transpose, and its transpose is Fortran-ordered,
    so ``overwrite`` works in place for either layout.
    """
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise InputError("the matrix must be square", value=f"shape {a.shape}",
                         expected="n x n", remedy="pass a square symmetric matrix")
    if overwrite and a.dtype == np.float64:
        if a.flags.f_contiguous and a.flags.writeable:
            return a
        if a.flags.c_contiguous and a.flags.writeable:
            return a.T
    return np.array(a, dtype=np.float64, order="F")


def _not_pd(what, info, n, remedy, file=None, ids=None) -> InputError:
    value = None
    if ids is not None:  # the row at which the factorisation broke down
        value = f"row {info} of {n}: animal {ids[info - 1]}"
    return InputError(f"{what} is not positive definite (leading minor {info} of "
                      f"{n} is not positive)", file=file, value=value,
                      expected=f"{what} positive definite: no animal's row a combination "
                               "of others' (duplicated or near-identical genotypes, fewer "
                               "SNPs than animals)", remedy=remedy)


def cholesky_lower(a: np.ndarray, *, what: str = "the matrix", remedy: str = "check the matrix",
                   file=None, ids=None, block: int | None = None) -> np.ndarray:
    """Lower Cholesky factor ``L`` (``a = L Lᵀ``) in place in the lower triangle of ``a``.

    ``a`` must be a Fortran-ordered float64 array; only its lower triangle is read, and its
    strictly upper triangle is left as it was (the diagonal is overwritten).

    Raises
    ------
    InputError
        ``a`` is not positive definite (naming the row, and the animal when ``ids`` is given).

    Examples
    --------
    >>> a = np.asfortranarray([[4.0, 2.0], [2.0, 3.0]])
    >>> cholesky_lower(a).round(4).tolist()
    [[2.0, 2.0], [1.0, 1.4142]]
    """
    n = a.shape[0]
    diag = a.diagonal().copy()
    info = _potrf_blocked(a, _block_for(n, block))
    if info:
        raise _not_pd(what, info, n, remedy, file, ids)
    # numerically singular: a pivot at rounding level of its row's diagonal (an exact linear
    # combination, e.g. two animals with identical genotypes, can factor with a pivot of
    # ~1e-16 instead of failing, depending on the BLAS kernel)
    tiny = np.flatnonzero(a.diagonal() ** 2 <= 64 * n * np.finfo(np.float64).eps * diag)
    if tiny.size:
        raise _not_pd(what, int(tiny[0]) + 1, n, remedy, file, ids)
    return a


def mirror_lower(a: np.ndarray, block: int = 2048) -> np.ndarray:
    """Copy the strictly lower triangle of a square array into its upper one, in place.

    Blockwise, so that no index arrays or n × n temporaries are made.

    Examples
    --------
    >>> mirror_lower(np.array([[1.0, 9.0], [2.0, 3.0]])).tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    n = a.shape[0]
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        d = a[j0:j1, j0:j1]
        iu = np.triu_indices(j1 - j0, 1)
        d[iu] = d.T[iu]
        for i0 in range(j1, n, block):
            i1 = min(n, i0 + block)
            a[j0:j1, i0:i1] = a[i0:i1, j0:j1].T
    return a


def _inverse_lower(a: np.ndarray, what: str, overwrite: bool, remedy: str, file=None,
                   ids=None, block: int | None = None) -> np.ndarray:
    """potrf + potri: the inverse of an SPD matrix in its lower triangle (upper: untouched)."""
    m = _as_work(a, overwrite)
    b = _block_for(m.shape[0], block)
    cholesky_lower(m, what=what, remedy=remedy, file=file, ids=ids, block=b)
    _trtri_blocked(m, b)  # potri = trtri + lauum
    _lauum_blocked(m, b)
    return m


def lower_factor_inverse(m: np.ndarray, block: int | None = None) -> np.ndarray:
    """``(L Lᵀ)⁻¹`` from a lower Cholesky factor L, in place in the lower triangle of ``m``
    (LAPACK dpotri = trtri + lauum, blocked as in :func:`spd_inverse`: crash-safe tiles for
    the OpenBLAS of the wheels, multithreaded). ``m``: Fortran-ordered float64; its strictly
    upper triangle is not read and is left as it was.

    Examples
    --------
    >>> m = np.asfortranarray(np.linalg.cholesky([[4.0, 2.0], [2.0, 3.0]]))
    >>> lower_factor_inverse(m, block=1)[[0, 1, 1], [0, 0, 1]].round(12).tolist()
    [0.375, -0.25, 0.5]
    """
    b = _block_for(m.shape[0], block)
    if _trtri_blocked(m, b):
        raise InputError("the Cholesky factor is singular", remedy="factor an SPD matrix")
    _lauum_blocked(m, b)
    return m


def spd_inverse(a: np.ndarray, *, what: str = "the matrix", overwrite: bool = False,
                remedy: str = "check the matrix; blend G with A22 if it is G", file=None,
                ids=None, block: int | None = None) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix (both triangles filled).

    Only the lower triangle of ``a`` is read. With ``overwrite`` the inverse is computed in
    the memory of ``a`` (a float64 Fortran- or C-ordered array; no n × n copy), otherwise in
    a copy. ``file`` and ``ids`` (one per row) only make the error for a matrix that is not
    positive definite name where it came from and the animal at which it broke down.
    ``block``: diagonal-block size of the blocked factorisation (default: see
    ``BLOCKED_FROM``).

    Examples
    --------
    >>> spd_inverse(np.array([[4.0, 2.0], [2.0, 3.0]]))
    array([[ 0.375, -0.25 ],
           [-0.25 ,  0.5  ]])
    """
    return mirror_lower(_inverse_lower(a, what, overwrite, remedy, file, ids, block))


def _lower_inverse_diag(m: np.ndarray, block: int = 2048) -> np.ndarray:
    """diag((L Lᵀ)⁻¹) from L⁻¹ in the lower triangle: the column sums of squares of L⁻¹."""
    n = m.shape[0]
    out = np.empty(n)
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        d = np.tril(m[j0:j1, j0:j1])
        out[j0:j1] = np.einsum("ij,ij->j", d, d)
        if j1 < n:
            below = m[j1:, j0:j1]
            out[j0:j1] += np.einsum("ij,ij->j", below, below)
    return out


def spd_inverse_diag(a: np.ndarray, *, what: str = "the matrix", overwrite: bool = False,
                     remedy: str = "check the matrix", block: int | None = None) -> np.ndarray:
    """Diagonal of the inverse of a symmetric positive-definite matrix.

    potrf and trtri only (2/3 of potrf + potri): ``(A⁻¹)_ii = Σ_k (L⁻¹)_ki²``.

    Examples
    --------
    >>> spd_inverse_diag(np.array([[4.0, 2.0], [2.0, 3.0]]))
    array([0.375, 0.5  ])
    """
    m = _as_work(a, overwrite)
    b = _block_for(m.shape[0], block)
    cholesky_lower(m, what=what, remedy=remedy, block=b)
    _trtri_blocked(m, b)
    return _lower_inverse_diag(m)


def symmetric_inverse_diag(a: np.ndarray, *, what: str = "the matrix", overwrite: bool = False,
                           block: int | None = None) -> tuple[np.ndarray, bool]:
    """Diagonal of the inverse of a symmetric matrix: Cholesky, else Bunch-Kaufman LDLᵀ.

    The SAS program inverts Part II's matrix with a general ``inv``, which also works when the
    matrix is symmetric but not positive definite (G and A22 on different scales make
    ``I + G⁻¹ − A22⁻¹`` indefinite). Cholesky is tried first; if it fails, the exact inverse
    comes from LAPACK's symmetric-indefinite factorisation (dsytrf + dsytri) and a
    :class:`bigeval.errors.BigevalWarning` says so.

    ``a`` must hold both triangles. With ``overwrite`` the work is done in the memory of
    ``a`` (float64, Fortran- or C-ordered): the Cholesky factorisation reads and writes the
    lower triangle only, so after a failure the matrix is still in the upper triangle (its
    diagonal is kept aside) for the LDLᵀ factorisation.

    Returns
    -------
    diag, positive_definite
    """
    m = _as_work(a, overwrite)
    diagonal = np.diag(m).copy()
    b = _block_for(m.shape[0], block)
    try:
        cholesky_lower(m, what=what, block=b)
    except InputError:
        pass
    else:
        _trtri_blocked(m, b)
        return _lower_inverse_diag(m), True
    m[np.diag_indices_from(m)] = diagonal  # the upper triangle is untouched
    lu, ipiv, info = scipy.linalg.lapack.dsytrf(m, lower=0, overwrite_a=1)
    if info > 0:
        raise InputError(f"{what} is singular (pivot {info} of {a.shape[0]} is zero)",
                         remedy="blend G with A22 (e.g. 0.95 G + 0.05 A22) or tune G to A22")
    inv, info = scipy.linalg.lapack.dsytri(lu, ipiv, lower=0, overwrite_a=1)
    if info != 0:  # pragma: no cover
        raise InputError(f"{what}: LAPACK dsytri failed (info={info})")
    import warnings

    warnings.warn(f"{what} is not positive definite; it was inverted by a symmetric-indefinite "
                  "factorisation, as the SAS program's general inverse does. Tune G to A22 "
                  "(same mean diagonal and off-diagonal) or blend more A22 into G.",
                  BigevalWarning, stacklevel=2)
    return np.diag(inv).copy(), False
