"""Out-of-core reading and preparation (bigeval.io.ooc, bigeval.prepare.ooc) against the
in-memory path: same arrays, same results (byte for byte), same errors."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigeval import io
from bigeval.errors import InputError
from bigeval.io import ooc, readers
from bigeval.prepare import prepare
from bigeval.prepare.ooc import prepare_ooc
from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

CHUNKS = (1, 3, 1000)  # rows per block: one row, a few, everything in one block

POP_FIELDS = ("ids", "sire", "dam", "generation", "rec_animal", "rec_cg", "cg_ids",
              "genotyped", "interbull_animal", "interbull_value", "ginv", "a22inv")


def assert_same_population(a, b):
    for name in POP_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def ooc_population(tmp_path, *args, chunk_rows, **kw):
    work = tmp_path / f"work-{chunk_rows}"
    return prepare_ooc(*args, work=work, chunk_rows=chunk_rows, progress=False, **kw
                       ).to_population()


# ---------------------------------------------------------------------------------------------
# keys: packing, sorting, lookup


ids_strategy = st.lists(
    st.text(alphabet=st.characters(blacklist_characters="\x00",
                                   blacklist_categories=("Cs",)), max_size=20),
    max_size=40)


@settings(max_examples=60, deadline=None)
@given(ids_strategy)
def test_pack_keys__round_trip_and_python_order(ids):
    keys, nul = ooc.pack_keys(ids)
    assert nul == -1
    assert ooc.keys_to_strings(keys).to_pylist() == ids
    order = ooc.radix_argsort(keys)
    # stable, in Python's (code point) string order: the order pandas.factorize(sort=True) uses
    assert order.tolist() == sorted(range(len(ids)), key=lambda i: (ids[i], i))
    uniq, _, starts = ooc.sort_unique(keys)
    assert ooc.keys_to_strings(uniq).to_pylist() == sorted(set(ids))
    assert starts[-1] == len(ids)


def test_pack_keys__reports_a_nul_character():
    _, nul = ooc.pack_keys(["a", "b\x00c", "d"])
    assert nul == 1


@pytest.mark.parametrize("nw", [1, 2, 3])
def test_radix_argsort__equals_lexsort(nw):
    rng = np.random.default_rng(nw)
    # few distinct high words, random low words, many ties: every digit path is taken
    keys = rng.integers(0, 2**63, size=(nw, 5000), dtype=np.int64).astype(np.uint64)
    keys[0] = keys[0] % np.uint64(7) << np.uint64(48)
    keys[:, ::3] = keys[:, :1]
    np.testing.assert_array_equal(ooc.radix_argsort(keys), np.lexsort(keys[::-1]))


def test_key_index__equals_a_dict():
    rng = np.random.default_rng(1)
    names = np.unique([f"X{v}" for v in rng.integers(0, 10**7, 3000)]).tolist()
    index = ooc.KeyIndex(ooc.pack_keys(names)[0])
    query = names[::7] + ["absent", "", "X" * 40] + names[:5]
    expect = {name: i for i, name in enumerate(names)}
    got = index.get(ooc.pack_keys(query)[0])
    assert got.tolist() == [expect.get(q, -1) for q in query]


def test_merge_sorted__is_the_sorted_union():
    a, b = ["a", "c", "e", "zz"], ["b", "d", "éé"]
    u, pa_, pb = ooc.merge_sorted(ooc.pack_keys(a)[0], ooc.pack_keys(b)[0])
    union = ooc.keys_to_strings(u).to_pylist()
    assert union == sorted(a + b)
    assert [union[i] for i in pa_] == a and [union[i] for i in pb] == b


# ---------------------------------------------------------------------------------------------
# chunked reading: the whole-file reader's frames and errors


READ_CASES = {
    "ped.txt": "\ufeffA 0 0 x\r\nB 0 0\r\n\r\nC A B y z\r\n  \r\nD C NA\r\nE . B\r\n",
    "ped.csv": "animal,sire,dam,herd\nA,0,0,h1\nB,,,h1\n\nC,A,B,h2\nD , C ,0,h2\n",
}


@pytest.mark.parametrize("name", sorted(READ_CASES))
@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 100])
def test_chunk_reader__blocks_make_the_whole_file_frame(tmp_path, name, chunk_rows):
    path = tmp_path / name
    path.write_bytes(READ_CASES[name].encode())
    whole = io.read_pedigree(path)
    blocks = list(ooc.ChunkReader(path, readers.PEDIGREE_COLUMNS, kind="pedigree",
                                  rows_fn=readers.pedigree_rows, chunk_rows=chunk_rows))
    got = pd.concat(blocks, ignore_index=True)
    pd.testing.assert_frame_equal(got[whole.columns], whole, check_dtype=False)


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_chunk_reader__optional_column_only_on_late_lines(tmp_path, chunk_rows):
    # pandas' chunked reader takes its columns from the first block; the whole-file reader
    # from any line: a birth year on line 5 only must still be read (and checked)
    path = tmp_path / "ped.txt"
    path.write_text("a 0 0\nb 0 0\nc a b\n\nd c b 2015\ne c 0\n")
    whole = io.read_pedigree(path)
    assert "birth" in whole
    got = pd.concat(ooc.ChunkReader(path, readers.PEDIGREE_COLUMNS, kind="pedigree",
                                    rows_fn=readers.pedigree_rows, chunk_rows=chunk_rows,
                                    optional={"birth": readers.BIRTH_COLUMNS}),
                    ignore_index=True)
    pd.testing.assert_frame_equal(got[["animal", "sire", "dam", "line"]],
                                  whole[["animal", "sire", "dam", "line"]], check_dtype=False)
    assert got["birth"].fillna("").tolist() == ["", "", "", "2015", ""]
    assert_same_population(ooc_population(tmp_path, path, chunk_rows=chunk_rows),
                           prepare(path))


def test_first_row_with_fields__counts_whitespace_fields_per_line(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"a b\r\n\n  a\tb  c \nx y z w\n")
    assert [ooc.first_row_with_fields(path, k, block=3) for k in (1, 2, 3, 4, 5)] == \
        [0, 0, 2, 3, -1]


BAD_READS = [  # (file name, content): the first failing check is not in the first block
    ("r1.txt", "A h1\nB h1\nC\nD h2\n\nE h2\n"),  # short row
    ("r2.txt", "A h1\nB h1\nC h2\nD h2\nE\n"),  # short row, last line
    ("r3.csv", "animal,cg\nA,h1\nB,\n,h2\nC,h3\n"),  # empty cg (line 3) vs empty ID (line 4)
    ("r4.csv", "animal,cg\nA,h1\nB,h1\nC,\nD,h2\n,h2\n"),  # empty ID wins over empty cg
    ("r5.txt", ""),  # empty file
    ("r6.txt", "\n\n   \n"),  # blank lines only
    ("r7.csv", "animal;cg\nA;h1\n"),  # not comma-separated
    ("r8.txt", "A\nB\nC h1\nD h2\n"),  # first lines short, later ones whole
    ("r9.txt", "A\nB\nC\n"),  # every line short
    ("r10.txt", "A h1\nB h1 x\nC h1 y z\n\xff\n"),  # not UTF-8
]


@pytest.mark.parametrize("name,content", BAD_READS)
@pytest.mark.parametrize("chunk_rows", [1, 2, 1000])
def test_chunk_reader__raises_the_whole_file_error(tmp_path, name, content, chunk_rows):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as whole:
        io.read_records(path)
    with pytest.raises(InputError) as chunked:
        for _ in ooc.ChunkReader(path, readers.RECORDS_COLUMNS, kind="records",
                                 rows_fn=readers.records_rows, chunk_rows=chunk_rows):
            pass
    assert str(chunked.value) == str(whole.value)


# ---------------------------------------------------------------------------------------------
# prepare: the same Population


def _names(n, rng, style):
    """n distinct IDs: national-style codes, or short/long/unicode tokens of mixed length."""
    if style == "national":
        return [f"CZ{v:09d}" for v in rng.choice(10**9, n, replace=False)]
    alphabet = list("ab12Zé_ř") + ["x" * 9]
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(alphabet, rng.integers(1, 5))))
    return sorted(out, key=lambda _: rng.random())


def random_pedigree(n, rng, p_unknown=0.2):
    """Parents before progeny, sires among earlier males, dams among earlier females."""
    male = rng.random(n) < 0.3
    sire = np.full(n, -1)
    dam = np.full(n, -1)
    for i in range(n // 10, n):
        males, females = np.flatnonzero(male[:i]), np.flatnonzero(~male[:i])
        if len(males) and rng.random() > p_unknown:
            sire[i] = rng.choice(males)
        if len(females) and rng.random() > p_unknown:
            dam[i] = rng.choice(females)
    return sire, dam


def write_random_population(tmp_path, seed, *, n=300, style="mixed", birth=False):
    """Pedigree (shuffled, parents-only animals, identical duplicate rows, mixed unknown
    codes), records, genotyped and Interbull files for a random pedigree."""
    rng = np.random.default_rng(seed)
    sire, dam = random_pedigree(n, rng, p_unknown=0.2)
    names = np.array(_names(n, rng, style), dtype=object)
    unknown = np.array(["0", "NA", "."], dtype=object)
    s = np.where(sire >= 0, names[np.maximum(sire, 0)], unknown[rng.integers(0, 3, n)])
    d = np.where(dam >= 0, names[np.maximum(dam, 0)], unknown[rng.integers(0, 3, n)])
    rows = np.arange(n)
    parents = np.union1d(sire[sire >= 0], dam[dam >= 0])
    dropped = rng.choice(parents[parents < n // 10], size=min(5, len(parents)), replace=False)
    rows = np.setdiff1d(rows, dropped)  # these appear only as parents
    rows = np.concatenate([rows, rng.choice(rows, 10)])  # identical repeated rows
    rows = rng.permutation(rows)
    lines = [f"{names[i]} {s[i]} {d[i]}" + (f" {2000 + i // 20}" if birth else "")
             for i in rows]
    ped = tmp_path / "ped.txt"
    ped.write_text("\n".join(lines) + "\n")
    m = 3 * n
    rec_animal = names[rng.integers(0, n, m)]
    rec_cg = np.array([f"H{h}Y{y}" for h, y in zip(rng.integers(0, 20, m),
                                                     rng.integers(2000, 2004, m))])
    rec = tmp_path / "rec.txt"
    rec.write_text("\n".join(f"{a} {c}" for a, c in zip(rec_animal, rec_cg)) + "\n")
    geno = tmp_path / "geno.txt"
    geno.write_text("\n".join(rng.choice(names, 20, replace=False)) + "\n")
    ib = tmp_path / "ib.txt"
    ib.write_text("\n".join(f"{a} {r:.3f}" for a, r in zip(
        rng.choice(names[parents], 8, replace=False), rng.uniform(0.5, 0.95, 8))) + "\n")
    return {"pedigree": ped, "records": rec, "genotyped": geno, "interbull": ib}


@pytest.mark.parametrize("seed,style,birth", [(1, "mixed", False), (2, "national", True),
                                              (3, "mixed", True)])
def test_prepare_ooc__equals_prepare(tmp_path, seed, style, birth):
    f = write_random_population(tmp_path, seed, style=style, birth=birth)
    kw = dict(genotyped=f["genotyped"], interbull=f["interbull"])
    expect = prepare(f["pedigree"], f["records"], **kw)
    for chunk_rows in (101, 1000):
        got = ooc_population(tmp_path, f["pedigree"], f["records"], chunk_rows=chunk_rows, **kw)
        assert_same_population(got, expect)


def test_prepare_ooc__one_row_blocks_and_no_records(tmp_path):
    f = write_random_population(tmp_path, 4, n=60)
    assert_same_population(ooc_population(tmp_path, f["pedigree"], chunk_rows=1),
                           prepare(f["pedigree"]))


def test_prepare_ooc__csv_files(tmp_path):
    ped = tmp_path / "ped.csv"
    ped.write_text("animal,sire,dam,birth_year\nc,a,b,2010\na,0,0,2001\nd,c,e,2015\n"
                   "b,,,2002\n")
    rec = tmp_path / "rec.csv"
    rec.write_text("cg,animal\ng2,d\ng1,c\ng1,d\n")
    for chunk_rows in (1, 2, 100):
        assert_same_population(ooc_population(tmp_path, ped, rec, chunk_rows=chunk_rows),
                               prepare(ped, rec))


# ---------------------------------------------------------------------------------------------
# prepare: the same errors


PED_OK = "a 0 0\nb 0 0\nc a b\nd a b\ne c 0\n"
BAD_PEDIGREES = {
    "own sire": PED_OK + "f f b\n",
    "own dam late, own sire earlier wins": "a 0 0\nb 0 0\nx b x\nc a b\nf f b\n",
    "sire is dam": PED_OK + "f a a\n",
    "conflicting rows": PED_OK + "c a 0\nd b a\nd a b\n",
    "both sexes": PED_OK + "f b a\ng c d\n",
    "loop": "a 0 0\nb 0 0\nc a e\nd c b\ne d b\nf e 0\n",
    "loop and a conflict": "c a e\nd c b\ne d b\nb 0 0\nb a 0\n",
    "parent born after progeny": "a 0 0 2010\nb 0 0 2001\nc a b 2005\nd c b 2008\n",
    "bad birth date": "a 0 0 2010\nb 0 0 2001\nc a b 2012\nd c b 2014-13-01\n",
    "unknown-parent code as animal": PED_OK + "NA a b\n",
    "short row": PED_OK + "f a\n",
}


@pytest.mark.parametrize("case", sorted(BAD_PEDIGREES))
def test_prepare_ooc__pedigree_errors_equal_prepare(tmp_path, case):
    ped = tmp_path / "ped.txt"
    ped.write_text(BAD_PEDIGREES[case])
    with pytest.raises(InputError) as whole:
        prepare(ped)
    for chunk_rows in (1, 2, 1000):
        with pytest.raises(InputError) as chunked:
            prepare_ooc(ped, work=tmp_path / f"w{chunk_rows}", chunk_rows=chunk_rows,
                        progress=False)
        assert str(chunked.value) == str(whole.value), case


BAD_OTHERS = {  # file -> content, with the pedigree PED_OK
    "records: animal not in the pedigree": {"records": "a g1\nzz g1\nb g2\nyy g2\nc g2\n"},
    "records: empty group": {"records": "animal,cg\na,g1\nb,\nc,g2\n"},
    "genotyped twice": {"genotyped": "a\nb\nc\nb\n"},
    "genotyped not in the pedigree": {"genotyped": "a\nq\n"},
    "interbull twice": {"interbull": "a 0.9\nb 0.8\na 0.9\n"},
    "interbull not in the pedigree": {"interbull": "a 0.9\nq 0.8\n"},
    "interbull out of range": {"interbull": "a 0.9\nb 1.2\n"},
    "genotyped twice before a bad interbull": {"genotyped": "a\na\n", "interbull": "a 9\n"},
    "ginv without a22inv": {"genotyped": "a\nb\n", "ginv": "a a 1\nb b 1\n"},
    "ginv without genotyped": {"ginv": "a a 1\nb b 1\n", "a22inv": "a a 1\nb b 1\n"},
}


@pytest.mark.parametrize("case", sorted(BAD_OTHERS))
def test_prepare_ooc__other_errors_equal_prepare(tmp_path, case):
    ped = tmp_path / "ped.txt"
    ped.write_text(PED_OK)
    files = {}
    for name, content in BAD_OTHERS[case].items():
        path = tmp_path / (f"{name}.csv" if content.startswith("animal,") else f"{name}.txt")
        path.write_text(content)
        files[name] = path
    rec = files.pop("records", None)
    with pytest.raises(InputError) as whole:
        prepare(ped, rec, interbull_kind="reliability", **files)
    for chunk_rows in (1, 1000):
        with pytest.raises(InputError) as chunked:
            prepare_ooc(ped, rec, work=tmp_path / f"w{chunk_rows}", chunk_rows=chunk_rows,
                        interbull_kind="reliability", progress=False, **files)
        assert str(chunked.value) == str(whole.value), case


def test_prepare_ooc__refuses_a_foreign_work_folder(tmp_path):
    ped = tmp_path / "ped.txt"
    ped.write_text(PED_OK)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match="not a bigeval work folder"):
        prepare_ooc(ped, work=tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "thesis.tex").exists()


# ---------------------------------------------------------------------------------------------
# the whole run: the same files


def _run(job):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_reliability(job, progress=False)
    return summary, [str(w.message) for w in caught]


@pytest.mark.parametrize("options", [dict(h2=0.25), dict(h2=0.25, repeatability=0.4, tau=4.0),
                                     dict(alpha=2.0, sib_adjust=True)])
def test_run_reliability_ooc__same_files_as_in_memory(tmp_path, options):
    f = write_random_population(tmp_path, 7, n=400)
    job = ReliabilityJob(pedigree=f["pedigree"], records=f["records"], out=tmp_path / "mem",
                         interbull=f["interbull"], rounds=15, **options)
    mem, mem_warn = _run(job)
    got, got_warn = _run(dataclasses.replace(job, out=tmp_path / "ooc", out_of_core=True))
    assert sorted(got.files) == sorted(mem.files)
    for name, path in mem.files.items():
        if name != "summary":
            assert got.files[name].read_bytes() == path.read_bytes(), name
    assert got_warn == mem_warn
    assert "out of core" in got.text and got.rounds_part1 == mem.rounds_part1
    assert not list((tmp_path / "ooc").glob(".bigeval-work*"))  # temporary folder removed


def test_run_reliability_ooc__genomic_parts_same_as_in_memory(tmp_path):
    f = write_random_population(tmp_path, 8, n=300)
    geno = pd.read_csv(f["genotyped"], header=None)[0].tolist()
    k = len(geno)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.02, (k, k))
    io.write_triplets(np.eye(k) * 1.3 + (noise + noise.T) / 2, geno, tmp_path / "ginv.txt")
    io.write_triplets(np.eye(k), geno, tmp_path / "a22inv.txt")
    job = ReliabilityJob(pedigree=f["pedigree"], records=f["records"], out=tmp_path / "mem",
                         h2=0.3, genotyped=f["genotyped"], ginv=tmp_path / "ginv.txt",
                         a22inv=tmp_path / "a22inv.txt", rounds=10)
    mem, _ = _run(job)
    got, _ = _run(dataclasses.replace(job, out=tmp_path / "ooc", out_of_core=True,
                                      work_dir=tmp_path / "work"))
    assert mem.rounds_part3 == got.rounds_part3 == 10
    assert got.files["reliability"].read_bytes() == mem.files["reliability"].read_bytes()
    assert (tmp_path / "work" / "zarr.json").exists()  # a given work folder is kept


def test_run_reliability_ooc__on_the_dask_engine(tmp_path):
    """Out of core with the iteration on the (embedded) Dask engine: the same file."""
    f = write_random_population(tmp_path, 9, n=500)
    job = ReliabilityJob(pedigree=f["pedigree"], records=f["records"], out=tmp_path / "mem",
                         h2=0.3, sib_adjust=True, rounds=12)
    mem, _ = _run(job)
    got, _ = _run(dataclasses.replace(job, out=tmp_path / "ooc", out_of_core=True,
                                      engine="dask", workers=2, block_size=150))
    assert "out of core" in got.text and "resident" in got.text
    assert got.files["reliability"].read_bytes() == mem.files["reliability"].read_bytes()


def test_run_reliability__out_of_core_parquet_holds_the_same_values(tmp_path):
    f = write_random_population(tmp_path, 9, n=200)
    job = ReliabilityJob(pedigree=f["pedigree"], records=f["records"], out=tmp_path / "mem",
                         h2=0.25, rounds=5)
    mem, _ = _run(job)
    got = run_reliability(dataclasses.replace(job, out=tmp_path / "pq", out_of_core=True),
                          progress=False, fmt="parquet", chunk_rows=50)
    a = pd.read_csv(mem.files["reliability"], dtype={"animal": str})
    b = pd.read_parquet(got.files["reliability"])
    assert b["animal"].tolist() == a["animal"].tolist()
    for c in a.columns[1:]:  # the CSV holds 10 significant digits, Parquet every bit
        np.testing.assert_allclose(b[c], a[c], rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::bigeval.errors.BigevalWarning")  # single-record groups
def test_cli_reliability__out_of_core_flag_and_automatic_size(tmp_path, monkeypatch, capsys):
    from bigeval.pipeline import workflow as module
    from bigeval.cli import main

    f = write_random_population(tmp_path, 10, n=150)
    base = ["reliability", "--pedigree", str(f["pedigree"]), "--records", str(f["records"]),
            "--h2", "0.25", "--rounds", "5", "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "mem"), "--no-out-of-core"]) == 0
    assert "out of core" not in capsys.readouterr().out
    assert main(base + ["--out", str(tmp_path / "ooc"), "--out-of-core"]) == 0
    assert "out of core" in capsys.readouterr().out
    monkeypatch.setattr(module, "OUT_OF_CORE_BYTES", 1)  # every pedigree counts as large
    assert main(base + ["--out", str(tmp_path / "auto")]) == 0
    assert "out of core" in capsys.readouterr().out
    expect = (tmp_path / "mem" / "reliability.csv").read_bytes()
    for out in ("ooc", "auto"):
        assert (tmp_path / out / "reliability.csv").read_bytes() == expect
