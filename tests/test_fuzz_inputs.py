"""Fuzzing the readers: mutated versions of valid inputs give a clear error or the clean result.

Small valid files (pedigree, records, genotyped list, Interbull bulls, relationship triplets,
genotype text; whitespace and ``.csv`` flavours) are mutated (truncated, bytes replaced or
inserted: NUL, bytes that are not UTF-8, quotes, ``#``, commas, tabs, a non-breaking space, a
byte-order mark mid-file, lone carriage returns; lines inserted, duplicated, deleted or
swapped) and read. Each read must either

* raise a :class:`bigeval.errors.BigevalError` naming the file and, when the reference model
  below says the problem is on a line, a line that really holds a problem (the line number as
  an editor counts the mutated bytes: lines end at ``\\n``), or
* return exactly what the reference model reads from the mutated bytes by the documented
  rules (:mod:`bigeval.io.readers`): the result of the equivalent clean content.

Never another exception, never a changed input file. The reference model (:func:`expect_table`,
:func:`expect_genotypes`) is a plain re-statement of the documented rules, line by line; it
also says which lines must make a read fail (a field with a control or invisible character, a
short row, a ``#`` line, a quote, ...) and which may (a whitespace first line of column names,
a CSV row with empty extra fields).

Further properties: the out-of-core :class:`bigeval.io.ooc.ChunkReader` gives the same frame or
the same error as the whole-file reader; ``bigeval reliability`` on a mutated tiny pedigree and
records exits with 0 or 2, never a traceback, leaves its inputs alone and writes nothing on 2.

Hypothesis runs derandomized (the same examples every run) without an example database; the
``slow`` tests run many more examples of the same properties.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _runkit
from bigeval.errors import BigevalError
from bigeval.io import ooc, readers
from bigeval.io.genotypes import import_genotypes, open_genotypes


def fuzz_settings(n: int):
    """Deterministic settings: ``n`` examples, no database, no deadline."""
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


FAST, HEAVY = 40, 1500  # examples per file in the default suite, and under --run-slow

# ---------------------------------------------------------------------------------------------
# Clean files

TABLES = {  # file name -> (kind, clean content)
    "ped.txt": ("pedigree", "s1 0 0\nd1 0 0\nk1 s1 d1\nk2 s1 NA\nk3 k1 .\n"),
    "pedb.txt": ("pedigree", "s1 0 0 2001\nd1 0 0 2002\nk1 s1 d1 2005-03-01\nk2 s1 d1 2006\n"),
    "ped.csv": ("pedigree", "animal,sire,dam\ns1,0,0\nd1,,\nk1,s1,d1\nk2,s1,NA\n"),
    "rec.txt": ("records", "k1 g1\nk2 g1\nd1 g2\nk1 g2\n"),
    "rec.csv": ("records", "animal,cg\nk1,g1\nk2,g1\nd1,g2\n"),
    "gt.txt": ("genotyped", "k1\nk2\nk3\n"),
    "gt.csv": ("genotyped", "animal\nk1\nk2\n"),
    "ib.txt": ("interbull", "s1 0.9\nd1 0.85\nk1 1e-1\n"),
    "ib.csv": ("interbull", "animal,value\ns1,0.9\nd1,.85\n"),
    "tri.txt": ("triplet", "k1 k1 2.0\nk2 k1 -0.5\nk2 k2 2\n"),
    "tri.csv": ("triplet", "animal1,animal2,value\nk1,k1,2.0\nk2,k1,-0.5\n"),
}
GENOTYPES = {
    "geno.txt": "k1 0120\nk2 2215\nk3 1009\n",
    "geno.csv": "animal,m1,m2,m3\nk1,0,1,2\nk2,2,,1\nk3,NA,0,9\n",
}

COLUMNS = {"pedigree": readers.PEDIGREE_COLUMNS, "records": readers.RECORDS_COLUMNS,
           "genotyped": readers.GENOTYPED_COLUMNS, "interbull": readers.INTERBULL_COLUMNS,
           "triplet": readers.TRIPLET_COLUMNS}
READ = {"pedigree": readers.read_pedigree, "records": readers.read_records,
        "genotyped": readers.read_genotyped, "interbull": readers.read_interbull,
        "triplet": readers.read_triplets}
NUMERIC = {"interbull": "value", "triplet": "value"}

# ---------------------------------------------------------------------------------------------
# Mutations

BOM = "\ufeff".encode()
SPECIAL = [b"\x00", b"\xff", b"\xc3", b"\xe9", b"\x80", b'"', b"#", b",", b";", b"\t", b" ",
           b"\n", b"\r", b"\r\n", "\u00a0".encode(), BOM, b"\x0b", b"\x0c", b"\x1f", b"0",
           b"NA", b".", b"x", b"-", b"e", b"9", "é".encode()]
TOKENS = [b"k9", b"s1", b"d1", b"k1", b"0", b"NA", b".", b"", b"g1", b"0.5", b"-1", b"nan",
          b"1e999", b"#", b"# note", b"animal", b"sire", b"dam", b"cg", b"value", b'"q"',
          b'"a b"', b"2001", b"2001-13-01", b"0120", b"x", "é".encode()]
byte_values = st.one_of(st.sampled_from(SPECIAL), st.binary(min_size=1, max_size=2))


def _lines_of(data: bytes) -> list[bytes]:
    """The lines of ``data`` with their ``\\n``."""
    return [x for x in re.split(b"(?<=\n)", data) if x]


@st.composite
def one_mutation(draw, data: bytes) -> bytes:
    n = len(data)
    op = draw(st.sampled_from(["truncate", "replace", "insert", "delete", "line", "dup",
                               "drop", "swap", "bom", "case", "crlf", "start-bom"]))
    if op == "truncate":
        return data[:draw(st.integers(0, n))]
    if op == "replace" and n:
        i = draw(st.integers(0, n - 1))
        return data[:i] + draw(byte_values) + data[i + 1:]
    if op == "insert":
        i = draw(st.integers(0, n))
        return data[:i] + draw(byte_values) + data[i:]
    if op == "delete" and n:
        i = draw(st.integers(0, n - 1))
        return data[:i] + data[i + 1:]
    if op == "case" and n:
        letters = [i for i, b in enumerate(data) if chr(b).isascii() and chr(b).isalpha()]
        if letters:
            i = draw(st.sampled_from(letters))
            return data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1:]
    if op == "crlf":
        return data.replace(b"\n", b"\r\n")
    if op == "start-bom":
        return BOM + data
    lines = _lines_of(data)
    if op == "line":
        sep = draw(st.sampled_from([b" ", b",", b"\t", b"  "]))
        made = sep.join(draw(st.lists(st.sampled_from(TOKENS), min_size=0, max_size=4)))
        new = draw(st.sampled_from([made + b"\n", b"\n", b"   \n"] + lines[:1]))
        i = draw(st.integers(0, len(lines)))
        return b"".join(lines[:i] + [new] + lines[i:])
    if not lines:
        return data
    i = draw(st.integers(0, len(lines) - 1))
    if op == "dup":
        return b"".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])
    if op == "drop":
        return b"".join(lines[:i] + lines[i + 1:])
    if op == "swap":
        j = draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        return b"".join(lines)
    if op == "bom":
        lines[i] = BOM + lines[i]
        return b"".join(lines)
    return data


@st.composite
def mutated(draw, clean: bytes) -> bytes:
    """``clean`` after one to three mutations."""
    data = clean
    for _ in range(draw(st.integers(1, 3))):
        data = draw(one_mutation(data))
    return data


# ---------------------------------------------------------------------------------------------
# The reference model: the documented rules, line by line

#: characters no field may hold: controls, format characters (a byte-order mark) and spaces
#: other than the ASCII space (a non-breaking space); a field is stripped first
ODD = re.compile("[\x00-\x1f\x7f-\x9f\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f-\u2064"
                 "\u3000\ufeff]")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass
class Expect:
    """What a read of some bytes must give.

    ``rows``: the rows the reader returns (tuples of the column values and the line), or None
    when the read must fail. ``must``: lines that make it fail; ``may``: lines an error may
    also point at (the reader is allowed to refuse them). ``extra``: further columns
    (pedigree ``birth``), name -> values.
    """

    rows: list | None
    must: set = field(default_factory=set)
    may: set = field(default_factory=set)
    n_lines: int = 0
    extra: dict = field(default_factory=dict)


def split_lines(data: bytes) -> tuple[list[str | None], set[int], set[int]]:
    """Lines as an editor numbers them (a leading byte-order mark dropped, lines end at
    ``\\n``, a ``\\r`` before it dropped); None and the line in the first set for a line that
    is not UTF-8 or holds another ``\\r``; the second set holds line 1 when a second
    byte-order mark follows the first (dropped too, or an error)."""
    lines, bad, maybe = [], set(), set()
    if data.startswith(BOM):
        data = data[len(BOM):]
    if data.startswith(BOM):  # pandas drops a second one too: either is right
        data = data[len(BOM):]
        maybe.add(1)
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    for k, r in enumerate(raw, start=1):
        r = r[:-1] if r.endswith(b"\r") else r
        try:
            text = r.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\r" in text:
            bad.add(k)
            text = None
        lines.append(text)
    return lines, bad, maybe


def csv_fields(text: str) -> list[str] | None:
    """The fields of one CSV line (quotes as pandas reads them), None for a quote left open
    (the field would run on into the next line)."""
    fields, cur, state = [], [], "start"
    for ch in text:
        if state == "quoted":
            if ch == '"':
                state = "closed"
            else:
                cur.append(ch)
        elif state == "closed":
            if ch == '"':  # "" inside quotes is one quote
                cur.append('"')
                state = "quoted"
            elif ch == ",":
                fields.append("".join(cur))
                cur, state = [], "start"
            else:
                cur.append(ch)
                state = "plain"
        elif ch == ",":
            fields.append("".join(cur))
            cur, state = [], "start"
        elif ch == '"' and state == "start":
            state = "quoted"
        else:
            cur.append(ch)
            state = "plain"
    if state == "quoted":
        return None
    fields.append("".join(cur))
    return fields


def expect_table(data: bytes, name: str, kind: str) -> Expect:
    """What :mod:`bigeval.io.readers` must read from ``data`` as the file ``name``."""
    columns = COLUMNS[kind]
    n = len(columns)
    csv = name.endswith(".csv")
    lines, must, may = split_lines(data)
    exp = Expect(None, must, may, len(lines))
    body = list(enumerate(lines, start=1))
    birth_at = None
    if csv:
        if all(t is not None and not t.strip() for t in lines):
            return exp  # no data
        if lines[0] is None:
            return exp
        names = csv_fields(lines[0])
        body = body[1:]
        if names is None:
            must.add(1)
            return exp
        names = [x.strip().lower() for x in names]
        if any(c not in names for c in columns):
            must.add(1)  # rows longer than this header are at fault too
            may.update(k for k, t in body if t is not None and len(csv_fields(t) or ()) >
                       len(names))
            return exp
        if len(set(names)) < len(names):
            may.add(1)
        at = [names.index(c) for c in columns]
        if kind == "pedigree":
            birth_at = next((names.index(a) for a in readers.BIRTH_COLUMNS if a in names),
                            None)
    rows, births = [], []
    for k, text in body:
        if text is None:
            continue
        if csv:
            fields = csv_fields(text)
            if fields is None:
                must.add(k)
                continue
            fields = [f.strip() for f in fields]
            vals = [fields[i] if i < len(fields) else None for i in at]
            birth = "" if birth_at is None or birth_at >= len(fields) else fields[birth_at]
            if len(fields) > len(names):
                may.add(k)  # more fields than the header, if only empty ones
            if not any(fields):
                continue  # blank
            if None in vals:
                must.add(k)  # a named field missing
                continue
            if not any(vals):
                may.add(k)  # blank in the named columns only: skipped, or an error
                continue
            if len(fields) != len(names):
                may.add(k)  # empty extra fields, or an unnamed field missing
                if any(fields[len(names):]):
                    must.add(k)
        else:
            tokens = [t.strip() for t in re.split("[ \t]+", text.strip(" \t"))]
            tokens = [] if tokens == [""] else tokens
            vals = (tokens + [""] * n)[:n]
            birth = tokens[n] if kind == "pedigree" and len(tokens) > n else ""
            if all(v == "" for v in vals):
                if tokens or text.strip(" \t\r\n"):
                    may.add(k)  # blank but for Unicode spaces (refused as a field, or blank)
                continue
            if "" in vals[1:]:
                must.add(k)  # short row
                continue
            if k == 1 and sum(v.lower() in readers._HEADER_WORDS for v in vals) >= min(2, n):
                must.add(k)  # a header line in a whitespace file
        if any(ODD.search(v) for v in vals + [birth]) or vals[0].startswith("#") \
                or any('"' in v for v in vals) or vals[0] == "":
            must.add(k)
        elif kind == "pedigree" and vals[0] in readers.UNKNOWN_PARENT:
            must.add(k)
        elif kind == "records" and vals[1] in readers.UNKNOWN_PARENT:
            must.add(k)
        elif kind in NUMERIC and not (NUMBER.fullmatch(vals[-1])
                                      and math.isfinite(float(vals[-1]))):
            must.add(k)
        elif kind == "triplet" and abs(float(vals[-1])) > getattr(readers, "MAX_TRIPLET",
                                                                   math.inf):
            must.add(k)
        if kind == "pedigree":
            vals[1:] = ["" if v in readers.UNKNOWN_PARENT else v for v in vals[1:]]
        if kind in NUMERIC:
            vals[-1] = float(vals[-1]) if k not in must else None
        rows.append((*vals, k))
        births.append(birth)
    if kind == "pedigree" and any(births):
        keys = readers.parse_birth(births)
        given_ = sum(b not in readers.UNKNOWN_PARENT for b in births)
        bad = np.flatnonzero(keys < 0)
        if must:
            may.update(rows[i][-1] for i in bad)
        elif len(bad) and (csv or len(bad) <= given_ // 2):
            must.add(rows[bad[0]][-1])
        elif not len(bad):
            exp.extra["birth"] = keys.tolist()
    if must or not rows:
        return exp
    exp.rows = rows
    return exp


@dataclass
class ExpectGenotypes:
    """What a genotype import must give: ids, the codes, SNP IDs; or None (must fail)."""

    ids: list | None
    codes: list | None = None
    snps: list | None = None
    must: set = field(default_factory=set)
    may: set = field(default_factory=set)


_BLUPF90 = {"0": 0, "1": 1, "2": 2, "5": -1, "9": -1}
_CSV_MISSING = {"", "NA", "na", "NaN", "nan", ".", "5", "9", "-1"}


def expect_genotypes(data: bytes, name: str) -> ExpectGenotypes:
    """What :func:`bigeval.io.genotypes.import_genotypes` must store from ``data``."""
    lines, must, may = split_lines(data)
    exp = ExpectGenotypes(None, must=must, may=may)
    ids, codes = [], []
    csv = name.endswith(".csv")
    body = list(enumerate(lines, start=1))
    m = None
    if csv:
        if not lines or all(t is not None and not t.strip() for t in lines):
            return exp  # empty, or blank lines only: no line is at fault
        if lines[0] is None or not lines[0].strip():
            must.add(1)
            return exp
        names = lines[0].split(",")
        if len(names) < 2:
            must.add(1)
            return exp
        snps = [s.strip() for s in names[1:]]
        if any(ODD.search(s) for s in snps) or len(set(snps)) < len(snps):
            exp.may.add(1)
        m = len(snps)
        body = body[1:]
    for k, text in body:
        if text is None:
            continue
        if not text.strip():
            continue
        if csv:
            fields = text.split(",")
            if len(fields) != m + 1:
                must.add(k)
                continue
            animal, row = fields[0].strip(), []
            for tok in (f.strip() for f in fields[1:]):
                try:
                    v = -1.0 if tok in _CSV_MISSING else float(tok)
                except ValueError:
                    v = math.nan
                row.append(int(v) if v in (0.0, 1.0, 2.0) else -1 if v in (5.0, 9.0, -1.0)
                           else None)
        else:
            fields = text.split()
            if m is None:
                m = len(fields[1]) if len(fields) == 2 else -1
            if len(fields) != 2 or len(fields[1]) != m:
                must.add(k)
                continue
            animal, row = fields[0], [_BLUPF90.get(c) for c in fields[1]]
        if None in row or animal == "" or ODD.search(animal) or animal in ids:
            must.add(k)
        ids.append(animal)
        codes.append(row)
    if must or not ids:
        return exp
    exp.ids, exp.codes = ids, codes
    exp.snps = snps if csv else [f"snp{j + 1}" for j in range(m)]
    return exp


# ---------------------------------------------------------------------------------------------
# Checks


@contextlib.contextmanager
def folder():
    """A fresh temporary folder (hypothesis runs many examples in one test)."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def assert_clear_error(exc: BaseException, path: Path, must: set, may: set) -> None:
    """A bigeval error that names the file and, where a line is at fault, such a line."""
    assert isinstance(exc, BigevalError), f"{type(exc).__name__}: {exc}"
    assert str(path) in str(exc), str(exc)
    line = getattr(exc, "line", None)
    if line is not None:
        assert line in must | may, f"line {line} is not at fault ({sorted(must)}): {exc}"
    elif must:
        raise AssertionError(f"the error names no line (lines at fault {sorted(must)}): {exc}")


