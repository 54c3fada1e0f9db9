"""The two schemes of bigeval.genomic.grm: the panel scheme's compiled kernels against their slow
twins, both schemes against the dense float64 twin (bigeval.genomic.vanraden_g), G written
blockwise to HDF5/Zarr, and the tile scheme streamed from a real multi-process LocalCluster."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from test_grm import _random_genotypes, assert_same_g

import bigeval.genomic.grm as grm_module
from bigeval.errors import InputError
from bigeval.genomic import vanraden_g
from bigeval.genomic.grm import (
    _finish_panels,
    _finish_panels_slow,
    _flush_upper,
    _missing_panel,
    _missing_panel_slow,
    _missing_entries,
    _panel_ranges,
    grm,
    read_grm,
)


@pytest.mark.parametrize("n,m,rows,slab", [(37, 91, 64, 1024), (130, 50, 16, 32),
                                           (130, 50, 7, 13), (5, 3, 1, 1)])
@pytest.mark.parametrize("missing", [0.0, 0.1, 0.6])
def test_missing_panel__equals_slow_twin(n, m, rows, slab, missing):
    M = _random_genotypes(n=n, m=m, missing=missing, seed=n + m)
    c = 2 * np.random.default_rng(2).uniform(0.05, 0.95, m)
    W = np.full((n, n), 0.25)  # the kernel adds to what is there
    ptr, animal, snp = _missing_entries(M, rows)
    assert sorted(zip(animal, snp)) == sorted(zip(*np.nonzero(M == -1)))
    assert np.array_equal(np.repeat(np.arange(len(ptr) - 1), np.diff(ptr)), animal // rows)
    _missing_panel(np.ascontiguousarray(M.T), c, ptr, animal, snp, W, rows, slab)
    np.testing.assert_allclose(W, 0.25 + _missing_panel_slow(M, c), rtol=1e-13, atol=1e-12)


def test_missing_panel_slow__is_the_missing_part_of_zz():
    """W + W' with W = U (Y D)' is Z Z' - (X X' - u 1' - 1 u' + c'c - r 1' - 1 r')."""
    M = _random_genotypes(n=20, m=40, missing=0.2, seed=4)
    c = 2 * np.random.default_rng(5).uniform(0.05, 0.95, 40)
    called = M != -1
    X = np.where(called, M, 0).astype(np.float64)
    Z = np.where(called, M - c, 0.0)
    u = X @ c + (~called) @ (c * c)  # u + r
    W = _missing_panel_slow(M, c)
    np.testing.assert_allclose(X @ X.T - u[:, None] - u[None, :] + c @ c + W + W.T, Z @ Z.T,
                               rtol=0, atol=1e-11)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200])
@pytest.mark.parametrize("with_w", [False, True])
def test_finish_panels__equals_slow_twin(n, with_w):
    rng = np.random.default_rng(n)
    C = rng.integers(0, 4000, (n, n)).astype(np.float32, order="F")
    C[np.tril_indices(n, -1)] = 7.0  # SYRK leaves the lower triangle alone: never read
    u, cc, s = rng.normal(size=n) * 100, 321.5, 1 / 37.0
    W = rng.normal(size=(n, n)) if with_w else None
    G = W.copy() if with_w else np.full((n, n), np.nan)
    _finish_panels(G, np.ascontiguousarray(C.T), u, cc, s, with_w)
    ref = _finish_panels_slow(W, C, u, cc, s)
    np.testing.assert_allclose(G, ref, rtol=1e-14, atol=1e-13)
    assert np.array_equal(G, G.T)


@pytest.mark.parametrize("n", [1, 64, 150])
def test_flush_upper__adds_c_once_to_g_plus_g_transposed(n):
    rng = np.random.default_rng(n + 1)
    C = rng.integers(0, 4000, (n, n)).astype(np.float32, order="F")
    sym = np.triu(C.astype(np.float64)) + np.triu(C.astype(np.float64), 1).T
    G = rng.normal(size=(n, n))
    before = G + G.T
    _flush_upper(G, np.ascontiguousarray(C.T))
    np.testing.assert_allclose(G + G.T, before + sym, rtol=1e-15, atol=1e-12)


