"""The relationship matrices of the animal effect, as the MME take them: A⁻¹ (Henderson's
rules with inbreeding), G⁻¹ (VanRaden 2008) and H⁻¹ = A⁻¹ + [[0, 0], [0, G*⁻¹ − A22⁻¹]]
(Aguilar et al. 2010), with log-determinants and prior variances for REML and reliabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from bigeval.defaults import BLEND
from bigeval.genomic import vanraden_g
from bigeval.genomic.relationships import g_star
from bigeval.linalg import spd_inverse
from bigeval.pedigree import a22_dense, ainv_sparse, inbreeding, mendelian_variance

__all__ = ["Relationship", "dense_block", "genomic_matrix", "relationship_a", "relationship_g",
           "relationship_h"]


def dense_block(values, index, n: int) -> sp.csc_matrix:
    """An n × n sparse matrix holding the dense k × k ``values`` at rows and columns
    ``index`` (distinct), built column by column: 12 bytes per entry (a 10 000-animal
    genotyped block: 1.2 GB), not the 24 of coordinate triplets plus their conversion.

    >>> dense_block(np.array([[1.0, 2.0], [2.0, 3.0]]), [2, 0], 3).toarray().tolist()
    [[3.0, 0.0, 2.0], [0.0, 0.0, 0.0], [2.0, 0.0, 1.0]]
    """
    values = np.asarray(values, dtype=np.float64)
    index = np.asarray(index, dtype=np.int64)
    k = index.size
    order = np.argsort(index)
    idx = index[order]
    itype = np.int32 if max(n, k * k) < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=itype)
    counts = np.zeros(n, dtype=np.int64)
    counts[idx] = k
    np.cumsum(counts, out=indptr[1:])
    indices = np.tile(idx.astype(itype), k)
    data = np.ascontiguousarray(values[np.ix_(order, order)].T).ravel()  # column-major
    return sp.csc_matrix((data, indices, indptr), shape=(n, n))


@dataclass(frozen=True)
class Relationship:
    """Inverse relationship matrix of the animal effect.

    ids : animal IDs (strings) in equation order; kinv : sparse inverse (q × q);
    logdet : log|K| (for the REML likelihood); dense : the rows of kinv's dense block (the
    genotyped animals of H, every animal of G; None for A), which the PEVs keep apart
    (:mod:`bigeval.linalg.schur`). With unknown parent groups (:mod:`bigeval.models.upg`)
    the last ``n_groups`` of ``ids`` are groups, ``groups`` the pedigree they come from
    (sire, dam, :class:`bigeval.groups.PedigreeGroups`) and ``groups_zero`` the groups set to
    zero (no equation).
    """

    kind: str
    ids: np.ndarray
    kinv: sp.csr_matrix
    logdet: float
    diag: np.ndarray  # diag(K): 1 + F for A, diag(G) for G, both for H (reliabilities)
    dense: np.ndarray | None = None
    n_groups: int = 0
    groups: tuple | None = None
    groups_zero: tuple = ()


def _logdet_spd(M: np.ndarray, what: str) -> float:
    L = np.linalg.cholesky(M)  # raises LinAlgError if not positive definite
    return 2.0 * float(np.log(np.diag(L)).sum())


def relationship_a(ids, sire, dam, *, with_inbreeding: bool = True) -> Relationship:
    """A⁻¹ for a renumbered pedigree (parents before progeny, -1 unknown).

    With inbreeding by default (Quaas 1976); ``with_inbreeding=False`` ignores it, as
    BLUPF90's ``add_animal`` does for a pedigree file without inbreeding codes.
    log|A| = Σ log b_i, b_i the Mendelian sampling variances (A = TDT').
    """
    f = inbreeding(sire, dam) if with_inbreeding else np.zeros(len(sire))
    b = mendelian_variance(sire, dam, f)
    return Relationship("A", np.asarray(ids, dtype=object).astype(str),
                        ainv_sparse(sire, dam, f).tocsr(), float(np.log(b).sum()), 1.0 + f)


def genomic_matrix(M, ridge: float = 0.0) -> np.ndarray:
    """VanRaden (2008) G from 0/1/2 genotypes (animals × SNPs), plus ``ridge`` × I."""
    G, _ = vanraden_g(np.asarray(M))
    if ridge:
        G = G + ridge * np.eye(G.shape[0])
    return G


def relationship_g(ids, G) -> Relationship:
    """G⁻¹ for the genotyped animals (G positive definite: blend or add a ridge if not)."""
    G = np.asarray(G, dtype=np.float64)
    ginv = spd_inverse(G, what="G", remedy="add a ridge (g_ridge = 0.01) or blend G with A22")
    return Relationship("G", np.asarray(ids, dtype=object).astype(str),
                        sp.csr_matrix(ginv), _logdet_spd(G, "G"), np.diag(G).copy(),
                        np.arange(G.shape[0]))


def relationship_h(ids, sire, dam, genotyped, G, blend: float = BLEND,
                   tune: bool = True, *, with_inbreeding: bool = True) -> Relationship:
    """H⁻¹ = A⁻¹ + [[0, 0], [0, G*⁻¹ − A22⁻¹]] (Aguilar et al. 2010).

    G* = :func:`bigeval.genomic.relationships.g_star` (blend 0.95 G + 0.05 A22, then Chen et al.
    2011
    tuning; Mrode & Pocrnic 2023, Example 12.1). ``genotyped`` are internal numbers (rows of
    G). log|H| = log|A| − log|A22| + log|G*|.
    """
    f = inbreeding(sire, dam) if with_inbreeding else np.zeros(len(sire))
    a = relationship_a(ids, sire, dam, with_inbreeding=with_inbreeding)
    genotyped = np.asarray(genotyped, dtype=np.int64)
    A22 = a22_dense(sire, dam, genotyped, f)
    Gs = np.array(G, dtype=np.float64)
    g_star(Gs, sire, dam, genotyped, blend=blend, tune=tune, f=f)
    delta = spd_inverse(Gs, what="G (blended, tuned)") - spd_inverse(A22, what="A22")
    hinv = (a.kinv + dense_block(delta, genotyped, len(sire))).tocsr()
    logdet = a.logdet - _logdet_spd(A22, "A22") + _logdet_spd(Gs, "G")
    diag = a.diag.copy()
    diag[genotyped] = np.diag(Gs)
    return Relationship("H", a.ids, hinv, logdet, diag, genotyped)