def frame_rows(df: pd.DataFrame, kind: str) -> list[tuple]:
    cols = [*COLUMNS[kind], "line"]
    return [tuple(r) for r in df[cols].itertuples(index=False, name=None)]


def read_and_check(name: str, data: bytes) -> None:
    """Write ``data`` as ``name``, read it, and check the outcome against the model."""
    kind = TABLES[name][0]
    exp = expect_table(data, name, kind)
    with folder() as d:
        path = d / name
        path.write_bytes(data)
        try:
            df = READ[kind](path)
        except Exception as exc:  # noqa: BLE001 - which exception is what is tested
            assert_clear_error(exc, path, exp.must, exp.may)
            assert exp.rows is None or getattr(exc, "line", None) in exp.may, \
                f"refused a valid file: {exc}"
        else:
            assert exp.rows is not None, f"read although lines {sorted(exp.must)} are bad"
            assert frame_rows(df, kind) == exp.rows
            if "birth" in exp.extra or "birth" in df:
                assert df["birth"].tolist() == exp.extra["birth"]
        assert path.read_bytes() == data, "the reader changed its input"


def chunks_and_check(name: str, data: bytes, chunk_rows: int) -> None:
    """The chunked reader gives the whole-file reader's frame or error."""
    kind = TABLES[name][0]
    cols = COLUMNS[kind]
    rows_fn = readers.pedigree_rows if kind == "pedigree" else readers.records_rows
    optional = {"birth": readers.BIRTH_COLUMNS} if kind == "pedigree" else None
    with folder() as d:
        path = d / name
        path.write_bytes(data)
        try:
            whole = rows_fn(readers.read_table(path, cols, kind=kind, optional=optional), path)
        except Exception as exc:  # noqa: BLE001
            whole = exc
        try:
            got = pd.concat(list(ooc.ChunkReader(path, cols, kind=kind, rows_fn=rows_fn,
                                                 chunk_rows=chunk_rows, optional=optional)),
                            ignore_index=True)
        except Exception as exc:  # noqa: BLE001
            got = exc
        assert path.read_bytes() == data
    if isinstance(whole, Exception) or isinstance(got, Exception):
        assert isinstance(got, BigevalError), f"{type(got).__name__}: {got}"
        assert isinstance(whole, BigevalError), f"{type(whole).__name__}: {whole}"
        assert (str(got), got.line) == (str(whole), whole.line)
        return
    assert frame_rows(got, kind) == frame_rows(whole, kind)
    if "birth" in whole or "birth" in got:
        assert got["birth"].fillna("").tolist() == whole["birth"].fillna("").tolist()


