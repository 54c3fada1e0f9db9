"""Tests of bigeval.io.genotypes: import to Zarr from PLINK, BLUPF90 text and CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.errors import InputError
from bigeval.io.genotypes import MISSING, import_genotypes, open_genotypes

DATA = Path(__file__).parent / "data"

# Three animals, five SNPs, two missing calls; written in every format by write_formats.
M_SMALL = np.array([
    [0, 1, 2, -1, 1],
    [2, 2, 1, 0, 0],
    [1, -1, 0, 2, 2],
], dtype=np.int8)
IDS_SMALL = np.array(["cow7", "bull12", "x3"])


def write_blupf90(path: Path, M: np.ndarray, ids) -> Path:
    """BLUPF90 layout: ID right-aligned, a space, one digit per SNP, 5 for missing."""
    width = max(len(i) for i in ids)
    codes = np.where(M == MISSING, 5, M)
    lines = [f"{i:>{width}} " + "".join(map(str, row)) for i, row in zip(ids, codes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(path: Path, M: np.ndarray, ids, snps=None) -> Path:
    """Header animal,snp1,...; missing as an empty field."""
    snps = snps if snps is not None else [f"snp{j + 1}" for j in range(M.shape[1])]
    frame = pd.DataFrame(M.astype(object), columns=snps)
    frame[frame == MISSING] = ""
    frame.insert(0, "animal", list(ids))
    frame.to_csv(path, index=False)
    return path


def write_bed(path: Path, M: np.ndarray, ids, snps=None) -> Path:
    """PLINK .bed/.bim/.fam with bed_reader.to_bed (counts of allele 1, NaN missing)."""
    from bed_reader import to_bed

    snps = snps if snps is not None else [f"snp{j + 1}" for j in range(M.shape[1])]
    val = np.where(M == MISSING, np.nan, M).astype(np.float32)
    to_bed(path, val, properties={"iid": list(ids), "sid": list(snps)})
    return path


def write_formats(folder: Path, M: np.ndarray, ids) -> dict[str, Path]:
    return {"blupf90": write_blupf90(folder / "g.txt", M, ids),
            "csv": write_csv(folder / "g.csv", M, ids),
            "plink": write_bed(folder / "g.bed", M, ids)}


@pytest.mark.parametrize("fmt", ["blupf90", "csv", "plink"])
@pytest.mark.parametrize("chunks", [(1, 1), (2, 3), (4096, 8192)])
def test_import_genotypes__round_trip_every_format(tmp_path, fmt, chunks):
    src = write_formats(tmp_path, M_SMALL, IDS_SMALL)[fmt]
    store = import_genotypes(src, tmp_path / "g.zarr", chunks=chunks)
    X, animals, snps = open_genotypes(store)
    assert X.dtype == np.int8
    np.testing.assert_array_equal(X.compute(), M_SMALL)
    assert animals.tolist() == IDS_SMALL.tolist()
    assert snps.tolist() == [f"snp{j + 1}" for j in range(5)]
    assert X.chunks[0][0] == min(chunks[0], 3)


def test_import_genotypes__plink_counts_allele_1(tmp_path):
    """bed-reader's count_A1=True: the stored count is that of the .bim's allele 1."""
    src = write_bed(tmp_path / "g.bed", M_SMALL, IDS_SMALL)
    import_genotypes(src, tmp_path / "g.zarr")
    from bed_reader import open_bed

    with open_bed(src, count_A1=True) as bed:
        a1 = bed.read(dtype="float32")
    X, _, _ = open_genotypes(tmp_path / "g.zarr")
    np.testing.assert_array_equal(X.compute(), np.where(np.isnan(a1), -1, a1))


def test_import_genotypes__blupf90_missing_5_and_9(tmp_path):
    src = tmp_path / "g.txt"
    src.write_text("a 0159\nb 2222\n")
    X, _, _ = open_genotypes(import_genotypes(src, tmp_path / "g.zarr"))
    assert X.compute().tolist() == [[0, 1, -1, -1], [2, 2, 2, 2]]


def test_import_genotypes__csv_missing_spellings(tmp_path):
    src = tmp_path / "g.csv"
    src.write_text("animal,s1,s2,s3,s4,s5,s6\na,,NA,5,9,-1,2.0\nb,0,1,2,1.0,0.0,1\n")
    X, _, snps = open_genotypes(import_genotypes(src, tmp_path / "g.zarr"))
    assert X.compute().tolist() == [[-1, -1, -1, -1, -1, 2], [0, 1, 2, 1, 0, 1]]
    assert snps.tolist() == ["s1", "s2", "s3", "s4", "s5", "s6"]


def test_import_genotypes__reference_files(tmp_path):
    """ssgwas-lab (BLUPF90 text) and BGLR mice (gzipped CSV, 0.0/1.0/2.0) import whole."""
    X, ids, _ = open_genotypes(import_genotypes(DATA / "ssgwas-lab" / "marker_first200.txt",
                                                tmp_path / "a.zarr", chunks=(64, 1000)))
    assert X.shape == (200, 3000)
    first = (DATA / "ssgwas-lab" / "marker_first200.txt").read_text().split("\n", 1)[0].split()
    assert ids[0] == first[0]
    assert "".join(map(str, X[0].compute())) == first[1]
    X, ids, snps = open_genotypes(import_genotypes(DATA / "bglr" / "mice_X_first100.csv.gz",
                                                   tmp_path / "b.zarr", fmt="csv"))
    assert X.shape == (100, 10346)
    assert ids[0] == "A048005080" and snps[0] == "rs3683945_G"
    assert X[0, :5].compute().tolist() == [1, 1, 1, 1, 0]


def test_import_genotypes__streams_in_chunk_rows(tmp_path):
    src = write_blupf90(tmp_path / "g.txt", M_SMALL, IDS_SMALL)
    seen = []
    import_genotypes(src, tmp_path / "g.zarr", chunks=(2, 2),
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, None), (3, None)]


def test_import_genotypes__replaces_atomically(tmp_path):
    src = write_blupf90(tmp_path / "g.txt", M_SMALL, IDS_SMALL)
    store = import_genotypes(src, tmp_path / "g.zarr")
    bad = tmp_path / "bad.txt"
    bad.write_text("a 012\nb 013\n")
    with pytest.raises(InputError):
        import_genotypes(bad, store)
    X, _, _ = open_genotypes(store)  # the old store is intact
    np.testing.assert_array_equal(X.compute(), M_SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "g.txt", "g.zarr"]
    # and a good import replaces it
    import_genotypes(write_blupf90(tmp_path / "h.txt", M_SMALL[:2], IDS_SMALL[:2]), store)
    assert open_genotypes(store)[0].shape == (2, 5)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("g.txt", "a 012\nb 013\n", r"g\.txt, line 2: genotype of SNP column 3 .*value: '3'"),
        ("g.txt", "a 012\n\nb 0a2\n", r"line 3: genotype of SNP column 2"),
        ("g.txt", "a 012\nb 01\n", r"line 2: genotype line of unequal length.*2 codes"
                                   r".*expected: an ID and 3 codes"),
        ("g.txt", "a 012\nb 210\na 111\n", r"animal ID 'a' is genotyped twice \(line 3; "
                                           r"first at 1\)"),
        ("g.txt", "", r"empty"),
        ("g.txt", "\n\n", r"empty"),
        ("g.csv", "animal,s1,s2\na,0,1\nb,1,3\n", r"line 3: genotype of SNP column 2.*'3'"),
        ("g.csv", "animal,s1,s2\na,0,1\nb,1,x\n", r"line 3: genotype of SNP column 2.*'x'"),
        ("g.csv", "animal,s1,s2\na,0,1.5\n", r"line 2: genotype of SNP column 2.*'1.5'"),
        ("g.csv", "animal,s1,s2\na,0,1\nb,1\n", r"line 3: genotype line of unequal length"
                                                r".*expected: 3 fields"),
        ("g.csv", "animal,s1\nz,1\nz,2\n", r"'z' is genotyped twice"),
        ("g.csv", "", r"empty"),
        ("g.csv", "animal,s1\n", r"holds no animal"),
        ("g.vcf", "x", r"cannot tell the genotype format"),
    ],
)
def test_import_genotypes__bad_input_raises(tmp_path, name, text, match):
    src = tmp_path / name
    src.write_text(text)
    with pytest.raises(InputError, match=match):
        import_genotypes(src, tmp_path / "g.zarr")
    assert not (tmp_path / "g.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind


def test_import_genotypes__plink_duplicated_id(tmp_path):
    src = write_bed(tmp_path / "g.bed", M_SMALL, ["a", "b", "a"])
    with pytest.raises(InputError, match=r"'a' is genotyped twice \(animal 3 of the .fam"):
        import_genotypes(src, tmp_path / "g.zarr")


def test_open_genotypes__not_a_store(tmp_path):
    with pytest.raises(InputError, match="not a genotype store"):
        open_genotypes(tmp_path / "nothing.zarr")


def _run_cli(argv):
    import argparse

    from bigeval.cli.genomics import register

    parser = argparse.ArgumentParser(prog="bigeval")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cmd_genotypes_import__writes_store(tmp_path, capsys):
    src = write_formats(tmp_path, M_SMALL, IDS_SMALL)["plink"]
    assert _run_cli(["genotypes", "import", str(src), "--out", str(tmp_path / "g.zarr"),
                     "--chunks", "2,4"]) == 0
    assert "3 animals x 5 SNPs, chunks (2, 4)" in capsys.readouterr().out
    X, _, _ = open_genotypes(tmp_path / "g.zarr")
    np.testing.assert_array_equal(X.compute(), M_SMALL)


def test_cmd_genotypes_import__bad_chunks_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _run_cli(["genotypes", "import", "x.txt", "--out", "g.zarr", "--chunks", "4096"])
    assert "--chunks must be two integers" in capsys.readouterr().err