def test_panel_ranges__cover_the_snps_in_order():
    for chunks, n in [((8192,) * 6 + (848,), 20_000), ((7,) * 13 + (2,), 3), ((5,), 10**6),
                      ((1000,) * 50, 100_000), ((3, 3, 3), 2**26)]:
        ranges = _panel_ranges(chunks, n)
        assert ranges[0][0] == 0 and ranges[-1][1] == sum(chunks)
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(ranges, ranges[1:]))
        edges = set(np.cumsum((0,) + chunks).tolist())
        assert all(s in edges and e in edges for s, e in ranges)  # whole chunks only
    assert _panel_ranges((1000,) * 50, 100_000) == [(k, k + 1000) for k in range(0, 50_000,
                                                                                   1000)]


@pytest.mark.parametrize("chunks", [(57, 203), (10, 50), (16, 7), (57, 1), (23, 64)])
@pytest.mark.parametrize("missing", [0.0, 0.05])
def test_grm_panel_and_tiles__equal_dense_twin(chunks, missing):
    M = _random_genotypes(missing=missing, seed=11)
    G_ref = vanraden_g(M)[0]
    for scheme in ("panel", "tiles"):
        assert_same_g(grm(M, chunks=chunks, scheme=scheme), G_ref)
    assert_same_g(grm(da.from_array(M, chunks=chunks)), G_ref)


@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_grm_panel__small_panels_prefetch_and_flush_equal_dense_twin(monkeypatch, missing):
    """Panels of a few SNPs (several per chunk group), and the float32 accumulator flushed to
    float64 (a tiny exactness bound), against the dense twin, with shuffled animals."""
    M = _random_genotypes(n=90, m=300, missing=missing, seed=12)
    perm = np.random.default_rng(13).permutation(90)
    G_ref = vanraden_g(M)[0]
    monkeypatch.setattr(grm_module, "PANEL_BYTES", 4 * 90 * 40)  # 40-SNP panels
    X = da.from_array(M, chunks=(25, 20))
    p = grm_module.allele_frequencies(X)
    for prefetch in (True, False):
        for freq in (None, p):  # counted panel by panel, or given
            assert_same_g(grm_module._grm_panels(X, freq, prefetch=prefetch), G_ref)
    monkeypatch.setattr(grm_module, "EXACT_F32_SNPS", 100)  # flushes after 80 SNPs
    assert_same_g(grm(M, chunks=(25, 20), scheme="panel"), G_ref)
    G_perm = grm(M[perm], chunks=(31, 20), scheme="panel")
    np.testing.assert_allclose(G_perm, G_ref[np.ix_(perm, perm)], rtol=0, atol=1e-12)


def test_count_calls__equals_numpy_sums():
    from bigeval.genomic.grm import _count_calls

    M = _random_genotypes(n=40, m=70, missing=0.2, seed=17)
    M[3, 5] = 7
    M[9, 5] = -3
    counts, called, bad = _count_calls(M)
    ok = (M >= 0) & (M <= 2)
    assert np.array_equal(counts, np.where(ok, M, 0).sum(axis=0))
    assert np.array_equal(called, ok.sum(axis=0))
    assert np.array_equal(bad, (~ok & (M != -1)).sum(axis=0))


@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_parallel_kernels__equal_serial_twins(missing):
    from bigeval.genomic.grm import _count_calls, _count_calls_parallel, _prepare, _prepare_parallel

    M = _random_genotypes(n=700, m=600, missing=missing, seed=19)  # several blocks each way
    c = 2 * np.random.default_rng(20).uniform(0.05, 0.95, 600)
    X, u, miss = _prepare(M, c)
    X2 = np.full(M.shape, np.nan, np.float32)
    u2, miss2 = _prepare_parallel(M, c, X2)
    assert np.array_equal(X2, X) and np.array_equal(u2, u) and miss2 == miss
    for a, b in zip(_count_calls_parallel(M), _count_calls(M)):
        assert np.array_equal(a, b)