def import_and_check(name: str, data: bytes) -> None:
    """Import ``data`` as the genotype file ``name``: the model's store, or a clear error and
    no store."""
    exp = expect_genotypes(data, name)
    with folder() as d:
        path, out = d / name, d / "g.zarr"
        path.write_bytes(data)
        try:
            import_genotypes(path, out, chunks=(2, 2))
        except Exception as exc:  # noqa: BLE001
            assert_clear_error(exc, path, exp.must, exp.may)
            assert exp.ids is None or getattr(exc, "line", None) in exp.may, \
                f"refused a valid file: {exc}"
            assert not out.exists(), "a failed import left a store"
        else:
            assert exp.ids is not None, f"imported although lines {sorted(exp.must)} are bad"
            x, ids, snps = open_genotypes(out)
            assert ids.tolist() == exp.ids
            assert x.compute().tolist() == exp.codes
            if not exp.may:
                assert snps.tolist() == exp.snps
        assert path.read_bytes() == data, "the import changed its input"


# ---------------------------------------------------------------------------------------------
# Properties of the readers


def test_model__reads_the_clean_files_as_the_readers_do():
    """The reference model and the readers agree on the clean files (and find them valid)."""
    for name, (_kind, text) in TABLES.items():
        read_and_check(name, text.encode())
        assert expect_table(text.encode(), name, _kind).rows is not None, name
    for name, text in GENOTYPES.items():
        import_and_check(name, text.encode())
        assert expect_genotypes(text.encode(), name).ids is not None, name


