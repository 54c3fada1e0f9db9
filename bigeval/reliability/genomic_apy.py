"""Part II's GBLUP diagonals ``diag((W + αK⁻¹)⁻¹)`` with APY G*⁻¹ and the A22⁻¹ operator.

**G side** (K⁻¹ = G_APY⁻¹, :class:`bigeval.genomic.apy.ApyInverse`, core c and non-core n): with
``P = G_nc G_cc⁻¹`` and ``M = diag(m)``, the matrix ``C = W + αG_APY⁻¹`` is

    C_cc = W_c + α(G_cc⁻¹ + P'M⁻¹P),   C_cn = −αP'M⁻¹,   C_nn = diag(w_n + α/m)  (= D).

The non-core block is diagonal, so it is absorbed into the c × c Schur complement

    S = C_cc − C_cn D⁻¹ C_nc = W_c + αG_cc⁻¹ + α P' diag(w_n / (m w_n + α)) P,

built by streaming blocks of rows of P (``O(n c²)`` flops, no memory beyond P and two c × c
matrices). Then exactly, with ``S = L L'``:

    (C⁻¹)_cc = S⁻¹,    (C⁻¹)_ii = 1/d_i + (α/(m_i w_i + α))² |L⁻¹ p_i|²   (i non-core),

the second from ``(C⁻¹)_nn = D⁻¹ + D⁻¹C_nc S⁻¹ C_cn D⁻¹``; one triangular solve per block of
rows of P. The dense twin is ``diag(inv(diag(w) + α apy_inverse_dense(G*, core)))``.

**A22 side** (:class:`bigeval.genomic.a22op.A22InverseOperator`): the genotyped block of the inverse
of the sparse ``αA⁻¹ + diag(0, W)`` (selected inversion;
:meth:`bigeval.genomic.a22op.A22InverseOperator.gblup_inverse_diagonal`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from bigeval.errors import InputError
from bigeval.genomic.a22op import A22InverseOperator, check_weights
from bigeval.genomic.apy import ROW_BLOCK, ApyInverse

__all__ = ["gblup_inverse_diagonal", "gblup_inverse_diagonal_apy", "is_structured"]


def is_structured(kinv) -> bool:
    """Whether ``kinv`` is an APY G⁻¹ or an A22⁻¹ operator (not a dense matrix)."""
    return isinstance(kinv, (ApyInverse, A22InverseOperator))


def gblup_inverse_diagonal_apy(w, apy: ApyInverse, alpha: float, *,
                               block: int = ROW_BLOCK) -> np.ndarray:
    """``diag((diag(w) + α G_APY⁻¹)⁻¹)`` exactly, by the c × c Schur complement (module
    docstring).

    Parameters
    ----------
    w
        One value ≥ 0 per genotyped animal, in the order of ``apy``.
    apy
        The APY G*⁻¹.
    alpha
        σe²/σa² > 0.
    block
        Rows of P per streamed block.

    Raises
    ------
    InputError
        Bad weights or α; the Schur complement not positive definite (G*_cc is not).
    """
    w = check_weights(w, apy.n, alpha, "W + αG⁻¹")
    wc, wn, m, P = w[apy.core], w[apy.noncore], apy.m, apy.P
    S = alpha * apy.gcc_inv
    S[np.diag_indices_from(S)] += wc
    scale = alpha * wn / (m * wn + alpha)  # α w/(m w + α), ≥ 0
    for lo in range(0, P.shape[0], block):
        p = P[lo:lo + block]
        S += p.T @ (scale[lo:lo + block, None] * p)
    try:
        L = scipy.linalg.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
    except scipy.linalg.LinAlgError:
        raise InputError("Part II's W + αG⁻¹ (APY) is not positive definite",
                         remedy="blend more A22 into G (--blend), or choose a smaller core "
                                "(--apy-core)") from None
    out = np.empty(apy.n)
    linv = scipy.linalg.solve_triangular(L, np.eye(L.shape[0]), lower=True,
                                         check_finite=False)
    out[apy.core] = np.einsum("ij,ij->j", linv, linv)  # diag(S⁻¹) = column sums of L⁻¹²
    del linv
    d = wn + alpha / m
    f = alpha / (m * wn + alpha)
    dn = np.empty(P.shape[0])
    for lo in range(0, P.shape[0], block):
        y = scipy.linalg.solve_triangular(L, P[lo:lo + block].T, lower=True,
                                          check_finite=False)
        dn[lo:lo + block] = np.einsum("ij,ij->j", y, y)
    out[apy.noncore] = 1.0 / d + f * f * dn
    return out


def gblup_inverse_diagonal(w, kinv, alpha: float) -> np.ndarray:
    """``diag((diag(w) + αK⁻¹)⁻¹)`` for an APY G⁻¹ or an A22⁻¹ operator."""
    if isinstance(kinv, ApyInverse):
        return gblup_inverse_diagonal_apy(w, kinv, alpha)
    if isinstance(kinv, A22InverseOperator):
        return kinv.gblup_inverse_diagonal(w, alpha)
    raise InputError("not an APY G⁻¹ or an A22⁻¹ operator", value=type(kinv).__name__)
