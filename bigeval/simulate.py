"""Seeded, deterministic simulation of a herd-structured dairy-cattle population.

The simulator produces what a national evaluation reads: a pedigree, repeated lactation
records in herd-year-season contemporary groups, Interbull (MACE) bulls with their
reliabilities, and the genotypes of a chosen set of animals. It is meant for tests, demos and
benchmarks (a 1 000 000-animal pedigree with ~67 000 contemporary groups takes seconds), so the
pedigree is built with numpy arrays one year at a time, never one animal at a time.

The population
--------------
* ``n_herds`` herds of ~50-150 cows (the herd sizes are fixed over time). Every cow calves once a
  year; the calving season (1-4) sets her contemporary group ``cg`` = herd-year-season, and each
  calving is one record. Cows are culled at the end of each year with a probability that rises
  with parity and falls with the cow's own yield deviation (3-5 lactations on average, at most
  10), and replaced by the herd's own heifers, which calve first at two years of age. Herds
  short of heifers buy surplus heifers of other herds; the other surplus heifers leave the
  population (they stay in the pedigree without records).
* Sires: imported (foreign) progeny-tested AI bulls, domestic progeny-tested AI bulls (used for
  five years, with a heavy-tailed popularity, so a few bulls have thousands of daughters), young
  domestic AI bulls in their test year (~100 daughters each), and the herd's own
  natural-service bull in ~30 % of the herds (a few dozen daughters each). Young AI bulls are
  the sons of the best proven bulls and the best cows of all herds ("bull dams"); the best 10 %
  of each cohort are selected as proven bulls five years after birth.
* Dams are the cows of the herd, so daughters are recorded in their dam's herd (except bought
  heifers). A fraction ``unknown_parent_rate`` of the recorded sires and dams is missing (three
  times that for natural-service sires); the true parents are kept in
  :attr:`SimulatedPopulation.true_parents`. Founders (the first cows, heifers and bulls, and all
  foreign bulls) have unknown parents.
* Genetic model: the infinitesimal model without inbreeding, in phenotypic standard deviations
  (sigma_p^2 = 1 without the cg effect): founders' breeding values ~ N(0, h2) (foreign bulls
  above the current cow mean, as selected bulls are), progeny ``bv = (bv_s + bv_d)/2 + m`` with
  ``m ~ N(0, h2/2)``; a record is ``y = cg effect + bv + pe + e`` with pe ~ N(0, r - h2) once
  per cow and e ~ N(0, 1 - r), r the repeatability; the cg effect is a herd, a year and a
  herd-year-season part.
* Genotypes by gene dropping down the true pedigree: founder haplotypes drawn from base allele
  frequencies ``0.05 + 0.9 * Beta(0.5, 0.5)`` (a U shape with a 0.05 MAF floor), gametes made
  with crossovers at Poisson(1) uniform positions on chromosomes of one Morgan each (Haldane,
  no interference), the SNPs at uniform random positions, ``n_snps / n_chromosomes`` per
  chromosome. Only the genotyped animals and their ancestors are dropped, haplotypes bit-packed
  and released when no later animal needs them, so genotypes can be streamed in row chunks
  (:func:`iter_genotype_chunks`).

Sizes
-----
The simulation runs ``n_years`` calving years ending in 2025 (fixed, not today's date). With
``T`` cows per herd on average, the pedigree holds about ``1.6 T`` founders per herd (cows,
heifers) plus ``T/2`` female calves per herd and year, plus a few bulls (<1 %)::

    n_animals ~= n_herds * T * (1.6 + n_years / 2)
    n_cg      ~= n_herds * n_years * 4              (every herd calves in every season)
    n_records ~= n_herds * T * n_years

``n_herds`` defaults to ``n_animals / (98.5 * (1.6 + n_years / 2))`` (so ``T`` ~ 98.5 cows);
with 15 years that is ``n_animals / 896``: 1 000 000 animals give 1 116 herds and ~67 000
contemporary groups, 10 000 000 animals ~670 000. When ``n_herds`` is given, the herd size
follows from the first relation.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from bigeval._resources import GiB, available_memory
from bigeval.errors import InputError, ResourceError
from bigeval.io.writers import atomic_path, claim_output

__all__ = [
    "SimulatedPopulation",
    "SimulationConfig",
    "default_n_herds",
    "iter_genotype_chunks",
    "simulate",
    "write_population",
]

# ---------------------------------------------------------------------------------------------
# Population constants (a Holstein-like herdbook population; change here, not in the code)
LAST_YEAR = 2025  # last calving/birth year simulated
N_SEASONS = 4  # calving seasons per year: the "S" of herd-year-season
SEASON_P = (0.28, 0.22, 0.22, 0.28)  # share of calvings per season
MEAN_HERD_SIZE = 98.5  # cows per herd when n_herds is left to its default
FOUNDERS_PER_COW = 1.6  # founder cows (0.75 T) + two founder heifer cohorts (0.85 T)
HERD_SIZE_RANGE = (0.5, 1.5)  # herd size = mean * Uniform(range)
FOUNDER_COW_FRACTION = 0.75  # founder cows per herd place, the rest filled by heifers
HEIFER_SURVIVAL = 0.85  # female calves reaching first calving
CULL_BASE, CULL_PER_PARITY, CULL_ON_YIELD = 0.12, 0.04, 0.08  # culling probability model
MAX_PARITY = 10
NS_HERD_FRACTION = 0.30  # herds keeping a natural-service bull
NS_USE = 0.25  # share of such a herd's calvings sired by its own bull
NS_SERVICE_YEARS = 3
YOUNG_BULL_USE = 0.20  # share of AI calvings from young bulls in their test year
COWS_PER_YOUNG_BULL = 1_200  # young AI bulls per year = cows / this
COWS_PER_FOREIGN_BULL = 8_000  # imported proven bulls per year = cows / this
PROVEN_FRACTION = 0.10  # young bulls selected after their progeny test
ACTIVE_YEARS = 5  # years a proven bull is used
POPULARITY_SD = 1.0  # sd of log popularity of proven bulls
FOREIGN_ADVANTAGE = 1.5  # foreign bulls' mean bv above the cow mean, in sigma_a
SD_HERD, SD_YEAR, SD_HYS = 0.5, 0.2, 0.3  # cg effect parts, in sigma_p
UNKNOWN_NS_SIRE_FACTOR = 3.0  # natural-service sires are missing this much more often
INTERBULL_FRACTION = 0.03  # default share of the sires with an Interbull proof
INTERBULL_REL_RANGE = (0.505, 0.985)
MAF_FLOOR = 0.05
CHROMOSOME_MORGANS = 1.0
BP_PER_MORGAN = 100_000_000
COUNTRY = "CZ"
FOREIGN_COUNTRIES = ("DE", "NL", "US", "CA", "FR", "IT", "DK")
ID_DIGITS = 9
UNKNOWN = "0"  # unknown parent / herd in the pedigree

# kinds of animals (internal)
_FOUNDER_COW, _FEMALE, _FOREIGN_BULL, _AI_BULL, _NS_BULL, _FOUNDER_HEIFER = range(6)

_MISSING = -1


@dataclass(frozen=True)
class SimulationConfig:
    """Options of :func:`simulate`.

    Parameters
    ----------
    n_animals
        Approximate number of animals in the pedigree (all animals, ancestors included).
    n_herds
        Number of herds; default :func:`default_n_herds` (~100 cows per herd).
    n_years
        Calving years simulated (the last is 2025).
    h2, repeatability
        Heritability and repeatability of the trait (``0 < h2 <= repeatability < 1``).
    n_genotyped
        Animals with genotypes: domestic AI bulls (newest first, up to 40 %), the foreign bulls
        with most daughters (up to 10 %), then females born in the last five years.
    n_snps, n_chromosomes
        SNPs (0: no genotypes) and the chromosomes they lie on (one Morgan each).
    n_interbull
        Bulls with an Interbull (MACE) proof; default 3 % of the sires.
    unknown_parent_rate
        Share of recorded sires and of recorded dams that are missing (``'0'``).
    seed
        Seed of every random draw: the same configuration gives the same population.
    """

    n_animals: int = 20_000
    n_herds: int | None = None
    n_years: int = 15
    h2: float = 0.25
    repeatability: float = 0.40
    n_genotyped: int = 1_000
    n_snps: int = 2_000
    n_chromosomes: int = 5
    n_interbull: int | None = None
    unknown_parent_rate: float = 0.05
    seed: int = 2026

    def __post_init__(self) -> None:
        def bad(name: str, expected: str, remedy: str) -> InputError:
            return InputError(f"SimulationConfig.{name} is out of range",
                              value=getattr(self, name), expected=expected, remedy=remedy)

        if not 500 <= self.n_animals <= 100_000_000:
            raise bad("n_animals", "500 <= n_animals <= 100 000 000", "pass a size in range")
        if self.n_herds is not None and not 1 <= self.n_herds <= self.n_animals // 20:
            raise bad("n_herds", f"1 <= n_herds <= n_animals / 20 = {self.n_animals // 20}",
                      "use fewer herds or leave n_herds=None")
        if not 3 <= self.n_years <= 100:
            raise bad("n_years", "3 <= n_years <= 100", "simulate at least three years")
        if not 0.0 < self.h2 < 1.0:
            raise bad("h2", "0 < h2 < 1", "pass a heritability such as 0.25")
        if not self.h2 <= self.repeatability < 1.0:
            raise bad("repeatability", f"h2 = {self.h2} <= repeatability < 1",
                      "the repeatability includes the heritability; raise it")
        if not 0 <= self.n_genotyped <= self.n_animals:
            raise bad("n_genotyped", "0 <= n_genotyped <= n_animals", "genotype fewer animals")
        if self.n_snps < 0:
            raise bad("n_snps", "n_snps >= 0", "pass 0 for no genotypes")
        if self.n_chromosomes < 1 or (self.n_snps > 0 and self.n_chromosomes > self.n_snps):
            raise bad("n_chromosomes", "1 <= n_chromosomes <= n_snps", "use fewer chromosomes")
        if self.n_interbull is not None and self.n_interbull < 0:
            raise bad("n_interbull", "n_interbull >= 0 or None", "pass None for the default")
        if not 0.0 <= self.unknown_parent_rate <= 0.3:
            raise bad("unknown_parent_rate", "0 <= rate <= 0.3", "pass e.g. 0.05")


@dataclass(frozen=True)
class SimulatedPopulation:
    """A simulated population; every frame joins the others by the animal ID.

    Attributes
    ----------
    pedigree
        One row per animal, rows shuffled: ``animal, sire, dam`` (IDs such as
        ``'CZ418003215'``; unknown parent ``'0'``), ``birth_year``, ``sex`` (``'M'``/``'F'``),
        ``herd`` (herd of birth such as ``'H0012'``; ``'0'`` for foreign bulls).
    records
        One row per lactation: ``animal, cg, y`` (``cg`` such as ``'H0012Y2019S2'``), in
        calving order.
    genotyped
        IDs of the genotyped animals (name ``animal``), parents before progeny.
    genotypes
        ``int8`` allele counts 0/1/2, genotyped animals × SNPs in ``genotyped`` order; ``None``
        when ``n_snps == 0`` or when not kept (then use :func:`iter_genotype_chunks`).
    snp_ids
        SNP names, length ``n_snps``.
    interbull
        ``animal, rel``: bulls with an Interbull (MACE) reliability in (0.5, 0.99).
    true_bv
        True breeding value per animal (index ``animal``), in pedigree row order.
    config
        The configuration that produced the population.
    snp_map
        ``snp, chrom, pos`` (base pairs, one Morgan = 10^8 bp) and ``freq``, the founders'
        frequency of the allele counted in the genotypes.
    true_parents
        ``animal, sire, dam`` with the true parents (``'0'`` only for founders), parents
        before progeny: the order genotypes are dropped in.
    """

    pedigree: pd.DataFrame
    records: pd.DataFrame
    genotyped: pd.Series
    genotypes: np.ndarray | None
    snp_ids: np.ndarray
    interbull: pd.DataFrame
    true_bv: pd.Series
    config: SimulationConfig
    snp_map: pd.DataFrame = field(repr=False)
    true_parents: pd.DataFrame = field(repr=False)
    # rows of true_parents of each animal's true sire and dam (-1: none) and of each genotyped
    # animal: saves an ID lookup over the whole pedigree; derived from the frames when None
    _parent_rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    _genotyped_rows: np.ndarray | None = field(default=None, repr=False, compare=False)


def default_n_herds(n_animals: int, n_years: int = 15) -> int:
    """Number of herds that gives ~98.5 cows per herd for a pedigree of ``n_animals``.

    The number of herd-year-season contemporary groups is then about
    ``4 * n_years * default_n_herds(n_animals, n_years)``.

    Examples
    --------
    >>> default_n_herds(1_000_000, n_years=15)   # 1e6 / (98.5 * (1.6 + 7.5)) = 1115.6
    1116
    >>> 4 * 15 * 1116                            # herd-year-season groups
    66960
    """
    return max(1, round(n_animals / (MEAN_HERD_SIZE * (FOUNDERS_PER_COW + n_years / 2))))


# ---------------------------------------------------------------------------------------------
# Pedigree, breeding values and records: numpy, one year at a time


class _Animals:
    """Growing columns of the animals simulated so far; the row number is the internal ID.

    Rows are appended parents first, so the internal order is a topological order.
    """

    _columns = {"sire": np.int64, "dam": np.int64, "rec_sire": np.int64, "rec_dam": np.int64,
                "birth_year": np.int32, "male": np.bool_, "herd": np.int32,
                "bv": np.float64, "kind": np.int8}

    def __init__(self, capacity: int):
        self.n = 0
        self.cols = {k: np.empty(capacity, dt) for k, dt in self._columns.items()}

    def add(self, *, bv: np.ndarray, **values) -> np.ndarray:
        m = len(bv)
        if self.n + m > len(self.cols["bv"]):
            grow = max(2 * len(self.cols["bv"]), self.n + m)
            for k, col in self.cols.items():
                new = np.empty(grow, col.dtype)
                new[: self.n] = col[: self.n]
                self.cols[k] = new
        values = {"sire": _MISSING, "dam": _MISSING, **values, "bv": bv}
        values.setdefault("rec_sire", values["sire"])
        values.setdefault("rec_dam", values["dam"])
        for k, col in self.cols.items():
            col[self.n : self.n + m] = values[k]
        idx = np.arange(self.n, self.n + m)
        self.n += m
        return idx

    def column(self, name: str) -> np.ndarray:
        return self.cols[name][: self.n]


def _rank_within(groups: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order by (group, key), ``0 <= key < 2``, and the 0-based rank within the group."""
    order = np.argsort(groups * 2.0 + key)  # one float sort, faster than lexsort
    g = groups[order]
    start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.arange(len(g)) - np.repeat(start, np.diff(np.r_[start, len(g)]))
    return order, rank