def test_grm_panel__bad_codes_and_empty_snps_name_the_column(monkeypatch):
    """Frequencies counted panel by panel: the error names the SNP's column in the whole
    matrix, as allele_frequencies does."""
    monkeypatch.setattr(grm_module, "PANEL_BYTES", 4 * 30 * 10)  # 10-SNP panels
    M = _random_genotypes(n=30, m=50, missing=0.0, seed=18)
    bad = M.copy()
    bad[4, 33] = 3
    with pytest.raises(InputError, match="SNP column 34 holds genotypes that are not 0/1/2"):
        grm(bad, chunks=(30, 10), scheme="panel")
    empty = M.copy()
    empty[:, 47] = -1
    with pytest.raises(InputError, match="SNP column 48 has no genotype"):
        grm(empty, chunks=(30, 10), scheme="panel")
    with pytest.raises(InputError, match="monomorphic"):
        grm(np.full((30, 50), 2, np.int8), chunks=(30, 10), scheme="panel")


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
@pytest.mark.parametrize("scheme", ["panel", "tiles"])
def test_grm__out_writes_g_with_ids(tmp_path, suffix, scheme):
    M = _random_genotypes(n=45, m=80, missing=0.05, seed=14)
    path = tmp_path / f"G{suffix}"
    assert grm(M, chunks=(16, 30), scheme=scheme, out=path, in_flight=2) == path
    G, ids = read_grm(path)
    assert_same_g(G, vanraden_g(M)[0])
    assert ids.tolist() == [str(i) for i in range(1, 46)]
    got = grm(M, chunks=(16, 30), scheme=scheme, out=path, ids=[f"x{i}" for i in range(45)])
    assert read_grm(got)[1][0] == "x0"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"G{suffix}"]  # nothing left over


def test_grm__bad_scheme_out_and_ids_raise(tmp_path):
    M = _random_genotypes(n=5, m=10, missing=0.0)
    with pytest.raises(InputError, match="unknown scheme"):
        grm(M, scheme="fast")
    with pytest.raises(InputError, match="unknown output format"):
        grm(M, out=tmp_path / "G.txt")
    with pytest.raises(InputError, match="one ID per animal"):
        grm(M, out=tmp_path / "G.h5", ids=["a", "b"])
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_grm_distributed__streamed_tiles_equal_in_memory(client, tmp_path):
    """On a real two-process LocalCluster grm picks the tile scheme and streams the blocks
    (two pairs in flight) into G or into an HDF5 file; both equal the in-memory panel result
    and the dense twin, missing calls and shuffled animals included."""
    from bigeval.io.genotypes import import_genotypes, open_genotypes
    from test_genotypes import write_csv

    M = _random_genotypes(n=70, m=150, missing=0.03, seed=15)
    ids = np.array([f"a{i}" for i in range(70)])
    perm = np.random.default_rng(16).permutation(70)
    store = import_genotypes(write_csv(tmp_path / "g.csv", M[perm], ids[perm]),
                             tmp_path / "g.zarr", chunks=(16, 64))
    with __import__("dask").config.set(scheduler="threads"):
        assert grm_module._distributed_client() is None
        G_local = grm(store)
    assert grm_module._distributed_client() is client
    G = grm(store, in_flight=2)
    np.testing.assert_allclose(G, G_local, rtol=0, atol=1e-12)
    path = grm(store, chunks=(20, 50), out=tmp_path / "G.h5", in_flight=3)
    G_file, file_ids = read_grm(path)
    np.testing.assert_allclose(G_file, G_local, rtol=0, atol=1e-12)
    _, store_ids, _ = open_genotypes(store)
    assert file_ids.tolist() == store_ids.tolist()
    back = np.argsort(perm)  # store rows are M[perm]: row back[k] is animal k
    assert_same_g(G[np.ix_(back, back)], vanraden_g(M)[0])
