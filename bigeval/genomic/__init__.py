"""Genomic stage: the genomic relationship matrix G.

:func:`vanraden_g` is the plain in-memory float64 computation, the dense twin against which
chunked and distributed versions are tested.

References
----------
VanRaden, P.M. (2008) Efficient methods to compute genomic predictions. J. Dairy Sci.
91:4414-4423 (method 1).
Mrode, R.A. and Pocrnic, I. (2023) Linear Models for the Prediction of the Genetic Merit of
Animals, 4th ed., ch. 11.
"""

from __future__ import annotations

import numpy as np

from bigeval._resources import check_dense
from bigeval.defaults import BLEND
from bigeval.errors import InputError

__all__ = ["vanraden_g"]

MISSING = -1  # genotype code of a missing call


def vanraden_g(M, freq=None) -> tuple[np.ndarray, np.ndarray]:
    """VanRaden (2008) method 1 genomic relationship matrix.

    ``G = Z Z' / (2 sum_j p_j (1 - p_j))`` with ``Z = M - 2p`` (VanRaden 2008, eqn 1 and the
    scaling of method 1), where ``p_j`` is the frequency of the allele counted in M. A missing
    genotype is mean-imputed, i.e. replaced by ``2 p_j``, so that its centred value is 0.

    Parameters
    ----------
    M
        Genotypes, animals by SNPs: the count 0, 1 or 2 of one allele, ``-1`` for missing.
    freq
        Allele frequencies ``p`` (one per SNP, of the allele counted in M). When None they are
        estimated from the non-missing genotypes: ``p_j = sum_i M_ij / (2 n_j)``.

    Returns
    -------
    G : numpy.ndarray
        float64, animals by animals.
    freq : numpy.ndarray
        float64, one per SNP: the frequencies used.

    Raises
    ------
    InputError
        A genotype other than -1, 0, 1, 2; a SNP with no genotype when frequencies are to be
        estimated; frequencies outside [0, 1]; all SNPs monomorphic (the scale is 0).
    ResourceError
        If G and the centred genotypes do not fit in memory.

    Notes
    -----
    Which allele is counted does not matter: switching it turns p into 1 - p and Z into -Z,
    and leaves G unchanged.

    Examples
    --------
    Two animals, one SNP with p = 0.5: Z = [-1, 1], 2pq = 0.5.

    >>> G, p = vanraden_g([[0], [2]])
    >>> G.tolist(), p.tolist()
    ([[2.0, -2.0], [-2.0, 2.0]], [0.5])
    """
    M = np.asarray(M)
    if M.ndim != 2:
        raise InputError(
            "genotypes must be a two-dimensional array, animals by SNPs",
            value=f"shape {M.shape}",
            expected="shape (animals, SNPs)",
            remedy="pass one row per animal and one column per SNP",
        )
    n, m = M.shape
    bad = np.argwhere(~np.isin(M, (MISSING, 0, 1, 2)))
    if bad.size:
        i, j = bad[0]
        raise InputError(
            f"genotype of animal row {i}, SNP column {j} is not a 0/1/2 count "
            f"({bad.shape[0]} such genotype{'s' if bad.shape[0] > 1 else ''})",
            value=M[i, j].item(),
            expected="0, 1, 2, or -1 for missing",
            remedy="recode genotypes as allele counts (missing = -1)",
        )
    # G (n x n) plus the centred genotypes (n x m) in float64
    check_dense(n, copies=1.0 + m / max(n, 1), what="the genomic relationship matrix G")
    observed = M != MISSING
    if freq is None:
        called = observed.sum(axis=0)
        empty = np.flatnonzero(called == 0)
        if empty.size:
            raise InputError(
                f"SNP column {empty[0]} has no genotype, so its allele frequency is unknown "
                f"({empty.size} such SNP{'s' if empty.size > 1 else ''})",
                value=int(empty[0]),
                expected="at least one called genotype per SNP",
                remedy="drop SNPs without calls, or pass their frequencies in freq",
            )
        counts = np.where(observed, M, 0).sum(axis=0, dtype=np.float64)
        freq = counts / (2.0 * called)
    else:
        freq = np.array(freq, dtype=np.float64)  # a copy: the result never aliases input
        if freq.shape != (m,):
            raise InputError(
                "allele frequencies must have one entry per SNP",
                value=f"shape {freq.shape}",
                expected=f"shape ({m},)",
                remedy="pass one frequency per genotype column, or freq=None",
            )
        bad = np.flatnonzero(~np.isfinite(freq) | (freq < 0.0) | (freq > 1.0))
        if bad.size:
            raise InputError(
                f"allele frequency of SNP column {bad[0]} is outside [0, 1]",
                value=float(freq[bad[0]]),
                expected="0 <= p <= 1",
                remedy="pass frequencies of the allele counted in the genotypes",
            )
    scale = 2.0 * np.sum(freq * (1.0 - freq))  # VanRaden (2008): 2 sum p_j (1 - p_j)
    if not scale > 0.0:
        raise InputError(
            "every SNP is monomorphic (all p are 0 or 1), so G has no scale",
            value=0.0,
            expected="at least one SNP with 0 < p < 1",
            remedy="check the genotype coding and the frequencies",
        )
    Z = M - 2.0 * freq  # Z = M - 2p
    Z[~observed] = 0.0  # mean imputation: a missing call is 2p, centred 0
    G = Z @ Z.T
    G /= scale
    return G, freq