def _simulate_pedigree(cfg: SimulationConfig, rng: np.random.Generator) -> dict:
    """The population: animals (internal IDs, parents first), records and bull lists."""
    sa = math.sqrt(cfg.h2)
    spe = math.sqrt(cfg.repeatability - cfg.h2)
    se = math.sqrt(1.0 - cfg.repeatability)
    sm = sa / math.sqrt(2.0)  # Mendelian sampling sd, inbreeding ignored
    u = cfg.unknown_parent_rate
    n_years = cfg.n_years
    years = np.arange(LAST_YEAR - n_years + 1, LAST_YEAR + 1)
    y0 = int(years[0])
    n_herds = cfg.n_herds if cfg.n_herds is not None else default_n_herds(cfg.n_animals, n_years)
    mean_size = cfg.n_animals / (n_herds * (FOUNDERS_PER_COW + n_years / 2))
    size = np.maximum(2, np.rint(mean_size * rng.uniform(*HERD_SIZE_RANGE, n_herds)))
    size = size.astype(np.int64)
    n_cows = int(size.sum())
    herd_ns = rng.random(n_herds) < NS_HERD_FRACTION
    herd_eff = rng.normal(0.0, SD_HERD, n_herds)
    year_eff = rng.normal(0.0, SD_YEAR, n_years)
    n_young = max(2, round(n_cows / COWS_PER_YOUNG_BULL))
    n_proven = max(1, round(PROVEN_FRACTION * n_young))
    n_foreign = max(1, round(n_cows / COWS_PER_FOREIGN_BULL))
    animals = _Animals(int(cfg.n_animals * 1.05) + 1000)

    def noisy(bv: np.ndarray, rel: float) -> np.ndarray:  # an EBV-like selection criterion
        return bv + rng.normal(0.0, sa * math.sqrt((1.0 - rel) / rel), len(bv))

    # founders: cows (parity = calvings before the first year), two heifer cohorts, NS bulls
    n_fc = np.maximum(1, np.rint(FOUNDER_COW_FRACTION * size)).astype(np.int64)
    c_herd = np.repeat(np.arange(n_herds), n_fc)
    c_parity = np.minimum(rng.geometric(0.3, len(c_herd)), MAX_PARITY - 1)
    c_bv = rng.normal(0.0, sa, len(c_herd))
    c_idx = animals.add(bv=c_bv, birth_year=y0 - 2 - c_parity, male=False, herd=c_herd,
                        kind=_FOUNDER_COW)
    c_pe = rng.normal(0.0, spe, len(c_idx))
    heifers = {}  # birth year -> (idx, herd, bv, pe) of heifers that will calve
    for by in (y0 - 2, y0 - 1):
        h_herd = np.repeat(np.arange(n_herds), np.rint(0.5 * HEIFER_SURVIVAL * size).astype(int))
        h_bv = rng.normal(0.0, sa, len(h_herd))
        h_idx = animals.add(bv=h_bv, birth_year=by, male=False, herd=h_herd,
                            kind=_FOUNDER_HEIFER)
        heifers[by] = (h_idx, h_herd, h_bv, rng.normal(0.0, spe, len(h_idx)))
    ns_herds = np.flatnonzero(herd_ns)
    ns_bull = np.full(n_herds, _MISSING, np.int64)
    ns_bull[ns_herds] = animals.add(
        bv=rng.normal(0.0, sa, len(ns_herds)), male=True, herd=ns_herds, kind=_NS_BULL,
        birth_year=y0 - 3 - rng.integers(0, 3, len(ns_herds)))
    ns_since = np.full(n_herds, y0, np.int64)
    ns_since[ns_herds] -= rng.integers(0, NS_SERVICE_YEARS, len(ns_herds))
    ns_next = np.full(n_herds, _MISSING, np.int64)
    ns_next_from = np.full(n_herds, _MISSING, np.int64)

    # proven AI bulls (foreign and domestic): internal ID, first and last year of use, ...
    pool = {"idx": [], "first": [], "last": [], "weight": [], "ebv": []}

    def add_proven(idx: np.ndarray, ebv: np.ndarray, first: int) -> None:
        pool["idx"].append(idx)
        pool["first"].append(np.full(len(idx), first))
        pool["last"].append(np.full(len(idx), first + ACTIVE_YEARS - 1))
        popularity = rng.lognormal(0.0, POPULARITY_SD, len(idx)) * np.exp(0.5 * ebv / sa)
        pool["weight"].append(popularity)
        pool["ebv"].append(ebv)

    def import_foreign(first: int, level: float) -> None:
        bv = rng.normal(level + FOREIGN_ADVANTAGE * sa, 0.5 * sa, n_foreign)
        idx = animals.add(bv=bv, birth_year=first - 6, male=True, herd=_MISSING,
                          kind=_FOREIGN_BULL)
        add_proven(idx, noisy(bv, 0.9), first)

    for first in range(y0 - ACTIVE_YEARS + 1, y0):
        import_foreign(first, 0.0)

    young = {}  # birth year -> (idx, bv) of young AI bulls
    proven_domestic = []
    rec_cow, rec_cg, rec_y = [], [], []
    season_cdf = np.cumsum(SEASON_P)

    for t, year in enumerate(years.tolist()):
        import_foreign(year, float(c_bv.mean()))
        switch = ns_next_from == year
        ns_bull[switch], ns_since[switch] = ns_next[switch], year
        ns_next[switch] = ns_next_from[switch] = _MISSING

        # 1. heifers born two years ago join the herds; herds fill up to their size, cows
        #    first; herds short of heifers buy other herds' surplus heifers
        h_idx, h_herd, h_bv, h_pe = heifers.pop(year - 2)
        cand_idx = np.concatenate([c_idx, h_idx])
        cand_herd = np.concatenate([c_herd, h_herd])
        is_heifer = np.r_[np.zeros(len(c_idx), bool), np.ones(len(h_idx), bool)]
        cand_bv = np.concatenate([c_bv, h_bv])
        cand_pe = np.concatenate([c_pe, h_pe])
        cand_parity = np.concatenate([c_parity, np.zeros(len(h_idx), c_parity.dtype)])
        order, rank = _rank_within(cand_herd, is_heifer + rng.random(len(cand_idx)))
        keep = np.zeros(len(cand_idx), bool)
        keep[order[rank < size[cand_herd[order]]]] = True
        deficit = size - np.bincount(cand_herd[keep], minlength=n_herds)
        surplus = rng.permutation(np.flatnonzero(~keep & is_heifer))
        places = rng.permutation(np.repeat(np.arange(n_herds), deficit))
        bought = surplus[: len(places)]
        cand_herd[bought] = places[: len(bought)]
        keep[bought] = True
        c_idx, c_herd, c_bv = cand_idx[keep], cand_herd[keep], cand_bv[keep]
        c_pe, c_parity = cand_pe[keep], cand_parity[keep] + 1
        n = len(c_idx)

        # 2. every cow calves: one record in her herd-year-season
        season = np.searchsorted(season_cdf, rng.random(n) * season_cdf[-1], side="right")
        season = np.minimum(season, N_SEASONS - 1)
        hys = rng.normal(0.0, SD_HYS, (n_herds, N_SEASONS))
        cg_eff = herd_eff[c_herd] + year_eff[t] + hys[c_herd, season]
        dev = c_bv + c_pe + rng.normal(0.0, se, n)
        rec_cow.append(c_idx)
        rec_cg.append((c_herd.astype(np.int64) * n_years + t) * N_SEASONS + season)
        rec_y.append(cg_eff + dev)

        # 3. sires: bull dams x bull sires, the herd's NS bull, young AI bulls, proven AI bulls
        active = [(f <= year) & (year <= la) for f, la in zip(pool["first"], pool["last"])]
        p_idx = np.concatenate([i[a] for i, a in zip(pool["idx"], active)])
        p_w = np.concatenate([w[a] for w, a in zip(pool["weight"], active)])
        p_ebv = np.concatenate([e[a] for e, a in zip(pool["ebv"], active)])
        bull_sires = p_idx[np.argsort(-p_ebv, kind="stable")[: max(2, n_young // 10)]]
        elite = np.zeros(n, bool)
        elite[np.argsort(-noisy(c_bv, 0.5), kind="stable")[: min(n, 2 * n_young)]] = True
        r_use = rng.random(n)
        use_ns = ~elite & herd_ns[c_herd] & (ns_bull[c_herd] >= 0) & (r_use < NS_USE)
        y_idx = young.get(year - 2, (np.empty(0, np.int64), None))[0]
        use_young = ~elite & ~use_ns & (rng.random(n) < YOUNG_BULL_USE) & (len(y_idx) > 0)
        use_proven = ~elite & ~use_ns & ~use_young
        sire = np.empty(n, np.int64)
        sire[elite] = bull_sires[rng.integers(0, len(bull_sires), int(elite.sum()))]
        sire[use_ns] = ns_bull[c_herd[use_ns]]
        if len(y_idx):
            sire[use_young] = y_idx[rng.integers(0, len(y_idx), int(use_young.sum()))]
        sire[use_proven] = p_idx[rng.choice(len(p_idx), int(use_proven.sum()), p=p_w / p_w.sum())]

        # 4. calves: females all registered; males only when kept as AI or NS bulls
        male = rng.random(n) < 0.5
        calf_bv = 0.5 * (animals.cols["bv"][sire] + c_bv) + rng.normal(0.0, sm, n)
        p_miss = np.where(use_ns, min(1.0, UNKNOWN_NS_SIRE_FACTOR * u), u)
        rec_sire = np.where(~elite & (rng.random(n) < p_miss), _MISSING, sire)
        rec_dam = np.where(~elite & (rng.random(n) < u), _MISSING, c_idx)

        def born(sel: np.ndarray, kind: int) -> np.ndarray:
            return animals.add(bv=calf_bv[sel], sire=sire[sel], dam=c_idx[sel],
                               rec_sire=rec_sire[sel], rec_dam=rec_dam[sel], birth_year=year,
                               male=male[sel], herd=c_herd[sel], kind=kind)

        fem = ~male
        f_idx = born(fem, _FEMALE)
        f_pe = rng.normal(0.0, spe, len(f_idx))
        alive = rng.random(len(f_idx)) < HEIFER_SURVIVAL
        heifers[year] = (f_idx[alive], c_herd[fem][alive], calf_bv[fem][alive], f_pe[alive])
        young[year] = (born(male & elite, _AI_BULL), calf_bv[male & elite])
        # a herd whose NS bull has served long enough keeps a son of an AI bull; he serves
        # from two years of age
        wants = herd_ns & (ns_next < 0) & (year - ns_since >= NS_SERVICE_YEARS - 2)
        cand = np.flatnonzero(male & ~elite & use_proven & wants[c_herd])
        cand = cand[rng.permutation(len(cand))]
        _, first_in_herd = np.unique(c_herd[cand], return_index=True)
        sel = np.zeros(n, bool)
        sel[cand[first_in_herd]] = True
        ns_new = born(sel, _NS_BULL)
        ns_next[c_herd[sel]] = ns_new
        ns_next_from[c_herd[sel]] = year + 2

        # 5. culling at the end of the year: more with parity, less for high yielders
        p_cull = CULL_BASE + CULL_PER_PARITY * c_parity - CULL_ON_YIELD * dev  # var(dev) = 1
        stay = (rng.random(n) >= np.clip(p_cull, 0.02, 0.95)) & (c_parity < MAX_PARITY)
        c_idx, c_herd, c_bv, c_pe, c_parity = (
            c_idx[stay], c_herd[stay], c_bv[stay], c_pe[stay], c_parity[stay])

        # 6. the young bulls born five years ago have their daughters' records: select
        if year - 5 in young and len(young[year - 5][0]):
            yi, ybv = young[year - 5]
            crit = noisy(ybv, 0.8)
            best = np.argsort(-crit, kind="stable")[:n_proven]
            add_proven(yi[best], crit[best], year + 1)
            proven_domestic.append(yi[best])
    return {
        "animals": animals,
        "n_herds": n_herds,
        "years": years,
        "rec_animal": np.concatenate(rec_cow),
        "rec_cg": np.concatenate(rec_cg),
        "rec_y": np.concatenate(rec_y),
        "proven_domestic": np.concatenate(proven_domestic) if proven_domestic
        else np.empty(0, np.int64),
    }


def _make_ids(kind: np.ndarray, rng: np.random.Generator) -> pa.StringArray:
    """Unique IDs such as ``'CZ418003215'``; foreign bulls get other country codes.

    The 9-digit number is an affine bijection of the internal ID modulo 10^9, so numbers are
    unique and carry no order.
    """
    n = len(kind)
    modulus = 10**ID_DIGITS
    if n > modulus:  # pragma: no cover - guarded by SimulationConfig
        raise InputError("too many animals for 9-digit IDs", value=n)
    mult = 387_420_489  # 3**18, coprime with 10**9
    number = (np.arange(n, dtype=np.int64) * mult + int(rng.integers(modulus))) % modulus
    codes = np.array([COUNTRY, *FOREIGN_COUNTRIES])
    country = np.where(kind == _FOREIGN_BULL,
                       rng.integers(1, len(codes), n), 0)
    buf = np.empty((n, 2 + ID_DIGITS), np.uint8)
    buf[:, :2] = np.frombuffer("".join(codes.tolist()).encode(), np.uint8).reshape(-1, 2)[country]
    for k in range(ID_DIGITS):
        buf[:, 2 + ID_DIGITS - 1 - k] = 48 + (number // 10**k) % 10
    # an Arrow string array straight from the bytes: no Python string objects
    offsets = np.arange(0, (2 + ID_DIGITS) * n + 1, 2 + ID_DIGITS, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(buf.ravel()))


def _take(tokens: pa.Array, index: np.ndarray, name: str | None = None) -> pd.Series:
    """String column ``tokens[index]``, ``'0'`` where ``index`` is -1."""
    ext = pa.concat_arrays([tokens, pa.array([UNKNOWN], pa.string())])
    taken = ext.take(pa.array(np.where(index < 0, len(tokens), index)))
    return pd.Series(taken, dtype="str", name=name)


def _pick_genotyped(cfg: SimulationConfig, a: _Animals, daughters: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Internal IDs of the genotyped animals, ascending (parents before progeny)."""
    n_g = cfg.n_genotyped
    kind, by = a.column("kind"), a.column("birth_year")
    chosen: list[np.ndarray] = []
    taken = np.zeros(a.n, bool)

    def take(cands: np.ndarray, limit: int) -> None:
        cands = cands[~taken[cands]][: max(0, limit)]
        taken[cands] = True
        chosen.append(cands)

    ai = np.flatnonzero(kind == _AI_BULL)
    take(ai[np.lexsort((rng.random(len(ai)), -by[ai]))], int(0.4 * n_g))
    foreign = np.flatnonzero(kind == _FOREIGN_BULL)
    take(foreign[np.argsort(-daughters[foreign], kind="stable")], int(0.1 * n_g))
    young_f = np.flatnonzero((kind == _FEMALE) & (by > LAST_YEAR - 5))
    take(rng.permutation(young_f), n_g - int(taken.sum()))
    take(rng.permutation(a.n), n_g - int(taken.sum()))
    if taken.sum() < n_g:
        raise InputError("more genotyped animals requested than simulated animals",
                         value=n_g, expected=f"n_genotyped <= {int(taken.sum())}",
                         remedy="lower n_genotyped or raise n_animals")
    return np.flatnonzero(taken)


def _pick_interbull(cfg: SimulationConfig, a: _Animals, daughters: np.ndarray,
                    proven_domestic: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Interbull bulls (internal IDs) and their MACE reliabilities."""
    n_sires = int(np.count_nonzero(daughters))
    # at least 2 by default: a bull alone in the Interbull source gets ERC 0 (and a warning)
    n_ib = cfg.n_interbull if cfg.n_interbull is not None else max(
        2, round(INTERBULL_FRACTION * n_sires))
    kind = a.column("kind")
    foreign = np.flatnonzero(kind == _FOREIGN_BULL)
    cands = np.concatenate([foreign, proven_domestic])
    w = np.r_[np.full(len(foreign), 3.0), np.ones(len(proven_domestic))]
    w *= np.where(daughters[cands] > 0, 1.0, 0.1)
    k = min(n_ib, len(cands))
    ib = rng.choice(cands, k, replace=False, p=w / w.sum()) if k else np.empty(0, np.int64)
    if n_ib > k:
        others = np.setdiff1d(np.flatnonzero(kind == _AI_BULL), ib)
        if n_ib - k > len(others):
            raise InputError("more Interbull bulls requested than AI bulls simulated",
                             value=n_ib, expected=f"n_interbull <= {k + len(others)}",
                             remedy="lower n_interbull or leave it None")
        ib = np.concatenate([ib, rng.choice(others, n_ib - k, replace=False)])
    ib = np.sort(ib)
    # daughter-equivalents: domestic daughters plus foreign ones (many for foreign bulls)
    foreign_d = rng.lognormal(np.where(kind[ib] == _FOREIGN_BULL, 4.5, 2.0), 1.0)
    d = daughters[ib] + foreign_d
    k_ratio = (4.0 - cfg.h2) / cfg.h2
    rel = np.round(np.clip(d / (d + k_ratio), *INTERBULL_REL_RANGE), 3)
    return ib, rel


def simulate(config: SimulationConfig = SimulationConfig(), *,
             keep_genotypes: bool = True) -> SimulatedPopulation:
    """Simulate a herd-structured dairy population (see the module docstring for the model).

    Parameters
    ----------
    config
        Sizes, genetic parameters and the seed.
    keep_genotypes
        Compute the genotypes into :attr:`SimulatedPopulation.genotypes`; with ``False`` they
        are left ``None`` and can be streamed with :func:`iter_genotype_chunks` (large sets).

    Returns
    -------
    SimulatedPopulation
        Identical for identical configurations.

    Examples
    --------
    >>> pop = simulate(SimulationConfig(n_animals=2_000, n_genotyped=50, n_snps=100))
    >>> pop.genotypes.shape
    (50, 100)
    >>> bool(pop.pedigree.animal.is_unique), sorted(set(pop.pedigree.sex))
    (True, ['F', 'M'])
    """
    ss_ped, ss_ids, _ = np.random.SeedSequence(config.seed).spawn(3)
    sim = _simulate_pedigree(config, np.random.default_rng(ss_ped))
    rng = np.random.default_rng(ss_ids)
    a: _Animals = sim["animals"]
    ids = _make_ids(a.column("kind"), rng)
    daughters = np.bincount(a.column("rec_sire")[(~a.column("male")) & (a.column("rec_sire") >= 0)],
                            minlength=a.n)

    width = max(4, len(str(sim["n_herds"])))
    herd_tokens = pa.array([f"H{h:0{width}d}" for h in range(sim["n_herds"])], pa.string())
    perm = rng.permutation(a.n)
    pedigree = pd.DataFrame({
        "animal": _take(ids, perm),
        "sire": _take(ids, a.column("rec_sire")[perm]),
        "dam": _take(ids, a.column("rec_dam")[perm]),
        "birth_year": a.column("birth_year")[perm].astype(np.int64),
        "sex": _take(pa.array(["F", "M"]), a.column("male")[perm].astype(np.int64)),
        "herd": _take(herd_tokens, a.column("herd")[perm]),
    })
    true_bv = pd.Series(a.column("bv")[perm], index=pd.Index(pedigree["animal"], name="animal"),
                        name="bv")
    true_parents = pd.DataFrame({
        "animal": _take(ids, np.arange(a.n)),
        "sire": _take(ids, a.column("sire")),
        "dam": _take(ids, a.column("dam")),
    })

    # cg codes are dense integers (herd, year, season): number the ones in use, in code order
    n_years = len(sim["years"])
    used = np.bincount(sim["rec_cg"], minlength=sim["n_herds"] * n_years * N_SEASONS) > 0
    codes = np.flatnonzero(used)
    herd_of, rest = np.divmod(codes, n_years * N_SEASONS)
    year_of, season_of = np.divmod(rest, N_SEASONS)
    herd_str = herd_tokens.to_pylist()
    cg_tokens = pa.array([f"{herd_str[h]}Y{sim['years'][y]}S{s + 1}"
                          for h, y, s in zip(herd_of.tolist(), year_of.tolist(),
                                             season_of.tolist())], pa.string())
    records = pd.DataFrame({"animal": _take(ids, sim["rec_animal"]),
                            "cg": _take(cg_tokens, (np.cumsum(used) - 1)[sim["rec_cg"]]),
                            "y": np.round(sim["rec_y"], 4)})

    gen = _pick_genotyped(config, a, daughters, rng)
    genotyped = _take(ids, gen, name="animal")
    ib, rel = _pick_interbull(config, a, daughters, sim["proven_domestic"], rng)
    interbull = pd.DataFrame({"animal": _take(ids, ib), "rel": rel})
    snp_map = _snp_map(config)

    pop = SimulatedPopulation(
        pedigree=pedigree, records=records, genotyped=genotyped, genotypes=None,
        snp_ids=snp_map["snp"].to_numpy(), interbull=interbull, true_bv=true_bv,
        config=config, snp_map=snp_map, true_parents=true_parents,
        _parent_rows=np.stack([a.column("sire"), a.column("dam")], axis=1), _genotyped_rows=gen)
    if keep_genotypes and config.n_snps > 0:
        geno = np.empty((len(genotyped), config.n_snps), np.int8)
        for row, block in iter_genotype_chunks(pop):
            geno[row : row + len(block)] = block
        pop = dataclasses.replace(pop, genotypes=geno)
    return pop


# ---------------------------------------------------------------------------------------------
# Genotypes: gene dropping, numba over animals, bit-packed haplotypes


def _snp_map(config: SimulationConfig) -> pd.DataFrame:
    """SNP names, chromosomes, positions and founder allele frequencies (from the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(3)[2].spawn(2)[0])
    n, n_chr = config.n_snps, config.n_chromosomes
    per_chr = np.full(n_chr, n // n_chr) + (np.arange(n_chr) < n % n_chr)
    chrom = np.repeat(np.arange(1, n_chr + 1), per_chr)
    morgan = rng.random(n) * CHROMOSOME_MORGANS
    order = np.lexsort((morgan, chrom))
    morgan = morgan[order]
    freq = MAF_FLOOR + (1.0 - 2.0 * MAF_FLOOR) * rng.beta(0.5, 0.5, n)
    width = max(6, len(str(n)))
    return pd.DataFrame({
        "snp": np.array([f"SNP{k:0{width}d}" for k in range(1, n + 1)], dtype=object),
        "chrom": chrom.astype(np.int64),
        "pos": (np.floor(morgan * BP_PER_MORGAN) + 1).astype(np.int64),
        "freq": freq,
    })


_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True)
def _splitmix64(x):
    """SplitMix64 finaliser: a counter-based random 64-bit word (Steele et al. 2014)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def _founder_allele(key, i, g, j, freq_j):
    """Allele (0/1) of SNP ``j`` on founder gamete ``g`` of needed animal ``i``."""
    base = _splitmix64(key ^ (np.uint64(2 * i + g) * np.uint64(0x9E3779B97F4A7C15)))
    z = _splitmix64(base + np.uint64(j))
    return 1 if (z >> np.uint64(11)) * (1.0 / 9007199254740992.0) < freq_j else 0


@numba.njit(cache=True)
def _schedule_slots(par, last_use):
    """Haplotype store slot of each needed animal; a slot is reused once no one needs it."""
    n = len(last_use)
    slot = np.empty(n, np.int64)
    free = np.empty(n + 1, np.int64)
    n_free = 0
    n_slots = 0
    for i in range(n):
        if n_free > 0:
            n_free -= 1
            slot[i] = free[n_free]
        else:
            slot[i] = n_slots
            n_slots += 1
        for g in range(2):
            p = par[i, g]
            if p >= 0 and last_use[p] == i and not (g == 1 and p == par[i, 0]):
                free[n_free] = slot[p]
                n_free += 1
        if last_use[i] == i:
            free[n_free] = slot[i]
            n_free += 1
    return slot, n_slots


@numba.njit(cache=True)
def _gene_drop(i0, i1, par, slot, hap, cx_off, cx_pos, cx_start, snp_off, word_off, freq, key,
               geno_row, out, row0):
    """Drop genes to needed animals ``i0 .. i1-1``; write genotyped rows into ``out``.

    ``hap[slot, g, word]``: 64 SNPs per word, each chromosome starting on a new word; gamete
    ``g = 0`` from the sire, ``1`` from the dam. A gamete of chromosome ``c`` takes parental
    haplotype ``cx_start`` up to the first crossover, then alternates; a crossover at local SNP
    ``q`` switches SNPs ``q, q+1, ...``.
    """
    n_chr = len(snp_off) - 1
    mask = np.empty(hap.shape[2], np.uint64)
    one = np.uint64(1)
    for i in range(i0, i1):
        s = slot[i]
        for g in range(2):
            p = par[i, g]
            if p < 0:
                for c in range(n_chr):
                    for w in range(word_off[c], word_off[c + 1]):
                        hap[s, g, w] = 0
                    for j in range(snp_off[c + 1] - snp_off[c]):
                        sj = snp_off[c] + j
                        if _founder_allele(key, i, g, sj, freq[sj]):
                            w = word_off[c] + (j >> 6)
                            hap[s, g, w] |= one << np.uint64(j & 63)
                continue
            ps = slot[p]
            for c in range(n_chr):
                k = (2 * i + g) * n_chr + c
                wo = word_off[c]
                nw = word_off[c + 1] - wo
                m = snp_off[c + 1] - snp_off[c]
                fill = _ALL if cx_start[k] else np.uint64(0)
                for w in range(nw):
                    mask[w] = fill
                for x in range(cx_off[k], cx_off[k + 1]):
                    q = cx_pos[x]
                    if q >= m:
                        continue
                    w = q >> 6
                    mask[w] ^= _ALL << np.uint64(q & 63)
                    for w2 in range(w + 1, nw):
                        mask[w2] ^= _ALL
                for w in range(nw):
                    hap[s, g, wo + w] = (hap[ps, 0, wo + w] & ~mask[w]) | (
                        hap[ps, 1, wo + w] & mask[w])
        r = geno_row[i]
        if r >= 0:
            for c in range(n_chr):
                for j in range(snp_off[c + 1] - snp_off[c]):
                    w = word_off[c] + (j >> 6)
                    b = np.uint64(j & 63)
                    out[r - row0, snp_off[c] + j] = (((hap[s, 0, w] >> b) & one)
                                                    + ((hap[s, 1, w] >> b) & one))


@dataclass(frozen=True)
class _DropPlan:
    """Everything random about a gene drop, drawn up front so chunking cannot change it."""

    par: np.ndarray  # needed × 2 positions of sire and dam among the needed (-1: founder)
    geno_row: np.ndarray  # row in `genotyped` of each needed animal, -1 if not genotyped
    genotyped_pos: np.ndarray  # position among the needed of each genotyped row
    slot: np.ndarray
    n_slots: int
    cx_off: np.ndarray
    cx_pos: np.ndarray
    cx_start: np.ndarray
    snp_off: np.ndarray
    word_off: np.ndarray
    freq: np.ndarray
    key: np.uint64


def _drop_plan(pop: SimulatedPopulation) -> _DropPlan:
    """Who is dropped (the genotyped animals and their true ancestors), in which slots, and
    every crossover, all drawn from the seed."""
    cfg = pop.config
    tp = pop.true_parents
    if pop._parent_rows is not None and pop._genotyped_rows is not None:
        sire, dam = pop._parent_rows[:, 0], pop._parent_rows[:, 1]
        gidx = pop._genotyped_rows
    else:
        index = pd.Index(tp["animal"])
        sire = index.get_indexer(tp["sire"])
        dam = index.get_indexer(tp["dam"])
        gidx = index.get_indexer(pop.genotyped)
        if (gidx < 0).any():
            bad = pop.genotyped[gidx < 0].iloc[0]
            raise InputError("a genotyped animal is not in the pedigree", value=bad,
                             remedy="genotype only animals of the simulated population")
    if (np.diff(gidx) <= 0).any():
        raise InputError("genotyped animals are not in birth order (parents first)",
                         remedy="keep `genotyped` as simulate() returns it")
    need = np.zeros(len(tp), bool)
    front = gidx
    while len(front):  # one generation of ancestors per pass
        need[front] = True
        front = np.concatenate([sire[front], dam[front]])
        front = np.unique(front[front >= 0])
        front = front[~need[front]]
    needed = np.flatnonzero(need)
    pos = np.full(len(tp), _MISSING, np.int64)
    pos[needed] = np.arange(len(needed))
    par = np.stack([np.where(sire[needed] >= 0, pos[sire[needed]], _MISSING),
                    np.where(dam[needed] >= 0, pos[dam[needed]], _MISSING)], axis=1)
    n_need = len(needed)
    last_use = np.arange(n_need)
    for g in range(2):
        has = par[:, g] >= 0
        np.maximum.at(last_use, par[has, g], np.flatnonzero(has))
    slot, n_slots = _schedule_slots(par, last_use)
    geno_row = np.full(n_need, _MISSING, np.int64)
    geno_row[pos[gidx]] = np.arange(len(gidx))

    smap = pop.snp_map
    n_chr = cfg.n_chromosomes
    per_chr = np.bincount(smap["chrom"].to_numpy() - 1, minlength=n_chr)
    snp_off = np.r_[0, np.cumsum(per_chr)].astype(np.int64)
    word_off = np.r_[0, np.cumsum((per_chr + 63) // 64)].astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(3)[2].spawn(2)[1])
    n_x = rng.poisson(CHROMOSOME_MORGANS, n_need * 2 * n_chr)
    cx_start = rng.integers(0, 2, n_need * 2 * n_chr).astype(np.uint8)
    x_chr = np.repeat(np.arange(n_need * 2 * n_chr) % n_chr, n_x)
    x_at = x_chr + rng.random(len(x_chr)) * CHROMOSOME_MORGANS
    snp_at = (smap["chrom"].to_numpy() - 1) + smap["pos"].to_numpy() / BP_PER_MORGAN
    cx_pos = np.clip(np.searchsorted(snp_at, x_at) - snp_off[x_chr], 0, per_chr[x_chr])
    return _DropPlan(
        par=par, geno_row=geno_row, genotyped_pos=pos[gidx], slot=slot, n_slots=int(n_slots),
        cx_off=np.r_[0, np.cumsum(n_x)].astype(np.int64), cx_pos=cx_pos.astype(np.int64),
        cx_start=cx_start, snp_off=snp_off, word_off=word_off,
        freq=smap["freq"].to_numpy(np.float64),
        key=np.uint64(rng.integers(0, 2**63, dtype=np.int64)))


def iter_genotype_chunks(pop: SimulatedPopulation, *, chunk_rows: int = 4_096
                         ) -> Iterator[tuple[int, np.ndarray]]:
    """Genotypes of ``pop.genotyped`` in row blocks, computed as they are yielded.

    The result does not depend on ``chunk_rows``. Memory: the output block plus the
    haplotypes of the animals still needed by later ones, 2 bits per SNP each (a few hundred
    MB for 20 000 animals × 50 000 SNPs).

    Parameters
    ----------
    pop
        A population from :func:`simulate` (``keep_genotypes`` either way).
    chunk_rows
        Rows (animals) per block.

    Yields
    ------
    row_start, block
        First row of the block and the ``int8`` block, rows × ``n_snps``, allele counts 0/1/2.

    Examples
    --------
    >>> pop = simulate(SimulationConfig(n_animals=2_000, n_genotyped=50, n_snps=100))
    >>> [(r, b.shape) for r, b in iter_genotype_chunks(pop, chunk_rows=20)]
    [(0, (20, 100)), (20, (20, 100)), (40, (10, 100))]
    """
    if chunk_rows < 1:
        raise InputError("chunk_rows must be positive", value=chunk_rows, expected=">= 1")
    n_snps = pop.config.n_snps
    if n_snps == 0 or len(pop.genotyped) == 0:
        return
    plan = _drop_plan(pop)
    n_words = int(plan.word_off[-1])
    need = plan.n_slots * 2 * n_words * 8 + min(chunk_rows, len(pop.genotyped)) * n_snps
    have = available_memory()
    if need > 0.8 * have:
        raise ResourceError(
            f"gene dropping needs {need / GiB:.2f} GiB ({plan.n_slots:,} haplotype pairs of "
            f"{n_snps:,} SNPs and a block of {chunk_rows:,} rows) but only {have / GiB:.2f} GiB "
            "is available; what to do: lower chunk_rows, n_snps or n_genotyped")
    hap = np.zeros((plan.n_slots, 2, n_words), np.uint64)
    done = 0
    for row0 in range(0, len(pop.genotyped), chunk_rows):
        row1 = min(row0 + chunk_rows, len(pop.genotyped))
        out = np.empty((row1 - row0, n_snps), np.int8)
        upto = int(plan.genotyped_pos[row1 - 1]) + 1
        _gene_drop(done, upto, plan.par, plan.slot, hap, plan.cx_off, plan.cx_pos, plan.cx_start,
                   plan.snp_off, plan.word_off, plan.freq, plan.key, plan.geno_row, out, row0)
        done = upto
        yield row0, out


# ---------------------------------------------------------------------------------------------
# Files


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through :func:`bigeval.io.writers.atomic_path`: complete, or not at all."""
    with atomic_path(path) as tmp:
        write(tmp)


def _write_genotypes(pop: SimulatedPopulation, path: Path, chunk_rows: int = 4_096) -> None:
    """BLUPF90 layout: the ID right-aligned, a space, then one digit 0/1/2 per SNP."""
    ids = pop.genotyped.to_numpy().astype(str)
    width = int(np.char.str_len(ids).max())
    n_snps = pop.config.n_snps
    if pop.genotypes is not None:
        blocks = ((r, pop.genotypes[r : r + chunk_rows])
                  for r in range(0, len(ids), chunk_rows))
    else:
        blocks = iter_genotype_chunks(pop, chunk_rows=chunk_rows)
    with open(path, "wb") as fh:
        for row0, block in blocks:
            m = len(block)
            buf = np.empty((m, width + n_snps + 2), np.uint8)
            lines = np.char.rjust(ids[row0 : row0 + m], width)
            buf[:, :width] = np.frombuffer("".join(lines.tolist()).encode(), np.uint8
                                           ).reshape(m, width)
            buf[:, width] = ord(" ")
            buf[:, width + 1 : -1] = block + ord("0")
            buf[:, -1] = ord("\n")
            fh.write(buf.tobytes())


def write_population(pop: SimulatedPopulation, out_dir: str | os.PathLike, *,
                     fmt: str = "txt") -> dict[str, Path]:
    """Write a population as the files an evaluation reads.

    ``fmt="txt"``: whitespace separated, no header: ``pedigree.txt`` (animal sire dam
    birth_year sex herd), ``records.txt`` (animal cg y), ``genotyped.txt`` (animal),
    ``interbull.txt`` (animal rel). ``fmt="csv"``: the same tables as ``.csv`` with a header
    row. With genotypes (``n_snps > 0``), in both formats, ``genotypes.txt`` in the BLUPF90
    layout (streamed when ``pop.genotypes`` is ``None``) and ``chrmap.txt`` (``SNP_ID CHR
    POS``). Each file appears complete or not at all (written under a temporary name in
    ``out_dir``, then renamed).

    Returns
    -------
    dict
        Path of each file by name: ``pedigree``, ``records``, ``genotyped``, ``interbull``,
        and ``genotypes``, ``chrmap`` when written.
    """
    if fmt not in ("txt", "csv"):
        raise InputError("unknown output format", value=fmt, expected="'txt' or 'csv'",
                         remedy="pass fmt='txt' (BLUPF90-like) or fmt='csv'")
    out = claim_output(out_dir)  # locked for the rest of a command, as every output folder
    tables = {
        "pedigree": (pop.pedigree, None),
        "records": (pop.records, "%.4f"),
        "genotyped": (pop.genotyped.to_frame(), None),
        "interbull": (pop.interbull, "%.3f"),
    }
    paths: dict[str, Path] = {}
    for name, (frame, float_format) in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "txt":
            kw = {"sep": " ", "header": False}
        else:
            kw = {"sep": ",", "header": True}
        _atomic_write(path, lambda p, f=frame, ff=float_format: f.to_csv(
            p, index=False, float_format=ff, lineterminator="\n", **kw))
        paths[name] = path
    if pop.config.n_snps > 0 and len(pop.genotyped):
        path = out / "genotypes.txt"
        _atomic_write(path, lambda p: _write_genotypes(pop, p))
        paths["genotypes"] = path
        path = out / "chrmap.txt"
        chrmap = pop.snp_map[["snp", "chrom", "pos"]].set_axis(["SNP_ID", "CHR", "POS"], axis=1)
        _atomic_write(path, lambda p: chrmap.to_csv(p, sep=" ", index=False,
                                                    lineterminator="\n"))
        paths["chrmap"] = path
    return paths
