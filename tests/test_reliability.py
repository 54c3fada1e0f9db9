"""Parts I-III: the fast engine against the literal SAS twin, options, invariances.

The twin (:mod:`bigeval.reliability.reference`) is a loop-by-loop transcription of the SAS/IML
program in the appendix of the certified methodology (Bauer, Vostrý, Přibyl); the fast
engine must agree with it to 1e-10 on simulated populations, with and without each option,
whatever the animal IDs and the order of the input rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bigeval import BigevalWarning
from bigeval.genomic import blend_g, tune_g, vanraden_g
from bigeval.io import write_triplets
from bigeval.linalg import spd_inverse
from bigeval.pedigree import a_matrix_dense
from bigeval.prepare import prepare
from bigeval.reliability import (
    FamilyGraph,
    ReliabilityOptions,
    genomic_reliability,
    iterate,
    reliability,
    result_table,
)
from bigeval.reliability.erc import interbull_erc, own_record_erc
from bigeval.reliability.genomic import GenomicReliabilityError
from bigeval.reliability.reference import (
    informative_slow,
    iterate_scalar,
    sas_iterate,
    erc_gblup_dense,
    own_data_erc_slow,
    sas_part2,
    sas_start_vector,
)
from bigeval.simulate import SimulationConfig, simulate

from conftest import indefinite_part2_case, random_pedigree

TOL = 1e-10


def write_inputs(pop, folder, *, rename=None, shuffle_seed=None, genomic=True, blend=0.05):
    """Write a simulated population's files (optionally with renamed IDs, shuffled rows).

    G⁻¹ and A22⁻¹ are built from the twins: A22 from the tabular A, G by VanRaden blended
    0.95 G + 0.05 A22 (positive definite), then tuned to A22.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ren = (lambda s: s) if rename is None else rename
    ped = pop.pedigree[["animal", "sire", "dam"]].copy()
    rec = pop.records[["animal", "cg"]].copy()
    ib = pop.interbull[["animal", "rel"]].copy()
    for df, cols in ((ped, ["animal", "sire", "dam"]), (rec, ["animal"]), (ib, ["animal"])):
        for c in cols:
            df[c] = [x if x == "0" else ren(x) for x in df[c]]
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        ped = ped.iloc[rng.permutation(len(ped))]
        rec = rec.iloc[rng.permutation(len(rec))]
        ib = ib.iloc[rng.permutation(len(ib))]
    files = {"pedigree": folder / "ped.txt", "records": folder / "rec.txt",
             "interbull": folder / "ib.txt"}
    ped.to_csv(files["pedigree"], sep=" ", header=False, index=False)
    rec.to_csv(files["records"], sep=" ", header=False, index=False)
    ib.to_csv(files["interbull"], sep=" ", header=False, index=False)
    if genomic:
        base = prepare(files["pedigree"])
        gids = np.array([ren(x) for x in pop.genotyped])
        pos = pd.Index(base.ids).get_indexer(gids)
        a22 = a_matrix_dense(base.sire, base.dam)[np.ix_(pos, pos)]
        g, _ = vanraden_g(pop.genotypes)
        gstar = tune_g(blend_g(g, a22, blend), a22)
        order = np.arange(len(gids)) if shuffle_seed is None else \
            np.random.default_rng(shuffle_seed + 1).permutation(len(gids))
        files["genotyped"] = folder / "gt.txt"
        pd.Series(gids[order]).to_csv(files["genotyped"], header=False, index=False)
        files["ginv"] = write_triplets(spd_inverse(gstar), gids, folder / "ginv.txt")
        files["a22inv"] = write_triplets(spd_inverse(a22), gids, folder / "a22inv.txt")
    return files


