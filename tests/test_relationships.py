"""Tests of bigeval.genomic.relationships: A22⁻¹ (sparse Schur complement and dense), tuning and
blending without a dense A22, and Part II in place — each against a dense twin built from
the tabular A (``a_matrix_dense``) and numpy's general inverse."""

from __future__ import annotations

import numpy as np
import pytest
from test_pedigree import simulated_pedigree

import bigeval.genomic.relationships as rel
from bigeval.errors import InputError
from bigeval.genomic import blend_g, tune_g
from bigeval.linalg.cholesky import HAVE_CHOLMOD
from bigeval.pedigree import a_matrix_dense, inbreeding
from bigeval.reliability import genomic_reliability
from bigeval.reliability.reference import sas_part2

from conftest import random_pedigree

TOL = 1e-10
SOLVERS = ["superlu"] + (["cholmod"] if HAVE_CHOLMOD else [])


def _dense_a22inv(sire, dam, g):
    """The slow twin: the tabular A, its genotyped block, numpy's general inverse."""
    A = a_matrix_dense(sire, dam)
    return np.linalg.inv(A[np.ix_(g, g)])


def _case(kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "inbred":  # shuffled numbering: parents often after their progeny
        sire, dam = simulated_pedigree(250, seed)
    else:
        sire, dam = random_pedigree(250, rng)
    g = rng.choice(250, 45, replace=False)  # shuffled order, some are others' ancestors
    return sire, dam, g


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(("kind", "seed"), [("inbred", 1), ("inbred", 2), ("random", 3)])
def test_a22_inverse__sparse_equals_dense_twin(kind, seed, solver, monkeypatch):
    sire, dam, g = _case(kind, seed)
    ref = _dense_a22inv(sire, dam, g)
    got = rel.a22_inverse(sire, dam, g, method="sparse", solver=solver)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max())
    assert np.array_equal(got, got.T)  # exactly symmetric
    monkeypatch.setattr(rel, "PANEL_BYTES", 16 * 200 * 7)  # panels of 7 genotyped columns
    got = rel.a22_inverse(sire, dam, g, method="sparse", solver=solver)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max())


@pytest.mark.parametrize(("kind", "seed"), [("inbred", 4), ("random", 5)])
def test_a22_inverse__dense_route_and_given_f(kind, seed):
    sire, dam, g = _case(kind, seed)
    ref = _dense_a22inv(sire, dam, g)
    f = inbreeding(sire, dam)
    for method in ("dense", "auto"):
        got = rel.a22_inverse(sire, dam, g, f, method=method)
        np.testing.assert_allclose(got, ref, rtol=0, atol=TOL * np.abs(ref).max())


def test_a22_inverse__same_animals_in_any_order():
    sire, dam, g = _case("inbred", 6)
    perm = np.random.default_rng(7).permutation(len(g))
    a = rel.a22_inverse(sire, dam, g, method="sparse")
    b = rel.a22_inverse(sire, dam, g[perm], method="sparse")
    np.testing.assert_allclose(b, a[np.ix_(perm, perm)], rtol=0, atol=1e-12)


def test_a22_inverse__all_or_one_genotyped():
    sire, dam = simulated_pedigree(60, 8)
    everyone = np.arange(60)[::-1]
    np.testing.assert_allclose(rel.a22_inverse(sire, dam, everyone, method="sparse"),
                               _dense_a22inv(sire, dam, everyone), rtol=0, atol=1e-9)
    one = rel.a22_inverse(sire, dam, [17], method="sparse")
    np.testing.assert_allclose(one, 1.0 / a_matrix_dense(sire, dam)[17, 17], rtol=1e-12)


def test_a22_inverse__bad_input():
    sire, dam = simulated_pedigree(30, 9)
    with pytest.raises(InputError, match="listed twice among the genotyped"):
        rel.a22_inverse(sire, dam, [3, 5, 3])
    with pytest.raises(InputError, match="not an animal of the pedigree"):
        rel.a22_inverse(sire, dam, [3, 30])
    with pytest.raises(InputError, match="unknown method"):
        rel.a22_inverse(sire, dam, [3, 4], method="magic")


