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

from bigeval.errors import InputError
from bigeval.io.genotypes import import_genotypes, is_zarr_store, open_genotypes
from bigeval.models.anova import factor_levels
from bigeval.models.relationship import (
    Relationship,
    genomic_matrix,
    relationship_a,
    relationship_g,
    relationship_h,
)


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
    from bigeval.io.groups import pedigree_groups
    from bigeval.io.readers import read_pedigree
    from bigeval.models import upg
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
    ped = read_pedigree(spec.pedigree, groups=spec.groups)
    ids, sire, dam, _ = renumber_pedigree(ped, path=spec.pedigree)
    ids = np.asarray(ids, dtype=object).astype(str)
    pg = pedigree_groups(ped, ids, path=spec.pedigree)
    if spec.relationship == "A":
        if pg is not None:
            return upg.relationship_a_groups(ids, sire, dam, pg, with_inbreeding=spec.inbreeding)
        return relationship_a(ids, sire, dam, with_inbreeding=spec.inbreeding)
    pos = pd.Index(ids).get_indexer(gids)
    if (pos < 0).any():
        raise InputError("genotyped animal not in the pedigree", file=spec.genotypes,
                         value=gids[pos < 0][0], remedy="add it to the pedigree")
    if pg is not None:
        return upg.relationship_h_groups(ids, sire, dam, pg, pos, G, blend=spec.g_blend,
                                         with_inbreeding=spec.inbreeding,
                                         genomic=spec.groups_in_genomic)
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
    idx = pd.Index(rel.ids[:len(rel.ids) - rel.n_groups]).get_indexer(animal)  # not groups
    if (idx < 0).any():
        i = int(np.flatnonzero(idx < 0)[0])
        what = "genotyped" if rel.kind == "G" else "in the pedigree"
        raise InputError(f"animal with a record is not {what}", file=spec.data,
                         line=int(df["line"].iat[i]) if "line" in df else None,
                         value=animal[i], remedy="add the animal or remove its records")
    pe_ids = pe_index = None
    if spec.pe:
        pe_index, pe_ids = factor_levels(animal)
    md = ModelData(y, design, w, rel, idx, pe_ids, pe_index, animal)
    if rel.n_groups:
        from bigeval.models.upg import constrain_groups
        md = constrain_groups(md)
    return md


def assemble(md: ModelData, sigma_a2=None, sigma_pe2=None, sigma_e2=1.0) -> MME:
    """The MME of :class:`ModelData` at given variances (kept fixed columns only)."""
    return build_mme(md.y, md.design.Xk, animal_index=md.animal_index,
                     kinv=None if md.rel is None else md.rel.kinv, sigma_a2=sigma_a2,
                     sigma_e2=sigma_e2, weights=md.weights, pe_index=md.pe_index,
                     n_pe=0 if md.pe_ids is None else len(md.pe_ids), sigma_pe2=sigma_pe2)
