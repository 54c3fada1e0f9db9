"""Tests of bigeval.genomic.vanraden_g (VanRaden 2008, method 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.errors import InputError
from bigeval.genomic import vanraden_g

DATA = Path(__file__).parent / "data" / "mrode"

# Three animals, four SNPs, no missing genotype. By hand:
#   p = (0.5, 0.5, 0.5, 1/3);  2 sum p(1-p) = 2 (3/4 + 2/9) = 35/18
#   Z = M - 2p = [[-1, 0,  1, -2/3],
#                 [ 0, 0, -1, -2/3],
#                 [ 1, 0,  0,  4/3]]
#   ZZ' = [[22/9, -5/9, -17/9], [-5/9, 13/9, -8/9], [-17/9, -8/9, 25/9]]
#   G = ZZ' 18/35 = [[44, -10, -34], [-10, 26, -16], [-34, -16, 50]] / 35
M_HAND = np.array([
    [0, 1, 2, 0],
    [1, 1, 0, 0],
    [2, 1, 1, 2],
])
P_HAND = np.array([0.5, 0.5, 0.5, 1 / 3])
G_HAND = np.array([[44, -10, -34], [-10, 26, -16], [-34, -16, 50]]) / 35

# Mrode & Pocrnic (2023, 4th ed.) Example 11.3 (section 11.4.2), the G of the 14 genotyped
# bulls 13-26 of Example 11.1 (VanRaden method 1), printed to 3 decimals. First column and last
# row as transcribed and checked in JuliaBnG/Mrode-4ed-examples.jl (src/chapter-11/ex-3.jl).
G_11_FIRST_COLUMN = np.array([
    1.472, -0.446, 0.988, 0.059, 0.685, -0.163, -0.708,
    -0.547, 0.887, -0.789, -0.203, -0.143, -0.829, -0.264,
])
G_11_LAST_ROW = np.array([
    -0.264, 0.362, -0.466, -0.264, -0.486, -0.203, 0.100,
    -0.304, -0.284, 0.584, -0.526, 0.382, 0.261, 1.109,
])
PRINTED = 0.0005  # half a unit of the last printed decimal


def test_vanraden_g__hand_example():
    G, p = vanraden_g(M_HAND)
    np.testing.assert_allclose(p, P_HAND, rtol=0, atol=1e-15)
    np.testing.assert_allclose(G, G_HAND, rtol=0, atol=1e-14)


def test_vanraden_g__given_frequencies():
    G, p = vanraden_g(M_HAND, freq=P_HAND)
    assert p is not P_HAND
    np.testing.assert_allclose(G, G_HAND, atol=1e-14)
    # all p = 0.5: Z = M - 1, scale 2 * 4 * 0.25 = 2
    G, _ = vanraden_g(M_HAND, freq=np.full(4, 0.5))
    z = M_HAND - 1.0
    np.testing.assert_allclose(G, z @ z.T / 2.0, atol=1e-14)


def test_vanraden_g__allele_counted_does_not_matter():
    G, p = vanraden_g(M_HAND)
    G_other, p_other = vanraden_g(2 - M_HAND)
    np.testing.assert_allclose(p_other, 1 - p, atol=1e-15)
    np.testing.assert_allclose(G_other, G, atol=1e-14)


def test_vanraden_g__missing_is_mean_imputed():
    M = M_HAND.copy()
    M[0, 3] = -1  # SNP 4 now has calls 0 and 2 only: p = 2 / 4 = 0.5
    G, p = vanraden_g(M)
    assert p[3] == 0.5
    imputed = M.astype(float)
    imputed[0, 3] = 2 * p[3]  # replaced by 2p, i.e. centred value 0
    z = imputed - 2 * p
    assert z[0, 3] == 0.0
    np.testing.assert_allclose(G, z @ z.T / (2 * np.sum(p * (1 - p))), atol=1e-14)


def test_vanraden_g__mrode_chapter_11():
    """The book's G uses frequencies estimated from the 14 bulls (2 sum pq = 1387/392).

    Which allele is counted does not matter (see the test above); with p = 0.5 for every SNP
    the first column would differ from the printed one by up to 0.9.
    """
    geno = pd.read_csv(DATA / "ch11_genotypes.csv")
    assert geno["animal"].tolist() == list(range(13, 27))
    M = geno.drop(columns="animal").to_numpy()
    G, p = vanraden_g(M)
    assert abs(2 * np.sum(p * (1 - p)) - 1387 / 392) < 1e-14
    G_half, _ = vanraden_g(M, freq=np.full(10, 0.5))
    assert np.abs(G_half[:, 0] - G_11_FIRST_COLUMN).max() > 0.1
    last = G_11_LAST_ROW.copy()
    tol = np.full(14, PRINTED)
    # G(26, 19) = 138/1387 = 0.099495 exactly, printed 0.100: one unit of the last decimal
    assert abs(G[13, 6] - 138 / 1387) < 1e-15
    tol[6] = 2 * PRINTED
    np.testing.assert_allclose(G[:, 0], G_11_FIRST_COLUMN, rtol=0, atol=PRINTED)
    assert np.all(np.abs(G[13, :] - last) <= tol)
    np.testing.assert_allclose(G, G.T, atol=0)


@pytest.mark.parametrize(
    ("M", "freq", "match"),
    [
        ([[0, 3]], None, "not a 0/1/2 count"),
        ([[0, 1.5]], None, "not a 0/1/2 count"),
        ([[0, -1], [1, -1]], None, "no genotype"),
        ([[0, 1]], [0.5], "one entry per SNP"),
        ([[0, 1]], [0.5, 1.2], "outside"),
        ([[0, 2], [0, 2]], None, "monomorphic"),
        ([0, 1, 2], None, "two-dimensional"),
    ],
)
def test_vanraden_g__bad_input_raises(M, freq, match):
    with pytest.raises(InputError, match=match):
        vanraden_g(M, freq)
