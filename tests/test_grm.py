"""Tests of bigeval.genomic.grm: blockwise G against the dense twin bigeval.genomic.vanraden_g."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from test_genomic import G_11_FIRST_COLUMN, G_11_LAST_ROW, PRINTED
from test_genotypes import write_formats

from bigeval.errors import InputError
from bigeval.genomic import vanraden_g
from bigeval.genomic.grm import allele_frequencies, grm, read_grm, write_grm
from bigeval.io.genotypes import import_genotypes, open_genotypes

DATA = Path(__file__).parent / "data"
EXACT = 1e-9  # relative agreement with the float64 dense twin the issue asks for


def _random_genotypes(n=57, m=203, missing=0.05, seed=1):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, m)
    M = rng.binomial(2, p, (n, m)).astype(np.int8)
    M[rng.random(M.shape) < missing] = -1
    return M


def assert_same_g(G, G_ref):
    scale = np.abs(G_ref).max()
    np.testing.assert_allclose(G, G_ref, rtol=0, atol=EXACT * scale)


def joined(G, ids, order):
    """G rearranged to the animal order ``order``, joined by ID (never by row position)."""
    pos = pd.Index(ids).get_indexer(order)
    assert (pos >= 0).all()
    return G[np.ix_(pos, pos)]


@pytest.mark.parametrize("chunks", [(57, 203), (10, 50), (16, 7), (3, 203), (57, 1), (23, 64)])
def test_grm__equals_dense_twin_for_chunkings(chunks):
    M = _random_genotypes()
    G_ref, p = vanraden_g(M)
    assert_same_g(grm(M, chunks=chunks), G_ref)
    assert_same_g(grm(da.from_array(M, chunks=chunks)), G_ref)
    np.testing.assert_allclose(allele_frequencies(M, chunks=chunks), p, rtol=0, atol=1e-15)


@pytest.mark.parametrize("scheme", ["panel", "tiles"])
def test_grm__missing_only_in_some_blocks(scheme):
    M = _random_genotypes(missing=0.0)
    M[3, 5] = M[40, 190] = M[41, 190] = -1  # blocks with and without missing calls
    assert_same_g(grm(M, chunks=(20, 100), scheme=scheme), vanraden_g(M)[0])


def test_grm__given_frequencies():
    M = _random_genotypes()
    p = np.linspace(0.1, 0.9, M.shape[1])
    assert_same_g(grm(M, freq=p, chunks=(13, 40)), vanraden_g(M, freq=p)[0])


def test_grm__shuffled_animals_joined_by_id():
    M = _random_genotypes()
    ids = np.array([f"a{i}" for i in range(len(M))])
    perm = np.random.default_rng(7).permutation(len(M))
    G = grm(M, chunks=(16, 64))
    G_perm = grm(M[perm], chunks=(9, 31))
    np.testing.assert_allclose(joined(G_perm, ids[perm], ids), G, rtol=0, atol=1e-12)


def test_grm__mrode_chapter_11(tmp_path):
    """Mrode & Pocrnic (2023) Example 11.3: the G of bulls 13-26, read through a store."""
    store = import_genotypes(DATA / "mrode" / "ch11_genotypes.csv", tmp_path / "g.zarr",
                             chunks=(5, 3))
    _, ids, _ = open_genotypes(store)
    G = grm(store)
    G = joined(G, ids, [str(a) for a in range(13, 27)])
    np.testing.assert_allclose(G[:, 0], G_11_FIRST_COLUMN, rtol=0, atol=PRINTED)
    tol = np.full(14, PRINTED)
    tol[6] = 2 * PRINTED  # G(26, 19) = 138/1387 = 0.099495, printed 0.100
    assert np.all(np.abs(G[13, :] - G_11_LAST_ROW) <= tol)


def _reference_matrix(name):
    if name == "ssgwas-lab":
        src = DATA / "ssgwas-lab" / "marker_first200.txt"
        lines = src.read_text().split()
        ids, codes = lines[0::2][:120], lines[1::2][:120]
        M = np.array([np.frombuffer(c.encode(), np.uint8) - ord("0") for c in codes], np.int8)
        M = M[:, :1500]
    else:
        frame = pd.read_csv(DATA / "bglr" / "mice_X_first100.csv.gz", index_col=0)
        ids, M = frame.index.to_numpy(str), frame.to_numpy().astype(np.int8)[:, :2000]
    M = M.copy()
    M[np.random.default_rng(3).random(M.shape) < 0.01] = -1  # some missing calls
    return M, np.asarray(ids, dtype=str)


@pytest.mark.parametrize("name", ["ssgwas-lab", "bglr-mice"])
def test_grm__reference_data_same_g_from_every_format(tmp_path, name):
    """The same matrix written as BLUPF90 text, CSV and PLINK .bed gives the same G."""
    M, ids = _reference_matrix(name)
    perm = np.random.default_rng(5).permutation(len(ids))
    G_ref = vanraden_g(M)[0]
    for fmt, src in write_formats(tmp_path, M[perm], ids[perm]).items():
        store = import_genotypes(src, tmp_path / f"{fmt}.zarr", chunks=(32, 512))
        _, store_ids, _ = open_genotypes(store)
        G = joined(grm(store), store_ids, ids)
        assert_same_g(G, G_ref)


def test_grm__bad_input_raises():
    with pytest.raises(InputError, match="no genotype"):
        grm(np.array([[0, -1], [1, -1]], np.int8))
    with pytest.raises(InputError, match="not 0/1/2"):
        grm(np.array([[0, 3], [1, 1]], np.int8))
    with pytest.raises(InputError, match="monomorphic"):
        grm(np.array([[2, 0], [2, 0]], np.int8))
    with pytest.raises(InputError, match="one value in"):
        grm(np.array([[2, 0], [1, 0]], np.int8), freq=[0.5])
    with pytest.raises(InputError, match="integer"):
        grm(np.array([[0.5]]))


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_write_grm__round_trip(tmp_path, suffix):
    G = vanraden_g(_random_genotypes(n=9, m=30))[0]
    ids = [f"id{i}" for i in range(9)]
    path = write_grm(G, ids, tmp_path / f"G{suffix}")
    G2, ids2 = read_grm(path)
    np.testing.assert_array_equal(G2, G)
    assert ids2.tolist() == ids
    write_grm(2 * G, ids, path)  # replaced whole
    np.testing.assert_array_equal(read_grm(path)[0], 2 * G)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"G{suffix}"]


# ---------------------------------------------------------------------------------------------
# The `bigeval grm` subcommand (bigeval.cli.genomics), called through a parser built here


def _run_cli(argv):
    import argparse

    from bigeval.cli.genomics import register

    parser = argparse.ArgumentParser(prog="bigeval")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _mrode_store(tmp_path):
    return _run_cli(["genotypes", "import", str(DATA / "mrode" / "ch11_genotypes.csv"),
                     "--out", str(tmp_path / "g.zarr"), "--chunks", "4,3"])


def test_cmd_grm__blend_writes_g_ginv_a22inv(tmp_path, capsys):
    from bigeval.genomic import blend_g, tune_g
    from bigeval.linalg import spd_inverse
    from bigeval.pedigree import a_matrix_dense

    assert _mrode_store(tmp_path) == 0
    ped = DATA / "grm" / "ch11_pedigree.csv"
    out = tmp_path / "out"
    assert _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--pedigree", str(ped),
                     "--blend", "0.05", "--out", str(out), "--triplets", "--no-qc"]) == 0
    assert "G of 14 genotyped animals" in capsys.readouterr().out
    # dense twin: A from the whole pedigree (animals 1..26 numbered 0..25), bulls 13-26
    pedf = pd.read_csv(ped)
    A = a_matrix_dense(pedf["sire"].to_numpy() - 1, pedf["dam"].to_numpy() - 1)
    geno = pd.read_csv(DATA / "mrode" / "ch11_genotypes.csv")
    A22 = A[12:, 12:]
    G = vanraden_g(geno.drop(columns="animal").to_numpy())[0]
    G_star = tune_g(blend_g(G, A22, 0.05), A22)  # with a pedigree, tuned by default
    order = [str(a) for a in geno["animal"]]
    for name, ref in [("G", G), ("Ginv", spd_inverse(G_star)),
                      ("A22inv", spd_inverse(A22))]:
        M, ids = read_grm(out / f"{name}.h5", name)
        np.testing.assert_allclose(joined(M, ids, order), ref, rtol=0,
                                   atol=EXACT * np.abs(ref).max())
    trip = pd.read_csv(out / "Ginv.txt", sep=" ", header=None, names=["a1", "a2", "v"],
                       dtype={"a1": str, "a2": str})
    assert len(trip) == 14 * 15 // 2
    Ginv, ids = read_grm(out / "Ginv.h5", "Ginv")
    pos = pd.Index(ids)
    np.testing.assert_array_equal(
        Ginv[pos.get_indexer(trip["a1"]), pos.get_indexer(trip["a2"])], trip["v"])
    assert (out / "A22inv.txt").exists()


def test_cmd_grm__not_positive_definite_suggests_blend(tmp_path):
    _mrode_store(tmp_path)  # 14 animals, 10 SNPs: G has rank < 14
    with pytest.raises(InputError, match=r"G is not positive definite.*--blend"):
        _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--out", str(tmp_path),
                  "--no-qc"])


def test_cmd_grm__blend_needs_pedigree(tmp_path):
    _mrode_store(tmp_path)
    with pytest.raises(InputError, match="need A22, hence a pedigree"):
        _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--blend", "0.05"])


def test_cmd_grm__genotyped_not_in_pedigree(tmp_path):
    _mrode_store(tmp_path)
    ped = tmp_path / "ped.csv"
    ped.write_text("animal,sire,dam\n13,0,0\n14,0,0\n")
    with pytest.raises(InputError, match="12 genotyped animal.*not in the pedigree"):
        _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--pedigree", str(ped),
                  "--tune"])


def _qc_store(tmp_path):
    """40 animals x 300 SNPs with a low-call-rate SNP, a monomorphic SNP and a duplicate."""
    from test_genotypes import write_csv

    M = _random_genotypes(n=40, m=300, missing=0.01, seed=21)
    M[:10, 7] = -1  # call rate 0.75
    M[:, 50] = 2  # monomorphic
    M[33] = M[4]  # animal a33 duplicates a4
    ids = np.array([f"a{i}" for i in range(40)])
    store = import_genotypes(write_csv(tmp_path / "g.csv", M, ids), tmp_path / "g.zarr",
                             chunks=(16, 64))
    return store, M, ids


def test_cmd_grm__qc_by_default_report_and_g_of_kept(tmp_path):
    from bigeval.genomic.qc import QCOptions, qc

    store, M, ids = _qc_store(tmp_path)
    out = tmp_path / "out"
    ped = tmp_path / "ped.txt"  # unrelated animals: A22 = I
    ped.write_text("".join(f"{a} 0 0\n" for a in ids))
    assert _run_cli(["grm", "--genotypes", str(store), "--out", str(out), "--pedigree", str(ped),
                     "--blend", "0.05", "--min-maf", "0.01"]) == 0
    ref = qc(M, ids, [f"snp{j + 1}" for j in range(M.shape[1])], QCOptions(min_maf=0.01))
    report = pd.read_csv(out / "qc_report.csv")
    assert sorted(zip(report["id"], report["reason"])) == sorted(
        zip(ref.report["id"], ref.report["reason"]))
    assert {("snp8", "snp_call_rate"), ("snp51", "monomorphic"), ("a33", "duplicate")} <= set(
        zip(report["id"], report["reason"]))
    from bigeval.genomic import tune_g

    G, g_ids = read_grm(out / "G.h5")
    kept = ids[ref.animals]
    G_ref = vanraden_g(M[np.ix_(ref.animals, ref.snps)])[0]
    assert_same_g(joined(G, g_ids, kept), G_ref)  # G.h5: before blending and tuning
    eye = np.eye(len(kept))
    G_star = tune_g(0.95 * G_ref + 0.05 * eye, eye)
    Ginv, g_ids = read_grm(out / "Ginv.h5", "Ginv")
    np.testing.assert_allclose(joined(Ginv, g_ids, kept), np.linalg.inv(G_star), rtol=0,
                               atol=1e-9 * np.abs(Ginv).max())
    summary = (out / "summary.txt").read_text()
    assert "MAF >= 0.01" in summary and "duplicate" in summary


def test_cmd_grm__empty_snp_set_after_qc_is_a_clear_error(tmp_path):
    from test_genotypes import write_csv

    M = np.full((20, 30), 2, np.int8)  # monomorphic SNPs, and one with MAF 1/40 < 0.05
    M[3, 0] = 1
    store = import_genotypes(write_csv(tmp_path / "g.csv", M, [f"a{i}" for i in range(20)]),
                             tmp_path / "g.zarr")
    with pytest.raises(InputError, match=r"g\.zarr.*no SNP is left after QC.*maf") as exc:
        _run_cli(["grm", "--genotypes", str(store), "--out", str(tmp_path / "out")])
    assert "relax the QC" in str(exc.value)
    assert not (tmp_path / "out" / "G.h5").exists()


@pytest.mark.parametrize("method", ["sparse", "dense"])
def test_cmd_grm__tune_blend_equal_dense_twin(tmp_path, method):
    from bigeval.genomic import blend_g, tune_g
    from bigeval.pedigree import a_matrix_dense

    assert _mrode_store(tmp_path) == 0
    ped = DATA / "grm" / "ch11_pedigree.csv"
    out = tmp_path / "out"
    assert _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--pedigree", str(ped),
                     "--tune", "--blend", "0.1", "--out", str(out), "--no-qc",
                     "--a22inv-method", method]) == 0
    pedf = pd.read_csv(ped)
    A22 = a_matrix_dense(pedf["sire"].to_numpy() - 1, pedf["dam"].to_numpy() - 1)[12:, 12:]
    geno = pd.read_csv(DATA / "mrode" / "ch11_genotypes.csv")
    G = vanraden_g(geno.drop(columns="animal").to_numpy())[0]
    G_star = tune_g(blend_g(G, A22, 0.1), A22)  # preGSf90's order: blend, then tune
    order = [str(a) for a in geno["animal"]]
    for name, ref in [("G", G), ("Ginv", np.linalg.inv(G_star)),
                      ("A22inv", np.linalg.inv(A22))]:
        M, ids = read_grm(out / f"{name}.h5", name)
        np.testing.assert_allclose(joined(M, ids, order), ref, rtol=0,
                                   atol=EXACT * np.abs(ref).max())
    assert "tuned to A22" in (out / "summary.txt").read_text()


@pytest.mark.parametrize("missing", [0.0, 0.1])
def test_prepare__equals_slow_twin(missing):
    from bigeval.genomic.grm import _matvec64, _prepare, _split

    M = _random_genotypes(n=37, m=91, missing=missing, seed=22)
    c = 2 * np.random.default_rng(23).uniform(0.05, 0.95, 91)
    X, u, n_missing = _prepare(M, c)
    X_ref, U_ref = _split(M)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_allclose(u, _matvec64(X_ref, c), rtol=1e-14, atol=1e-12)
    if missing:
        np.testing.assert_array_equal(U_ref.toarray(), M == -1)
        assert n_missing == U_ref.nnz > 0
    else:
        assert n_missing == 0 and U_ref is None


@pytest.mark.parametrize("missing", [0.0, 0.05])
def test_finish_fast__equals_slow_twin(missing):
    from bigeval.genomic.grm import _finish_fast, _finish_pair, _pair_block

    M = _random_genotypes(n=30, m=60, missing=missing, seed=24)
    c = 2 * np.random.default_rng(25).uniform(0.05, 0.95, 60)
    for same, (a, b) in ((True, (0, 0)), (False, (0, 1))):
        Mi, Mj = M[:15], M[15 * b:15 * b + 15]
        state = None
        for k in range(0, 60, 20):  # three SNP blocks
            state = _pair_block(state, Mi[:, k:k + 20], Mj[:, k:k + 20], c[k:k + 20], same)
        ref = _finish_pair(state, same) / 7.0
        np.testing.assert_allclose(_finish_fast(state, same, 1 / 7.0), ref, rtol=1e-14,
                                   atol=1e-13)


@pytest.mark.parametrize("shape,r0,c0", [((70, 150), 5, 80), ((130, 64), 0, 100), ((1, 1), 3, 3)])
@pytest.mark.parametrize("mirror", [False, True])
def test_place__equals_numpy_assignment(shape, r0, c0, mirror):
    """The compiled (tiled) placement of a block of G against plain numpy slicing."""
    from bigeval.genomic.grm import _place

    rng = np.random.default_rng(3)
    block = rng.random(shape)
    got = np.zeros((240, 240))
    ref = np.zeros((240, 240))
    _place(got, block, r0, c0, mirror)
    ni, nj = shape
    ref[r0:r0 + ni, c0:c0 + nj] = block
    if mirror:
        ref[c0:c0 + nj, r0:r0 + ni] = block.T
    assert np.array_equal(got, ref)


def test_cmd_grm__group_codes_are_unknown_parents_in_a22(tmp_path):
    """Mrode's ch. 11 pedigree with its founders' parents written as BLUPF90 group codes
    (-1, -2) gives the A22⁻¹ and G*⁻¹ of the pedigree with those parents unknown (0)."""
    assert _mrode_store(tmp_path) == 0
    ped = pd.read_csv(DATA / "grm" / "ch11_pedigree.csv")
    founders = (ped["sire"] == 0) & (ped["dam"] == 0)
    coded = ped.copy()
    coded.loc[founders, "sire"] = -1
    coded.loc[founders, "dam"] = -2
    coded.to_csv(tmp_path / "groups.csv", index=False)
    runs = {}
    for name, path in (("zero", DATA / "grm" / "ch11_pedigree.csv"),
                       ("groups", tmp_path / "groups.csv")):
        out = tmp_path / name
        assert _run_cli(["grm", "--genotypes", str(tmp_path / "g.zarr"), "--pedigree",
                         str(path), "--out", str(out), "--no-qc"]) == 0
        runs[name] = {m: read_grm(out / f"{m}.h5", m)[0] for m in ("Ginv", "A22inv")}
    for m in ("Ginv", "A22inv"):
        np.testing.assert_array_equal(runs["groups"][m], runs["zero"][m])
