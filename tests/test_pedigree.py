"""Tests of bigeval.pedigree: ordering, inbreeding, A, A⁻¹ and A22.

Published numbers are from Mrode, R.A. (2014) Linear Models for the Prediction of Animal
Breeding Values, 3rd ed., CABI, for the pedigree of its Table 2.1 (tests/data/mrode/).
Fast functions are tested against their dense twins on simulated pedigrees whose numbering
is shuffled, so that parents often come after their progeny.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.errors import InputError
from bigeval.pedigree import (
    a22_dense,
    a_matrix_dense,
    ainv_dense,
    ainv_sparse,
    generations,
    inbreeding,
    inbreeding_dense,
    mendelian_variance,
    topological_order,
)

DATA = Path(__file__).parent / "data" / "mrode"

# Mrode (2014) p. 25 (section 2.3): A = T D T' for the pedigree of Table 2.1, with
T_TABLE_2_1 = np.array([
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    [0.5, 0.5, 1.0, 0.0, 0.0, 0.0],
    [0.5, 0.0, 0.0, 1.0, 0.0, 0.0],
    [0.5, 0.25, 0.5, 0.5, 1.0, 0.0],
    [0.25, 0.625, 0.25, 0.25, 0.5, 1.0],
])
D_TABLE_2_1 = np.array([1.0, 1.0, 0.5, 0.75, 0.5, 0.469])  # printed to 3 decimals
PRINTED = 0.0005  # half a unit of the last printed decimal

# Mrode (2014) p. 32 (section 2.6): relationships among sires 1, 4 and 5 of Table 2.1,
# "the same as in A calculated from the full pedigree in Section 2.2"
SIRES_SECTION_2_6 = [1, 4, 5]
A_SIRES_SECTION_2_6 = np.array([
    [1.0, 0.5, 0.5],
    [0.5, 1.0, 0.625],
    [0.5, 0.625, 1.125],
])

# Mrode (2014) p. 25: "the sire [animal 5 of animal 6] has an inbreeding coefficient of
# 0.125"; also the worked example of Appendix B, p. 310: F5 = 0.125. F6 = 0.125 follows from
# the printed T and D: a66 = sum_j t6j^2 d_j = 1.125, and from a55 = a66 = 1.125 (p. 32).
F_TABLE_2_1 = np.array([0.0, 0.0, 0.0, 0.0, 0.125, 0.125])

half = 0.5  # parent-offspring relationship without inbreeding


def read_pedigree(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IDs, sire and dam (internal numbers, -1 unknown) of a Mrode pedigree, joined by ID."""
    ped = pd.read_csv(DATA / name)
    ids = ped["animal"].to_numpy()
    pos = pd.Index(ids)
    sire = np.where(ped["sire"] > 0, pos.get_indexer(ped["sire"]), -1)
    dam = np.where(ped["dam"] > 0, pos.get_indexer(ped["dam"]), -1)
    return ids, sire.astype(np.int64), dam.astype(np.int64)


def simulated_pedigree(n: int, seed: int, *, n_founders: int = 8, window: int = 25,
                       p_unknown: float = 0.1, p_full_sib: float = 0.2):
    """A random inbred pedigree of n animals, numbered in a random order.

    Parents are drawn from the last ``window`` animals (a small population, so inbreeding
    builds up), some parents are unknown, some animals are full sibs of the previous one.
    The numbering is then shuffled, so that parents often come after their progeny.
    """
    rng = np.random.default_rng(seed)
    sire = np.full(n, -1, np.int64)
    dam = np.full(n, -1, np.int64)
    for i in range(n_founders, n):
        if i > n_founders and rng.random() < p_full_sib:
            sire[i], dam[i] = sire[i - 1], dam[i - 1]
            continue
        lo = max(0, i - window)
        if rng.random() > p_unknown:
            sire[i] = rng.integers(lo, i)
        if rng.random() > p_unknown:
            dam[i] = rng.integers(lo, i)
        if sire[i] == dam[i]:
            dam[i] = -1  # no selfing here; see test_inbreeding__selfing
    new = rng.permutation(n)  # animal i gets number new[i]
    s = np.full(n, -1, np.int64)
    d = np.full(n, -1, np.int64)
    s[new] = np.where(sire >= 0, new[np.maximum(sire, 0)], -1)
    d[new] = np.where(dam >= 0, new[np.maximum(dam, 0)], -1)
    return s, d


@pytest.fixture(scope="module")
def table_2_1():
    ids, sire, dam = read_pedigree("ch2_table2_1_pedigree.csv")
    assert ids.tolist() == [1, 2, 3, 4, 5, 6]
    return sire, dam


# ------------------------------------------------------------------------------------------
# ordering
# ------------------------------------------------------------------------------------------


def test_generations__mrode_table_2_1(table_2_1):
    assert generations(*table_2_1).tolist() == [0, 0, 1, 1, 2, 3]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_topological_order__parents_before_progeny(seed):
    sire, dam = simulated_pedigree(400, seed)
    order = topological_order(sire, dam)
    assert np.array_equal(np.sort(order), np.arange(400))
    rank = np.empty(400, np.int64)
    rank[order] = np.arange(400)
    for parent in (sire, dam):
        known = parent >= 0
        assert np.all(rank[parent[known]] < rank[known])


