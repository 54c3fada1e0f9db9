"""Tests of bigeval.reliability.exact: exact reliabilities from the inverse of the MME.

Checked against the book (Mrode 2014, Example 3.1), against BLUPF90's printout for the
same example, and against an independent dense computation written here with loops over
records and ``numpy.linalg.inv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bigeval._resources
from bigeval.errors import InputError, ResourceError
from bigeval.genomic import vanraden_g
from bigeval.pedigree import a_matrix_dense, inbreeding
from bigeval.reliability.exact import exact_pev, exact_reliability

from conftest import local_pedigree, shuffled

DATA = Path(__file__).parent / "data" / "mrode"

# Mrode (2014) Example 3.1: sigma_a^2 = 20, sigma_e^2 = 40
SIGMA_A2_3_1 = 20.0
SIGMA_E2_3_1 = 40.0
ALPHA_3_1 = SIGMA_E2_3_1 / SIGMA_A2_3_1  # 2

# Mrode (2014, 3rd ed.) section 3.3.3 "Accuracy of evaluations", p. 45 (the same table is in
# section 4.3.3 of the 4th ed., Mrode & Pocrnic 2023): for animals 1-8, the diagonal elements
# d of the animal block of the inverse LHS, r² = 1 - d α and SEP = sqrt(d σe²). The book
# computes r² and SEP from d rounded to 3 decimals. Numbers as transcribed in
# JuliaBnG/Mrode-4ed-examples.jl (src/chapter-04/ex-1.jl); animal 1 (d = 0.471,
# SEP = 4.341, r² = 0.058, p. 45) also in masuday/Blupf90TutorialStandard.
D_3_1 = np.array([0.471, 0.492, 0.456, 0.428, 0.428, 0.442, 0.442, 0.422])
R2_3_1 = np.array([0.058, 0.016, 0.088, 0.144, 0.144, 0.116, 0.116, 0.156])
SEP_3_1 = np.array([4.341, 4.436, 4.271, 4.138, 4.138, 4.205, 4.205, 4.109])
PRINTED = 0.0005  # half a unit of the last printed decimal

# BLUPF90 with FSPAK on Example 3.1 (masuday/Blupf90TutorialStandard,
# mrode_c03ex031_animal_model.md): the "s.e." column is sqrt(C^aa_ii) in the units of the
# parameter file: with sigma_e^2 = 1, sigma_a^2 = 0.5 ...
SE_UNIT_3_1 = np.array([0.68636303, 0.70149535, 0.67561734, 0.65397259,
                        0.65429867, 0.66504343, 0.66472263, 0.64989549])
# ... and with sigma_e^2 = 40, sigma_a^2 = 20 (i.e. sqrt(PEV) = SEP)
SE_40_3_1 = np.array([4.34094096, 4.43664612, 4.27297922, 4.13608581,
                      4.13814812, 4.20610397, 4.20407502, 4.11029997])

# Mrode (2014) Example 4.1 (repeatability model), p. 64: solutions with the equations of
# HYS 1 and 3 set to zero; sigma_a^2 = 20, sigma_pe^2 = 12, sigma_e^2 = 28.
ALPHA_4_1 = 28.0 / 20.0
TAU_4_1 = 28.0 / 12.0
HYS_4_1 = np.array([0.0, 44.065, 0.0, 0.013])
PARITY_4_1 = np.array([175.472, 241.893])
ANIMAL_4_1 = np.array([10.148, -3.084, -7.063, 13.581, -18.207, -18.387, 9.328, 24.194])
PE_4_1 = np.array([8.417, -7.146, -17.229, -1.390, 17.347])  # cows 4-8

ORACLE = 1e-10  # agreement with the independent dense computation


def read_pedigree(name: str):
    """IDs and sire, dam as internal numbers (-1 unknown), joined by ID."""
    ped = pd.read_csv(DATA / name)
    pos = pd.Index(ped["animal"])
    sire = np.where(ped["sire"] > 0, pos.get_indexer(ped["sire"]), -1).astype(np.int64)
    dam = np.where(ped["dam"] > 0, pos.get_indexer(ped["dam"]), -1).astype(np.int64)
    return pos, sire, dam


def dense_mme(sire, dam, rec_animal, factors, alpha, *, tau=None, genotyped=None, ginv=None,
              a22inv=None, drop=(), y=None):
    """Independent dense MME: LHS built record by record, A⁻¹ = inv(A), numpy.linalg.inv.

    ``factors`` is a list of fixed factors, each one level per record; only levels with
    records get an equation, numbered factor by factor in sorted level order. Fixed
    equations listed in ``drop`` are set to zero (deleted). Returns (fixed, animal, pe)
    blocks of the inverse diagonal and, with ``y``, of the solutions.
    """
    n = len(sire)
    fixed_col = []
    k = 0
    for factor in factors:
        levels = sorted(set(factor))
        fixed_col.append({lev: k + j for j, lev in enumerate(levels)})
        k += len(levels)
    pe_animals = sorted(set(rec_animal)) if tau is not None else []
    pe_col = {a: k + n + j for j, a in enumerate(pe_animals)}
    neq = k + n + len(pe_animals)
    lhs = np.zeros((neq, neq))
    rhs = np.zeros(neq)
    for r, a in enumerate(rec_animal):
        cols = [fixed_col[f][factor[r]] for f, factor in enumerate(factors)] + [k + a]
        if tau is not None:
            cols.append(pe_col[a])
        for p in cols:
            if y is not None:
                rhs[p] += y[r]
            for q in cols:
                lhs[p, q] += 1.0
    ainv = np.linalg.inv(a_matrix_dense(sire, dam))
    if genotyped is not None:
        ainv[np.ix_(genotyped, genotyped)] += ginv - a22inv  # H⁻¹
    lhs[k:k + n, k:k + n] += alpha * ainv
    if tau is not None:
        lhs[k + n:, k + n:] += tau * np.eye(len(pe_animals))
    keep = np.setdiff1d(np.arange(neq), drop)
    c = np.zeros((neq, neq))
    c[np.ix_(keep, keep)] = np.linalg.inv(lhs[np.ix_(keep, keep)])
    diag = np.diag(c)
    sol = c @ rhs
    split = lambda v: (v[:k], v[k:k + n], v[k + n:])  # noqa: E731
    return split(diag) if y is None else (split(diag), split(sol))


def simulated_population(n: int, n_rec: int, n_cg: int, seed: int):
    """Random pedigree (shuffled numbering), repeated records in random groups."""
    rng = np.random.default_rng(seed)
    s, d = shuffled(*local_pedigree(n, rng, n_founders=6, window=20), rng)
    with_records = rng.choice(n, size=int(0.7 * n), replace=False)
    rec_animal = rng.choice(with_records, size=n_rec)  # some animals get several records
    rec_cg = rng.integers(0, n_cg, size=n_rec) * 3  # group numbers with gaps
    return s, d, rec_animal, rec_cg


@pytest.fixture(scope="module")
def example_3_1():
    pos, sire, dam = read_pedigree("ex3_1_pedigree.csv")
    data = pd.read_csv(DATA / "ex3_1_data.csv")
    rec_animal = pos.get_indexer(data["animal"])
    rec_cg = (data["sex"] == "F").to_numpy().astype(np.int64)  # M = 0, F = 1
    return sire, dam, rec_animal, rec_cg, data["wwg_kg"].to_numpy()


@pytest.fixture(scope="module")
def genomic_population():
    sire, dam, rec_animal, rec_cg = simulated_population(70, 160, 9, seed=21)
    rng = np.random.default_rng(22)
    genotyped = rng.choice(70, size=25, replace=False)
    a22 = a_matrix_dense(sire, dam)[np.ix_(genotyped, genotyped)]
    g, _ = vanraden_g(rng.integers(0, 3, size=(25, 300)))
    gstar = 0.95 * g + 0.05 * a22  # blended so that it is positive definite
    return sire, dam, rec_animal, rec_cg, genotyped, np.linalg.inv(gstar), np.linalg.inv(a22)


# ------------------------------------------------------------------------------------------
# published numbers
# ------------------------------------------------------------------------------------------


def test_exact_reliability__mrode_example_3_1(example_3_1):
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1)
    d = exact_pev(sire, dam, rec_animal, rec_cg, ALPHA_3_1)  # sigma_e^2 = 1: C^aa_ii
    np.testing.assert_allclose(d, D_3_1, rtol=0, atol=PRINTED)
    # the book's recipe from the rounded d reproduces its r² and SEP exactly
    np.testing.assert_array_equal(np.round(1 - ALPHA_3_1 * np.round(d, 3), 3), R2_3_1)
    np.testing.assert_array_equal(np.round(np.sqrt(np.round(d, 3) * SIGMA_E2_3_1), 3), SEP_3_1)
    # from the unrounded d: within the rounding of d (α · 0.0005) plus the printed precision
    np.testing.assert_allclose(rel, R2_3_1, rtol=0, atol=ALPHA_3_1 * PRINTED + PRINTED)
    np.testing.assert_array_equal(rel, 1.0 - ALPHA_3_1 * d)


def test_exact_pev__mrode_example_3_1_blupf90(example_3_1):
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    d = exact_pev(sire, dam, rec_animal, rec_cg, ALPHA_3_1)
    np.testing.assert_allclose(np.sqrt(d), SE_UNIT_3_1, rtol=0, atol=1e-8)
    pev = exact_pev(sire, dam, rec_animal, rec_cg, ALPHA_3_1, sigma_e2=SIGMA_E2_3_1)
    # FSPAK with sigma_e^2 = 40 in the equations agrees to about 4e-8
    np.testing.assert_allclose(np.sqrt(pev), SE_40_3_1, rtol=0, atol=1e-7)


def test_exact_reliability__mrode_example_3_1_dense_oracle(example_3_1):
    sire, dam, rec_animal, rec_cg, y = example_3_1
    (_, d, _), (b, a, _) = dense_mme(sire, dam, rec_animal, [rec_cg], ALPHA_3_1, y=y)
    # the oracle reproduces the book's solutions (Mrode 2014, p. 39; 4th ed. section 4.3 as
    # transcribed in Mrode-4ed-examples.jl). Males: 4.35850, printed 4.358 there, so allow
    # one unit of the last decimal for the sex effects.
    np.testing.assert_allclose(b, [4.358, 3.404], atol=2 * PRINTED)
    np.testing.assert_allclose(
        a, [0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249, 0.183], atol=PRINTED)
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1)
    np.testing.assert_allclose(rel, 1 - ALPHA_3_1 * d, rtol=0, atol=ORACLE)


def test_exact_reliability__mrode_example_4_1_pe_path():
    """Repeatability model of Mrode (2014) Example 4.1.

    The book fits HYS and parity, two cross-classified fixed factors; exact_reliability
    takes one (the contemporary group), so the book's model is checked with the dense
    oracle only (it reproduces the solutions on p. 64), and the permanent-environment path
    of exact_reliability is checked against the oracle on the same data with HYS as the
    contemporary group.
    """
    pos, sire, dam = read_pedigree("ex4_1_pedigree.csv")
    data = pd.read_csv(DATA / "ex4_1_data.csv")
    rec_animal = pos.get_indexer(data["cow"])
    hys = data["hys"].to_numpy()
    parity = data["parity"].to_numpy()
    y = data["fat_kg"].to_numpy()
    hys_1, hys_3 = 0, 2  # equation numbers of the constraints the book uses
    _, (b, a, pe) = dense_mme(sire, dam, rec_animal, [hys, parity], ALPHA_4_1, tau=TAU_4_1,
                              drop=[hys_1, hys_3], y=y)
    np.testing.assert_allclose(b, np.concatenate([HYS_4_1, PARITY_4_1]), atol=PRINTED)
    np.testing.assert_allclose(a, ANIMAL_4_1, atol=PRINTED)
    # pe of cow 6 is -17.2285 (printed -17.229): allow one unit of the last decimal
    np.testing.assert_allclose(pe, PE_4_1, atol=2 * PRINTED)

    _, d, _ = dense_mme(sire, dam, rec_animal, [hys], ALPHA_4_1, tau=TAU_4_1)
    rel = exact_reliability(sire, dam, rec_animal, hys, ALPHA_4_1, tau=TAU_4_1)
    np.testing.assert_allclose(rel, 1 - ALPHA_4_1 * d, rtol=0, atol=ORACLE)


# ------------------------------------------------------------------------------------------
# against the independent dense computation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [31, 32])
def test_exact_reliability__dense_oracle_repeated_records(seed):
    sire, dam, rec_animal, rec_cg = simulated_population(80, 200, 10, seed)
    alpha, tau = 2.4, 4.0
    _, d, _ = dense_mme(sire, dam, rec_animal, [rec_cg], alpha, tau=tau)
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, alpha, tau=tau)
    np.testing.assert_allclose(rel, 1 - alpha * d, rtol=0, atol=ORACLE)
    _, d, _ = dense_mme(sire, dam, rec_animal, [rec_cg], alpha)
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, alpha)
    np.testing.assert_allclose(rel, 1 - alpha * d, rtol=0, atol=ORACLE)


@pytest.mark.parametrize("tau", [None, 3.0])
def test_exact_reliability__dense_oracle_single_step(genomic_population, tau):
    sire, dam, rec_animal, rec_cg, genotyped, ginv, a22inv = genomic_population
    alpha = 3.0
    _, d, _ = dense_mme(sire, dam, rec_animal, [rec_cg], alpha, tau=tau, genotyped=genotyped,
                        ginv=ginv, a22inv=a22inv)
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, alpha, tau=tau,
                            genotyped=genotyped, ginv=ginv, a22inv=a22inv)
    np.testing.assert_allclose(rel, 1 - alpha * d, rtol=0, atol=ORACLE)


# ------------------------------------------------------------------------------------------
# properties and inputs
# ------------------------------------------------------------------------------------------


def test_exact_reliability__empty_cg_levels_dropped():
    sire, dam, rec_animal, rec_cg = simulated_population(40, 90, 6, seed=41)
    compact = np.unique(rec_cg, return_inverse=True)[1]
    assert rec_cg.max() > compact.max()  # the simulated group numbers have gaps
    np.testing.assert_array_equal(
        exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, tau=3.0),
        exact_reliability(sire, dam, rec_animal, compact, 2.0, tau=3.0))


def test_exact_reliability__numbering_invariant(genomic_population):
    sire, dam, rec_animal, rec_cg, genotyped, ginv, a22inv = genomic_population
    n = len(sire)
    rel = exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, tau=2.0, genotyped=genotyped,
                            ginv=ginv, a22inv=a22inv)
    new = np.random.default_rng(42).permutation(n)  # animal i gets number new[i]
    s = np.full(n, -1, np.int64)
    d = np.full(n, -1, np.int64)
    s[new] = np.where(sire >= 0, new[np.maximum(sire, 0)], -1)
    d[new] = np.where(dam >= 0, new[np.maximum(dam, 0)], -1)
    rel_new = exact_reliability(s, d, new[rec_animal], rec_cg, 2.0, tau=2.0,
                                genotyped=new[genotyped], ginv=ginv, a22inv=a22inv)
    np.testing.assert_allclose(rel_new[new], rel, rtol=0, atol=1e-12)


def test_exact_reliability__returned_as_computed():
    # sire 0 without records; its two progeny are the only records of one group, so the
    # group absorbs everything they say about the sire: reliability 0 up to rounding
    sire, dam = [-1, 0, 0], [-1, -1, -1]
    rel = exact_reliability(sire, dam, [1, 2], [0, 0], 2.0)
    d = exact_pev(sire, dam, [1, 2], [0, 0], 2.0)
    np.testing.assert_array_equal(rel, 1.0 - 2.0 * d)  # no clipping at 0
    assert abs(rel[0]) < 1e-12


def test_exact_reliability__given_f(example_3_1):
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    f = inbreeding(sire, dam)
    np.testing.assert_array_equal(
        exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1, f=f),
        exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1))
    # animal 4 is a full-sib mating (F = 0.25); its inbreeding enters A⁻¹ through its
    # offspring 5 (Quaas 1976)
    sire, dam = [-1, -1, 0, 0, 2, 4], [-1, -1, 1, 1, 3, -1]
    inbred = exact_reliability(sire, dam, [5, 2], [0, 0], 2.0)
    ignored = exact_reliability(sire, dam, [5, 2], [0, 0], 2.0, f=np.zeros(6))
    assert np.abs(inbred - ignored).max() > 1e-3


def test_exact_reliability__no_records():
    rel = exact_reliability([-1, 0], [-1, -1], np.empty(0, np.int64), np.empty(0, np.int64),
                            2.0, tau=1.0)
    np.testing.assert_allclose(rel, [0.0, 0.0], atol=1e-15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha must be a positive number"),
        ({"alpha": float("nan")}, "alpha must be a positive number"),
        ({"tau": -1.0}, "tau must be a positive number"),
        ({"rec_animal": [1, 5]}, r"rec_animal\[1\] is out of range"),
        ({"rec_cg": [0, -1]}, r"rec_cg\[1\] is out of range"),
        ({"rec_cg": [0]}, "one entry per record"),
        ({"genotyped": [1, 2]}, "together"),
        ({"genotyped": [1, 2], "ginv": np.eye(3), "a22inv": np.eye(2)}, "square matrix"),
        ({"genotyped": [1, 1], "ginv": np.eye(2), "a22inv": np.eye(2)}, "twice"),
        ({"genotyped": [1, 2], "ginv": [[1.0, 0.5], [0.0, 1.0]], "a22inv": np.eye(2)},
         "not symmetric"),
        ({"genotyped": [1, 2], "ginv": -10 * np.eye(2), "a22inv": np.eye(2)},
         "not positive definite"),
        ({"f": [0.0, 0.0]}, "one entry per animal"),
    ],
)
def test_exact_reliability__bad_input_raises(kwargs, match):
    args = {"sire": [-1, 0, 0], "dam": [-1, -1, -1], "rec_animal": [1, 2], "rec_cg": [0, 0],
            "alpha": 2.0}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        exact_reliability(args.pop("sire"), args.pop("dam"), args.pop("rec_animal"),
                          args.pop("rec_cg"), args.pop("alpha"), **args)


def test_exact_reliability__too_large_raises_resource_error(monkeypatch, example_3_1):
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    monkeypatch.setattr(bigeval._resources, "available_memory", lambda: 100)
    with pytest.raises(ResourceError, match="exact MME left-hand side"):
        exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1)


# ------------------------------------------------------------------------------------------
# the sparse path: sparse Cholesky + selected inversion (bigeval.linalg.selinv)
# ------------------------------------------------------------------------------------------

SPARSE = 1e-10  # sparse path against the dense twin


def test_exact_reliability__sparse_mrode_example_3_1_published(example_3_1):
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    d = exact_pev(sire, dam, rec_animal, rec_cg, ALPHA_3_1, method="sparse")
    np.testing.assert_allclose(d, D_3_1, rtol=0, atol=PRINTED)
    np.testing.assert_allclose(np.sqrt(d), SE_UNIT_3_1, rtol=0, atol=1e-8)  # BLUPF90/FSPAK


@pytest.mark.parametrize("seed", [51, 52, 53])
@pytest.mark.parametrize("tau", [None, 2.5])
def test_exact_reliability__sparse_equals_dense(seed, tau):
    sire, dam, rec_animal, rec_cg = simulated_population(300, 700, 25, seed)
    dense = exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, tau=tau, method="dense")
    sparse = exact_reliability(sire, dam, rec_animal, rec_cg, 2.0, tau=tau, method="sparse")
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=SPARSE)


@pytest.mark.parametrize("tau", [None, 3.0])
def test_exact_reliability__sparse_single_step_equals_dense(genomic_population, tau):
    sire, dam, rec_animal, rec_cg, genotyped, ginv, a22inv = genomic_population
    kw = dict(tau=tau, genotyped=genotyped, ginv=ginv, a22inv=a22inv)
    dense = exact_reliability(sire, dam, rec_animal, rec_cg, 3.0, method="dense", **kw)
    sparse = exact_reliability(sire, dam, rec_animal, rec_cg, 3.0, method="sparse", **kw)
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=SPARSE)


def test_exact_reliability__auto_method_by_size(monkeypatch, example_3_1):
    import bigeval.reliability.exact as ex
    sire, dam, rec_animal, rec_cg, _ = example_3_1
    assert ex.exact_method(ex.DENSE_MAX_EQUATIONS) == "dense"
    assert ex.exact_method(ex.DENSE_MAX_EQUATIONS + 1) == "sparse"
    dense = exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1)
    # with no memory for a dense matrix, the small system still goes sparse when forced
    monkeypatch.setattr(ex, "DENSE_MAX_EQUATIONS", 0)
    monkeypatch.setattr(bigeval._resources, "available_memory", lambda: 100)
    np.testing.assert_allclose(exact_reliability(sire, dam, rec_animal, rec_cg, ALPHA_3_1),
                               dense, rtol=0, atol=SPARSE)


def test_exact_reliability__sparse_not_positive_definite_raises(genomic_population):
    sire, dam, rec_animal, rec_cg, genotyped, ginv, a22inv = genomic_population
    bad = -10.0 * np.eye(len(genotyped))  # G⁻¹ - A22⁻¹ far from positive definite
    with pytest.raises(InputError, match="not positive definite|diagonal element <= 0"):
        exact_reliability(sire, dam, rec_animal, rec_cg, 3.0, genotyped=genotyped,
                          ginv=bad, a22inv=a22inv, method="sparse")
    with pytest.raises(InputError, match="unknown method"):
        exact_reliability(sire, dam, rec_animal, rec_cg, 3.0, method="lu")


def test_run_reliability__exact_takes_sparse_path_above_the_dense_size(tmp_path, monkeypatch):
    import bigeval.reliability.exact as ex
    from bigeval.pipeline.workflow import ReliabilityJob, run_reliability
    rng = np.random.default_rng(61)
    n = 60  # even numbers are males, odd ones females (parents must keep one sex)
    sire = np.array([-1] * 10 + [2 * rng.integers(0, i // 2) for i in range(10, n)])
    dam = np.array([-1] * 10 + [2 * rng.integers(0, (i - 1) // 2) + 1 for i in range(10, n)])
    rec_animal = rng.integers(0, n, 120)
    rec_cg = rng.integers(0, 6, 120)
    ids = np.array([f"a{i}" for i in range(n)])
    par = lambda p: np.where(p >= 0, ids[np.maximum(p, 0)], "0")  # noqa: E731
    (tmp_path / "ped.txt").write_text("".join(f"{a} {s} {d}\n" for a, s, d in
                                              zip(ids, par(sire), par(dam))))
    (tmp_path / "rec.txt").write_text("".join(f"{ids[a]} g{c}\n" for a, c in
                                              zip(rec_animal, rec_cg)))
    job = lambda out: ReliabilityJob(pedigree=tmp_path / "ped.txt",  # noqa: E731
                                     records=tmp_path / "rec.txt", out=tmp_path / out,
                                     alpha=2.0, exact=True, rounds=5)
    run_reliability(job("dense"), progress=False)
    monkeypatch.setattr(ex, "DENSE_MAX_EQUATIONS", 10)
    monkeypatch.setattr(bigeval._resources, "available_memory", lambda: 100)  # no dense
    run_reliability(job("sparse"), progress=False)
    a = pd.read_csv(tmp_path / "dense" / "reliability.csv").set_index("animal")
    b = pd.read_csv(tmp_path / "sparse" / "reliability.csv").set_index("animal")
    np.testing.assert_allclose(b.loc[a.index, "rel_exact"], a["rel_exact"], atol=1e-9)