def sas_pipeline(pop, opts, *, interbull_kind="reliability"):
    """Parts I-III with the SAS twin only (its own Interbull conversion, in loops)."""
    ib_erc = None
    if pop.interbull_animal is not None:
        r2 = pop.interbull_value
        if interbull_kind == "reliability":
            w = [opts.alpha * r / (1 - r) for r in r2]
            tot = sum(w)
            ib_erc = [wp * (1 - wp / tot) for wp in w]
        else:
            ib_erc = list(r2)
    d0 = sas_start_vector(pop.n_animals, pop.rec_animal, pop.rec_cg, pop.n_cg, pop.sire,
                          pop.dam, alpha=opts.alpha, tau=opts.tau, sib_adjust=opts.sib_adjust,
                          interbull_animal=pop.interbull_animal, interbull_erc=ib_erc)
    d1 = sas_iterate(d0, pop.sire, pop.dam, alpha=opts.alpha, rounds=opts.rounds)
    out = {"erc_records": d0, "erc_pedigree": d1, "erc_final": d1}
    if pop.genotyped is not None and pop.ginv is not None:
        if opts.genomic_method == "certified":
            rg = sas_part2(d1[pop.genotyped], pop.ginv, pop.a22inv, alpha=opts.alpha)
            dg = opts.alpha * rg / (1 - rg)
        else:
            w = own_data_erc_slow(d1, d0, pop.sire, pop.dam, pop.genotyped, opts.alpha)
            dg = erc_gblup_dense(d1[pop.genotyped], w, pop.ginv, pop.a22inv, alpha=opts.alpha)
            rg = dg / (dg + opts.alpha)
        out["rel_genomic"] = rg
        out["erc_final"] = sas_iterate(d0, pop.sire, pop.dam, alpha=opts.alpha,
                                       rounds=opts.rounds, fixed_animal=pop.genotyped,
                                       fixed_erc=dg)
    return out


@pytest.fixture(scope="module")
def small_pops():
    return [simulate(SimulationConfig(n_animals=n, n_genotyped=ng, n_snps=2000, n_years=8,
                                      seed=seed))
            for n, ng, seed in ((500, 30, 11), (600, 60, 12))]


OPTION_SETS = [
    dict(),
    dict(tau=1.5),
    dict(sib_adjust=True),
    dict(tau=2.0, sib_adjust=True),
]


# Part II's matrix may be indefinite on such small data; the twin inverts it like SAS does.
@pytest.mark.filterwarnings("ignore::bigeval.BigevalWarning")
@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("extra", OPTION_SETS, ids=lambda d: ",".join(d) or "plain")
def test_reliability__matches_sas_twin(tmp_path, small_pops, which, extra):
    sim = small_pops[which]
    files = write_inputs(sim, tmp_path, shuffle_seed=5 + which)
    pop = prepare(**files)
    opts = ReliabilityOptions(alpha=2.4, rounds=40, **extra)
    fast = reliability(pop, opts, progress=False)
    slow = sas_pipeline(pop, opts)
    _assert_equal_to_twin(fast, slow)


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("extra", OPTION_SETS[:2], ids=lambda d: ",".join(d) or "plain")
def test_reliability__certified_equals_sas_twin_or_stops_on_its_bad_values(tmp_path, small_pops,
                                                                          which, extra):
    # The certified Part II is the SAS block V2; where its values cannot be published (outside
    # [0, 1), below Part I, or an indefinite matrix) the run stops and names exactly the
    # animals where the SAS twin's unclipped values are bad.
    sim = small_pops[which]
    files = write_inputs(sim, tmp_path, shuffle_seed=5 + which, blend=0.3)
    pop = prepare(**files)
    opts = ReliabilityOptions(alpha=2.4, rounds=40, genomic_method="certified", **extra)
    slow = sas_pipeline(pop, opts)
    d1 = slow["erc_pedigree"][pop.genotyped]
    qq = np.diag(d1) + (np.eye(len(d1)) + pop.ginv - pop.a22inv) * opts.alpha
    raw = 1 - opts.alpha * np.diag(np.linalg.inv(qq))
    bad = (raw < 0) | (raw >= 1) | (raw < d1 / (d1 + opts.alpha) - 1e-9)
    if np.linalg.eigvalsh(qq).min() <= 0 or bad.any():
        with pytest.raises(GenomicReliabilityError) as exc:
            reliability(pop, opts, progress=False)
        if np.linalg.eigvalsh(qq).min() > 0:
            assert sorted(exc.value.flags["index"]) == list(np.flatnonzero(bad))
    else:
        _assert_equal_to_twin(reliability(pop, opts, progress=False), slow)