def _tables_property(n):
    @pytest.mark.parametrize("name", sorted(TABLES))
    @fuzz_settings(n)
    @given(data=st.data())
    def prop(name, data):
        read_and_check(name, data.draw(mutated(TABLES[name][1].encode()), label="bytes"))

    return prop


def _genotypes_property(n):
    @pytest.mark.parametrize("name", sorted(GENOTYPES))
    @fuzz_settings(n)
    @given(data=st.data())
    def prop(name, data):
        import_and_check(name, data.draw(mutated(GENOTYPES[name].encode()), label="bytes"))

    return prop


def _chunks_property(n):
    @pytest.mark.parametrize("name", ["ped.txt", "pedb.txt", "ped.csv", "rec.txt", "rec.csv"])
    @fuzz_settings(n)
    @given(data=st.data(), chunk_rows=st.sampled_from([1, 2, 3]))
    def prop(name, data, chunk_rows):
        chunks_and_check(name, data.draw(mutated(TABLES[name][1].encode()), label="bytes"),
                         chunk_rows)

    return prop


test_readers__mutated_tables_give_a_clear_error_or_the_clean_rows = _tables_property(FAST)
test_genotype_import__mutated_files_give_a_clear_error_or_the_clean_store = \
    _genotypes_property(FAST)
