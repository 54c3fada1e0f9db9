"""Mixed-model equations of the animal model (PBLUP, GBLUP, ssGBLUP, optional pe).

Henderson's MME in the form with the variances in (Henderson 1975; Mrode 2014, eq. 3.4)::

    [X'R⁻¹X   X'R⁻¹Z            X'R⁻¹Zp          ] [b ]   [X'R⁻¹y ]
    [Z'R⁻¹X   Z'R⁻¹Z + K⁻¹/σa²   Z'R⁻¹Zp          ] [a ] = [Z'R⁻¹y ]
    [Zp'R⁻¹X  Zp'R⁻¹Z           Zp'R⁻¹Zp + I/σpe²] [pe]   [Zp'R⁻¹y]

with R⁻¹ = diag(w)/σe², so that the inverse of the LHS is directly the covariance of the
prediction errors (PEV on its diagonal). K is A (pedigree, Henderson's rules with
inbreeding), G (VanRaden 2008) or H, whose inverse is
H⁻¹ = A⁻¹ + [[0, 0], [0, G⁻¹ − A22⁻¹]] (Aguilar et al. 2010; Christensen & Lund 2010).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bigeval.defaults import BLEND
from bigeval.errors import InputError
from bigeval.genomic import blend_g, tune_g, vanraden_g
from bigeval.io.genotypes import import_genotypes, open_genotypes
from bigeval.linalg import spd_inverse
from bigeval.models.anova import factor_levels
from bigeval.pedigree import a22_dense, ainv_sparse, inbreeding, mendelian_variance
from bigeval.pipeline.inputs import is_zarr_store


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
    (:mod:`bigeval.linalg.schur`).
    """

    kind: str
    ids: np.ndarray
    kinv: sp.csr_matrix
    logdet: float
    diag: np.ndarray  # diag(K): 1 + F for A, diag(G) for G, both for H (reliabilities)
    dense: np.ndarray | None = None


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

    G* = tune(blend(G, A22, w), A22) (Mrode & Pocrnic 2023, Example 12.1: blend 0.95 G +
    0.05 A22, then Chen et al. 2011 tuning). ``genotyped`` are internal numbers (rows of G).
    log|H| = log|A| − log|A22| + log|G*|.
    """
    f = inbreeding(sire, dam) if with_inbreeding else np.zeros(len(sire))
    a = relationship_a(ids, sire, dam, with_inbreeding=with_inbreeding)
    genotyped = np.asarray(genotyped, dtype=np.int64)
    A22 = a22_dense(sire, dam, genotyped, f)
    Gs = blend_g(G, A22, blend) if blend else np.asarray(G, dtype=np.float64)
    if tune:
        Gs = tune_g(Gs, A22)
    delta = spd_inverse(Gs, what="G (blended, tuned)") - spd_inverse(A22, what="A22")
    hinv = (a.kinv + dense_block(delta, genotyped, len(sire))).tocsr()
    logdet = a.logdet - _logdet_spd(A22, "A22") + _logdet_spd(Gs, "G")
    diag = a.diag.copy()
    diag[genotyped] = np.diag(Gs)
    return Relationship("H", a.ids, hinv, logdet, diag, genotyped)


@dataclass(frozen=True)
class MME:
    """Assembled mixed-model equations.

    lhs : sparse CSC (neq × neq); rhs : (neq,); blocks : name → slice of the equations
    ("fixed", "animal", "pe"); W : the incidence [X Z Zp] (records × neq).
    """

    lhs: sp.csc_matrix
    rhs: np.ndarray
    blocks: dict
    W: sp.csr_matrix
    rinv: np.ndarray  # diag of R⁻¹, one per record


def build_mme(y, X, *, animal_index=None, kinv=None, sigma_a2=None, sigma_e2=1.0,
              weights=None, pe_index=None, n_pe=0, sigma_pe2=None) -> MME:
    """Assemble the MME (module docstring) from arrays.

    Parameters
    ----------
    y : (n,) records. X : (n × p) fixed design of full column rank (see
    :mod:`bigeval.models.anova` for the set-to-zero rule). animal_index : (n,) row of each
    record's animal in ``kinv`` (q × q). pe_index : (n,) pe level of each record, 0..n_pe-1.
    weights : (n,) residual weights, var(e_i) = σe²/w_i.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    blocks_W = [sp.csr_matrix(X)]
    names = [("fixed", X.shape[1])]
    penalty = [sp.csr_matrix((X.shape[1], X.shape[1]))]
    if animal_index is not None:
        q = kinv.shape[0]
        blocks_W.append(sp.csr_matrix((np.ones(n), (np.arange(n), animal_index)), shape=(n, q)))
        names.append(("animal", q))
        penalty.append(sp.csr_matrix(kinv) / sigma_a2)
    if pe_index is not None:
        blocks_W.append(sp.csr_matrix((np.ones(n), (np.arange(n), pe_index)), shape=(n, n_pe)))
        names.append(("pe", n_pe))
        penalty.append(sp.identity(n_pe, format="csr") / sigma_pe2)
    W = sp.hstack(blocks_W, format="csr")
    rinv = w / sigma_e2
    lhs = (W.T @ sp.diags(rinv) @ W + sp.block_diag(penalty)).tocsc()
    rhs = W.T @ (rinv * y)
    blocks, start = {}, 0
    for name, size in names:
        blocks[name] = slice(start, start + size)
        start += size
    return MME(lhs, np.asarray(rhs).ravel(), blocks, W, rinv)


# ---------------------------------------------------------------- orchestration (files)

