"""The exact check on a seeded herd sample, for populations whose exact MME does not fit.

Exact reliabilities (:mod:`bigeval.reliability.exact`) need the diagonal of the inverse of
the MME: up to ``exact.max_equations`` equations and ``exact.max_genotyped`` genotyped
animals that is minutes, beyond it hours or more than the memory. There the approximation is
checked on a sample instead:

1. herds are drawn as ``bigeval sample`` draws them (:func:`bigeval.sample.herd_of`,
   :func:`bigeval.sample.draw_herds`: the herd of a record is the match of the herd pattern
   in its group code, herds drawn at random with a seed); the number of herds ``k`` is found
   by bisection (deterministic): the draw of ``k`` herds stays within a target share
   (:data:`bigeval.defaults.EXACT_SAMPLE_SHARE`) of both limits and that of ``k + 1`` does
   not (or ``k`` is every herd);
2. the sample is every record of the drawn herds, the animals with those records and **every
   ancestor** of theirs (:func:`bigeval.sample.ancestors`), renumbered in the population's
   order (parents stay before progeny), and the genotyped animals among them;
3. the sample's genomic relationships are the national G* restricted to the sample
   (``G*_SS``, not re-tuned) and the sample's A22. The run holds G*⁻¹ and A22⁻¹, not G*;
   the inverse of a sub-block of a matrix is the Schur complement of the other block in its
   inverse::

       (G*_SS)⁻¹ = M_SS − M_SR (M_RR)⁻¹ M_RS,        M = G*⁻¹, R = the other genotyped

   one Cholesky factor of M_RR and a triangular solve with the sample's columns (about what
   the run paid to invert G* once). With all ancestors kept, the sample's A equals the
   national A on the sample's animals, so its A22 is the sub-block of the national A22 and
   its inverse is computed from the sample's own pedigree
   (:func:`bigeval.genomic.relationships.a22_inverse`, sample-size work);
4. Parts I-III run on the sample with the run's options (no Interbull: the exact model has
   none), and the exact PBLUP (and ssGBLUP) reliabilities of the sample by the exact
   machinery; the agreement (:func:`bigeval.pipeline.workflow.agreement`) for all, genotyped and
   non-genotyped animals is computed from the published per-animal values.

The sample's animals lose the information of their relatives outside the sample (progeny
and mates in other herds), on both sides alike: the figures measure the method on a
population of the sample's size and structure, not the published reliabilities themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from bigeval._resources import check_dense
from bigeval.defaults import EXACT_SAMPLE_SHARE, SAMPLE_SEED
from bigeval.errors import InputError
from bigeval.linalg import cholesky_lower
from bigeval.prepare import Population
from bigeval.pedigree import ancestors
from bigeval.prepare.sampling import draw_herds, herd_of

__all__ = ["CAVEAT", "ExactSample", "HerdSample", "SampleDoesNotFit", "describe_sample",
           "draw_exact_sample", "exact_sample_check",
           "inverse_of_sub_block", "sub_population"]

#: What the figures of a sample check mean (summary.txt, report.html, the manifest).
CAVEAT = ("the sample's animals lose the information from relatives outside the sample "
          "(both sides alike), so these figures measure the method on a population of the "
          "sample's size, not the published reliabilities themselves")


class SampleDoesNotFit(InputError):
    """Not even one herd (with its animals' ancestors) fits the sample's target size."""


@dataclass(frozen=True)
class HerdSample:
    """A drawn sample: the herds, and masks over the population's records and animals."""

    herds: np.ndarray
    herds_total: int
    seed: int
    records: np.ndarray  # bool, per record of the population
    animals: np.ndarray  # bool, per animal of the population
    equations: int
    genotyped: int


@dataclass(frozen=True)
class ExactSample:
    """The exact check on a sample: per-animal values, agreement, and what the sample is."""

    table: pd.DataFrame
    agreement: dict
    counts: dict
    population: Population = field(repr=False)

    @property
    def text(self) -> str:
        """One line saying what the sample is (:func:`describe_sample`)."""
        return describe_sample(self.counts)


def describe_sample(counts: dict) -> str:
    """What a sample is, in words, from :attr:`ExactSample.counts`.

    Examples
    --------
    >>> text = describe_sample({"seed": 1, "herds": 2, "herds_total": 10, "animals": 118,
    ...                         "animals_total": 1152, "genotyped": 15, "genotyped_total": 100,
    ...                         "records": 320, "equations": 278})
    >>> print(text.replace("), ", "),\\n"))
    seeded sample (seed 1): 2 of 10 herds, 118 of 1,152 animals (with all their ancestors),
    15 of 100 genotyped, 320 records, 278 equations
    """
    c = counts
    return (f"seeded sample (seed {c['seed']}): {c['herds']:,} of {c['herds_total']:,} herds, "
            f"{c['animals']:,} of {c['animals_total']:,} animals (with all their ancestors), "
            f"{c['genotyped']:,} of {c['genotyped_total']:,} genotyped, {c['records']:,} "
            f"records, {c['equations']:,} equations")


def _size(pop: Population, rec: np.ndarray, keep: np.ndarray, with_pe: bool) -> tuple[int, int]:
    """(equations, genotyped animals) of the sample given by the masks."""
    n_cg = np.unique(pop.rec_cg[rec]).size
    n_pe = np.unique(pop.rec_animal[rec]).size if with_pe else 0
    n_g = 0 if pop.genotyped is None else int(keep[pop.genotyped].sum())
    return int(keep.sum()) + n_cg + n_pe, n_g


def draw_exact_sample(pop: Population, *, max_equations: int, max_genotyped: int,
                      with_pe: bool, seed: int = SAMPLE_SEED, herd_pattern: str | None = None,
                      share: float = EXACT_SAMPLE_SHARE) -> HerdSample:
    """Draw the herd sample of :func:`exact_sample_check`.

    Parameters
    ----------
    pop
        The prepared population.
    max_equations, max_genotyped
        The exact check's limits; the sample aims at ``share`` of each.
    with_pe
        The exact model has a permanent-environment effect (its equations count).
    seed, herd_pattern
        Of the draw, as ``bigeval sample --seed --herd-pattern``.
    share
        The target share of the limits.

    Returns
    -------
    HerdSample
        ``k`` herds, found by bisection over ``k`` (each ``k`` is the draw of ``bigeval sample
        --herds k --seed seed``): the sample of ``k`` herds has at most ``share`` of both
        limits, that of ``k + 1`` more (or ``k`` is every herd).

    Raises
    ------
    InputError
        No record, or the herd pattern does not match a group code.
    SampleDoesNotFit
        Not even one herd (with its animals' ancestors) fits the target.
    """
    if pop.n_records == 0:
        raise InputError("a sample is drawn by herd from the records, and there are none",
                         remedy="give the run a records file")
    herd = herd_of(np.asarray(pop.cg_ids, dtype=object), herd_pattern)[pop.rec_cg]
    all_herds = np.unique(herd)
    target_eq = int(share * max_equations)
    target_g = int(share * max_genotyped)

    def masks(k: int):
        rec = np.isin(herd, draw_herds(all_herds, k, seed))
        keep = np.zeros(pop.n_animals, dtype=bool)
        keep[pop.rec_animal[rec]] = True
        keep = ancestors(keep, pop.sire, pop.dam)
        return rec, keep, _size(pop, rec, keep, with_pe)

    def fits(size) -> bool:
        return size[0] <= target_eq and size[1] <= target_g

    lo, hi = 0, len(all_herds) + 1  # fits(lo) (no herd), and hi is beyond the herds
    best = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        drawn = masks(mid)
        if fits(drawn[2]):
            lo, best = mid, drawn
        else:
            hi = mid
    if best is None:
        rec, keep, (neq, ng) = masks(1)
        raise SampleDoesNotFit(
            "no herd sample fits the exact check's target: one herd with its animals' "
            f"ancestors already has {neq:,} equations and {ng:,} genotyped animals",
            value=f"target {target_eq:,} equations, {target_g:,} genotyped "
                  f"({share:g} of exact.max_equations and exact.max_genotyped)",
            expected="limits that hold a herd and its ancestors",
            remedy="raise [exact] max_equations / max_genotyped, or give [sample] "
                   "herd_pattern a finer herd (a contemporary group)")
    rec, keep, (neq, ng) = best
    return HerdSample(herds=draw_herds(all_herds, lo, seed), herds_total=len(all_herds),
                      seed=int(seed), records=rec, animals=keep, equations=neq, genotyped=ng)


def inverse_of_sub_block(minv: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``(M_SS)⁻¹`` from ``M⁻¹`` (symmetric positive definite), ``S`` the rows in ``keep``.

    The inverse of a sub-block is the Schur complement of the other block in the inverse:
    ``(M_SS)⁻¹ = W_SS − W_SR (W_RR)⁻¹ W_RS`` with ``W = M⁻¹`` and ``R`` the other rows; one
    Cholesky factor of ``W_RR`` and a triangular solve with ``|S|`` columns.

    Parameters
    ----------
    minv
        ``M⁻¹``, n × n, symmetric positive definite (both triangles).
    keep
        Boolean (length n) or integer positions of ``S``, in the order of the result.

    Returns
    -------
    numpy.ndarray
        ``(M_SS)⁻¹``, float64, symmetric.

    Examples
    --------
    >>> m = np.array([[2.0, 0.5, 0.2], [0.5, 1.0, 0.3], [0.2, 0.3, 1.5]])
    >>> got = inverse_of_sub_block(np.linalg.inv(m), [0, 2])
    >>> bool(np.allclose(got, np.linalg.inv(m[np.ix_([0, 2], [0, 2])])))
    True
    """
    w = np.asarray(minv, dtype=np.float64)
    n = w.shape[0]
    s = np.asarray(keep)
    s = np.flatnonzero(s) if s.dtype == bool else s.astype(np.int64)
    r = np.setdiff1d(np.arange(n), s)
    out = w[np.ix_(s, s)].copy()
    if r.size == 0 or s.size == 0:
        return out
    check_dense(r.size, copies=1 + 2 * s.size / r.size,  # W_RR, W_RS and L⁻¹ W_RS
                what=f"the Schur complement of {r.size:,} genotyped animals outside the sample")
    wrr = np.asfortranarray(w[np.ix_(r, r)])
    L = cholesky_lower(wrr, what="G*⁻¹ outside the sample")
    x = solve_triangular(L, w[np.ix_(r, s)], lower=True, check_finite=False)  # L⁻¹ W_RS
    del L, wrr
    out -= x.T @ x
    return (out + out.T) / 2.0


def sub_population(pop: Population, records: np.ndarray, animals: np.ndarray, *,
                   a22inv_method: str = "auto", a22_from_pedigree: bool = True) -> Population:
    """The population of a sample: the kept records and animals, renumbered.

    ``animals`` must hold every ancestor of a kept animal (:func:`bigeval.sample.ancestors`).
    Animals keep the population's order (parents before progeny), groups are renumbered in
    their order, genotyped animals keep the order of ``pop.genotyped``; the sample's G*⁻¹ is
    :func:`inverse_of_sub_block` of ``pop.ginv``. Its A22⁻¹ is computed from the sample's
    pedigree (:func:`bigeval.genomic.relationships.a22_inverse` with ``a22inv_method``), which is
    the inverse of the national A22's block when ``pop.a22inv`` is the pedigree's (a run's
    relationships stage); with ``a22_from_pedigree=False`` (A22⁻¹ given as triplets, whose
    A22 may be another than the pedigree's) it is :func:`inverse_of_sub_block` of
    ``pop.a22inv``. Interbull values are left out (the exact model has none).
    """
    from bigeval.genomic.relationships import a22_inverse

    animals = np.asarray(animals, dtype=bool)
    idx = np.flatnonzero(animals)
    rank = np.full(pop.n_animals, -1, dtype=np.int64)
    rank[idx] = np.arange(idx.size)
    sire, dam = pop.sire[idx], pop.dam[idx]
    known = np.concatenate([sire[sire >= 0], dam[dam >= 0]])
    if (rank[known] < 0).any():
        raise InputError("a sample must keep every ancestor of its animals",
                         remedy="extend the animals with bigeval.sample.ancestors")
    sire = np.where(sire >= 0, rank[np.maximum(sire, 0)], -1)
    dam = np.where(dam >= 0, rank[np.maximum(dam, 0)], -1)
    rec_animal = rank[pop.rec_animal[records]]
    if (rec_animal < 0).any():
        raise InputError("a sample must keep the animals of its records",
                         remedy="keep the animals of the kept records")
    cgs, rec_cg = np.unique(pop.rec_cg[records], return_inverse=True)
    genotyped = ginv = a22inv = None
    if pop.genotyped is not None:
        g_keep = animals[pop.genotyped]
        genotyped = rank[pop.genotyped[g_keep]]
        if pop.ginv is not None and genotyped.size:
            ginv = inverse_of_sub_block(pop.ginv, g_keep)
            a22inv = a22_inverse(sire, dam, genotyped, method=a22inv_method) \
                if a22_from_pedigree else inverse_of_sub_block(pop.a22inv, g_keep)
        elif not genotyped.size:
            genotyped = None
    return Population(ids=pop.ids[idx], sire=sire, dam=dam, generation=pop.generation[idx],
                      rec_animal=rec_animal, rec_cg=rec_cg.astype(np.int64),
                      cg_ids=np.asarray(pop.cg_ids, dtype=object)[cgs], genotyped=genotyped,
                      ginv=ginv, a22inv=a22inv)


def _groups(table: pd.DataFrame, approx: str, exact: str) -> dict:
    from bigeval.reliability.exact import agreement

    out = {}
    g = table["genotyped"].to_numpy(bool)
    for name, mask in (("all", np.ones(len(table), bool)), ("genotyped", g),
                       ("not_genotyped", ~g)):
        if mask.sum() < 2:  # no correlation or slope of fewer than two animals
            out[name] = {"n": int(mask.sum())}
            continue
        with np.errstate(divide="ignore", invalid="ignore"):  # constant values: nan
            a = agreement(table[approx].to_numpy(np.float64)[mask],
                          table[exact].to_numpy(np.float64)[mask])
        a["bias"] = a["mean_approx"] - a["mean_exact"]  # mean of approximate − exact
        out[name] = a
    return out


def exact_sample_check(pop: Population, opts, *, max_equations: int, max_genotyped: int,
                       seed: int = SAMPLE_SEED, herd_pattern: str | None = None,
                       share: float = EXACT_SAMPLE_SHARE, a22inv_method: str = "auto",
                       a22_from_pedigree: bool = True, method: str = "auto") -> ExactSample:
    """Approximate against exact reliabilities on a seeded herd sample of ``pop``.

    Parameters
    ----------
    pop
        The prepared population (with G*⁻¹ and A22⁻¹ for single step).
    opts
        :class:`bigeval.reliability.ReliabilityOptions` of the run (its ``tau`` decides the
        pe effect of the exact model, as in the whole check).
    max_equations, max_genotyped, seed, herd_pattern, share
        The sample's size and draw (:func:`draw_exact_sample`).
    a22inv_method, a22_from_pedigree
        How the sample's A22⁻¹ is computed (:func:`sub_population`).
    method
        The exact path (:func:`bigeval.reliability.exact.exact_reliability`).

    Returns
    -------
    ExactSample
        ``table``: one row per sampled animal: ``animal`` (ID), ``genotyped``,
        ``rel_pedigree`` (Part I on the sample), ``rel_exact_pblup``, with genotypes
        ``rel_final`` (Part III on the sample) and ``rel_exact_ssgblup``, and
        ``exact_below_zero`` (:func:`bigeval.reliability.exact.publishable`);
        ``agreement``: ``part1_vs_pblup`` (and ``part3_vs_ssgblup``), each for ``all``,
        ``genotyped`` and ``not_genotyped`` animals, from the table's values;
        ``counts``: herds, animals, genotyped animals, records and equations of the sample
        (and of the population), and the seed.
    """
    from bigeval.reliability.engine import reliability
    from bigeval.reliability.exact import exact_reliability, publishable

    drawn = draw_exact_sample(pop, max_equations=max_equations, max_genotyped=max_genotyped,
                              with_pe=opts.tau is not None, seed=seed,
                              herd_pattern=herd_pattern, share=share)
    sub = sub_population(pop, drawn.records, drawn.animals, a22inv_method=a22inv_method,
                         a22_from_pedigree=a22_from_pedigree)
    genomic = sub.genotyped is not None and sub.ginv is not None
    res = reliability(sub, opts, interbull_source=None)
    g = np.zeros(sub.n_animals, bool)
    if sub.genotyped is not None:
        g[sub.genotyped] = True
    table = pd.DataFrame({"animal": sub.ids.astype(str), "genotyped": g,
                          "rel_pedigree": res.rel_pedigree})
    args = (sub.sire, sub.dam, sub.rec_animal, sub.rec_cg, opts.alpha)
    below = np.zeros(sub.n_animals, bool)
    table["rel_exact_pblup"], b = publishable(
        exact_reliability(*args, tau=opts.tau, method=method), "exact PBLUP")
    below |= b
    if genomic:
        table["rel_final"] = res.rel_final
        table["rel_exact_ssgblup"], b = publishable(
            exact_reliability(*args, tau=opts.tau, genotyped=sub.genotyped, ginv=sub.ginv,
                              a22inv=sub.a22inv, method=method), "exact ssGBLUP")
        below |= b
    table["exact_below_zero"] = below
    agree = {"part1_vs_pblup": _groups(table, "rel_pedigree", "rel_exact_pblup")}
    if genomic:
        agree["part3_vs_ssgblup"] = _groups(table, "rel_final", "rel_exact_ssgblup")
    n_g_total = 0 if pop.genotyped is None else len(pop.genotyped)
    counts = {"seed": drawn.seed, "herd_pattern": herd_pattern, "herds": int(drawn.herds.size),
              "herds_total": drawn.herds_total, "animals": sub.n_animals,
              "animals_total": pop.n_animals, "genotyped": int(g.sum()),
              "genotyped_total": n_g_total, "records": sub.n_records,
              "records_total": pop.n_records, "equations": drawn.equations,
              "target_equations": int(share * max_equations),
              "target_genotyped": int(share * max_genotyped)}
    return ExactSample(table=table, agreement=agree, counts=counts, population=sub)