test_chunk_reader__same_frame_or_error_as_the_whole_file_on_mutated_tables = \
    _chunks_property(FAST // 2)
test_readers__mutated_tables_many = pytest.mark.slow(_tables_property(HEAVY))
test_genotype_import__mutated_files_many = pytest.mark.slow(_genotypes_property(HEAVY // 3))
test_chunk_reader__mutated_tables_many = pytest.mark.slow(_chunks_property(HEAVY // 3))

# ---------------------------------------------------------------------------------------------
# End to end through the command line

PED, REC = TABLES["ped.txt"][1].encode(), TABLES["rec.txt"][1].encode()


def cli_and_check(ped: bytes, rec: bytes, clean: dict[str, bytes]) -> None:
    """``bigeval reliability`` on the files: exit 0 or 2 (nothing written), inputs intact;
    when the model reads both as the clean files, the clean results."""
    with folder() as d:
        (d / "ped.txt").write_bytes(ped)
        (d / "rec.txt").write_bytes(rec)
        old = os.getcwd()
        os.chdir(d)
        try:
            rc, err = _runkit.cli_in_process([
                "reliability", "--pedigree", "ped.txt", "--records", "rec.txt", "--h2", "0.3",
                "--out", "out", "--no-progress"])
        finally:
            os.chdir(old)
        assert rc in (0, 2), err
        assert "Traceback" not in err, err
        assert (d / "ped.txt").read_bytes() == ped and (d / "rec.txt").read_bytes() == rec
        if rc == 2:
            assert "error:" in err and not (d / "out").exists(), err
            return
        same = all(expect_table(b, f"{n}.txt", k).rows == expect_table(c, f"{n}.txt", k).rows
                   for b, c, n, k in ((ped, PED, "ped", "pedigree"),
                                      (rec, REC, "rec", "records")))
        if same:
            assert (d / "out" / "reliability.csv").read_bytes() == clean["reliability.csv"]


@pytest.fixture(scope="module")
def clean_results() -> dict[str, bytes]:
    with folder() as d:
        (d / "ped.txt").write_bytes(PED)
        (d / "rec.txt").write_bytes(REC)
        rc, err = _runkit.cli_in_process([
            "reliability", "--pedigree", str(d / "ped.txt"), "--records", str(d / "rec.txt"),
            "--h2", "0.3", "--out", str(d / "out"), "--no-progress"])
        assert rc == 0, err
        return {"reliability.csv": (d / "out" / "reliability.csv").read_bytes()}


@fuzz_settings(15)
@given(which=st.sampled_from(["ped", "rec"]), data=st.data())
def test_cli__mutated_inputs_exit_0_or_2_never_a_traceback(clean_results, which, data):
    ped, rec = PED, REC
    if which == "ped":
        ped = data.draw(mutated(PED), label="ped")
    else:
        rec = data.draw(mutated(REC), label="rec")
    cli_and_check(ped, rec, clean_results)

# ---------------------------------------------------------------------------------------------
# Regressions: what the fuzzer found, each fixed in the readers


def _read(path: Path):
    """The reader of a clean file's kind, from the file name's stem (``ped``, ``rec``, ...)."""
    kind = TABLES[path.name][0]
    return READ[kind](path)


def _chunked(path: Path, chunk_rows: int = 1):
    kind = TABLES[path.name][0]
    rows_fn = readers.pedigree_rows if kind == "pedigree" else readers.records_rows
    optional = {"birth": readers.BIRTH_COLUMNS} if kind == "pedigree" else None
    return pd.concat(ooc.ChunkReader(path, COLUMNS[kind], kind=kind, rows_fn=rows_fn,
                                     chunk_rows=chunk_rows, optional=optional),
                     ignore_index=True)


@pytest.mark.parametrize("name,data,line,what", [
    ("rec.txt", b"k1 g1\n\x00k2 g1\n", 2, "U+0000 NUL"),
    ("rec.csv", b"animal,cg\nk1,g1\n\xef\xbb\xbfd1,g2\n", 3, "U+FEFF byte-order mark"),
    ("ped.txt", "s1 0 0\nk1 s1 d1\u00a0x\n".encode(), 2, "U+00A0 non-breaking space"),
    ("ib.txt", b"s1 0.9\nd\x1b1 0.8\n", 2, "U+001B"),
    ("pedb.txt", "s1 0 0 2001\nd1 0 0 \u200b2002\n".encode(), 2, "zero-width space"),
])
def test_regression__control_or_invisible_character_in_a_field(tmp_path, name, data, line,
                                                               what):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BigevalError, match="control or invisible character") as err:
        _read(path)
    assert (err.value.file, err.value.line) == (str(path), line)
    assert what in str(err.value)
    if name.startswith(("ped", "rec")):
        with pytest.raises(BigevalError) as chunked:
            _chunked(path)
        assert str(chunked.value) == str(err.value)
    read_and_check(name, data)


@pytest.mark.parametrize("name,data,line", [
    ("rec.txt", b"k1 g1\nk2 g1\r\r\nd1 g2\n", 2),  # CR CR LF: a doubled conversion
    ("rec.txt", b"k1 g1\rk2 g1\nd1 g2\n", 1),  # old Mac line ends
    ("ped.csv", b"animal,sire,dam\ns1,0,0\nd1,0\r,0\nk1,s1,d1\n", 3),
    ("gt.txt", b"k1\nk2\rk3\n", 2),
])
def test_regression__carriage_return_inside_a_line(tmp_path, name, data, line):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BigevalError, match="carriage return") as err:
        _read(path)
    assert (err.value.file, err.value.line) == (str(path), line)
    if name.startswith(("ped", "rec")):
        with pytest.raises(BigevalError) as chunked:
            _chunked(path)
        assert str(chunked.value) == str(err.value)
    read_and_check(name, data)


def test_regression__carriage_return_last_in_the_file_ends_its_line(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_bytes(b"k1\r\nk2\r")  # a Windows file cut before its last LF
    assert _read(path)["animal"].tolist() == ["k1", "k2"]
    read_and_check("gt.txt", path.read_bytes())


def test_regression__carriage_return_at_a_block_end_before_its_line_feed(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_bytes(b"k1 g1\r\nk2 g1\r\n")
    for block in (1, 2, 6, 7, 100):
        readers.check_line_ends(path, kind="records", block=block)
    path.write_bytes(b"k1 g1\r\nk2\rg1\r\n")
    for block in (1, 2, 6, 7, 10, 100):
        with pytest.raises(BigevalError, match="line 2: records line holds a carriage"):
            readers.check_line_ends(path, kind="records", block=block)


@pytest.mark.parametrize("name,data", [
    ("rec.txt", b"\nk1 g1\nk2 g1\n"),
    ("ped.txt", b"\xef\xbb\xbf  \r\n\t\r\ns1 0 0\nd1 0 0\nk1 s1 d1\n"),
    ("pedb.txt", b"\n\ns1 0 0 2001\nd1 0 0\n"),
    ("gt.txt", b"\n\nk1\n"),
])
def test_regression__leading_blank_lines_are_skipped(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    got = _read(path)
    assert got["line"].tolist() == [k + 1 for k, t in enumerate(data.split(b"\n"))
                                    if t.strip(b" \t\r\n\xef\xbb\xbf")]
    if name.startswith(("ped", "rec")):
        for chunk_rows in (1, 2, 100):
            pd.testing.assert_frame_equal(_chunked(path, chunk_rows)[got.columns.drop(
                "birth", errors="ignore")], got.drop(columns="birth", errors="ignore"),
                check_dtype=False)
    read_and_check(name, data)


@pytest.mark.parametrize("name,data,line", [
    ("rec.txt", b"k1\nk2 g1\nd1 g2\n", 1),  # pandas said: line 2 has more fields
    ("tri.txt", b"\nk1k1 2.0\nk2 k2 2\n", 2),
    ("ib.txt", b"s1\x000.9\nd1 0.85\n", 1),
])
def test_regression__a_short_first_line_is_the_line_at_fault(tmp_path, name, data, line):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BigevalError) as err:
        _read(path)
    assert (err.value.file, err.value.line) == (str(path), line)
    if name.startswith("rec"):
        for chunk_rows in (1, 2, 100):
            with pytest.raises(BigevalError) as chunked:
                _chunked(path, chunk_rows)
            assert str(chunked.value) == str(err.value)
    read_and_check(name, data)


@pytest.mark.parametrize("name,data,line,says", [
    ("rec.csv", b"\xef", 1, "not UTF-8"),  # a byte-order mark cut short: not "no data"
    ("gt.txt", b"\xef\xbb", 1, "not UTF-8"),
    ("ped.csv", b"\n\nanimal,sire,dam\ns1,0,0\n", 1, "no header on line 1"),
])
def test_regression__no_columns_but_not_empty(tmp_path, name, data, line, says):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BigevalError, match=says) as err:
        _read(path)
    assert (err.value.file, err.value.line) == (str(path), line)
    read_and_check(name, data)


@pytest.mark.parametrize("name,data,ids", [
    ("geno.txt", b"\xef\xbb\xbfk1 0120\nk2 2215\n", ["k1", "k2"]),  # a byte-order mark
    ("geno.txt", b"k1 0120\n\nk2 2215\nk3 1009\n", ["k1", "k2", "k3"]),  # a blank line
    ("geno.csv", b"animal,m1,m2\n\n\nk1,0,1\nk2,2,\nk3,1,1\n", ["k1", "k2", "k3"]),
])
def test_regression__genotypes_with_a_byte_order_mark_or_blank_lines(tmp_path, name, data,
                                                                      ids):
    path = tmp_path / name
    path.write_bytes(data)
    _, got, _ = open_genotypes(import_genotypes(path, tmp_path / "g.zarr", chunks=(2, 2)))
    assert got.tolist() == ids
    import_and_check(name, data)


@pytest.mark.parametrize("name,data,line,says", [
    ("geno.txt", b"k1 0120\n\x00k2 2215\n", 2, "control or invisible"),
    ("geno.csv", "animal,m1\nk1,0\n\ufeffk2,1\n".encode(), 3, "control or invisible"),
    ("geno.txt", b"k1 0120\rk2 2215\nk3 1009\n", 1, "carriage return"),
    ("geno.txt", b"k1 0120\n\nk2 2215\nk3 1009\nk2 1111\n", 5, "twice"),
    ("geno.csv", b"\nanimal,m1\nk1,0\n", 1, "no header on line 1"),  # not "empty"
])
def test_regression__genotype_id_errors_name_the_line(tmp_path, name, data, line, says):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(BigevalError, match=says) as err:
        import_genotypes(path, tmp_path / "g.zarr", chunks=(2, 2))
    assert (err.value.file, err.value.line) == (str(path), line)
    import_and_check(name, data)
