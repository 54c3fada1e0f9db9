"""Readers for the methodology's input files (section II.2 of the certified methodology).

Two layouts are accepted for every file:

* whitespace-separated positional text, no header (the methodology's layout); columns past
  the ones named below are ignored;
* ``.csv`` with a header row naming the columns (extra columns ignored).

| file | columns |
|---|---|
| pedigree | ``animal sire dam`` |
| performance records | ``animal cg`` (one row per record) |
| genotyped animals | ``animal`` |
| Interbull bulls | ``animal value`` |
| relationship-inverse triplets | ``animal1 animal2 value`` |

IDs are arbitrary tokens kept as strings. An unknown parent is ``0``, ``NA``, ``.`` or empty;
a contemporary group with one of those codes is an error (no record without a group). Lines
starting with ``#``, a header line in a whitespace file and double-quoted fields are errors,
never read as data, and so is a field holding a control character (NUL, ...), a byte-order
mark after the start of the file or a non-breaking space (an ID that looks like another).
A ``.csv`` row that stops before its last named column is an error (a missing field is never
read as an unknown parent); empty fields after the last column (a row ending in a comma) are
accepted and ignored. Files may be gzipped (``.gz``); a truncated or damaged one is an error.
A UTF-8 byte-order mark and Windows line endings are accepted; a carriage return that
does not end its line is an error. Every reader returns a
:class:`pandas.DataFrame` of string columns plus ``line``, the 1-based line of each row in
the file, so later checks can say where a bad value is.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import gzip
import io
import os
import re
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError, opt
from bigeval.io.groups import split_groups

#: Tokens that mean "parent unknown".
UNKNOWN_PARENT = ("0", "NA", ".", "")

PEDIGREE_COLUMNS = ("animal", "sire", "dam")
RECORDS_COLUMNS = ("animal", "cg")
GENOTYPED_COLUMNS = ("animal",)
INTERBULL_COLUMNS = ("animal", "value")
TRIPLET_COLUMNS = ("animal1", "animal2", "value")
#: Other header names (lower case) that mean a column in a ``.csv``: ``ID,SIRE,DAM``,
#: ``id,father,mother`` (case is ignored anyway).
COLUMN_SYNONYMS = {"animal": ("id", "animal_id", "animalid", "individual", "ind"),
                   "sire": ("father", "sire_id", "sireid", "sire_code"),
                   "dam": ("mother", "dam_id", "damid", "dam_code")}


def is_csv(path: str | os.PathLike) -> bool:
    """Whether a file is read as CSV with a header (by its ``.csv`` suffix)."""
    name = str(path).lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def read_table(path: str | os.PathLike, columns: tuple[str, ...], *, kind: str,
               optional: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Read the named columns of an input file as strings, with their line numbers.

    Parameters
    ----------
    path
        The file; ``.csv`` means comma-separated with a header row, anything else
        whitespace-separated positional columns without a header.
    columns
        The columns wanted, in positional order.
    kind
        What the file is, for messages ("pedigree", "records", ...).
    optional
        Further columns read when the file has them: output name -> the header names that
        mean it in a ``.csv`` (case-insensitive); in a whitespace file they are the columns
        after ``columns``, in this order. Empty on the lines that lack them; absent from the
        result when no line has them.

    Returns
    -------
    A frame with one string column per name in ``columns`` (and per optional column the file
    has) and an int column ``line``. Blank lines are skipped.
    """
    path = _check_file(path, columns, kind=kind)
    with _parse_errors(path, columns, kind=kind):
        check_not_blank(path, columns, kind=kind)
        check_line_ends(path, kind=kind)
        check_csv_fields(path, columns, kind=kind)
        df = _read_csv(path, columns, n_optional=len(optional or ()))
    out = _tidy(df, columns, kind=kind, path=path, optional=optional)
    if len(out) == 0:
        raise _no_rows(path, columns, kind)
    for check in ROW_CHECKS:
        check(out, columns, kind=kind, path=path)
    return out


def not_utf8(path: Path, what: str, line: int | None, raw, *, ids: bool = False) -> InputError:
    """The error for bytes that are not UTF-8 at ``line`` (``raw``: that line as Latin-1)."""
    return InputError(f"{what} is not UTF-8 text", file=path, line=line, value=raw,
                      expected="UTF-8 text (ASCII is UTF-8)" + (", IDs included" if ids else ""),
                      remedy="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8 (with "
                             "the file's real encoding)")


def damaged_gzip(path: Path, what: str, exc: BaseException) -> InputError:
    """The error for a damaged or truncated gzip file."""
    return InputError(f"{what} is a damaged or truncated gzip file ({exc})", file=path,
                      expected="a whole gzip file (gzip -t passes)",
                      remedy="copy or compress the file again, whole")


def first_not_utf8(path: Path) -> tuple[int | None, str | None]:
    """:func:`_first_non_utf8` of a plain file; (None, None) for a ``.gz``."""
    return (None, None) if str(path).lower().endswith(".gz") else _first_non_utf8(path)