def test_topological_order__reversed_numbering(table_2_1):
    # Table 2.1 numbered youngest first: animal k (0-based) becomes 5 - k
    sire, dam = table_2_1
    new = 5 - np.arange(6)
    s = np.full(6, -1, np.int64)
    d = np.full(6, -1, np.int64)
    s[new] = np.where(sire >= 0, new[np.maximum(sire, 0)], -1)
    d[new] = np.where(dam >= 0, new[np.maximum(dam, 0)], -1)
    assert generations(s, d).tolist() == [3, 2, 1, 1, 0, 0]
    assert topological_order(s, d).tolist() == [4, 5, 2, 3, 1, 0]
    np.testing.assert_array_equal(inbreeding(s, d), F_TABLE_2_1[::-1])


def test_topological_order__deep_chain():
    # 200 000 generations: each animal the offspring of the previous one, shuffled numbering
    n = 200_000
    rng = np.random.default_rng(7)
    new = rng.permutation(n)
    sire = np.full(n, -1, np.int64)
    sire[new[1:]] = new[:-1]
    dam = np.full(n, -1, np.int64)
    assert np.array_equal(topological_order(sire, dam), new)
    assert generations(sire, dam)[new[-1]] == n - 1


def test_generations__loop_raises_with_animals():
    # 0 -> 1 -> 2 -> 0 is a loop; 3 is a founder; 4 descends from the loop
    sire = np.array([2, 0, 1, -1, 1])
    dam = np.array([-1, 3, -1, -1, 3])
    with pytest.raises(InputError, match="loop") as info:
        generations(sire, dam)
    assert info.value.animals.tolist() == [0, 1, 2]
    assert "animals 0, 1, 2" in str(info.value)
    assert "1 more animal(s) descend from the loop" in str(info.value)
    with pytest.raises(InputError):
        topological_order(sire, dam)
    with pytest.raises(InputError):
        inbreeding(sire, dam)


def test_generations__own_parent_raises():
    with pytest.raises(InputError, match="own ancestor") as info:
        generations([-1, -1, 2], [-1, 0, 1])
    assert info.value.animals.tolist() == [2]


@pytest.mark.parametrize(
    ("sire", "dam", "match"),
    [
        ([-1, 5], [-1, -1], "sire of animal 1"),
        ([-1, -1], [-1, -2], "dam of animal 1"),
        ([-1, 0, 0], [-1, -1], "one entry per animal"),
        ([-1.0, 0.0], [-1, -1], "integer"),
    ],
)
def test_generations__bad_parent_raises(sire, dam, match):
    with pytest.raises(InputError, match=match):
        generations(sire, dam)


# ------------------------------------------------------------------------------------------
# A, inbreeding, Mendelian sampling variances: Mrode Table 2.1
# ------------------------------------------------------------------------------------------


def test_a_matrix_dense__mrode_t_d_t(table_2_1):
    """A = T D T' with the T and D printed on p. 25 of Mrode (2014)."""
    published = T_TABLE_2_1 @ np.diag(D_TABLE_2_1) @ T_TABLE_2_1.T
    # d66 is printed to 3 decimals and enters a66 with weight t66^2 = 1
    np.testing.assert_allclose(a_matrix_dense(*table_2_1), published, rtol=0, atol=PRINTED)


def test_a_matrix_dense__mrode_sires_section_2_6(table_2_1):
    a = a_matrix_dense(*table_2_1)
    idx = np.array(SIRES_SECTION_2_6) - 1
    np.testing.assert_array_equal(a[np.ix_(idx, idx)], A_SIRES_SECTION_2_6)  # exact binary


def test_a_matrix_dense__parent_offspring():
    a = a_matrix_dense([-1, 0, -1, 2], [-1, -1, -1, 1])
    assert a[0, 1] == half
    assert a[1, 3] == half
    assert a[0, 3] == half * half  # grandparent


def test_inbreeding__mrode_table_2_1(table_2_1):
    np.testing.assert_array_equal(inbreeding(*table_2_1), F_TABLE_2_1)


def test_inbreeding_dense__mrode_table_2_1(table_2_1):
    np.testing.assert_array_equal(inbreeding_dense(*table_2_1), F_TABLE_2_1)


def test_mendelian_variance__mrode_table_2_1(table_2_1):
    """D of Mrode (2014) p. 25: d66 = 0.5 - 0.25 (0.125 + 0) = 0.469."""
    b = mendelian_variance(*table_2_1)
    np.testing.assert_allclose(b, D_TABLE_2_1, rtol=0, atol=PRINTED)
    assert b[5] == 0.5 - 0.25 * (0.125 + 0.0)


