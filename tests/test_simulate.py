"""Tests of bigeval.simulate: the population simulator and its writer."""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pandas as pd
import pytest

from bigeval.errors import InputError
from bigeval.simulate import (
    SimulationConfig,
    default_n_herds,
    iter_genotype_chunks,
    simulate,
    write_population,
)
from bigeval.simulate import _drop_plan, _founder_allele

UNKNOWN = "0"
SEASONS = 4  # calving seasons per year in the cg token
ID_PATTERN = re.compile(r"^[A-Z]{2}\d{9}$")

SMALL = SimulationConfig(n_animals=6_000, n_years=12, n_genotyped=1_500, n_snps=300,
                         n_chromosomes=3, seed=7)


@pytest.fixture(scope="module")
def pop():
    return simulate(SMALL)


def _herd_of_cg(cg: pd.Series) -> pd.Series:
    return cg.str.split("Y").str[0]


def _rows(pedigree: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of each animal's sire and dam (-1 unknown)."""
    index = pd.Index(pedigree["animal"])
    return index.get_indexer(pedigree["sire"]), index.get_indexer(pedigree["dam"])


# --- simulate: determinism ---------------------------------------------------------------------

def test_simulate__same_seed_same_population(pop):
    again = simulate(SMALL)
    pd.testing.assert_frame_equal(again.pedigree, pop.pedigree)
    pd.testing.assert_frame_equal(again.records, pop.records)
    pd.testing.assert_frame_equal(again.interbull, pop.interbull)
    pd.testing.assert_series_equal(again.genotyped, pop.genotyped)
    pd.testing.assert_series_equal(again.true_bv, pop.true_bv)
    np.testing.assert_array_equal(again.genotypes, pop.genotypes)
    np.testing.assert_array_equal(again.snp_ids, pop.snp_ids)


def test_simulate__other_seed_other_population(pop):
    other = simulate(SimulationConfig(**{**SMALL.__dict__, "seed": SMALL.seed + 1}))
    assert not other.pedigree["animal"].isin(pop.pedigree["animal"]).all()
    assert not np.array_equal(other.records["y"].to_numpy()[:100],
                              pop.records["y"].to_numpy()[:100])
    assert not np.array_equal(other.genotypes, pop.genotypes)


# --- simulate: pedigree ------------------------------------------------------------------------

def test_simulate__pedigree_integrity(pop):
    ped = pop.pedigree
    assert list(ped.columns) == ["animal", "sire", "dam", "birth_year", "sex", "herd"]
    assert ped["animal"].is_unique
    assert ped["animal"].map(lambda a: bool(ID_PATTERN.match(a))).all()
    assert UNKNOWN not in set(ped["animal"])
    for parent in ("sire", "dam"):
        known = ped[parent] != UNKNOWN
        assert ped.loc[known, parent].isin(ped["animal"]).all(), parent
    by_id = ped.set_index("animal")
    known_sire = ped[ped["sire"] != UNKNOWN]
    known_dam = ped[ped["dam"] != UNKNOWN]
    assert (by_id.loc[known_sire["sire"], "sex"].to_numpy() == "M").all()
    assert (by_id.loc[known_dam["dam"], "sex"].to_numpy() == "F").all()
    # parents born before progeny (at least one year: in fact two)
    assert (by_id.loc[known_sire["sire"], "birth_year"].to_numpy()
            < known_sire["birth_year"].to_numpy()).all()
    assert (by_id.loc[known_dam["dam"], "birth_year"].to_numpy()
            < known_dam["birth_year"].to_numpy()).all()
    # everything else refers to pedigree animals
    for ids in (pop.records["animal"], pop.genotyped, pop.interbull["animal"]):
        assert ids.isin(ped["animal"]).all()


def test_simulate__pedigree_has_no_loops(pop):
    sire, dam = _rows(pop.pedigree)
    depth = np.zeros(len(sire), np.int64)  # generations above the animal
    for _ in range(200):
        new = np.maximum(np.where(sire >= 0, depth[sire] + 1, 0),
                         np.where(dam >= 0, depth[dam] + 1, 0))
        if np.array_equal(new, depth):
            break
        depth = new
    else:
        pytest.fail("generation depths do not converge: the pedigree has a loop")
    assert depth.max() >= 3  # several generations


def test_simulate__pedigree_rows_and_ids_are_shuffled(pop):
    ped = pop.pedigree
    years = ped["birth_year"].to_numpy()
    assert not (np.diff(years) >= 0).all()
    assert abs(np.corrcoef(np.arange(len(years)), years)[0, 1]) < 0.1
    numbers = ped["animal"].str[2:].astype(np.int64).to_numpy()
    assert (np.diff(numbers) == 1).mean() < 0.01  # not consecutive in file order


def test_simulate__unknown_parents_at_the_configured_rate(pop):
    rate = SMALL.unknown_parent_rate
    truth = pop.true_parents.set_index("animal")
    ped = pop.pedigree.set_index("animal").loc[truth.index]
    has_dam = truth["dam"] != UNKNOWN
    missing_dam = (ped.loc[has_dam, "dam"] == UNKNOWN).mean()
    assert 0.5 * rate < missing_dam < 1.5 * rate
    has_sire = truth["sire"] != UNKNOWN
    missing_sire = (ped.loc[has_sire, "sire"] == UNKNOWN).mean()
    assert 0.5 * rate < missing_sire < 3 * rate  # natural-service sires are missing more often
    # recorded parents are the true parents
    for parent in ("sire", "dam"):
        known = ped[parent] != UNKNOWN
        assert (ped.loc[known, parent] == truth.loc[known, parent]).all()
    # founders
    assert ((ped["sire"] == UNKNOWN) & (ped["dam"] == UNKNOWN)).sum() > 100


def test_simulate__dams_in_the_herd_of_their_daughters(pop):
    rec = pop.records.assign(herd=_herd_of_cg(pop.records["cg"]))
    first_herd = rec.drop_duplicates("animal").set_index("animal")["herd"]
    ped = pop.pedigree
    pairs = ped[(ped["dam"] != UNKNOWN) & ped["animal"].isin(first_herd.index)
                & ped["dam"].isin(first_herd.index)]
    assert len(pairs) > 500
    same = (first_herd.loc[pairs["animal"]].to_numpy()
            == first_herd.loc[pairs["dam"]].to_numpy()).mean()
    assert same > 0.85
    # pedigree herd = herd of birth = the dam's herd
    born_in_dams_herd = (ped.set_index("animal").loc[pairs["animal"], "herd"].to_numpy()
                         == first_herd.loc[pairs["dam"]].to_numpy()).mean()
    assert born_in_dams_herd > 0.85


def test_simulate__ai_sires_have_many_daughters(pop):
    ped = pop.pedigree
    daughters = ped[(ped["sex"] == "F") & (ped["sire"] != UNKNOWN)]["sire"].value_counts()
    assert daughters.max() > 5 * daughters.mean()  # ~100x in a population of 10^6
    assert daughters.max() > 10 * daughters.median()
    assert daughters.max() > 200
    assert (daughters < 60).sum() >= 5  # natural-service and young bulls


# --- simulate: records -------------------------------------------------------------------------

def test_simulate__repeated_records_in_different_cgs(pop):
    rec = pop.records
    assert list(rec.columns) == ["animal", "cg", "y"]
    per_cow = rec.groupby("animal")["cg"].agg(["size", "nunique"])
    assert (per_cow["size"] == per_cow["nunique"]).all()  # one record per cow and cg
    assert (per_cow["size"] >= 2).mean() > 0.5
    assert 2.5 < per_cow["size"].mean() < 5.0
    assert per_cow["size"].max() <= 10
    # overlapping generations: the cows of one year were born in several years
    births = pop.pedigree.set_index("animal")["birth_year"]
    year = rec["cg"].str.extract(r"Y(\d{4})S")[0].astype(int)
    last = rec[year == year.max()]
    assert births.loc[last["animal"]].nunique() >= 4
    assert rec["cg"].str.fullmatch(r"H\d{4}Y\d{4}S[1-4]").all()
    assert np.isfinite(rec["y"]).all()


def test_simulate__cg_count_follows_herds_years_and_seasons():
    n_herds, n_years = 30, 8
    cfg = SimulationConfig(n_animals=8_000, n_herds=n_herds, n_years=n_years, n_snps=0,
                           n_genotyped=0, seed=3)
    pop = simulate(cfg)
    expected = n_herds * n_years * SEASONS
    assert 0.95 * expected <= pop.records["cg"].nunique() <= expected
    assert pop.pedigree["herd"].nunique() - 1 == n_herds  # plus '0' of foreign bulls
    assert 0.9 * cfg.n_animals < len(pop.pedigree) < 1.15 * cfg.n_animals
    assert pop.genotypes is None and len(pop.snp_ids) == 0


def test_default_n_herds__one_million_animals_give_67000_cgs():
    n_herds = default_n_herds(1_000_000, n_years=15)
    assert n_herds == 1116
    assert 66_000 <= n_herds * 15 * SEASONS <= 68_000


# --- simulate: Interbull -----------------------------------------------------------------------

def test_simulate__interbull_bulls_are_ai_sires_with_mace_rel(pop):
    ib = pop.interbull
    assert list(ib.columns) == ["animal", "rel"]
    assert ib["animal"].is_unique and len(ib) >= 1
    assert ((ib["rel"] > 0.5) & (ib["rel"] < 0.99)).all()
    ped = pop.pedigree.set_index("animal")
    assert (ped.loc[ib["animal"], "sex"] == "M").all()
    n_sires = pop.pedigree.loc[pop.pedigree["sire"] != UNKNOWN, "sire"].nunique()
    assert len(ib) <= 0.1 * n_sires + 1


def test_simulate__interbull_count_as_configured():
    cfg = SimulationConfig(n_animals=3_000, n_interbull=7, n_snps=0, n_genotyped=0, seed=5)
    assert len(simulate(cfg).interbull) == 7


# --- simulate: genotypes -----------------------------------------------------------------------

def test_simulate__genotypes_are_allele_counts(pop):
    geno = pop.genotypes
    assert geno.dtype == np.int8
    assert geno.shape == (SMALL.n_genotyped, SMALL.n_snps)
    assert set(np.unique(geno)) <= {0, 1, 2}
    assert len(pop.genotyped) == SMALL.n_genotyped and pop.genotyped.is_unique
    assert pop.genotyped.name == "animal"
    assert len(pop.snp_ids) == SMALL.n_snps and len(set(pop.snp_ids)) == SMALL.n_snps
    # genotyped: AI bulls and cows
    sex = pop.pedigree.set_index("animal").loc[pop.genotyped, "sex"]
    assert (sex == "M").sum() > 10 and (sex == "F").sum() > 10


def test_simulate__no_opposite_homozygotes_parent_offspring(pop):
    row = pd.Series(np.arange(len(pop.genotyped)), index=pop.genotyped)
    ped = pop.pedigree
    n_pairs = 0
    for parent in ("sire", "dam"):
        pairs = ped[ped["animal"].isin(row.index) & ped[parent].isin(row.index)]
        child = pop.genotypes[row.loc[pairs["animal"]].to_numpy()]
        par = pop.genotypes[row.loc[pairs[parent]].to_numpy()]
        assert not (np.abs(child.astype(int) - par) == 2).any(), parent
        n_pairs += len(pairs)
    assert n_pairs > 50


def test_simulate__allele_frequencies_near_founders(pop):
    base = pop.snp_map["freq"].to_numpy()
    assert ((base >= 0.05) & (base <= 0.95)).all()
    observed = pop.genotypes.mean(axis=0) / 2.0
    assert np.corrcoef(base, observed)[0, 1] > 0.8
    assert np.abs(observed - base).mean() < 0.1


def test_simulate__linked_snps_are_inherited_together(pop):
    """Neighbouring SNPs of a chromosome are in higher LD than SNPs of different chromosomes."""
    geno = pop.genotypes.astype(float)
    chrom = pop.snp_map["chrom"].to_numpy()
    r = np.corrcoef(geno, rowvar=False)
    adjacent = np.flatnonzero(chrom[1:] == chrom[:-1])
    r2_adjacent = np.nanmean(r[adjacent, adjacent + 1] ** 2)
    first, second = np.flatnonzero(chrom == 1), np.flatnonzero(chrom == 2)
    r2_unlinked = np.nanmean(r[np.ix_(first, second)] ** 2)
    assert r2_adjacent > 3 * r2_unlinked


def test_simulate__keep_genotypes_false_leaves_them_to_the_stream(pop):
    lean = simulate(SMALL, keep_genotypes=False)
    assert lean.genotypes is None
    streamed = np.concatenate([b for _, b in iter_genotype_chunks(lean, chunk_rows=500)])
    np.testing.assert_array_equal(streamed, pop.genotypes)


# --- iter_genotype_chunks ----------------------------------------------------------------------

@pytest.mark.parametrize("chunk_rows", [1, 7, 256, 10_000])
def test_iter_genotype_chunks__same_for_any_chunking(pop, chunk_rows):
    starts, blocks = zip(*iter_genotype_chunks(pop, chunk_rows=chunk_rows))
    assert starts[0] == 0
    assert all(len(b) <= chunk_rows for b in blocks)
    assert list(starts) == list(np.cumsum([0] + [len(b) for b in blocks[:-1]]))
    np.testing.assert_array_equal(np.concatenate(blocks), pop.genotypes)


def _gene_drop_slow(pop) -> np.ndarray:
    """Obviously-correct gene drop from the same random plan: unpacked alleles, one SNP at a
    time, crossovers applied in sorted order."""
    plan = _drop_plan(pop)
    freq, n_chr = plan.freq, len(plan.snp_off) - 1
    haps: list[list[np.ndarray]] = []
    for i in range(len(plan.par)):
        pair = []
        for g in range(2):
            p = plan.par[i, g]
            gamete = np.empty(len(freq), np.int8)
            if p < 0:
                for j in range(len(freq)):
                    gamete[j] = _founder_allele(plan.key, i, g, j, freq[j])
            else:
                for c in range(n_chr):
                    k = (2 * i + g) * n_chr + c
                    crossovers = sorted(plan.cx_pos[plan.cx_off[k] : plan.cx_off[k + 1]])
                    side = int(plan.cx_start[k])
                    for j in range(plan.snp_off[c + 1] - plan.snp_off[c]):
                        while crossovers and crossovers[0] <= j:
                            crossovers.pop(0)
                            side = 1 - side
                        gamete[plan.snp_off[c] + j] = haps[p][side][plan.snp_off[c] + j]
            pair.append(gamete)
        haps.append(pair)
    return np.stack([haps[i][0] + haps[i][1] for i in plan.genotyped_pos])


def test_iter_genotype_chunks__matches_slow_reference():
    small = simulate(SimulationConfig(n_animals=1_500, n_genotyped=40, n_snps=150,
                                      n_chromosomes=2, seed=11))
    np.testing.assert_array_equal(small.genotypes, _gene_drop_slow(small))


def test_iter_genotype_chunks__no_genotypes_yields_nothing():
    cfg = SimulationConfig(n_animals=1_000, n_snps=0, n_genotyped=10, seed=1)
    assert list(iter_genotype_chunks(simulate(cfg))) == []


# --- write_population --------------------------------------------------------------------------

def _read_genotypes(path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    start = len(lines[0]) - len(lines[0].split()[-1])
    assert all(len(line) == len(lines[0]) for line in lines)  # genotypes in fixed columns
    ids = [line[:start].strip() for line in lines]
    geno = np.array([np.frombuffer(line[start:].encode(), np.uint8) - ord("0")
                     for line in lines], np.int8)
    return ids, geno


def test_write_population__round_trip_txt(pop, tmp_path):
    paths = write_population(pop, tmp_path)
    assert set(paths) == {"pedigree", "records", "genotyped", "interbull", "genotypes", "chrmap"}
    ped = pd.read_csv(paths["pedigree"], sep=r"\s+", header=None, names=list(pop.pedigree),
                      dtype={"animal": str, "sire": str, "dam": str, "sex": str, "herd": str})
    pd.testing.assert_frame_equal(ped, pop.pedigree)
    rec = pd.read_csv(paths["records"], sep=r"\s+", header=None, names=["animal", "cg", "y"],
                      dtype={"animal": str, "cg": str})
    pd.testing.assert_frame_equal(rec, pop.records, check_exact=False, atol=1e-9, rtol=0)
    gen = pd.read_csv(paths["genotyped"], sep=r"\s+", header=None, names=["animal"],
                      dtype=str)["animal"]
    pd.testing.assert_series_equal(gen, pop.genotyped)
    ib = pd.read_csv(paths["interbull"], sep=r"\s+", header=None, names=["animal", "rel"],
                     dtype={"animal": str})
    pd.testing.assert_frame_equal(ib, pop.interbull, check_exact=False, atol=1e-9, rtol=0)
    ids, geno = _read_genotypes(paths["genotypes"])
    assert ids == pop.genotyped.tolist()
    np.testing.assert_array_equal(geno, pop.genotypes)
    chrmap = pd.read_csv(paths["chrmap"], sep=" ")
    assert list(chrmap.columns) == ["SNP_ID", "CHR", "POS"]
    assert chrmap["SNP_ID"].tolist() == list(pop.snp_ids)


def test_write_population__round_trip_csv(pop, tmp_path):
    paths = write_population(pop, tmp_path, fmt="csv")
    assert paths["pedigree"].name == "pedigree.csv"
    ped = pd.read_csv(paths["pedigree"], dtype={"animal": str, "sire": str, "dam": str})
    pd.testing.assert_frame_equal(ped, pop.pedigree)
    rec = pd.read_csv(paths["records"], dtype={"animal": str, "cg": str})
    assert list(rec.columns) == ["animal", "cg", "y"]
    pd.testing.assert_frame_equal(rec, pop.records, check_exact=False, atol=1e-9, rtol=0)
    assert pd.read_csv(paths["genotyped"], dtype=str)["animal"].tolist() == pop.genotyped.tolist()
    ib = pd.read_csv(paths["interbull"], dtype={"animal": str})
    pd.testing.assert_frame_equal(ib, pop.interbull, check_exact=False, atol=1e-9, rtol=0)


def test_write_population__streams_genotypes_not_kept(pop, tmp_path):
    lean = simulate(SMALL, keep_genotypes=False)
    paths = write_population(lean, tmp_path)
    _, geno = _read_genotypes(paths["genotypes"])
    np.testing.assert_array_equal(geno, pop.genotypes)


def test_write_population__leaves_no_temporary_files(pop, tmp_path):
    paths = write_population(pop, tmp_path / "new" / "dir")
    assert sorted(os.listdir(tmp_path / "new" / "dir")) == sorted(p.name for p in paths.values())


def test_write_population__rejects_unknown_format(pop, tmp_path):
    with pytest.raises(InputError, match="'txt' or 'csv'"):
        write_population(pop, tmp_path, fmt="parquet")


# --- SimulationConfig --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    {"n_animals": 10},
    {"h2": 0.0},
    {"h2": 0.5, "repeatability": 0.4},
    {"n_genotyped": 30_000},
    {"n_snps": 3, "n_chromosomes": 5},
    {"unknown_parent_rate": 0.9},
    {"n_years": 2},
])
def test_simulation_config__rejects_bad_values(bad):
    with pytest.raises(InputError, match="SimulationConfig"):
        SimulationConfig(**bad)


# --- large (opt-in) ----------------------------------------------------------------------------

@pytest.mark.slow
def test_simulate__one_million_animals():
    cfg = SimulationConfig(n_animals=1_000_000, n_genotyped=5_000, n_snps=2_000)
    start = time.perf_counter()
    pop = simulate(cfg)
    seconds = time.perf_counter() - start
    n_cg = pop.records["cg"].nunique()
    print(f"\nsimulate 1 000 000: {seconds:.1f} s, {len(pop.pedigree):,} animals, "
          f"{len(pop.records):,} records, {n_cg:,} cgs, {len(pop.interbull)} Interbull bulls")
    assert 0.95e6 < len(pop.pedigree) < 1.05e6
    assert 65_000 < n_cg < 69_000
    assert pop.genotypes.shape == (5_000, 2_000)
