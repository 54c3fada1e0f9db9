"""Reading and writing for the run's stages: columns of input files by number or name,
birth year and sex from the pedigree, IDs of genotype stores and ready G, Parquet and JSON.
"""

from __future__ import annotations

import csv as csv_module
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError
from bigeval.genomic.grm import read_grm_ids
from bigeval.pipeline.config import RunConfig

__all__ = ["is_zarr_store", "write_parquet", "read_parquet", "write_json", "read_columns",
           "pedigree_extra", "genotype_ids", "check_in_pedigree"]


def is_zarr_store(path: Path) -> bool:
    """A Zarr (v3 or v2) group folder."""
    path = Path(path)
    return path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zgroup"))


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd")
    return path


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def write_json(obj, path: Path) -> Path:
    path.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_jsonable) + "\n")
    return path


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x))


def read_columns(path: Path, columns: dict, *, kind: str) -> pd.DataFrame:
    """Columns of an input file by 1-based number or (for ``.csv``) header name, as strings.

    ``columns`` maps an output name to a column spec; the frame has those names and ``line``.
    """
    from bigeval.io.readers import is_csv, widest_row

    path = Path(path)
    csv = is_csv(path)
    common = dict(dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    if csv:
        with warnings.catch_warnings():  # rows ending in a comma: the empty field dropped
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            df = pd.read_csv(path, sep=",", header=0, index_col=False, **common)
        df.columns = [str(c).strip() for c in df.columns]
        lower = {c.lower(): c for c in df.columns}
        picked = {}
        for name, spec in columns.items():
            if isinstance(spec, int):
                if spec > len(df.columns):
                    raise InputError(f"{kind} file has no column {spec}", file=path, line=1,
                                     value=",".join(df.columns),
                                     expected=f"at least {spec} columns",
                                     remedy="fix the column number in the configuration")
                picked[name] = df.columns[spec - 1]
            else:
                col = lower.get(str(spec).lower())
                if col is None:
                    raise InputError(f"{kind} file has no column named {spec!r}", file=path,
                                     line=1, value=",".join(df.columns),
                                     expected="one of the header's names",
                                     remedy="fix the column name in the configuration")
                picked[name] = col
        out = pd.DataFrame({name: df[col].str.strip() for name, col in picked.items()})
        out["line"] = np.arange(len(df), dtype=np.int64) + 2
    else:
        want = {}
        for name, spec in columns.items():
            if not isinstance(spec, int):
                raise InputError(f"{kind} file has no header, so columns are numbers",
                                 file=path, value=spec, expected="a 1-based column number",
                                 remedy="give the column's number, or use a .csv file with "
                                        "a header")
            want[name] = spec - 1
        usecols = sorted(set(want.values()))
        try:  # named up to the last column wanted: a row without it (a founder without
            # birth year or sex) has it empty, i.e. unknown; rows with further columns
            # (a herd code after birth year and sex) are named as wide as the widest row
            width = max(usecols) + 1
            for attempt in (0, 1):
                try:
                    df = pd.read_csv(path, sep=r"\s+", header=None, usecols=usecols,
                                     names=list(range(width)), quoting=csv_module.QUOTE_NONE,
                                     skip_blank_lines=False, **common)
                    break
                except ValueError:
                    if attempt:
                        raise
                    width = max(width, widest_row(path))
        except ValueError as exc:
            raise InputError(f"{kind} file has fewer columns than the configuration names",
                             file=path, value=max(want.values()) + 1,
                             expected=f"{max(want.values()) + 1} whitespace-separated columns",
                             remedy=f"fix the column numbers ({exc})") from None
        for name, c in want.items():
            if len(df) and not (df[c].astype(str).str.strip() != "").any():
                raise InputError(f"no row of the {kind} file has column {c + 1} ({name})",
                                 file=path, value=c + 1,
                                 expected=f"{c + 1} whitespace-separated columns on the rows "
                                          f"that give a {name}",
                                 remedy="fix the column number in the configuration")
        out = pd.DataFrame({name: df[c].astype(str).str.strip() for name, c in want.items()})
        out["line"] = np.arange(len(df), dtype=np.int64) + 1
        out = out[df.notna().any(axis=1).to_numpy()] if len(df) else out
        first = next(iter(columns))
        out = out[out[first] != ""].reset_index(drop=True)
    return out


def _birth_years(df: pd.DataFrame, path) -> pd.Series:
    """The year of each value of the birth column: a year (2019), a date (2019-03-01,
    20190301, ...) or unknown (0, NA, ., empty), mixed as they come; anything else is an
    error naming its line (a mixed column once lost its dates)."""
    raw = df["birth_year"].astype(str).str.strip()
    unknown = raw.isin(["", "0", "NA", "na", "."])
    by = pd.to_numeric(raw.where(~unknown), errors="coerce")
    by = by.where(by < 10_000, by // 10_000)  # YYYYMMDD
    dates = by.isna() & ~unknown
    if dates.any():  # 2019-03-01, 2019/03/01, 01.03.2019: their year
        by[dates] = pd.to_datetime(raw[dates], errors="coerce", format="mixed",
                                   dayfirst=False).dt.year
    bad = ~unknown & (by.isna() | (by <= 0) | (by != np.round(by)))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError("pedigree birth year is neither a year nor a date", file=path,
                         line=int(df["line"].iat[i]), value=raw.iat[i],
                         expected="a year (2019) or a date (2019-03-25, 20190325); unknown "
                                  "as 0, NA or .",
                         remedy="correct the value, or fix inputs.birth_year_column")
    return by.where(~unknown)


def pedigree_extra(cfg: RunConfig, ids: np.ndarray) -> pd.DataFrame:
    """Birth year and sex of each animal (in ``ids`` order) from the pedigree's extra columns."""
    cols = {"animal": 1 if not str(cfg["inputs.pedigree"]).lower().endswith((".csv", ".csv.gz"))
            else "animal"}
    for name in ("birth_year", "sex"):
        if cfg[f"inputs.{name}_column"] is not None:
            cols[name] = cfg[f"inputs.{name}_column"]
    out = pd.DataFrame(index=pd.Index(ids, name="animal"))
    if len(cols) == 1:
        out["birth_year"] = pd.array([pd.NA] * len(ids), dtype="Int32")
        out["sex"] = pd.array([pd.NA] * len(ids), dtype="string")
        return out.reset_index(drop=True)
    df = read_columns(cfg["inputs.pedigree"], cols, kind="pedigree")
    df = df.drop_duplicates("animal", keep="first").set_index("animal")
    if "birth_year" in df:
        out["birth_year"] = _birth_years(df, cfg["inputs.pedigree"]).reindex(
            out.index).astype("Int32")
    else:
        out["birth_year"] = pd.array([pd.NA] * len(ids), dtype="Int32")
    if "sex" in df:
        sex = df["sex"].where(~df["sex"].isin(["", "0", "NA", "."]))
        out["sex"] = sex.reindex(out.index).astype("string")
    else:
        out["sex"] = pd.array([pd.NA] * len(ids), dtype="string")
    return out.reset_index(drop=True)


def genotype_ids(path: Path) -> np.ndarray | None:
    """IDs of a genotype store or a ready G (None for a genotype file, read at import)."""
    if is_zarr_store(path):
        import zarr

        group = zarr.open_group(path, mode="r")
        if "sample_id" in group:
            from bigeval.io.genotypes import open_genotypes

            return open_genotypes(path)[1]
        if "ids" in group:
            return read_grm_ids(path)
    if str(path).lower().endswith((".h5", ".hdf5")):
        return read_grm_ids(path)
    return None


def check_in_pedigree(ids: np.ndarray, index: pd.Index, path, what: str) -> None:
    pos = index.get_indexer(ids)
    if (pos < 0).any():
        missing = np.asarray(ids)[pos < 0]
        raise InputError(f"{len(missing):,} {what} animal(s) are not in the pedigree", file=path,
                         value=str(missing[0]), expected=f"every {what} animal in the pedigree",
                         remedy="add them to the pedigree (unknown parents as 0), or remove them")
    uniq, counts = np.unique(np.asarray(ids), return_counts=True)
    if (counts > 1).any():
        raise InputError(f"a {what} animal is listed twice", file=path,
                         value=str(uniq[counts > 1][0]), remedy="keep one row per animal")