def test_ainv_dense__mrode_eqn_2_3(table_2_1):
    """A⁻¹ = T⁻¹' D⁻¹ T⁻¹ (Mrode 2014, eqn 2.3) from the printed T and D."""
    t_inv = np.linalg.inv(T_TABLE_2_1)
    published = t_inv.T @ np.diag(1.0 / D_TABLE_2_1) @ t_inv
    # 1/0.469 differs from 1/0.46875 by 0.0011
    np.testing.assert_allclose(ainv_dense(*table_2_1), published, rtol=0, atol=2e-3)


def test_ainv_dense__times_a_is_identity(table_2_1):
    a = a_matrix_dense(*table_2_1)
    np.testing.assert_allclose(ainv_dense(*table_2_1) @ a, np.eye(6), rtol=0, atol=1e-12)
    sire, dam = simulated_pedigree(150, seed=11)
    a = a_matrix_dense(sire, dam)
    np.testing.assert_allclose(ainv_dense(sire, dam) @ a, np.eye(150), rtol=0, atol=1e-9)


def test_ainv_sparse__mrode_table_2_1(table_2_1):
    a = a_matrix_dense(*table_2_1)
    np.testing.assert_allclose(ainv_sparse(*table_2_1).toarray() @ a, np.eye(6), atol=1e-12)


# ------------------------------------------------------------------------------------------
# fast against slow
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), [(60, 1), (300, 2), (300, 3), (500, 4)])
def test_inbreeding__meuwissen_luo_equals_tabular(n, seed):
    sire, dam = simulated_pedigree(n, seed)
    f_dense = inbreeding_dense(sire, dam)
    assert f_dense.max() > 0.1  # the simulated pedigree is inbred enough to test anything
    np.testing.assert_allclose(inbreeding(sire, dam), f_dense, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("n", "seed"), [(60, 5), (300, 6)])
def test_ainv_sparse__equals_dense(n, seed):
    sire, dam = simulated_pedigree(n, seed)
    sparse = ainv_sparse(sire, dam)
    assert sparse.format == "csr"
    np.testing.assert_allclose(sparse.toarray(), ainv_dense(sire, dam), rtol=0, atol=1e-10)


def test_ainv_sparse__uses_given_f(table_2_1):
    f_none = np.zeros(6)
    without = ainv_sparse(*table_2_1, f=f_none).toarray()
    # ignoring inbreeding, animal 6 has d = 0.5: 1/d = 2 instead of 1/0.46875
    assert without[5, 5] == 2.0
    np.testing.assert_allclose(without, ainv_dense(*table_2_1, f=f_none), atol=1e-14)
    with pytest.raises(InputError, match="one entry per animal"):
        ainv_sparse(*table_2_1, f=np.zeros(5))


def test_inbreeding__numbering_invariant():
    sire, dam = simulated_pedigree(300, seed=8)
    f = inbreeding(sire, dam)
    perm = np.random.default_rng(9).permutation(300)  # animal i gets number perm[i]
    s2 = np.full(300, -1, np.int64)
    d2 = np.full(300, -1, np.int64)
    s2[perm] = np.where(sire >= 0, perm[np.maximum(sire, 0)], -1)
    d2[perm] = np.where(dam >= 0, perm[np.maximum(dam, 0)], -1)
    np.testing.assert_array_equal(inbreeding(s2, d2)[perm], f)


def test_inbreeding__selfing():
    # animal 1 is a selfed offspring of founder 0: F = 0.5 (1 + F_0) = 0.5
    sire, dam = [-1, 0, 1], [-1, 0, 1]
    np.testing.assert_allclose(inbreeding(sire, dam), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(inbreeding_dense(sire, dam), [0.0, 0.5, 0.75])
    np.testing.assert_allclose(ainv_sparse(sire, dam).toarray(), ainv_dense(sire, dam),
                               atol=1e-12)


def test_inbreeding__empty_pedigree():
    empty = np.empty(0, np.int64)
    assert inbreeding(empty, empty).shape == (0,)
    assert topological_order(empty, empty).shape == (0,)
    assert ainv_sparse(empty, empty).shape == (0, 0)


def test_a22_dense__equals_submatrix_of_a():
    sire, dam = simulated_pedigree(300, seed=10)
    genotyped = np.random.default_rng(12).choice(300, 40, replace=False)
    a = a_matrix_dense(sire, dam)
    np.testing.assert_allclose(a22_dense(sire, dam, genotyped),
                               a[np.ix_(genotyped, genotyped)], rtol=0, atol=1e-12)


def test_in_both__equals_numpy_intersect1d():
    """The hashed intersection of renumber_pedigree's sire-and-dam check against its twin."""
    import numpy as np

    from bigeval.prepare import _in_both

    rng = np.random.default_rng(11)
    for overlap in (0, 5, 3000):
        a = np.array([f"A{i}" for i in rng.integers(0, 10_000, 8_000)], dtype=object)
        b = np.array([f"B{i}" for i in rng.integers(0, 10_000, 8_000)]
                     + [str(x) for x in rng.choice(a, overlap)], dtype=object)
        np.testing.assert_array_equal(_in_both(a, b), np.intersect1d(a, b))