def _assert_equal_to_twin(fast, slow):
    np.testing.assert_allclose(fast.erc_records, slow["erc_records"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fast.erc_pedigree, slow["erc_pedigree"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fast.rel_genomic, slow["rel_genomic"], rtol=TOL, atol=TOL)
    np.testing.assert_allclose(fast.erc_final, slow["erc_final"], rtol=TOL, atol=TOL)
    assert fast.part1.rounds == 40 and fast.part3.rounds == 40
    assert np.all((fast.rel_final >= 0) & (fast.rel_final < 1))


def test_reliability__interbull_as_erc_matches_twin(tmp_path, small_pops):
    sim = small_pops[0]
    files = write_inputs(sim, tmp_path, genomic=False)
    # Turn the reliabilities into ready ERC values (any non-negative numbers will do).
    ib = pd.read_csv(files["interbull"], sep=" ", header=None)
    ib[1] = ib[1] * 10
    ib.to_csv(files["interbull"], sep=" ", header=False, index=False)
    pop = prepare(**files)
    opts = ReliabilityOptions(alpha=3.0, rounds=30, interbull_kind="erc")
    fast = reliability(pop, opts, progress=False)
    slow = sas_pipeline(pop, opts, interbull_kind="erc")
    np.testing.assert_allclose(fast.erc_final, slow["erc_final"], rtol=TOL, atol=TOL)
    assert fast.part3 is None
    np.testing.assert_array_equal(fast.rel_final, fast.rel_pedigree)


def test_reliability__renamed_ids_and_shuffled_rows_give_same_results(tmp_path, small_pops):
    sim = small_pops[1]
    # Blend more A22 into G so that Part II is well posed (no warning: filterwarnings=error).
    f1 = write_inputs(sim, tmp_path / "a", blend=0.3)
    f2 = write_inputs(sim, tmp_path / "b", rename=lambda s: "x" + s[::-1], shuffle_seed=99,
                      blend=0.3)
    opts = ReliabilityOptions(alpha=3.0, rounds=60, tau=2.0, sib_adjust=True)
    t1 = result_table(p1 := prepare(**f1), reliability(p1, opts, progress=False))
    t2 = result_table(p2 := prepare(**f2), reliability(p2, opts, progress=False))
    t2["animal"] = [s[1:][::-1] for s in t2["animal"]]
    merged = t1.merge(t2, on="animal", suffixes=("", "_b"))  # join by ID, never by row
    assert len(merged) == len(t1) == len(t2)
    for col in ("erc_records", "erc_pedigree", "rel_genomic", "erc_final", "rel_final"):
        np.testing.assert_allclose(merged[col], merged[col + "_b"], rtol=TOL, atol=TOL)


def test_iterate__matches_scalar_loop_and_twin_on_random_pedigree():
    rng = np.random.default_rng(7)
    sire, dam = random_pedigree(700, rng)
    d0 = rng.gamma(1.5, 1.0, 700) * (rng.random(700) < 0.6)
    fast = iterate(d0, FamilyGraph.from_parents(sire, dam), 1.7, rounds=25, progress=False)
    own = np.array(informative_slow(d0, sire, dam), dtype=np.uint8)
    np.testing.assert_allclose(fast.d, iterate_scalar(d0, sire, dam, 1.7, 25, own), rtol=TOL,
                               atol=TOL)
    np.testing.assert_allclose(fast.d, sas_iterate(d0, sire, dam, alpha=1.7, rounds=25),
                               rtol=TOL, atol=TOL)


def test_informative__subtrees_with_information_by_hand_and_against_twin():
    from bigeval.reliability.kernel import informative

    # 0 x 1 -> 2 (no records) -> 4 (records); 3 founder without records or progeny;
    # 5 (records, parents 0 and 3); 6 without records, child of 2
    sire = np.array([-1, -1, 0, -1, 2, 0, 2])
    dam = np.array([-1, -1, 1, -1, -1, 3, -1])
    d0 = np.array([0.0, 0.0, 0.0, 0.0, 1.5, 0.7, 0.0])
    assert informative(d0, sire, dam).tolist() == [1, 1, 1, 1, 1, 1, 0]
    rng = np.random.default_rng(31)
    s2, m2 = random_pedigree(900, rng)
    v = rng.gamma(1.0, 1.0, 900) * (rng.random(900) < 0.2)
    perm = rng.permutation(900)  # parents after progeny: topological order inside
    inv = np.argsort(perm)
    ps = np.where(s2[perm] >= 0, inv[np.maximum(s2[perm], 0)], -1)
    pm = np.where(m2[perm] >= 0, inv[np.maximum(m2[perm], 0)], -1)
    got = informative(v[perm], ps, pm)
    assert got.tolist() == [int(x) for x in informative_slow(v[perm], ps, pm)]
    assert 0 < got.sum() < 900


@pytest.mark.parametrize("progeny", [10, 1000, 3000])
def test_iterate__sire_of_many_recordless_progeny_keeps_its_exact_value(progeny):
    """A sire with 5 units of its own and record-less progeny out of founder dams: at the
    solution the progeny give it nothing (their outside information is 0, so r_s = 0) and
    each gets bx_a(0, 5, 0) = α − (2α³ + 5α²)/(2α² + 7.5α) from it. bigeval holds that for
    100 rounds; the SAS text (the literal twin) lets the progeny feed the sire: 5.7 ERC
    with 1 000 progeny, 20 with 3 000 (kernel.informative)."""
    a, k = 3.0, progeny
    n = 1 + 2 * k
    sire = np.full(n, -1)
    dam = np.full(n, -1)
    sire[k + 1:] = 0
    dam[k + 1:] = np.arange(1, k + 1)
    d0 = np.zeros(n)
    d0[0] = 5.0
    d0[1:k + 1] = 1.0  # the dams' own records
    res = iterate(d0, FamilyGraph.from_parents(sire, dam), a, rounds=100, progress=False)
    kid = a - (2 * a**3 + 5 * a**2) / (2 * a**2 + 7.5 * a)
    np.testing.assert_allclose(res.d[0], 5.0, rtol=0, atol=1e-9)
    # the kid also gets its dam's share: the same family solved with q_d = 1 (the dam's)
    assert np.all(res.d[k + 1:] > kid) and np.ptp(res.d[k + 1:]) < 1e-12
    assert res.max_change[-1] < 1e-12
    literal = iterate_scalar(d0, sire, dam, a, 100, np.ones(n, np.uint8))
    if k >= 1000:
        assert literal[0] > 5.5  # the SAS text's drift, which bigeval does not have
    else:  # few progeny: only the 10-step residual of the SAS text (4.6e-5 here)
        assert abs(literal[0] - 5.0) < 1e-4
    # without the dams' records the progeny get the sire's share only
    d0[1:k + 1] = 0.0
    res = iterate(d0, FamilyGraph.from_parents(sire, dam), a, rounds=100, progress=False)
    np.testing.assert_allclose(res.d[[0, k + 1]], [5.0, kid], rtol=0, atol=1e-9)


def test_iterate__tolerance_stops_early_and_reports_rounds():
    rng = np.random.default_rng(8)
    sire, dam = random_pedigree(2000, rng)
    d0 = rng.gamma(1.5, 1.0, 2000) * (rng.random(2000) < 0.6)
    g = FamilyGraph.from_parents(sire, dam)
    full = iterate(d0, g, 3.0, rounds=300, progress=False)
    early = iterate(d0, g, 3.0, rounds=300, tol=1e-7, progress=False)
    assert early.converged and early.rounds < 300
    assert early.max_change[-1] <= 1e-7 < early.max_change[-2]
    rel = lambda d: d / (d + 3.0)  # noqa: E731
    assert np.abs(rel(early.d) - rel(full.d)).max() < 1e-5


def test_iterate__founder_pair_without_progeny_information():
    # A founder gets nothing from its own family (the 3x3 solve with unknown parents is
    # exact): with no progeny its ERC stays at its own records.
    sire = np.array([-1, -1, 0])
    dam = np.array([-1, -1, 1])
    d0 = np.array([0.0, 0.0, 0.0])
    res = iterate(d0, FamilyGraph.from_parents(sire, dam), 2.0, rounds=10, progress=False)
    np.testing.assert_array_equal(res.d, 0.0)


def test_own_record_erc__hand_example():
    # Animal 0 has records in groups of 2 and 4 records, animal 1 one record in the group of 2.
    rec_animal = np.array([0, 1, 0, 2, 3, 4])
    rec_cg = np.array([0, 0, 1, 1, 1, 1])
    z = own_record_erc(5, rec_animal, rec_cg, 2)
    np.testing.assert_allclose(z, [0.5 + 0.75, 0.5, 0.75, 0.75, 0.75])
    d = own_record_erc(5, rec_animal, rec_cg, 2, tau=2.0)
    np.testing.assert_allclose(d[0], 2 * 1.25 / (2 + 1.25))


def test_own_record_erc__tier_meyer_counts_relatives():
    # Group of 3 records: two half-sibs (same sire 5) and an unrelated animal.
    sire = np.array([5, 5, -1, -1, -1, -1])
    dam = np.array([-1, -1, -1, -1, -1, -1])
    rec_animal = np.array([0, 1, 2])
    rec_cg = np.array([0, 0, 0])
    z = own_record_erc(6, rec_animal, rec_cg, 1, sire=sire, dam=dam, sib_adjust=True)
    n = 3.0
    w_sib = np.sqrt((n - 1) / n)  # one relative among the others
    np.testing.assert_allclose(z[:3], [1 - 1 / (n * w_sib), 1 - 1 / (n * w_sib), 1 - 1 / n])


def test_interbull_erc__reliability_conversion():
    alpha = 3.0
    r2 = np.array([0.9, 0.5, 0.75])
    w = alpha * r2 / (1 - r2)
    np.testing.assert_allclose(interbull_erc(r2, alpha), w * (1 - w / w.sum()))
    # All weights 1 gives 1 - 1/n_b (the methodology's special case).
    r_unit = np.full(4, 1 / (1 + alpha))
    np.testing.assert_allclose(interbull_erc(r_unit, alpha), 1 - 1 / 4)


def test_genomic_reliability__indefinite_matrix_is_inverted_like_sas_with_a_warning():
    # G⁻¹ − A22⁻¹ with an eigenvalue below −1 and little own information: D + (I + G⁻¹ −
    # A22⁻¹)α is indefinite. SAS's inv() still inverts it; so do we, and we say so.
    d, ginv, a22inv = indefinite_part2_case()
    with pytest.warns(BigevalWarning, match="not positive definite"):
        rel = genomic_reliability(d, ginv, a22inv, 2.0)
    np.testing.assert_allclose(rel, sas_part2(d, ginv, a22inv, alpha=2.0), rtol=1e-12)


def test_genomic_reliability__positive_definite_matches_sas_twin():
    rng = np.random.default_rng(5)
    m = rng.normal(size=(30, 60))
    g = m @ m.T / 60 + 0.05 * np.eye(30)
    a22 = np.eye(30) + 0.1
    ginv, a22inv = spd_inverse(g), spd_inverse(a22)
    d = rng.gamma(2.0, 2.0, 30)
    np.testing.assert_allclose(genomic_reliability(d, ginv, a22inv, 3.0),
                               sas_part2(d, ginv, a22inv, alpha=3.0), rtol=1e-12, atol=1e-14)
