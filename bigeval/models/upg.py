"""Unknown parent groups in the mixed models (Quaas–Pollak transformation).

The groups become equations of the animal block after the animals, with the contributions
of :func:`bigeval.groups.ainv_qp_sparse` and no variance of their own (fixed effects through
the relationship, as BLUPF90's ``add_an_upg``). Solving gives â* = Qĝ + û for the animals and
ĝ for the groups (Mrode 2014, Example 3.4).

Single step: H⁻¹ = A*⁻¹ + [0 0 0; 0 G⁻¹ − A22⁻¹ 0; 0 0 0], the groups in A⁻¹ only, by
default; with ``genomic=True`` also the genomic part is transformed,
H*⁻¹ = A*⁻¹ + [I, −Q2]'(G⁻¹ − A22⁻¹)[I, −Q2], Q2 the genotyped animals' rows of Q
(Misztal et al. 2013, J. Anim. Breed. Genet. 130:252-258). A22 counts the groups as unknown
parents in both.

The groups add a dependency with the fixed effects when every animal traces to groups
(ZQ1 = 1); the group equations that make the MME singular are dropped, i.e. those groups are
set to zero (:func:`bigeval.groups.zero_groups`: among dependent groups the first).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from bigeval.io.groups import PedigreeGroups
from bigeval.groups import ainv_qp_sparse, group_contributions, zero_groups
from bigeval.models.relationship import Relationship, dense_block, relationship_a, relationship_h
from bigeval.pedigree import inbreeding


def relationship_a_groups(ids, sire, dam, pg: PedigreeGroups, *,
                          with_inbreeding: bool = True) -> Relationship:
    """A*⁻¹ (Quaas 1988) of a renumbered pedigree with groups: n animals, then the groups.

    log|A| and the inbreeding count the groups as unknown parents; ``diag`` is NaN for the
    groups (no variance: no reliability).
    """
    f = inbreeding(sire, dam) if with_inbreeding else np.zeros(len(sire))
    a = relationship_a(ids, sire, dam, with_inbreeding=with_inbreeding)
    kinv = ainv_qp_sparse(sire, dam, pg.sire, pg.dam, pg.n_groups, f)
    return Relationship("A", np.concatenate([a.ids, pg.codes.astype(str)]), kinv, a.logdet,
                        np.concatenate([a.diag, np.full(pg.n_groups, np.nan)]),
                        n_groups=pg.n_groups, groups=(np.asarray(sire), np.asarray(dam), pg))


def relationship_h_groups(ids, sire, dam, pg: PedigreeGroups, genotyped, G, *, blend,
                          tune: bool = True, with_inbreeding: bool = True,
                          genomic: bool = False) -> Relationship:
    """H⁻¹ with groups (module docstring); G*⁻¹ − A22⁻¹ as :func:`bigeval.models.mme.
    relationship_h` builds it for the pedigree without groups."""
    genotyped = np.asarray(genotyped, dtype=np.int64)
    h = relationship_h(ids, sire, dam, genotyped, G, blend=blend, tune=tune,
                       with_inbreeding=with_inbreeding)
    a = relationship_a(ids, sire, dam, with_inbreeding=with_inbreeding)
    qa = relationship_a_groups(ids, sire, dam, pg, with_inbreeding=with_inbreeding)
    n, m = len(sire), len(sire) + pg.n_groups
    delta = (h.kinv - a.kinv)[genotyped][:, genotyped].toarray()
    if genomic:
        q2 = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups, rows=genotyped)
        t = np.hstack([np.eye(len(genotyped)), -q2])  # [I, −Q2]
        rows = np.concatenate([genotyped, n + np.arange(pg.n_groups)])
        block = t.T @ delta @ t
    else:
        rows, block = genotyped, delta
    kinv = (qa.kinv + dense_block(block, rows, m)).tocsr()
    diag = np.concatenate([h.diag, np.full(pg.n_groups, np.nan)])
    return Relationship("H", qa.ids, kinv, h.logdet, diag, rows, n_groups=pg.n_groups,
                        groups=qa.groups)


def constrain_groups(md):
    """``md`` (:class:`bigeval.models.mme.ModelData`) with the group equations that make the
    MME singular dropped (those groups set to zero); ``rel.groups_zero`` names them."""
    rel = md.rel
    if rel is None or not rel.n_groups:
        return md
    sire, dam, pg = rel.groups
    zero = zero_groups(md.design.Xk, md.animal_index, sire, dam, pg.sire, pg.dam, pg.n_groups,
                       md.weights)
    if not zero.any():
        return md
    n = len(rel.ids) - rel.n_groups
    keep = np.concatenate([np.ones(n, dtype=bool), ~zero])
    pos = np.cumsum(keep) - 1
    kinv = sp.csr_matrix(rel.kinv)[keep][:, keep].tocsr()
    dense = rel.dense
    if dense is not None:
        dense = pos[dense[keep[dense]]]
    new = dataclasses.replace(rel, ids=rel.ids[keep], kinv=kinv, diag=rel.diag[keep],
                              dense=dense, n_groups=int((~zero).sum()),
                              groups_zero=tuple(rel.ids[n:][zero]))
    return dataclasses.replace(md, rel=new)


# ------------------------------------------------------------ the run's checkpoints

GROUP_CODES_FILE = "group_codes.parquet"  # the codes, in group-number order
ANIMAL_GROUPS_FILE = "animal_groups.parquet"  # per animal: sire_group, dam_group (-1: none)


def write_groups(pg: PedigreeGroups | None, folder: Path) -> None:
    """Keep the pedigree's groups beside the prepare stage's animals (nothing without)."""
    from bigeval.io.parquet import write_parquet

    if pg is None:
        return
    write_parquet(pd.DataFrame({"group": pd.array(pg.codes.astype(str), dtype="string")}),
                  folder / GROUP_CODES_FILE)
    write_parquet(pd.DataFrame({"sire_group": pg.sire.astype(np.int64),
                                "dam_group": pg.dam.astype(np.int64)}),
                  folder / ANIMAL_GROUPS_FILE)


def read_groups(folder: Path) -> PedigreeGroups | None:
    """The groups :func:`write_groups` kept, or None."""
    from bigeval.io.parquet import read_parquet

    if not (folder / GROUP_CODES_FILE).exists():
        return None
    codes = read_parquet(folder / GROUP_CODES_FILE)["group"].to_numpy(dtype=object)
    per = read_parquet(folder / ANIMAL_GROUPS_FILE)
    return PedigreeGroups(codes.astype(str), per["sire_group"].to_numpy(np.int64),
                          per["dam_group"].to_numpy(np.int64))


def with_groups(rel: Relationship, sire, dam, pg: PedigreeGroups | None) -> Relationship:
    """``rel`` (A⁻¹, or H⁻¹ = A⁻¹ + [0 0; 0 G⁻¹ − A22⁻¹]) with the groups' Quaas-Pollak
    equations after the animals: A⁻¹ replaced by A*⁻¹, the genomic part kept (groups in
    A⁻¹ only). ``rel`` itself without groups."""
    if pg is None:
        return rel
    qa = relationship_a_groups(rel.ids, sire, dam, pg)
    m = qa.kinv.shape[0]
    n = len(sire)
    kinv = qa.kinv
    diag = qa.diag
    if rel.kind == "H":
        base = relationship_a(rel.ids, sire, dam)
        extra = sp.csr_matrix(rel.kinv - base.kinv)
        extra.resize((m, m))
        kinv = (kinv + extra).tocsr()
        diag = np.concatenate([rel.diag[:n], np.full(pg.n_groups, np.nan)])
    return dataclasses.replace(qa, kind=rel.kind, kinv=kinv, diag=diag, dense=rel.dense,
                               logdet=rel.logdet)
