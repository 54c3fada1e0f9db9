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

IDs are arbitrary tokens kept as strings. An unknown parent is ``0``, ``NA``, ``.`` or empty.
A UTF-8 byte-order mark and Windows line endings are accepted. Every reader returns a
:class:`pandas.DataFrame` of string columns plus ``line``, the 1-based line of each row in
the file, so later checks can say where a bad value is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError

#: Tokens that mean "parent unknown".
UNKNOWN_PARENT = ("0", "NA", ".", "")

PEDIGREE_COLUMNS = ("animal", "sire", "dam")
RECORDS_COLUMNS = ("animal", "cg")
GENOTYPED_COLUMNS = ("animal",)
INTERBULL_COLUMNS = ("animal", "value")
TRIPLET_COLUMNS = ("animal1", "animal2", "value")


def is_csv(path: str | os.PathLike) -> bool:
    """Whether a file is read as CSV with a header (by its ``.csv`` suffix)."""
    name = str(path).lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def read_table(path: str | os.PathLike, columns: tuple[str, ...], *, kind: str) -> pd.DataFrame:
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

    Returns
    -------
    A frame with one string column per name in ``columns`` and an int column ``line``.
    Blank lines are skipped.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{kind} file not found", file=path,
                         remedy="check the path given on the command line or in the config")
    if path.stat().st_size == 0:
        raise InputError(f"{kind} file is empty", file=path,
                         expected=f"one row per line with columns {' '.join(columns)}")
    csv = is_csv(path)
    common = dict(dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                  skip_blank_lines=False, engine="c")
    try:
        if csv:
            df = pd.read_csv(path, sep=",", header=0, **common)
        else:
            try:  # extra columns past the named ones are ignored, even on ragged lines
                df = pd.read_csv(path, sep=r"\s+", header=None,
                                 usecols=list(range(len(columns))), **common)
            except ValueError as exc:
                if "secols" not in str(exc):  # fewer columns than named: report below
                    raise
                df = pd.read_csv(path, sep=r"\s+", header=None, **common)
    except pd.errors.EmptyDataError:
        raise InputError(f"{kind} file has no data", file=path,
                         expected=f"columns {' '.join(columns)}") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{kind} file could not be parsed: {exc}", file=path,
                         expected=f"{'comma' if csv else 'whitespace'}-separated columns "
                                  f"{' '.join(columns)} with the same number of fields on "
                                  "every line") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{kind} file is not UTF-8 text (byte {exc.start})", file=path,
                         remedy="convert the file to UTF-8") from None

    offset = 2 if csv else 1  # header line, 1-based lines
    line = np.arange(len(df), dtype=np.int64) + offset
    if csv:
        df.columns = [str(c).strip().lower() for c in df.columns]
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
    for c in columns:
        out[c] = out[c].str.strip()
    out["line"] = line
    # Drop blank lines (every field empty).
    blank = np.ones(len(out), dtype=bool)
    for c in columns:
        blank &= (out[c] == "").to_numpy()
    out = out.loc[~blank].reset_index(drop=True)
    if len(out) == 0:
        raise InputError(f"{kind} file has no data rows", file=path,
                         expected=f"columns {' '.join(columns)}")
    if not csv:
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
                    remedy="complete the row or remove it")
    bad_id = (out[columns[0]] == "").to_numpy()
    if bad_id.any():
        i = int(np.flatnonzero(bad_id)[0])
        raise InputError(f"{kind} row has an empty {columns[0]}", file=path,
                         line=int(out.at[i, "line"]), remedy="give every row an ID")
    return out


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


def read_pedigree(path) -> pd.DataFrame:
    """Pedigree: ``animal sire dam``; unknown parents become ``""``.

    Returns a frame with string columns ``animal``, ``sire``, ``dam`` and ``line``.
    """
    df = read_table(path, PEDIGREE_COLUMNS, kind="pedigree")
    for c in ("sire", "dam"):
        col = df[c]
        df[c] = col.where(~col.isin(UNKNOWN_PARENT), "")
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
    df = read_table(path, RECORDS_COLUMNS, kind="records")
    empty = (df["cg"] == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise InputError("record has an empty contemporary group", file=path,
                         line=int(df.at[i, "line"]), value=df.at[i, "animal"],
                         expected="a contemporary-group code (herd-year-season or test day)",
                         remedy="fill in the group or remove the record")
    return df


def read_genotyped(path) -> pd.DataFrame:
    """List of genotyped animals: ``animal``."""
    return read_table(path, GENOTYPED_COLUMNS, kind="genotyped")


def read_interbull(path) -> pd.DataFrame:
    """Interbull bulls: ``animal value`` (a reliability or a ready ERC); ``value`` as float."""
    df = read_table(path, INTERBULL_COLUMNS, kind="interbull")
    df["value"] = parse_float(df, "value", path=path, kind="interbull")
    return df


def read_triplets(path, *, kind: str = "triplet") -> pd.DataFrame:
    """Lower-triangle triplets ``animal1 animal2 value`` of a relationship inverse."""
    df = read_table(path, TRIPLET_COLUMNS, kind=kind)
    df["value"] = parse_float(df, "value", path=path, kind=kind)
    return df