def _no_rows(path: Path, columns: tuple[str, ...], kind: str) -> InputError:
    """The error for a file without data rows: bytes that are not UTF-8 (a byte-order mark
    cut short) are said so at their line; else no data rows."""
    line, raw = first_not_utf8(path)
    if line is not None:
        return not_utf8(path, f"{kind} file", line, raw)
    return InputError(f"{kind} file has no data rows", file=path,
                      expected=f"columns {' '.join(columns)}")


def _check_file(path, columns: tuple[str, ...], *, kind: str) -> Path:
    """The path, or an error if the file is missing or empty."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{kind} file not found", file=path,
                         expected="an existing file",
                         remedy="check the path given on the command line or in the config")
    if path.is_dir():
        raise InputError(f"the {kind} file is a folder", file=path,
                         expected=f"a {kind} file (text, or .gz)",
                         remedy="give the path of the file inside the folder")
    if not path.is_file():  # a pipe (<(zcat ...)), a terminal, a device
        raise InputError(f"the {kind} file is a pipe or device, not a file", file=path,
                         expected=f"a {kind} file (text, or .gz read as it is): bigeval "
                                  "reads its inputs more than once",
                         remedy="give the .gz file itself, or write the stream to a file "
                                "first (zcat ped.gz > ped.txt)")
    if path.stat().st_size == 0:
        raise InputError(f"{kind} file is empty", file=path,
                         expected=f"one row per line with columns {' '.join(columns)}",
                         remedy="check the file name, and that the file was written whole")
    return path


@contextlib.contextmanager
def _parse_errors(path: Path, columns: tuple[str, ...], *, kind: str):
    """Turn pandas' parse errors (raised while reading, or while iterating chunks) into
    :class:`InputError`."""
    csv = is_csv(path)
    try:
        yield
    except pd.errors.EmptyDataError:
        line, raw = first_not_utf8(path)
        if line is not None:  # e.g. a byte-order mark cut short: not text, not empty
            raise not_utf8(path, f"{kind} file", line, raw) from None
        if csv and first_data_line(path)[1]:  # blank lines before the header
            raise InputError(f"{kind} file has no header on line 1 (it is blank)",
                             file=path, line=1, value="",
                             expected=f"a header row with {','.join(columns)} on line 1",
                             remedy="delete the blank lines before the header") from None
        raise InputError(f"{kind} file has no data", file=path,
                         expected=f"columns {' '.join(columns)}",
                         remedy="check the file name, and that the file was written whole"
                         ) from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if m is not None and not csv and int(m[1]) < len(columns):
            # pandas took its columns from a short first line: that line is at fault
            line, text = first_data_line(path)
            raise InputError(
                f"{kind} row has {m[1]} column(s), expected {len(columns)} "
                f"({' '.join(columns)})", file=path, line=line, value=text.strip(),
                expected=f"{len(columns)} whitespace-separated fields: {' '.join(columns)}",
                remedy="complete the row or remove it") from None
        if m is not None:  # a row longer than the header (CSV) or than the first line
            raise InputError(
                f"{kind} row has more fields than the "
                f"{'header' if csv else 'first line'}", file=path, line=int(m[2]),
                value=f"{m[3]} fields",
                expected=f"{m[1]} fields{' in the header' if csv else ', as on line 1'} "
                         f"({'comma' if csv else 'whitespace'}-separated)",
                remedy="remove the extra fields, or quote a field that holds a comma"
                       if csv else "remove the extra fields") from None
        if "EOF inside string" in str(exc):  # CSV: a quote opened and never closed
            line, text = unclosed_quote(path)
            raise InputError(f"{kind} file has a quote that is never closed", file=path,
                             line=line, value=text, expected="each quoted field closed "
                             "on its own line (\"a,b\")",
                             remedy="close the quote, or remove it") from None
        raise InputError(f"{kind} file could not be parsed: {exc}", file=path,
                         expected=f"{'comma' if csv else 'whitespace'}-separated columns "
                                  f"{' '.join(columns)} with the same number of fields on "
                                  "every line",
                         remedy="fix the line named above") from None
    except UnicodeDecodeError:
        line, raw = _first_non_utf8(path)
        raise not_utf8(path, f"{kind} file", line, raw) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise damaged_gzip(path, f"{kind} file", exc) from None


def check_not_blank(path: Path, columns: tuple[str, ...], *, kind: str) -> None:
    """A ``.csv`` of blank lines only has no data (pandas would take a line of spaces for a
    header); a whitespace file says so through pandas."""
    if is_csv(path) and not first_data_line(path)[1]:
        raise InputError(f"{kind} file has no data (blank lines only)", file=path,
                         expected=f"a header row with {','.join(columns)}, then data rows",
                         remedy="check the file name, and that the file was written whole")


def widest_row(path, *, block: int = 1 << 24) -> int:
    """The most fields on any line of a whitespace file (spaces, tabs and CR separate), in
    blocks of ``block`` bytes with numpy: one pass, no Python loop over lines.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ped.txt"
    >>> _ = p.write_text("a 0 0\\nb  a 0 2019 F H1\\n\\nc a b\\n")
    >>> widest_row(p), widest_row(p, block=3)
    (6, 6)
    """
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    widest = count = 0  # count: fields so far on the line a block ends in
    prev_ws = True
    with opener(path, "rb") as fh:
        while chunk := fh.read(block):
            b = np.frombuffer(chunk, np.uint8)
            nl = b == 10
            ws = nl | (b == 32) | (b == 9) | (b == 13)
            before = np.empty_like(ws)
            before[0], before[1:] = prev_ws, ws[:-1]
            starts = np.cumsum(~ws & before)  # fields begun up to each byte
            ends = np.flatnonzero(nl)
            if ends.size:
                per = np.diff(starts[ends], prepend=0)
                per[0] += count
                widest = max(widest, int(per.max()))
                count = int(starts[-1] - starts[ends[-1]])
            else:
                count += int(starts[-1])
            prev_ws = bool(ws[-1])
    return max(widest, count)


def check_line_ends(path: Path, *, kind: str, block: int = 1 << 24) -> None:
    """No carriage return inside a line: a CR must be followed by the LF that ends its line
    (Windows line ends), or an error naming the line (as an editor counts lines: at LF).

    pandas and Python's text files end a line at a lone CR too, so every later line number
    would be wrong; read in blocks of ``block`` bytes (a gzipped file uncompressed).
    """
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    line, carry = 1, b""
    with opener(path, "rb") as fh:
        while True:
            buf = fh.read(block)
            if not buf:  # a CR last in the file ends its line (the LF cut off)
                return
            data, carry = carry + buf, b""
            if data.endswith(b"\r"):  # its LF may start the next block
                data, carry = data[:-1], b"\r"
            if data.count(b"\r") != data.count(b"\r\n"):
                at = re.search(rb"\r(?!\n)", data).start()
                start = data.rfind(b"\n", 0, at) + 1
                end = data.find(b"\n", at)
                text = data[start:end if end >= 0 else len(data)].rstrip(b"\r")
                raise InputError(
                    f"{kind} line holds a carriage return (CR) that does not end it",
                    file=path, line=line + data.count(b"\n", 0, at),
                    value=text.decode("utf-8", "replace")[:80],
                    expected="lines ending in LF (Unix) or CR LF (Windows)",
                    remedy="remove the stray CR, or convert old Mac line ends (CR only) to "
                           "LF, e.g. tr '\\r' '\\n'")
            line += data.count(b"\n")


def header_names(names, columns: tuple[str, ...], *, bom: bool = False) -> list[str]:
    """A CSV header's names as the readers take them: stripped, lower case, a synonym of a
    wanted column (id for animal, father for sire) named as that column when the column itself
    is absent. With ``bom``, the first name loses one byte-order mark, as pandas' parser drops
    one after the decoder dropped one (names split from the decoded text: a third is an
    error, as it is for the reader)."""
    out = [str(c).strip().lower() for c in names]
    if bom and out:
        out[0] = out[0].removeprefix("\ufeff")
    for c in columns:
        alias = next((a for a in COLUMN_SYNONYMS.get(c, ()) if a in out), None)
        if c not in out and alias is not None:
            out[out.index(alias)] = c
    return out


def check_csv_fields(path: Path, columns: tuple[str, ...], *, kind: str) -> None:
    """Every data row of a ``.csv`` has a field for each of ``columns`` and no more fields
    than the header, or an error naming the first row that has not: a row cut short is
    never read as empty fields (an unknown dam).

    Empty fields after the last column (a row ending in a comma, as spreadsheets write) are
    accepted and ignored, and so is a row that stops after the last of ``columns`` (its
    later, optional columns are empty). A whitespace file is not checked (its columns are
    positional, :func:`_check_short_rows`).
    """
    if not is_csv(path):
        return
    with _open_text(path) as fh:
        lines = list(enumerate(fh, start=1))
    if any('"' in text for _, text in lines):  # quoted fields: the csv module splits them
        text = "".join(t for _, t in lines)
        rows = ((k, row) for k, row in enumerate(csv.reader(io.StringIO(text)), start=1))
    else:
        rows = ((k, t.rstrip("\r\n").split(",")) for k, t in lines)
    n = need = None
    for k, row in rows:
        if n is None:  # the header, named as the reader names it (BOMs, case, synonyms)
            header = header_names(row, columns, bom=True)
            n = len(row)
            if not all(c in header for c in columns):
                return  # the header's error comes from the reader
            need = max(header.index(c) for c in columns) + 1
            continue
        if need <= len(row) <= n or not "".join(row).strip():
            continue
        if len(row) > n and not "".join(row[n:]).strip():
            continue  # trailing empty fields
        if len(row) > n:
            raise InputError(f"{kind} row has more fields than the header", file=path,
                             line=k, value=f"{len(row)} fields",
                             expected=f"{n} fields in the header (comma-separated)",
                             remedy="remove the extra fields, or quote a field that holds a "
                                    "comma")
        raise InputError(f"{kind} row has fewer fields than the header (a missing field is "
                         "not read as empty or unknown)", file=path, line=k,
                         value=",".join(row)[:80],
                         expected=f"a field for each of {','.join(columns)}; an unknown "
                                  "parent as 0 or an empty field between commas",
                         remedy="complete the row (e.g. 'k1,s1,0' or 'k1,s1,')")


def _open_text(path: Path):
    """A text file (gzip-compressed when named .gz) opened for reading, BOM dropped."""
    if str(path).lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _first_non_utf8(path: Path) -> tuple[int | None, str | None]:
    """The 1-based line of the first bytes that are not UTF-8, and that line as Latin-1."""
    with open(path, "rb") as fh:
        for k, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return k, raw.rstrip(b"\r\n").decode("latin-1")[:80]
    return None, None  # pragma: no cover - pandas found one


def _read_csv(path: Path, columns: tuple[str, ...], chunksize: int | None = None, *,
              n_optional: int = 0):
    """pandas.read_csv with the readers' options: a frame, or an iterator of frames with
    ``chunksize`` (row numbers continue across chunks in their index). A whitespace file is
    read with ``n_optional`` further columns when any line has them."""
    common = dict(dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                  skip_blank_lines=False, engine="c", chunksize=chunksize)
    if is_csv(path):
        # index_col=False: rows ending in a comma never shift the columns (the extra empty
        # fields are accepted, :func:`check_csv_fields`); pandas warns that it drops them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(path, sep=",", header=0, index_col=False, **common)
    # a whitespace file has no quoting: a quote stays in its field, where the row checks
    # refuse it (pandas would otherwise join "a b" into one ID)
    common["quoting"] = csv.QUOTE_NONE
    # pandas takes the columns from the first line: leading blank lines are skipped (and
    # the row numbers shifted back), else a file starting with one would have no columns
    line, text = first_data_line(path)
    skip = line - 1 if text else 0  # a file of blank lines: pandas says it has no data
    common["skiprows"] = skip
    if n_optional:
        k = len(columns) + n_optional
        try:
            return _shifted(pd.read_csv(path, sep=r"\s+", header=None, names=list(range(k)),
                                        usecols=list(range(k)), **common), skip)
        except ValueError:  # no line has them (or worse: the reads below say what)
            pass
    try:  # extra columns past the named ones are ignored, even on ragged lines
        return _shifted(pd.read_csv(path, sep=r"\s+", header=None,
                                    usecols=list(range(len(columns))), **common), skip)
    except ValueError as exc:
        if "secols" not in str(exc):  # fewer columns than named: report below
            raise
        return _shifted(pd.read_csv(path, sep=r"\s+", header=None, **common), skip)


def first_data_line(path: Path) -> tuple[int, str]:
    """The 1-based number of the first line of a whitespace file that is not blank (only
    spaces, tabs, CR and a leading byte-order mark), and its text (for messages); the line
    after the last when every line is blank."""
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    k = 0
    with opener(path, "rb") as fh:
        for k, raw in enumerate(fh, start=1):
            text = raw.removeprefix(b"\xef\xbb\xbf") if k == 1 else raw
            if text.strip(b" \t\r\n"):
                return k, text.rstrip(b"\r\n").decode("utf-8", "replace")[:80]
    return k + 1, ""


def unclosed_quote(path: Path) -> tuple[int | None, str]:
    """The 1-based line (and its text) where a CSV quote opens that the file never closes
    (quotes toggle; ``""`` inside a quoted field is an escaped quote and toggles twice)."""
    opener = gzip.open if str(path).lower().endswith(".gz") else open
    opened, text, inside = None, "", False
    with opener(path, "rb") as fh:
        for k, raw in enumerate(fh, start=1):
            for _ in range(raw.count(b'"')):
                inside = not inside
                if inside:
                    opened, text = k, raw.rstrip(b"\r\n").decode("utf-8", "replace")[:80]
    return (opened, text) if inside else (None, "")


class _ShiftedChunks:
    """pandas' chunked reader whose chunks' row numbers start ``skip`` rows later."""

    def __init__(self, reader, skip: int):
        self._reader, self._skip = reader, skip

    def get_chunk(self, rows=None):
        chunk = self._reader.get_chunk(rows)
        chunk.index = chunk.index + self._skip
        return chunk

    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _shifted(result, skip: int):
    """A frame (or chunked reader) read after ``skip`` lines, numbered from the file's
    start."""
    if not skip:
        return result
    if isinstance(result, pd.DataFrame):
        result.index = result.index + skip
        return result
    return _ShiftedChunks(result, skip)


def _tidy(df: pd.DataFrame, columns: tuple[str, ...], *, kind: str, path: Path,
          optional: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """The named columns of a parsed frame (or chunk), stripped, with ``line``, blank lines
    dropped; an error if the header or the column count is wrong.

    A chunk's index holds its rows' numbers in the file (pandas numbers rows on across
    chunks), so ``line`` is right for every chunk.
    """
    csv = is_csv(path)
    offset = 2 if csv else 1  # header line, 1-based lines
    line = np.asarray(df.index, dtype=np.int64) + offset
    if csv:
        df.columns = header_names(df.columns, columns)  # synonyms: id, father, mother, ...
        missing = [c for c in columns if c not in df.columns]
        if missing:
            hint = ""
            if len(df.columns) == 1 and any(ch in df.columns[0] for ch in " \t;"):
                hint = " (the header looks like it is not comma-separated)"
            raise InputError(
                f"{kind} file lacks column(s) {', '.join(missing)}{hint}", file=path, line=1,
                value=",".join(df.columns),
                expected=f"a header row with {','.join(columns)}",
                remedy="name the columns in the first line, or use a whitespace-separated "
                       "file without a header (any suffix but .csv)")
        out = df[list(columns)].copy()
        for name, aliases in (optional or {}).items():
            found = next((a.lower() for a in aliases if a.lower() in df.columns), None)
            if found is not None:
                out[name] = df[found]
    else:
        if df.shape[1] < len(columns):
            # Every line is short: say so for the first data line.
            first = next((i for i in range(len(df)) if df.iloc[i, 0].strip() != ""), 0)
            raise InputError(
                f"{kind} file has {df.shape[1]} column(s), expected {len(columns)}",
                file=path, line=int(line[first]), value=" ".join(df.iloc[first].tolist()),
                expected=f"whitespace-separated columns {' '.join(columns)}",
                remedy="check the delimiter: a comma-separated file needs the .csv suffix "
                       "and a header row")
        out = df.iloc[:, : len(columns)].copy()
        out.columns = list(columns)
        for k, name in enumerate(optional or {}):
            if df.shape[1] > len(columns) + k:
                extra = df.iloc[:, len(columns) + k]
                if (extra != "").any():
                    out[name] = extra.to_numpy()
    for c in out.columns:
        out[c] = out[c].str.strip()
    out["line"] = line
    # Drop blank lines (every field empty).
    blank = np.ones(len(out), dtype=bool)
    for c in columns:
        blank &= (out[c] == "").to_numpy()
    return out.loc[~blank].reset_index(drop=True)


def _check_short_rows(out: pd.DataFrame, columns: tuple[str, ...], *, kind: str,
                      path: Path) -> None:
    if is_csv(path):
        return
    # A whitespace token cannot be empty: an empty field means the line was short.
    for c in columns[1:]:
        short = (out[c] == "").to_numpy()
        if short.any():
            i = int(np.flatnonzero(short)[0])
            found = sum(1 for cc in columns if out.at[i, cc] != "")
            raise InputError(
                f"{kind} row has {found} column(s), expected {len(columns)} "
                f"({' '.join(columns)})", file=path, line=int(out.at[i, "line"]),
                value=" ".join(out.loc[i, list(columns)].tolist()).strip(),
                expected=f"{len(columns)} whitespace-separated fields: {' '.join(columns)}",
                remedy="complete the row or remove it")


def _check_empty_id(out: pd.DataFrame, columns: tuple[str, ...], *, kind: str,
                    path: Path) -> None:
    bad_id = (out[columns[0]] == "").to_numpy()
    if bad_id.any():
        i = int(np.flatnonzero(bad_id)[0])
        raise InputError(f"{kind} row has an empty {columns[0]}", file=path,
                         line=int(out.at[i, "line"]), remedy="give every row an ID")


#: names a first line of column names would hold (a header in a whitespace file)
_HEADER_WORDS = {"animal", "id", "sire", "dam", "cg", "group", "herd", "value", "rel",
                 "animal1", "animal2", "father", "mother"}


def _check_no_header_comment_or_quote(out: pd.DataFrame, columns: tuple[str, ...], *,
                                      kind: str, path: Path) -> None:
    """No silent guess: a ``#`` comment line, a header line in a whitespace file, or a
    double-quoted field is an error (each would otherwise be read as an animal or an ID)."""
    first = out[columns[0]]
    comment = first.str.startswith("#").to_numpy()
    if comment.any():
        i = int(np.flatnonzero(comment)[0])
        raise InputError(f"{kind} line starts with '#': comment lines are not allowed",
                         file=path, line=int(out.at[i, "line"]), value=first.iat[i],
                         expected="data lines only",
                         remedy="delete the comment lines (or IDs that begin with '#')")
    if not is_csv(path) and len(out):
        head = [str(out.at[0, c]).lower() for c in columns]
        if int(out.at[0, "line"]) == 1 and sum(h in _HEADER_WORDS for h in head) >= \
                min(2, len(columns)):
            raise InputError(f"the first line of the {kind} file looks like a header",
                             file=path, line=1, value=" ".join(out.loc[0, list(columns)]),
                             expected=f"data only: {' '.join(columns)} without a header row",
                             remedy="delete the header line, or give the file a .csv suffix "
                                    "and comma-separated columns with that header")
    for c in columns:
        quoted = out[c].str.contains('"', regex=False).to_numpy()
        if quoted.any():
            i = int(np.flatnonzero(quoted)[0])
            raise InputError(f"{kind} field {c} holds a double quote", file=path,
                             line=int(out.at[i, "line"]), value=out.at[i, c],
                             expected="IDs and codes without quotes",
                             remedy="remove the quotes (IDs may not contain spaces or quotes)")


#: Characters no field may hold (after stripping): control characters (NUL, ...), format
#: characters (a byte-order mark inside the file, zero-width spaces) and spaces other than
#: the ASCII space (a non-breaking space): each would make an ID that looks like another.
_ODD_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u00a0\u1680\u2000-\u200f\u2028-\u202f"
                             "\u205f-\u2064\u3000\ufeff]")
_CHARACTER_NAMES = {"\x00": "NUL", "\t": "tab", "\r": "carriage return",
                    "\u00a0": "non-breaking space", "\ufeff": "byte-order mark",
                    "\u200b": "zero-width space"}


#: :data:`_ODD_CHARACTERS` for Arrow's regular expressions (RE2), each character escaped.
_ODD_CHARACTERS_RE2 = "".join(
    f"\\x{{{ord(ch):x}}}" if not ch.isascii() or not ch.isprintable() else ch
    for ch in _ODD_CHARACTERS.pattern)


def _has_odd_characters(column: pd.Series) -> bool:
    """Whether any value of a string column matches :data:`_ODD_CHARACTERS`: one compiled
    pass (Arrow) where it can, else Python's regex over the joined column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(column, type=pa.large_string(), from_pandas=True)
        return bool(pc.any(pc.match_substring_regex(arr, _ODD_CHARACTERS_RE2)).as_py())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        values = [v if isinstance(v, str) else "" for v in column.tolist()]
        return _ODD_CHARACTERS.search("".join(values)) is not None