def test_prune_to_ancestors__keeps_exactly_the_ancestors():
    sire, dam = simulated_pedigree(200, 10)
    g = np.array([5, 77, 150])
    p = rel.prune_to_ancestors(sire, dam, g)
    # slow twin: walk up from every genotyped animal
    want, stack = set(), list(g)
    while stack:
        a = stack.pop()
        if a in want:
            continue
        want.add(a)
        stack += [x for x in (sire[a], dam[a]) if x >= 0]
    assert sorted(p.animals.tolist()) == sorted(want)
    assert p.animals[p.genotyped].tolist() == g.tolist()
    rank = np.arange(p.animals.size)
    assert np.all((p.sire < rank) & (p.dam < rank))  # parents first
    A = a_matrix_dense(sire, dam)
    np.testing.assert_allclose(a_matrix_dense(p.sire, p.dam)[np.ix_(p.genotyped, p.genotyped)],
                               A[np.ix_(g, g)], rtol=0, atol=1e-14)


def test_a22_means_and_blend__equal_dense_twins(monkeypatch):
    sire, dam, g = _case("inbred", 11)
    A22 = a_matrix_dense(sire, dam)[np.ix_(g, g)]
    ng = len(g)
    d, o = rel.a22_means(sire, dam, g)
    assert d == pytest.approx(np.trace(A22) / ng, abs=1e-13)
    assert o == pytest.approx((A22.sum() - np.trace(A22)) / (ng * (ng - 1)), abs=1e-13)
    G = np.random.default_rng(12).normal(size=(ng, ng))
    G = G @ G.T / ng
    monkeypatch.setattr(rel, "PANEL_BYTES", 8 * 250 * 6)  # blocks of a few Colleau columns
    got = rel.blend_with_a22(G.copy(), sire, dam, g, 0.2)
    np.testing.assert_allclose(got, blend_g(G, A22, 0.2), rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["sparse", "dense"])
def test_genomic_inverses__equal_dense_twin(method):
    sire, dam, g = _case("random", 13)
    ng = len(g)
    A22 = a_matrix_dense(sire, dam)[np.ix_(g, g)]
    x = np.random.default_rng(14).integers(0, 3, (ng, 30)).astype(float)
    z = x - x.mean(axis=0)
    G = z @ z.T / 15.0  # rank 29 < 45: needs the blend to be positive definite
    ginv_ref = np.linalg.inv(blend_g(tune_g(G, A22), A22, 0.05))
    work = G.copy()
    ginv, a22inv = rel.genomic_inverses(work, sire, dam, g, tune=True, blend=0.05,
                                        method=method, overwrite=True, progress=False)
    assert np.shares_memory(ginv, work)
    np.testing.assert_allclose(ginv, ginv_ref, rtol=0, atol=1e-9 * np.abs(ginv_ref).max())
    np.testing.assert_allclose(a22inv, np.linalg.inv(A22), rtol=0, atol=1e-10)
    with pytest.raises(InputError, match=r"G is not positive definite.*blend G with A22"):
        rel.genomic_inverses(G, sire, dam, g, progress=False)


@pytest.mark.parametrize("order", ["C", "F"])
def test_genomic_reliability__overwrite_equals_copy(order):
    rng = np.random.default_rng(15)
    m = rng.normal(size=(40, 80))
    ginv = np.linalg.inv(m @ m.T / 80 + 0.05 * np.eye(40))
    a22inv = np.linalg.inv(np.eye(40) + 0.1)
    d = rng.gamma(2.0, 2.0, 40)
    ref = sas_part2(d, ginv, a22inv, alpha=2.0)
    work = np.array(ginv, order=order)
    np.testing.assert_allclose(genomic_reliability(d, ginv.copy(), np.array(a22inv, order=order),
                                                   2.0, overwrite=True), ref, rtol=1e-12)
    np.testing.assert_allclose(genomic_reliability(d, work, a22inv, 2.0, overwrite=True), ref,
                               rtol=1e-12)
    assert not np.array_equal(work, ginv)  # it was used as work space


def test_positions_in_pedigree__missing_and_duplicated_ids_are_clear_errors():
    ped = ["a", "b", "c", "d"]
    assert rel.positions_in_pedigree(["d", "a"], ped).tolist() == [3, 0]
    with pytest.raises(InputError, match=r"geno\.zarr: 2 genotyped animal\(s\) are not in the "
                                         r"pedigree; value: 'x'"):
        rel.positions_in_pedigree(["a", "x", "y"], ped, file="geno.zarr")
    with pytest.raises(InputError, match="genotyped twice; value: 'b'"):
        rel.positions_in_pedigree(["b", "a", "b"], ped)
