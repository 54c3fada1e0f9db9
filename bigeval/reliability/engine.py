"""Parts I–III of the approximate-reliability method, in memory.

Part I (Misztal et al. 1993): the ERC start vector d⁰ from own records (and Interbull), then
the damped iteration over families. Part II (Misztal et al. 2013): the genomic reliability
of genotyped animals, ``Q = [D + (I + G⁻¹ − A22⁻¹)α]⁻¹``, ``r²_g = 1 − αQ_ii``. Part III: Part I
again with the genotyped animals fixed at ``d_g = α r²_g/(1 − r²_g)``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bigeval._resources import check_dense
from bigeval.defaults import ROUNDS
from bigeval.errors import InputError
from bigeval.linalg import symmetric_inverse_diag
from bigeval.pedigree import parents_first_order
from bigeval.reliability import erc as _erc
from bigeval.reliability import genomic as _genomic
from bigeval.reliability import kernel

if TYPE_CHECKING:
    from bigeval.prepare import Population


@dataclass(frozen=True)
class ReliabilityOptions:
    """Parameters of the method (methodology II.3.1).

    Attributes
    ----------
    alpha
        α = σe²/σa²: (1−h²)/h², or (1−R)/h² with repeated records.
    tau
        τ = σe²/σpe² for repeated records; None: no repeated-records reduction.
    sib_adjust
        Tier & Meyer (2004) adjustment for relatives in the contemporary group.
    interbull_kind
        ``"reliability"`` (converted to ERC) or ``"erc"`` (added as is).
    rounds
        Maximum rounds of the iteration (the seed used 100).
    tol
        Stop early once no reliability changes by more than this in a round; None: run all.
    genomic_method
        Part II's method (:mod:`bigeval.reliability.genomic`): ``erc-gblup`` (default) or
        ``certified`` (the SAS Part II, guarded).
    """

    alpha: float
    tau: float | None = None
    sib_adjust: bool = False
    interbull_kind: str = "reliability"
    rounds: int = ROUNDS
    tol: float | None = None
    genomic_method: str = _genomic.DEFAULT_METHOD

    def __post_init__(self):
        if not (np.isfinite(self.alpha) and self.alpha > 0):
            raise InputError("alpha must be positive", value=self.alpha,
                             expected="α = σe²/σa² > 0",
                             remedy="give --alpha > 0 or --h2 in (0, 1)")
        if not ALPHA_RANGE[0] <= self.alpha <= ALPHA_RANGE[1]:
            raise InputError("alpha is too small or too large to compute reliabilities with",
                             value=self.alpha,
                             expected=f"{ALPHA_RANGE[0]:g} ≤ α ≤ {ALPHA_RANGE[1]:g} (a "
                                      "heritability between about 1e-6 and 1 - 1e-6)",
                             remedy="check --alpha / --h2 (α = (1-h2)/h2: 3 for h2 0.25)")
        if self.tau is not None and not (np.isfinite(self.tau) and self.tau > 0):
            raise InputError("tau must be positive", value=self.tau, expected="τ = σe²/σpe² > 0",
                             remedy="give --tau > 0 or leave it out")
        if int(self.rounds) != self.rounds or self.rounds < 0:
            raise InputError("rounds must be a whole number ≥ 0", value=self.rounds)
        if self.tol is not None and not self.tol > 0:
            raise InputError("tol must be positive", value=self.tol,
                             remedy="give --tol > 0 (e.g. 1e-6) or leave it out")
        _genomic._check_method(self.genomic_method)
        if self.interbull_kind not in ("reliability", "erc"):
            raise InputError("unknown Interbull kind", value=self.interbull_kind,
                             expected="'reliability' or 'erc'")


#: α = σe²/σa² accepted: beyond it reliabilities underflow or round to 1 (h² 1e-300 gave NaN)
ALPHA_RANGE = (1e-6, 1e6)
#: heritabilities accepted (their α within :data:`ALPHA_RANGE`)
H2_RANGE = (1e-6, 1 - 1e-6)


def check_published(cols: dict) -> None:
    """Nothing non-finite or out of range is published: every ERC finite and ≥ 0, every
    reliability in [0, 1) (a genomic one may be missing); else an :class:`InputError` with
    the count and the first animal, before any file is written.

    Parameters
    ----------
    cols
        Column name -> values of a result table (or a block of one), with ``animal``.
    """
    for name, values in cols.items():
        if not (name.startswith("erc_") or name.startswith("rel_")):
            continue
        v = pd.array(values, dtype="Float64")
        given = ~np.asarray(pd.isna(v))
        x = np.asarray(v.to_numpy(dtype=np.float64, na_value=np.nan))
        ok = np.isfinite(x) & (x >= 0) & ((x < 1) if name.startswith("rel_") else True)
        bad = given & ~ok | (~given & (name != "rel_genomic"))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"the computation gave {int(bad.sum()):,} {name} value(s) that are not finite "
                f"or out of range; nothing is written", value=f"{cols['animal'][i]}: {x[i]:g}",
                expected="ERC finite and ≥ 0, reliabilities in [0, 1)",
                remedy="check the parameters (h2, α) and the Interbull, G⁻¹ and A22⁻¹ values "
                       "for extreme numbers; if they are sane, report this as a bug")


def alpha_from(h2: float, repeatability: float | None = None) -> float:
    """α = (1−h²)/h², or (1−R)/h² with a repeatability R (methodology II.3.1).

    Examples
    --------
    >>> alpha_from(0.25)
    3.0
    >>> alpha_from(0.25, 0.4)
    2.4
    """
    if not 0 < h2 < 1:
        raise InputError("heritability must be in (0, 1)", value=h2, expected="0 < h2 < 1",
                         remedy="give --h2 as a fraction (0.25, not 25), or α with --alpha")
    if not H2_RANGE[0] <= h2 <= H2_RANGE[1]:
        raise InputError("heritability is too close to 0 or 1 to compute reliabilities with "
                         "(α = (1-h2)/h2 would overflow them)", value=h2,
                         expected=f"{H2_RANGE[0]:g} ≤ h2 ≤ 1 - {1 - H2_RANGE[1]:.0e}",
                         remedy="give the trait's heritability (--h2), e.g. 0.25")
    if repeatability is None:
        return (1 - h2) / h2
    if not h2 <= repeatability < 1:
        raise InputError("repeatability must be in [h2, 1)", value=repeatability,
                         expected=f"{h2} ≤ repeatability < 1",
                         remedy="repeatability includes the additive variance, so it is ≥ h2")
    return (1 - repeatability) / h2


@dataclass(frozen=True)
class FamilyGraph:
    """The pedigree as the kernel needs it: parents, and (parent, contribution) entries."""

    sire: np.ndarray
    dam: np.ndarray
    parent: np.ndarray
    entry: np.ndarray
    bounds: np.ndarray
    #: parents before progeny (for :func:`bigeval.reliability.kernel.informative`)
    order: np.ndarray | None = None

    @classmethod
    def from_parents(cls, sire: np.ndarray, dam: np.ndarray) -> "FamilyGraph":
        n = len(sire)
        itype = kernel.index_dtype(n)
        sire = np.ascontiguousarray(sire, dtype=itype)
        dam = np.ascontiguousarray(dam, dtype=itype)
        parent, entry, bounds = kernel.contribution_index(sire, dam)
        order = parents_first_order(sire, dam).astype(itype)
        return cls(sire, dam, parent, entry, bounds, order)

    @property
    def n(self) -> int:
        return len(self.sire)


@dataclass(frozen=True)
class IterationResult:
    """Outcome of the iteration: final ERC, rounds run, per-round max reliability change."""

    d: np.ndarray
    rounds: int
    max_change: np.ndarray = field(repr=False)
    converged: bool
    seconds: float


class _Progress:
    """Per-round progress on stderr when it is a terminal; silent in logs."""

    def __init__(self, total: int, label: str, enabled: bool | None = None):
        self.total, self.label = total, label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def update(self, k: int, change: float):
        if self.enabled:
            el = time.perf_counter() - self.t0
            sys.stderr.write(f"\r{self.label}: round {k}/{self.total}  "
                             f"max Δrel {change:.2e}  {el:6.1f} s")
            sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")


def iterate(d0: np.ndarray, graph: FamilyGraph, alpha: float, *, rounds: int = ROUNDS,
            tol: float | None = None, fixed_animal: np.ndarray | None = None,
            fixed_erc: np.ndarray | None = None, label: str = "Part I",
            progress: bool | None = None) -> IterationResult:
    """Run the damped iteration of Part I (or Part III with ``fixed_*``) in memory.

    Parameters
    ----------
    d0
        Start vector d⁰ (length N).
    graph
        Parents and progeny CSRs.
    alpha
        σe²/σa².
    rounds, tol
        At most ``rounds`` rounds; stop after a round in which no reliability d/(d+α) moved
        by more than ``tol``.
    fixed_animal, fixed_erc
        Part III: these animals start at, and are reset after every round to, ``fixed_erc``.

    Returns
    -------
    IterationResult
    """
    t0 = time.perf_counter()
    n = graph.n
    d0 = np.array(d0, dtype=np.float64)
    fixed, fixed_val = kernel.fix_animals(d0, fixed_animal, fixed_erc)
    own = kernel.informative(d0, graph.sire, graph.dam, graph.order)
    d = d0.copy()
    d_new = np.empty(n)
    bs, bd = np.empty(n), np.empty(n)
    ra = np.empty(n)
    r_parents = np.empty(2 * n)  # contributions to sires, then to dams
    rs, rd = r_parents[:n], r_parents[n:]
    progeny = np.empty(n)
    changes = []
    prog = _Progress(rounds, label, progress)
    converged = False
    k = 0
    for k in range(1, rounds + 1):
        kernel.gather(d, graph.sire, graph.dam, bs, bd)
        kernel.family_solve(d, bs, bd, own, alpha, ra, rs, rd)
        progeny[:] = 0.0
        kernel.sum_contributions(graph.parent, graph.entry, r_parents, graph.bounds, progeny)
        change = kernel.damp(d, d0, ra, progeny, fixed, fixed_val, alpha, d_new)
        changes.append(change)
        d, d_new = d_new, d
        prog.update(k, change)
        if tol is not None and change <= tol:
            converged = True
            break
    prog.close()
    return IterationResult(d=d, rounds=k, max_change=np.array(changes), converged=converged,
                           seconds=time.perf_counter() - t0)


def start_vector(pop: Population, opts: ReliabilityOptions, *, interbull_source=None,
                 own_record_erc=None) -> np.ndarray:
    """d⁰: own-record ERC (with the options) plus Interbull ERC (methodology Part I).

    ``own_record_erc``: a twin of :func:`bigeval.reliability.erc.own_record_erc` to use instead
    (the Dask engine's blockwise one, :meth:`.dask_engine.DaskIteration.own_record_erc`).
    """
    own_record_erc = own_record_erc or _erc.own_record_erc
    d0 = own_record_erc(pop.n_animals, pop.rec_animal, pop.rec_cg, pop.n_cg,
                        sire=pop.sire, dam=pop.dam, sib_adjust=opts.sib_adjust, tau=opts.tau)
    if pop.interbull_animal is not None:
        b = _erc.interbull_erc(pop.interbull_value, opts.alpha, kind=opts.interbull_kind,
                               source=interbull_source, animals=pop.ids[pop.interbull_animal])
        d0[pop.interbull_animal] += b
    return d0


def genomic_reliability(d: np.ndarray, ginv: np.ndarray, a22inv: np.ndarray,
                        alpha: float, *, overwrite: bool = False) -> np.ndarray:
    """Part II: r²_g = 1 − α diag(Q), Q = [D + (I + G⁻¹ − A22⁻¹)α]⁻¹ (Misztal et al. 2013).

    Only the diagonal of Q is formed, from a Cholesky factor (LAPACK potrf + trtri:
    ``Q_ii = Σ_k (L⁻¹)_ki²``), never a general inverse; a matrix that is not positive definite
    (G and A22 on different scales) is inverted by LDLᵀ with a warning, as the SAS program's
    ``inv`` would. Negative values are set to 0, as in the SAS program.

    Parameters
    ----------
    d
        Part I ERC of the genotyped animals (length n_g).
    ginv, a22inv
        G⁻¹ and A22⁻¹ (n_g × n_g, both triangles), in the same order as ``d``; not modified
        unless ``overwrite``.
    overwrite
        Build the Part II matrix in the memory of ``ginv`` (float64, C- or Fortran-ordered):
        two n_g × n_g arrays in all instead of three.
    """
    ng = len(d)
    if ng == 0:
        return np.zeros(0)
    in_place = (overwrite and isinstance(ginv, np.ndarray) and ginv.dtype == np.float64
                and ginv.flags.writeable and (ginv.flags.f_contiguous or ginv.flags.c_contiguous))
    check_dense(ng, copies=2 if in_place else 3,
                what=f"Part II's Q for {ng:,} genotyped animals")
    # LAPACK works in place on a Fortran array; a C-ordered symmetric matrix is its own
    # Fortran-ordered transpose
    m = (ginv if ginv.flags.f_contiguous else ginv.T) if in_place else \
        np.array(ginv, dtype=np.float64, order="F")
    a22inv = np.asarray(a22inv)
    # symmetric: subtract in the memory order of m (a C-ordered array's transpose is Fortran)
    m -= a22inv.T if a22inv.flags.c_contiguous and not a22inv.flags.f_contiguous else a22inv
    m[np.diag_indices(ng)] += 1.0
    m *= alpha
    m[np.diag_indices(ng)] += d  # Misztal et al. (2013): D + (I + G⁻¹ − A22⁻¹)α
    q_diag, _ = symmetric_inverse_diag(m, overwrite=True,
                                       what="Part II's D + (I + G⁻¹ − A22⁻¹)α")
    rel = 1.0 - alpha * q_diag
    return np.maximum(rel, 0.0)


@dataclass(frozen=True)
class ReliabilityResult:
    """All parts of a run, per animal in internal order, and the iteration summaries."""

    erc_records: np.ndarray
    part1: IterationResult
    rel_genomic: np.ndarray | None
    part3: IterationResult | None
    alpha: float
    #: Part II's method, flags and notes (None without genotyped animals)
    genomic: _genomic.GenomicResult | None = None

    @property
    def erc_pedigree(self):
        return self.part1.d

    @property
    def rel_pedigree(self):
        return self.part1.d / (self.part1.d + self.alpha)

    @property
    def erc_final(self):
        return self.part1.d if self.part3 is None else self.part3.d

    @property
    def rel_final(self):
        d = self.erc_final
        return d / (d + self.alpha)


def memory_iterator(sire, dam):
    """The in-memory engine as an ``iterator`` of :func:`reliability`: :func:`iterate` on the
    pedigree's :class:`FamilyGraph`."""
    graph = FamilyGraph.from_parents(sire, dam)

    def iterator(d0, alpha, **kw):
        return iterate(d0, graph, alpha, **kw)

    return iterator


def reliability(pop: Population, opts: ReliabilityOptions, *, interbull_source=None,
                progress: bool | None = None, iterator=None) -> ReliabilityResult:
    """Run Parts I–III on a prepared population.

    Part II and III run only when the population has genotyped animals with G⁻¹ and A22⁻¹.
    ``iterator`` runs the iteration of Parts I and III instead of the in-memory :func:`iterate`:
    a callable ``(d0, alpha, *, rounds, tol, fixed_animal, fixed_erc, label, progress)`` such
    as :class:`bigeval.reliability.distributed.dask_engine.DaskIteration`; if it has an
    ``own_record_erc`` method, the start vector's own-record ERC is computed by it too.
    """
    own = getattr(iterator, "own_record_erc", None)
    if iterator is None:
        iterator = memory_iterator(pop.sire, pop.dam)
    d0 = start_vector(pop, opts, interbull_source=interbull_source, own_record_erc=own)
    return parts_1_to_3(d0, iterator, opts, pop.genotyped, pop.ginv, pop.a22inv,
                        sire=pop.sire, dam=pop.dam,
                        genotyped_ids=None if pop.genotyped is None else pop.ids[pop.genotyped],
                        progress=progress)


def parts_1_to_3(d0: np.ndarray, iterator, opts: ReliabilityOptions, genotyped, ginv, a22inv,
                 *, sire=None, dam=None, genotyped_ids=None,
                 progress: bool | None = None) -> ReliabilityResult:
    """Parts I–III from a start vector: Part I, then (with G⁻¹ and A22⁻¹) Parts II and III.

    ``iterator`` as in :func:`reliability`; shared by the in-memory, Dask and out-of-core
    drivers so that the method's sequence lives in one place. ``sire``, ``dam`` (the
    pedigree) are needed by Part II's default method; ``genotyped_ids`` name the genotyped
    animals in its messages.

    Raises
    ------
    bigeval.reliability.genomic.GenomicReliabilityError
        ``genomic_method='certified'`` and Part II gives values that cannot be published.
    """
    p1 = iterator(d0, opts.alpha, rounds=opts.rounds, tol=opts.tol, label="Part I",
                  progress=progress)
    rel_g = p3 = gres = None
    if genotyped is not None and ginv is not None:
        gres = _genomic.genomic_part(
            p1.d, d0, sire, dam, genotyped, ginv, a22inv, opts.alpha,
            method=opts.genomic_method, ids=genotyped_ids)
        rel_g = gres.rel
        p3 = iterator(d0, opts.alpha, rounds=opts.rounds, tol=opts.tol,
                      fixed_animal=genotyped, fixed_erc=gres.erc, label="Part III",
                      progress=progress)
    return ReliabilityResult(erc_records=d0, part1=p1, rel_genomic=rel_g, part3=p3,
                             alpha=opts.alpha, genomic=gres)


def result_table(pop: Population, res: ReliabilityResult,
                 rel_exact: np.ndarray | None = None) -> pd.DataFrame:
    """Per-animal output table under the original IDs (CLI contract column names)."""
    n = pop.n_animals
    # no genomic reliability for animals not genotyped: a missing value (empty in CSV, null in
    # Parquet), never NaN
    rel_g = pd.array(np.zeros(n), dtype="Float64")
    rel_g[:] = pd.NA
    if res.rel_genomic is not None:
        rel_g[pop.genotyped] = res.rel_genomic
    cols = {
        "animal": pop.ids,
        "erc_records": res.erc_records,
        "erc_pedigree": res.erc_pedigree,
        "rel_pedigree": res.rel_pedigree,
        "rel_genomic": rel_g,
        "erc_final": res.erc_final,
        "rel_final": res.rel_final,
    }
    check_published(cols)
    if rel_exact is not None:
        cols["rel_exact"] = rel_exact
    return pd.DataFrame(cols)