def _check_characters(out: pd.DataFrame, columns: tuple[str, ...], *, kind: str,
                      path: Path) -> None:
    """No field holds a control or invisible character (:data:`_ODD_CHARACTERS`)."""
    for c in out.columns:
        if c == "line" or not pd.api.types.is_string_dtype(out[c]):
            continue
        if not _has_odd_characters(out[c]):  # one pass over the column
            continue
        values = [v if isinstance(v, str) else "" for v in out[c].tolist()]
        i = next(i for i, v in enumerate(values) if _ODD_CHARACTERS.search(v))
        ch = _ODD_CHARACTERS.search(values[i])[0]
        what = _CHARACTER_NAMES.get(ch, "")
        raise InputError(
            f"{kind} field {c} holds a control or invisible character (U+{ord(ch):04X}"
            f"{' ' + what if what else ''})",
            file=path, line=int(out.at[i, "line"]), value=values[i],
            expected="printable text: no NUL or other control character, no byte-order "
                     "mark inside the file, no non-breaking space",
            remedy="remove the character (a byte-order mark inside a file often comes from "
                   "joining files; separate fields with plain spaces or tabs, or commas in "
                   "a .csv)")


#: Checks of the rows of a tidy frame, in the order :func:`read_table` applies them to the
#: whole file; each raises for its first offending row. A chunked reader
#: (:mod:`bigeval.io.ooc`) applies them chunk by chunk and reports what the whole-file
#: reader would have: the first check that fails anywhere, at its first row.
ROW_CHECKS = (_check_characters, _check_no_header_comment_or_quote, _check_short_rows,
              _check_empty_id)