def tune_g(G: np.ndarray, A22: np.ndarray) -> np.ndarray:
    """Scale G to A22: G_t = a + b·G with the mean diagonal and mean off-diagonal of A22.

    Chen et al. (2011) / Vitezica et al. (2011): b = (d_A − o_A)/(d_G − o_G), a = d_A − b·d_G,
    where d and o are the mean diagonal and mean off-diagonal elements. Puts G on the scale of
    the pedigree base population so that G⁻¹ − A22⁻¹ is not dominated by a scale difference.

    Examples
    --------
    >>> G = np.array([[1.0, -0.2], [-0.2, 1.2]])
    >>> A = np.array([[1.0, 0.25], [0.25, 1.0]])
    >>> tune_g(G, A).round(4).tolist()
    [[0.9423, 0.25], [0.25, 1.0577]]
    """
    G = np.asarray(G, dtype=np.float64)
    A22 = np.asarray(A22, dtype=np.float64)
    n = G.shape[0]
    if n < 2:
        return G.copy()
    da = np.trace(A22) / n
    oa = (A22.sum() - np.trace(A22)) / (n * (n - 1))
    return tune_g_means(G, da, oa)


def tune_g_means(G: np.ndarray, mean_diag_a22: float, mean_offdiag_a22: float, *,
                 overwrite: bool = False) -> np.ndarray:
    """:func:`tune_g` from the mean diagonal and off-diagonal of A22 (no dense A22).

    The means come from :func:`bigeval.genomic.relationships.a22_means`. With ``overwrite`` (and a
    float64 G) the result is computed in the memory of G.

    Examples
    --------
    >>> G = np.array([[1.0, -0.2], [-0.2, 1.2]])
    >>> tune_g_means(G, 1.0, 0.25).round(4).tolist()
    [[0.9423, 0.25], [0.25, 1.0577]]
    """
    G = np.asarray(G)
    out = G if overwrite and G.dtype == np.float64 and G.flags.writeable else \
        np.array(G, dtype=np.float64)
    n = out.shape[0]
    if n < 2:
        return out
    dg = np.trace(out) / n
    og = (out.sum() - np.trace(out)) / (n * (n - 1))
    if not dg != og:
        raise InputError("G has equal mean diagonal and off-diagonal elements, so it cannot "
                         "be tuned to A22", value=float(dg),
                         remedy="check the genotypes (QC), or leave out tuning")
    b = (mean_diag_a22 - mean_offdiag_a22) / (dg - og)  # Chen et al. (2011)
    out *= b
    out += mean_diag_a22 - b * dg
    return out


def blend_g(G: np.ndarray, A22: np.ndarray, w: float = BLEND) -> np.ndarray:
    """G* = (1 − w)·G + w·A22 (preGSf90's default w = 0.05), positive definite for w > 0."""
    if not 0 <= w <= 1:
        raise InputError("blending weight outside [0, 1]", value=w, expected="0 ≤ w ≤ 1",
                         remedy="give a weight such as 0.05")
    return (1.0 - w) * np.asarray(G, dtype=np.float64) + w * np.asarray(A22, dtype=np.float64)
