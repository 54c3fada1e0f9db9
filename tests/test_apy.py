"""APY G*⁻¹ (bigeval.genomic.apy) against its dense twins: the textbook APY formula written out
block
by block on a dense G*, and with every animal in the core the plain inverse of G*."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_genotypes import write_csv

from bigeval.genomic.apy import (
    apy_from_dense,
    apy_from_store,
    apy_inverse_dense,
    choose_core,
    eigen_core_size,
)
from bigeval.errors import InputError
from bigeval.genomic import blend_g, tune_g, vanraden_g
from bigeval.io.genotypes import import_genotypes
from bigeval.pedigree import a22_dense
from bigeval.simulate import SimulationConfig, simulate


def renumbered(pedigree: pd.DataFrame):
    """IDs, sire and dam numbers (-1 unknown) of a simulated pedigree."""
    ids = pedigree["animal"].astype(str).to_numpy()
    index = pd.Index(ids)
    sire = index.get_indexer(pedigree["sire"].astype(str))
    dam = index.get_indexer(pedigree["dam"].astype(str))
    return ids, sire.astype(np.int64), dam.astype(np.int64)


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    folder = tmp_path_factory.mktemp("apy")
    pop = simulate(SimulationConfig(n_animals=1_200, n_genotyped=90, n_snps=700, n_years=8,
                                    seed=21))
    M = pop.genotypes.copy()
    rng = np.random.default_rng(5)
    M[rng.random(M.shape) < 0.02] = -1  # missing calls: mean-imputed as in VanRaden's G
    gids = np.asarray(pop.genotyped, dtype=str)
    perm = rng.permutation(len(gids))  # store rows in another order than the pedigree's
    store = import_genotypes(write_csv(folder / "g.csv", M[perm], gids[perm]),
                             folder / "g.zarr", chunks=(32, 128))
    ids, sire, dam = renumbered(pop.pedigree)
    return dict(store=store, ids=ids, sire=sire, dam=dam, M=M[perm], gids=gids[perm])


def _dense_gstar(pop, tune, blend):
    G, _ = vanraden_g(pop["M"])
    pos = pd.Index(pop["ids"]).get_indexer(pop["gids"])
    A22 = a22_dense(pop["sire"], pop["dam"], pos)
    if blend is not None:
        G = blend_g(G, A22, blend)  # the project's G*: blend first, then tune
    if tune:
        G = tune_g(G, A22)
    return G


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3 * n))
    return Z @ Z.T / (3 * n) + 0.05 * np.eye(n)


def test_apy_from_dense__full_core_is_the_inverse():
    G = _spd(40, 1)
    apy = apy_from_dense(G, np.arange(40))
    np.testing.assert_allclose(apy.to_dense(), np.linalg.inv(G), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("c", [1, 7, 25])
def test_apy_from_dense__equals_textbook_formula(c):
    G = _spd(50, c)
    core = np.random.default_rng(c).choice(50, c, replace=False)
    twin = apy_inverse_dense(G, core)
    apy = apy_from_dense(G, core)
    np.testing.assert_allclose(apy.to_dense(), twin, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(apy.diagonal(), np.diag(twin), rtol=1e-10)
    x = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(apy.matvec(x), twin @ x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(apy.matvec(x[:, 0]), twin @ x[:, 0], rtol=1e-9, atol=1e-9)
    # the APY inverse is symmetric positive definite
    assert np.linalg.eigvalsh(twin).min() > 0


@pytest.mark.parametrize("tune, blend", [(True, 0.05), (True, None), (False, 0.2),
                                         (False, None)])
def test_apy_from_store__equals_dense_twin(population, tune, blend):
    p = population
    n = len(p["gids"])
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], tune=tune, blend=blend,
                         core_size=30, seed=3)
    # the store's order, every animal kept
    assert res.ids.tolist() == p["gids"].tolist()
    assert res.genotyped.tolist() == pd.Index(p["ids"]).get_indexer(p["gids"]).tolist()
    Gs = _dense_gstar(p, tune, blend)
    twin = apy_inverse_dense(Gs, res.apy.core)
    assert res.apy.core.size == 30 and res.apy.n == n
    np.testing.assert_allclose(res.apy.to_dense(), twin, rtol=1e-8, atol=1e-8)


def test_apy_from_store__core_columns_of_a22_in_several_panels(population, monkeypatch):
    import bigeval.genomic.apy

    p = population
    # a few core columns of A22 per Colleau panel, so that the core spans several panels
    monkeypatch.setattr(bigeval.genomic.apy, "COLLEAU_BYTES", 8 * 7 * len(p["ids"]))
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], tune=True, blend=0.05,
                         core_size=30, seed=3)
    twin = apy_inverse_dense(_dense_gstar(p, True, 0.05), res.apy.core)
    np.testing.assert_allclose(res.apy.to_dense(), twin, rtol=1e-8, atol=1e-8)


def test_apy_from_store__panels_without_missing_calls(population, tmp_path, monkeypatch):
    # the fast route (float32 product of the counts), alone and beside slices with missing
    # calls: one SNP chunk (128) per panel, slices of 50 SNPs
    import bigeval.genomic.apy
    import bigeval.genomic.grm

    p = population
    monkeypatch.setattr(bigeval.genomic.grm, "PANEL_BYTES", 4 * len(p["gids"]) * 128)
    monkeypatch.setattr(bigeval.genomic.apy, "PANEL_BYTES", 4 * len(p["gids"]) * 50)
    clean = p["M"].clip(0)
    mixed = clean.copy()
    mixed[:, 300:][np.random.default_rng(1).random((len(p["gids"]), 400)) < 0.02] = -1
    fast = []  # slices that took the fast route
    monkeypatch.setattr(bigeval.genomic.apy, "_matvec64",
                        lambda Y, ck: fast.append(Y.shape[1]) or bigeval.genomic.grm._matvec64(Y,
                        ck))
    for name, geno, slices in (("clean", clean, 16), ("mixed", mixed, 6)):
        fast.clear()
        store = import_genotypes(write_csv(tmp_path / f"{name}.csv", geno, p["gids"]),
                                 tmp_path / f"{name}.zarr", chunks=(32, 128))
        res = apy_from_store(store, p["ids"], p["sire"], p["dam"], tune=True, blend=0.05,
                             core_size=25, seed=4)
        twin = apy_inverse_dense(_dense_gstar(dict(p, M=geno), True, 0.05), res.apy.core)
        np.testing.assert_allclose(res.apy.to_dense(), twin, rtol=1e-8, atol=1e-8,
                                   err_msg=name)
        # 700 SNPs: 4 panels of 128 (3 slices each), the last of 188 (4); missing from SNP 300
        assert len(fast) == 2 * slices  # u and u_c of each fast slice


def test_apy_from_store__full_core_equals_inverse_of_gstar(population):
    p = population
    n = len(p["gids"])
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], tune=True, blend=0.05,
                         core_size=n)
    Ginv = np.linalg.inv(_dense_gstar(p, True, 0.05))
    np.testing.assert_allclose(res.apy.to_dense(), Ginv, rtol=1e-8, atol=1e-8)


def test_apy_from_store__given_core_and_eigenvalue_rule(population):
    p = population
    core_ids = p["gids"][[3, 10, 11, 40, 70]]
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], blend=0.05,
                         core=core_ids)
    assert res.ids[res.apy.core].tolist() == sorted(core_ids, key=list(res.ids).index)
    # eigenvalue rule: G of all 90 animals (fewer than EIG_SAMPLE), counted on G itself
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], blend=0.05, seed=8)
    G, _ = vanraden_g(p["M"])
    k, share = eigen_core_size(G)
    assert res.apy.core.size == k and share >= 0.98
    assert any("eigenvalue rule" in line and "of all" in line for line in res.lines)
    with pytest.raises(InputError, match="core animal is not among"):
        apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], core=["nobody"])


def test_eigen_core_size__counts_the_share_of_the_trace():
    lam = np.array([5.0, 3.0, 1.0, 0.5, 0.5])
    Q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(5, 5)))
    k, share = eigen_core_size(Q @ np.diag(lam) @ Q.T, 0.8)
    assert (k, round(share, 10)) == (2, 0.8)
    k, share = eigen_core_size(Q @ np.diag(lam) @ Q.T, 0.85)
    assert (k, round(share, 10)) == (3, 0.9)


def test_choose_core__seeded_random_and_bad_sizes():
    a, _ = choose_core(100, size=10, seed=4)
    b, _ = choose_core(100, size=10, seed=4)
    c, _ = choose_core(100, size=10, seed=5)
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist() and a.size == 10
    assert np.all(np.diff(a) > 0)
    for bad in (0, 101):
        with pytest.raises(InputError, match="core size"):
            choose_core(100, size=bad)
    with pytest.raises(InputError, match="twice"):
        choose_core(10, core=[1, 1, 2])


@pytest.mark.parametrize("c", [5, 60])
def test_gblup_inverse_diagonal_apy__equals_dense_twin(c):
    from bigeval.reliability.genomic_apy import gblup_inverse_diagonal_apy

    G = _spd(60, 7 + c)
    core = np.random.default_rng(c).choice(60, c, replace=False)
    w = np.random.default_rng(3).gamma(1.0, 3.0, 60)
    w[::4] = 0.0  # animals without own information
    alpha = 1.7
    twin = np.diag(np.linalg.inv(np.diag(w) + alpha * apy_inverse_dense(G, core)))
    got = gblup_inverse_diagonal_apy(w, apy_from_dense(G, core), alpha, block=7)
    np.testing.assert_allclose(got, twin, rtol=1e-9)


def test_erc_gblup__apy_and_operator_equal_dense_path(population):
    from bigeval.genomic.a22op import A22InverseOperator
    from bigeval.reliability.genomic import erc_gblup, genomic_part

    p = population
    res = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], blend=0.05, core_size=40,
                         seed=1)
    op = A22InverseOperator(p["sire"], p["dam"], res.genotyped)
    n = res.apy.n
    rng = np.random.default_rng(9)
    d, w = rng.gamma(2.0, 2.0, n), rng.gamma(1.0, 1.0, n)
    dense = erc_gblup(d, w, res.apy.to_dense(), op.to_dense(), 2.0)
    np.testing.assert_allclose(erc_gblup(d, w, res.apy, op, 2.0), dense, rtol=1e-9)
    np.testing.assert_allclose(erc_gblup(d, w, res.apy, op.to_dense(), 2.0), dense,
                               rtol=1e-9)
    with pytest.raises(InputError, match="certified Part II needs the dense"):
        genomic_part(np.ones(len(p["ids"])), np.ones(len(p["ids"])), p["sire"], p["dam"],
                     res.genotyped, res.apy, op, 2.0, method="certified")


def test_apy_from_store__local_cluster_equals_in_memory(population, monkeypatch):
    """The genotype pass as tasks on a 2-process LocalCluster (blocks of animals, the core's
    genotypes on every worker) gives the in-memory APY."""
    import distributed

    p = population
    ref = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], blend=0.05, core_size=30,
                         seed=2, chunks=(32, 256))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster):
        import bigeval.genomic.apy

        def not_here(*a, **k):
            raise AssertionError("the in-memory pass ran under a distributed client")
        monkeypatch.setattr(bigeval.genomic.apy, "_g_core_pass", not_here)
        got = apy_from_store(p["store"], p["ids"], p["sire"], p["dam"], blend=0.05,
                             core_size=30, seed=2, chunks=(32, 256))
    assert got.apy.core.tolist() == ref.apy.core.tolist()
    for name in ("gcc_inv", "P", "m"):
        np.testing.assert_allclose(getattr(got.apy, name), getattr(ref.apy, name),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