def parse_float(df: pd.DataFrame, column: str, *, path, kind: str) -> np.ndarray:
    """Parse a column of a frame from :func:`read_table` as float64, or say where it fails."""
    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{kind} {column} is not a finite number", file=path,
                         line=int(df.at[i, "line"]), value=df.at[i, column],
                         expected="a decimal number with '.' as the decimal point",
                         remedy="fix the value or remove the row")
    return values


#: Header names of the optional birth-date column of a ``.csv`` pedigree.
BIRTH_COLUMNS = ("birth", "birth_date", "birthdate", "birth_year", "byear", "yob")
_DATE_FORMATS = (  # (pattern, strptime format); a bare year is handled apart
    (re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$"), "%Y-%m-%d"),
    (re.compile(r"^\d{4}/\d{1,2}/\d{1,2}$"), "%Y/%m/%d"),
    (re.compile(r"^\d{8}$"), "%Y%m%d"),
    (re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$"), "%d.%m.%Y"),
)
BIRTH_EXPECTED = ("a year (2019) or a date (2019-03-25, 2019/03/25, 20190325 or 25.03.2019); "
                  "unknown as 0, NA, . or empty")


def parse_birth(tokens) -> np.ndarray:
    """Birth dates or years as sortable integers: ``YYYYMMDD``, ``YYYY0000`` for a bare year.

    0 means unknown (``0``, ``NA``, ``.``, empty); -1 marks a token that is not a date. Years
    run from 1800 to 2199. Compare two keys by year (``key // 10000``) when either is a bare
    year, otherwise whole.

    Examples
    --------
    >>> parse_birth(["2019", "2019-03-05", "05.03.2019", "20190305", "NA", "M", "2019-02-30"]
    ...             ).tolist()
    [20190000, 20190305, 20190305, 20190305, 0, -1, -1]
    """
    tokens = np.asarray(tokens, dtype=object)
    codes, uniques = pd.factorize(tokens)
    keys = np.empty(len(uniques), dtype=np.int64)
    for u, tok in enumerate(uniques):
        t = str(tok).strip()
        if t in UNKNOWN_PARENT:
            keys[u] = 0
            continue
        key = -1
        if len(t) == 4 and t.isdigit():
            key = int(t) * 10000
        else:
            for pattern, fmt in _DATE_FORMATS:
                if pattern.match(t):
                    try:
                        d = datetime.datetime.strptime(t, fmt)
                    except ValueError:
                        break
                    key = d.year * 10000 + d.month * 100 + d.day
                    break
        keys[u] = key if 1800_0000 <= key < 2200_0000 else -1
    return keys[codes] if len(tokens) else np.zeros(0, dtype=np.int64)


def format_birth(key: int) -> str:
    """A key of :func:`parse_birth` as text: ``2019`` or ``2019-03-05``."""
    key = int(key)
    year, md = divmod(key, 10000)
    return str(year) if md == 0 else f"{year:04d}-{md // 100:02d}-{md % 100:02d}"


def read_pedigree(path, *, birth: bool | None = None, groups=None) -> pd.DataFrame:
    """Pedigree: ``animal sire dam [birth]``; unknown parents become ``""``.

    Parents that are unknown parent groups (``groups``: see
    :func:`bigeval.groups.group_mask`; default negative integer codes) become unknown too,
    their codes kept in the columns ``sire_group`` and ``dam_group`` (:func:`pedigree_rows`).

    The birth date or year is optional: the fourth column of a whitespace file, or a column
    named ``birth`` (or ``birth_date``, ``birth_year``, ``yob``) in a ``.csv``. With
    ``birth=None`` a fourth whitespace column is taken as birth dates when its values are
    dates (:func:`parse_birth`); a column of something else (sex, herd) is ignored, one of
    dates with a few bad values is an error at the first of them. A named ``.csv`` column and
    ``birth=True`` are always dates; ``birth=False`` ignores the column.

    Returns a frame with string columns ``animal``, ``sire``, ``dam`` and ``line``, and, with
    birth dates, an int column ``birth`` of :func:`parse_birth` keys (0 unknown).
    """
    optional = {"birth": BIRTH_COLUMNS} if birth is not False else None
    df = pedigree_rows(read_table(path, PEDIGREE_COLUMNS, kind="pedigree", optional=optional),
                       path, groups=groups)
    if "birth" in df:
        keys = parse_birth(df["birth"].to_numpy())
        given = ~df["birth"].isin(UNKNOWN_PARENT).to_numpy()
        bad = keys < 0
        first = (int(df.at[int(np.flatnonzero(bad)[0]), "line"]),
                 df.at[int(np.flatnonzero(bad)[0]), "birth"]) if bad.any() else None
        if birth_column_kept(int(bad.sum()), int(given.sum()), first, path=path, birth=birth):
            df["birth"] = keys
        else:  # mostly not dates: some other column, ignored
            df = df.drop(columns="birth")
    return df


def birth_column_kept(n_bad: int, n_given: int, first_bad: tuple[int, str] | None, *, path,
                      birth: bool | None) -> bool:
    """Whether a pedigree's birth column is birth dates (True) or another column to ignore
    (False), from its counts over the whole file; an error for bad dates in a date column.

    ``first_bad`` is the (line, value) of the first token that is not a date.
    """
    named = is_csv(path)
    if n_bad and (birth or named or n_bad <= n_given // 2):
        where = "the birth column" if named else "the 4th column (birth date)"
        raise InputError(
            f"pedigree birth date is not a date ({n_bad} such row(s) in {where})",
            file=path, line=first_bad[0], value=first_bad[1],
            expected=BIRTH_EXPECTED,
            remedy="correct the date" + ("" if named else
                                         ", or remove the 4th column if it is not a "
                                         "birth date"))
    return not n_bad


def pedigree_rows(df: pd.DataFrame, path, *, groups=None) -> pd.DataFrame:
    """Pedigree steps after :func:`read_table` (whole file or a chunk): unknown parents to
    ``""``; group codes out of the parent columns and group rows dropped
    (:func:`bigeval.groups.split_groups`); an error for an animal ID that is an
    unknown-parent code."""
    for c in ("sire", "dam"):
        col = df[c]
        df[c] = col.where(~col.isin(UNKNOWN_PARENT), "")
    df = split_groups(df, path, groups)
    bad = df["animal"].isin(UNKNOWN_PARENT).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError("pedigree animal ID is an unknown-parent code", file=path,
                         line=int(df.at[i, "line"]), value=df.at[i, "animal"],
                         expected="an ID other than 0, NA, . or empty",
                         remedy="give the animal a real ID")
    return df


def read_records(path) -> pd.DataFrame:
    """Performance records: ``animal cg``, one row per record (repeated records repeat)."""
    return records_rows(read_table(path, RECORDS_COLUMNS, kind="records"), path)


def records_rows(df: pd.DataFrame, path) -> pd.DataFrame:
    """Records steps after :func:`read_table`: an error for an empty or missing-code
    contemporary group (``0``, ``NA``, ``.``: a missing group is no group)."""
    empty = df["cg"].isin(UNKNOWN_PARENT).to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError("record has an empty or missing contemporary group", file=path,
                         line=int(df.at[i, "line"]),
                         value=f"{df.at[i, 'animal']} {df.at[i, 'cg']}".strip(),
                         expected="a contemporary-group code (herd-year-season or test day)",
                         remedy="fill in the group or remove the record; if the group is in "
                                "another column (a BLUPF90 data file), say which: "
                                f"{opt('inputs.records_columns')} animal=1,cg=N[+M],trait=K")
    return df


def read_genotyped(path) -> pd.DataFrame:
    """List of genotyped animals: ``animal``."""
    return read_table(path, GENOTYPED_COLUMNS, kind="genotyped")


def read_interbull(path, *, kind: str | None = None) -> pd.DataFrame:
    """Interbull bulls: ``animal value`` (a reliability or a ready ERC); ``value`` as float.

    With ``kind="reliability"`` every value must be in [0, 1), with ``kind="erc"`` ≥ 0; the
    first one that is not is an error naming its line.
    """
    df = interbull_rows(read_table(path, INTERBULL_COLUMNS, kind="interbull"), path)
    if kind is not None:
        check_interbull(df, kind, path)
    return df


#: Largest Interbull ERC accepted (a reliability of 1 - 3e-9 at α 3; 1e308 overflowed)
MAX_ERC = 1e9
#: Largest magnitude of a relationship-inverse triplet value accepted
MAX_TRIPLET = 1e8


def check_interbull(df: pd.DataFrame, kind: str, path) -> None:
    """Interbull values in range for their kind (reliability: [0, 1); ERC: ≥ 0)."""
    value = df["value"].to_numpy()
    if kind == "reliability":
        bad = (value < 0) | (value >= 1)
        what, expected = "reliability outside [0, 1)", "0 ≤ reliability < 1"
        remedy = ("give reliabilities as fractions (0.85, not 85); a bull with reliability 1 "
                  f"is known exactly: give 0.99; or use {opt('inputs.interbull_kind')} erc for "
                  "ready ERC "
                  "values")
    elif kind == "erc":
        bad = (value < 0) | (value > MAX_ERC)
        what = "ERC is negative or beyond any bull's"
        expected = f"an effective record contribution, 0 ≤ ERC ≤ {MAX_ERC:g}"
        remedy = (f"fix the value, or use {opt('inputs.interbull_kind')} reliability for "
                  "reliabilities")
    else:
        raise InputError("unknown Interbull kind", value=kind,
                         expected="'reliability' or 'erc'",
                         remedy=f"{opt('inputs.interbull_kind')} reliability|erc")
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"Interbull {what} ({int(bad.sum())} such row(s))", file=path,
                         line=int(df.at[i, "line"]),
                         value=f"{df.at[i, 'animal']} {df.at[i, 'value']:g}",
                         expected=expected, remedy=remedy)


def interbull_rows(df: pd.DataFrame, path) -> pd.DataFrame:
    """Interbull steps after :func:`read_table`: ``value`` parsed as float."""
    df["value"] = parse_float(df, "value", path=path, kind="interbull")
    return df


def read_triplets(path, *, kind: str = "triplet") -> pd.DataFrame:
    """Lower-triangle triplets ``animal1 animal2 value`` of a relationship inverse; a value
    beyond ±:data:`MAX_TRIPLET` (no relationship inverse holds one; it would overflow the
    equations) is an error naming its line."""
    df = read_table(path, TRIPLET_COLUMNS, kind=kind)
    df["value"] = value = parse_float(df, "value", path=path, kind=kind)
    bad = np.abs(value) > MAX_TRIPLET
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{kind} value is too large for a relationship inverse "
                         f"({int(bad.sum())} such row(s))", file=path,
                         line=int(df.at[i, "line"]), value=f"{value[i]:g}",
                         expected=f"|value| ≤ {MAX_TRIPLET:g} (elements of G⁻¹ and A22⁻¹ are "
                                  "of order 1 to 1000)",
                         remedy="check the file holds the inverse (not G) and its numbers")
    return df