def read_genotypes(path, fmt: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Genotypes of a model → (ids as strings, M animals × SNPs, int8, −1 missing).

    ``path`` is a genotype store (``bigeval genotypes import``), opened as it is, or a genotype
    file — PLINK ``.bed`` fileset, BLUPF90 marker file (ID then a string of 0/1/2) or CSV
    (``animal,snp1,...``) — imported on the way into a temporary store by
    :func:`bigeval.io.genotypes.import_genotypes`, as ``bigeval run`` does. ``fmt``: the
    format of a file (default from its suffix).
    """
    path = Path(path)
    if is_zarr_store(path):
        X, ids, _ = open_genotypes(path)
        return ids.astype(str), np.asarray(X.compute(), dtype=np.int8)
    if path.is_dir():
        raise InputError("the genotypes folder is not a genotype store", file=path,
                         expected="a store from `bigeval genotypes import`, a PLINK .bed, a "
                                  "BLUPF90 marker file or a CSV",
                         remedy="give the store or the genotype file")
    with tempfile.TemporaryDirectory(prefix="bigeval-genotypes-") as tmp:
        store = import_genotypes(path, Path(tmp) / "genotypes.zarr", fmt=fmt)
        X, ids, _ = open_genotypes(store)
        return ids.astype(str), np.asarray(X.compute(), dtype=np.int8)


def read_g_matrix(path) -> tuple[np.ndarray, np.ndarray]:
    """CSV ``animal, <id1>, <id2>, ...``: a square G with the animals' IDs as header."""
    df = pd.read_csv(path, dtype={0: str})
    ids = df.iloc[:, 0].astype(str).str.strip().to_numpy()
    cols = np.array([str(c).strip() for c in df.columns[1:]])
    if not np.array_equal(ids, cols):
        raise InputError("G matrix rows and columns name different animals", file=path,
                         remedy="write the same IDs, in the same order, as header and rows")
    return ids, df.iloc[:, 1:].to_numpy(dtype=np.float64)


def load_relationship(spec) -> Relationship:
    """Build the relationship inverse a :class:`ModelSpec` asks for (reads its files)."""
    from bigeval.io.readers import read_pedigree
    from bigeval.prepare import renumber_pedigree

    if spec.relationship in ("G", "H"):
        if spec.g_matrix is not None:
            gids, G = read_g_matrix(spec.g_matrix)
            if spec.g_ridge:
                G = G + spec.g_ridge * np.eye(len(gids))
        else:
            gids, M = read_genotypes(spec.genotypes, spec.genotypes_format)
            G = genomic_matrix(M, spec.g_ridge)
        if spec.relationship == "G":
            return relationship_g(gids, G)
    ids, sire, dam, _ = renumber_pedigree(read_pedigree(spec.pedigree), path=spec.pedigree)
    ids = np.asarray(ids, dtype=object).astype(str)
    if spec.relationship == "A":
        return relationship_a(ids, sire, dam, with_inbreeding=spec.inbreeding)
    pos = pd.Index(ids).get_indexer(gids)
    if (pos < 0).any():
        raise InputError("genotyped animal not in the pedigree", file=spec.genotypes,
                         value=gids[pos < 0][0], remedy="add it to the pedigree")
    return relationship_h(ids, sire, dam, pos, G, blend=spec.g_blend,
                          with_inbreeding=spec.inbreeding)


@dataclass(frozen=True)
class ModelData:
    """A model's arrays: records, fixed design, and the random effects' incidences."""

    y: np.ndarray
    design: object  # anova.Design
    weights: np.ndarray | None
    rel: Relationship | None
    animal_index: np.ndarray | None
    pe_ids: np.ndarray | None
    pe_index: np.ndarray | None
    record_animal: np.ndarray | None  # animal ID of each record


def model_data(spec, df: pd.DataFrame, rel: Relationship | None) -> ModelData:
    """Join records to the relationship by animal ID; pe levels = animals with records."""
    from bigeval.models.anova import design_matrix
    y = df[spec.trait].to_numpy(dtype=np.float64)
    design = design_matrix(df, spec.factors, spec.covariates, spec.intercept)
    w = df[spec.weights].to_numpy(dtype=np.float64) if spec.weights else None
    if rel is None:
        return ModelData(y, design, w, None, None, None, None, None)
    animal = df[spec.animal].astype(str).to_numpy()
    idx = pd.Index(rel.ids).get_indexer(animal)
    if (idx < 0).any():
        i = int(np.flatnonzero(idx < 0)[0])
        what = "genotyped" if rel.kind == "G" else "in the pedigree"
        raise InputError(f"animal with a record is not {what}", file=spec.data,
                         line=int(df["line"].iat[i]) if "line" in df else None,
                         value=animal[i], remedy="add the animal or remove its records")
    pe_ids = pe_index = None
    if spec.pe:
        pe_index, pe_ids = factor_levels(animal)
    return ModelData(y, design, w, rel, idx, pe_ids, pe_index, animal)


def assemble(md: ModelData, sigma_a2=None, sigma_pe2=None, sigma_e2=1.0) -> MME:
    """The MME of :class:`ModelData` at given variances (kept fixed columns only)."""
    return build_mme(md.y, md.design.Xk, animal_index=md.animal_index,
                     kinv=None if md.rel is None else md.rel.kinv, sigma_a2=sigma_a2,
                     sigma_e2=sigma_e2, weights=md.weights, pe_index=md.pe_index,
                     n_pe=0 if md.pe_ids is None else len(md.pe_ids), sigma_pe2=sigma_pe2)
