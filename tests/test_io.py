"""Readers and preparation: layouts, renumbering, and bad input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bigeval import InputError
from bigeval.io import read_pedigree, read_records, read_interbull
from bigeval.prepare import prepare


def write(path, text, *, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_read_pedigree__whitespace_extra_columns_and_unknown_codes(tmp_path):
    p = write(tmp_path / "ped.txt", "a 0 0 1999 M\nb NA .\nc a b 2001 F extra\n\n d a 0\n")
    df = read_pedigree(p)
    assert df["animal"].tolist() == ["a", "b", "c", "d"]
    assert df["sire"].tolist() == ["", "", "a", "a"]
    assert df["dam"].tolist() == ["", "", "b", ""]
    assert df["line"].tolist() == [1, 2, 3, 5]


def test_read_pedigree__csv_header_bom_crlf(tmp_path):
    p = write(tmp_path / "ped.csv", "\ufeffanimal,sire,dam,birth\r\nx1,,\r\nx2,x1,NA\r\n")
    df = read_pedigree(p)
    assert df["animal"].tolist() == ["x1", "x2"]
    assert df["sire"].tolist() == ["", "x1"]
    assert df["line"].tolist() == [2, 3]


def test_prepare__parents_only_get_rows_and_parents_come_first(tmp_path):
    ped = write(tmp_path / "ped.txt", "kid S1 D1\nS1 0 0\nkid2 S1 kid\n")
    rec = write(tmp_path / "rec.txt", "kid g1\nkid2 g1\nkid g2\n")
    pop = prepare(ped, rec)
    assert set(pop.ids) == {"kid", "S1", "D1", "kid2"}
    pos = {a: i for i, a in enumerate(pop.ids)}
    for i in range(pop.n_animals):
        for p in (pop.sire[i], pop.dam[i]):
            assert p < i
    assert pop.ids[pop.sire[pos["kid2"]]] == "S1"
    assert pop.ids[pop.dam[pos["kid2"]]] == "kid"
    assert pop.n_cg == 2 and pop.n_records == 3
    assert pop.ids[pop.rec_animal].tolist() == ["kid", "kid2", "kid"]


def test_prepare__row_order_does_not_change_numbering(tmp_path):
    rng = np.random.default_rng(3)
    rows = [f"A{i} {'A' + str(rng.integers(0, i)) if i > 3 else 0} 0" for i in range(40)]
    p1 = write(tmp_path / "p1.txt", "\n".join(rows) + "\n")
    rng.shuffle(rows)
    p2 = write(tmp_path / "p2.txt", "\n".join(rows) + "\n")
    a, b = prepare(p1), prepare(p2)
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.sire, b.sire)


def test_prepare__identical_duplicate_rows_are_accepted(tmp_path):
    ped = write(tmp_path / "ped.txt", "a 0 0\nb a 0\nb a 0\n")
    assert prepare(ped).n_animals == 2


@pytest.mark.parametrize(
    "ped, rec, message, line, value",
    [
        ("a 0 0\nb a\n", "a g\n", "row has 2 column(s)", 2, "b a"),
        ("a 0 0\nb b 0\n", "a g\n", "its own sire", 2, "b"),
        ("a 0 0\nb 0 b\n", "a g\n", "its own dam", 2, "b"),
        ("a 0 0\nb a 0\nb 0 a\n", "a g\n", "conflicting pedigree rows", 3, "line 2"),
        ("a 0 0\nb a a\n", "a g\n", "as sire and as dam", 2, "b a a"),
        ("a 0 0\nb a 0\n", "a g\nzz g\n", "not in the pedigree", 2, "zz"),
        ("a 0 0\n", "a\n", "has 1 column(s)", 1, "a"),
        ("", "a g\n", "is empty", None, None),
        ("animal,sire,dam\na,0,0\n", "a g\n", "delimiter", 1, "animal,sire,dam"),
        ("a c 0\nc a 0\n", "a g\n", "loop", None, None),
    ],
)
def test_prepare__bad_input_names_file_line_value(tmp_path, ped, rec, message, line, value):
    p = write(tmp_path / "ped.txt", ped)
    r = write(tmp_path / "rec.txt", rec)
    with pytest.raises(InputError) as info:
        prepare(p, r)
    err = info.value
    assert message in str(err)
    assert err.file is not None and err.file.endswith(".txt")
    if line is not None:
        assert err.line == line
    if value is not None:
        assert value in str(err.value)


def test_prepare__csv_missing_column(tmp_path):
    p = write(tmp_path / "ped.csv", "animal,papa,dam\na,0,0\n")  # father: a synonym of sire
    with pytest.raises(InputError, match="lacks column.*sire") as info:
        prepare(p)
    assert info.value.line == 1


def test_read_interbull__unparsable_number(tmp_path):
    p = write(tmp_path / "ib.txt", "a 0.9\nb 0,85\n")
    with pytest.raises(InputError, match="not a finite number") as info:
        read_interbull(p)
    assert info.value.line == 2 and info.value.value == "0,85"


def test_read_records__empty_group_in_csv(tmp_path):
    p = write(tmp_path / "rec.csv", "animal,cg\na,g1\nb,\n")
    with pytest.raises(InputError, match="empty or missing contemporary group") as info:
        read_records(p)
    assert info.value.line == 3


def test_prepare__triplets_for_animal_not_genotyped(tmp_path):
    ped = write(tmp_path / "ped.txt", "a 0 0\nb 0 0\nc a b\n")
    rec = write(tmp_path / "rec.txt", "c g\n")
    gt = write(tmp_path / "gt.txt", "a\nc\n")
    gi = write(tmp_path / "ginv.txt", "a a 1.1\nc a -0.2\nc c 1.2\nb b 1.0\n")
    ai = write(tmp_path / "a22.txt", "a a 1.0\nc c 1.0\n")
    with pytest.raises(InputError, match="not in the genotyped list") as info:
        prepare(ped, rec, genotyped=gt, ginv=gi, a22inv=ai)
    assert info.value.line == 4 and info.value.value == "b"
    assert info.value.file.endswith("ginv.txt")


def test_prepare__triplet_conflicting_symmetric_duplicate(tmp_path):
    ped = write(tmp_path / "ped.txt", "a 0 0\nb 0 0\n")
    gt = write(tmp_path / "gt.txt", "a\nb\n")
    gi = write(tmp_path / "ginv.txt", "a a 1.1\nb a -0.2\na b -0.3\nb b 1.2\n")
    ai = write(tmp_path / "a22.txt", "a a 1.0\nb b 1.0\n")
    with pytest.raises(InputError, match="two different values"):
        prepare(ped, genotyped=gt, ginv=gi, a22inv=ai)


def test_prepare__triplets_fill_both_triangles(tmp_path):
    ped = write(tmp_path / "ped.txt", "a 0 0\nb 0 0\n")
    gt = write(tmp_path / "gt.txt", "b\na\n")
    gi = write(tmp_path / "ginv.txt", "a a 1.1\nb a -0.2\nb b 1.2\n")
    ai = write(tmp_path / "a22.txt", "a a 1.0\nb b 1.0\nb a 0.0\n")
    pop = prepare(ped, genotyped=gt, ginv=gi, a22inv=ai)
    # genotyped order: b, a
    np.testing.assert_array_equal(pop.ginv, [[1.2, -0.2], [-0.2, 1.1]])
    np.testing.assert_array_equal(pop.a22inv, np.eye(2))


def test_read_pedigree__pipe_is_refused_with_what_to_do(tmp_path):
    fifo = tmp_path / "ped.fifo"
    os.mkfifo(fifo)  # what <(zcat ped.gz) gives: a stream that can be read once
    with pytest.raises(InputError, match="pipe or device") as info:
        read_pedigree(fifo)
    assert info.value.file == str(fifo) and ".gz" in info.value.remedy


def test_prepare__singular_ginv_triplets_name_the_file_and_animal(tmp_path):
    ped = write(tmp_path / "ped.txt", "a 0 0\nb 0 0\nc a b\n")
    rec = write(tmp_path / "rec.txt", "c g\na g\n")
    gt = write(tmp_path / "gt.txt", "a\nc\n")
    gi = write(tmp_path / "ginv.txt", "a a 1.0\nc a 1.0\nc c 1.0\n")  # rank 1
    ai = write(tmp_path / "a22.txt", "a a 1.2\nc a -0.5\nc c 1.3\n")
    with pytest.raises(InputError, match="not positive definite") as info:
        prepare(ped, rec, genotyped=gt, ginv=gi, a22inv=ai)
    assert info.value.file == str(gi) and "animal c" in info.value.value


def test_read_pedigree__csv_quote_never_closed_names_its_line(tmp_path):
    p = write(tmp_path / "ped.csv", '"nimal,sire,dam\nk1,0,0\n')
    with pytest.raises(InputError, match="quote that is never closed") as info:
        read_pedigree(p)
    assert info.value.line == 1 and info.value.value == '"nimal,sire,dam'


@pytest.mark.parametrize("name", ["ped.txt", "ped.csv"])
def test_read_pedigree__a_byte_order_mark_cut_short_is_not_utf8_at_line_1(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\xef")
    with pytest.raises(InputError, match="not UTF-8") as info:
        read_pedigree(p)
    assert info.value.line == 1


@pytest.mark.parametrize("name", ["geno.txt", "geno.csv"])
def test_import_genotypes__a_byte_order_mark_cut_short_is_not_utf8(tmp_path, name):
    from bigeval.io.genotypes import import_genotypes

    p = tmp_path / name
    p.write_bytes(b"\xef")
    with pytest.raises(InputError, match="not UTF-8") as info:
        import_genotypes(p, tmp_path / "g.zarr")
    assert info.value.line == 1 and not (tmp_path / "g.zarr").exists()


def test_read_pedigree__csv_with_synonym_header_row_cut_short_is_an_error(tmp_path):
    p = write(tmp_path / "ped.csv", "id,father,mother\na,0,0\nb,a\n")  # b's dam field missing
    with pytest.raises(InputError, match="fewer fields than the header") as info:
        read_pedigree(p)
    assert info.value.line == 3


def test_read_records__csv_with_two_byte_order_marks_still_checks_its_rows(tmp_path):
    p = tmp_path / "rec.csv"
    p.write_bytes(b"\xef\xbb\xbf\xef\xbb\xbfanimal,cg\nk1,g1,extra\n")
    with pytest.raises(InputError, match="more fields than the header") as info:
        read_records(p)
    assert info.value.line == 2


@pytest.mark.parametrize("block", [1, 2, 7, 64, 1 << 24])
def test_widest_row__equals_the_line_by_line_twin(tmp_path, block):
    from bigeval.io.readers import widest_row

    rng = np.random.default_rng(block)
    pieces = [b"a", b"bb", b" ", b"  ", b"\t", b"\n", b"\r\n", b"\n\n", b"0"]
    for k in range(20):
        data = b"".join(rng.choice(pieces, size=int(rng.integers(0, 60))))
        p = tmp_path / f"f{k}.txt"
        p.write_bytes(data)
        slow = max((len(line.split()) for line in data.split(b"\n")), default=0)
        assert widest_row(p, block=block) == slow, data


def test_odd_characters__compiled_search_equals_python_regex():
    """The one-pass search of a column (Arrow's RE2 with the characters escaped) finds
    exactly what Python's :data:`_ODD_CHARACTERS` finds, on strings mixing odd characters,
    their neighbours in Unicode and plain text."""
    import numpy as np
    import pandas as pd

    from bigeval.io import readers as R

    chars = ["\x00", "\t", "\r", "\x1f", "\x20", "\x7f", "\x85", "\x9f", "\xa0", "\xa1",
             "\u1680", "\u2000", "\u200f", "\u2010", "\u2028", "\u202f", "\u2030", "\u205f",
             "\u2064", "\u2065", "\u3000", "\ufeff", "a", "é", "Ω"]
    rng = np.random.default_rng(3)
    for _ in range(2000):
        v = ["".join(rng.choice(chars, rng.integers(0, 3))) + "x" for _ in range(3)]
        want = R._ODD_CHARACTERS.search("".join(v)) is not None
        assert R._has_odd_characters(pd.Series(pd.array(v, dtype="string"))) == want, v
        assert R._has_odd_characters(pd.Series(v, dtype=object)) == want, v
