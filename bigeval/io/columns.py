"""Column maps: which columns of a records file hold the animal, the contemporary group and
the trait (BLUPF90 data files, MiX99 data, a CSV export).

Without a map a records file is ``animal cg`` (:func:`bigeval.io.readers.read_records`). A
:class:`RecordColumns` names the columns instead, by 1-based number in a whitespace file or
by header name in a ``.csv``:

* ``animal``: the animal's ID;
* ``cg``: one column, or several whose combination is the contemporary group (herd × year ×
  season: ``cg=6+8+9``; the group code is the values joined with ``:``);
* ``trait`` (optional): the observation. A row whose trait holds a missing-value code
  (``missing``; ``NA`` and ``.`` unless given, BLUPF90's ``0`` when asked; a numeric code
  matches its value however written, ``0`` matching ``0.0``) is no record and is left out,
  counted in the summary; any other value must be a number.

On the command line and in the configuration a map is written ``animal=1,cg=6+8,trait=4``
(or as a TOML table ``{animal = 1, cg = [6, 8], trait = 4}``). Every other rule of the
readers holds (comments, quotes, control characters and short rows are errors naming their
line), and the out-of-core reader reads mapped files the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bigeval.errors import InputError, opt
from bigeval.io.readers import UNKNOWN_PARENT, is_csv, read_table

__all__ = ["RecordColumns", "DEFAULT_MISSING", "missing_mask", "parse_record_columns"]

#: Trait values that mean "no observation" unless a map says otherwise.
DEFAULT_MISSING = ("NA", ".")

_EXAMPLE = "animal=1,cg=6+8,trait=4 (numbers in a whitespace file, header names in a .csv)"


def _spec(value, role: str, where: str):
    """A column spec: a 1-based number (int or digits) or a header name."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, np.integer)):
        if value < 1:
            raise InputError(f"column of {role} must be a number from 1", value=value,
                             file=where, expected="1, 2, ... (the first column is 1)",
                             remedy=f"write the map as {_EXAMPLE}")
        return int(value)
    if isinstance(value, str) and value.strip():
        v = value.strip()
        return int(v) if v.isdigit() and int(v) >= 1 else v
    raise InputError(f"column of {role} is not a column number or name", value=value,
                     file=where, expected="a 1-based column number or a header name",
                     remedy=f"write the map as {_EXAMPLE}")


@dataclass(frozen=True)
class RecordColumns:
    """Where a records file holds the animal, the contemporary group and the trait.

    Parameters
    ----------
    animal
        Column of the animal ID (number from 1, or header name).
    cg
        Column(s) of the contemporary group; several are combined (joined with ``:``).
    trait
        Column of the observation, or ``None``: every row is a record.
    missing
        Trait values that mean no observation (the row is not a record).

    Examples
    --------
    >>> m = parse_record_columns("animal=1, cg=6+8, trait=4", missing=["0"])
    >>> m.animal, m.cg, m.trait, m.missing
    (1, (6, 8), 4, ('0',))
    """

    animal: int | str = 1
    cg: tuple = (2,)
    trait: int | str | None = None
    missing: tuple = DEFAULT_MISSING

    def _names(self, path) -> tuple[tuple[str, ...], dict]:
        """The columns :func:`read_table` reads, and role -> column name(s) among them."""
        specs = {"animal": (self.animal,), "cg": tuple(self.cg)}
        if self.trait is not None:
            specs["trait"] = (self.trait,)
        csv = is_csv(path)
        named = [s for v in specs.values() for s in v if isinstance(s, str)]
        numbered = [s for v in specs.values() for s in v if isinstance(s, int)]
        if csv and numbered:
            raise InputError("a .csv records file names its columns by header", file=path,
                             value=numbered[0], expected="header names (animal, herd, ...)",
                             remedy="give the columns' header names in the map")
        if not csv and named:
            raise InputError("a whitespace records file has no header: its columns are "
                             "numbers", file=path, value=named[0],
                             expected="1-based column numbers",
                             remedy="give the columns' numbers in the map (animal=1,cg=2,...)"
                                    ", or use a .csv file with a header")
        if csv:
            names = tuple(dict.fromkeys(named))
            return names, {r: tuple(v) for r, v in specs.items()}
        width = max(numbered)
        names = tuple(f"column {k}" for k in range(1, width + 1))
        return names, {r: tuple(f"column {k}" for k in v) for r, v in specs.items()}

    def read(self, path) -> pd.DataFrame:
        """The records of ``path`` as :func:`bigeval.io.readers.read_records` gives them
        (``animal``, ``cg``, ``line``), through this map; ``attrs["missing_trait"]`` counts
        the rows left out for a missing trait value."""
        return self.rows(read_table(path, self.table_columns(path), kind="records"), path)

    def table_columns(self, path) -> tuple[str, ...]:
        """The columns to read (for a chunked reader: :mod:`bigeval.io.ooc`)."""
        return self._names(path)[0]

    def rows(self, df: pd.DataFrame, path) -> pd.DataFrame:
        """Records steps on a frame of :meth:`table_columns` (whole file or a chunk)."""
        _, roles = self._names(path)
        for col in roles["cg"]:
            empty = df[col].isin(UNKNOWN_PARENT).to_numpy()
            if empty.any():
                i = int(np.flatnonzero(empty)[0])
                raise InputError(
                    f"record has an empty or missing contemporary group ({col})", file=path,
                    line=int(df.at[i, "line"]), value=df.at[i, col],
                    expected="a contemporary-group code in every column of the group",
                    remedy="fill in the group or remove the record")
        cg = df[roles["cg"][0]]
        for col in roles["cg"][1:]:
            cg = cg + ":" + df[col]
        out = pd.DataFrame({"animal": df[roles["animal"][0]].to_numpy(),
                            "cg": cg.to_numpy(), "line": df["line"].to_numpy()})
        dropped = 0
        if "trait" in roles:
            value = df[roles["trait"][0]]
            numbers = pd.to_numeric(value, errors="coerce").to_numpy(np.float64)
            gone = missing_mask(value, self.missing)
            bad = ~gone & ~np.isfinite(numbers)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"records trait ({roles['trait'][0]}) is neither a number nor a "
                    f"missing-value code", file=path, line=int(df.at[i, "line"]),
                    value=df.at[i, roles["trait"][0]],
                    expected=f"a number, or one of the missing codes "
                             f"{', '.join(repr(m) for m in self.missing)}",
                    remedy="fix the value, or add its code to the missing codes "
                           f"({opt('inputs.records_missing')} CODE)")
            dropped = int(gone.sum())
            out = out[~gone].reset_index(drop=True)
        bad_id = out["animal"].isin(UNKNOWN_PARENT).to_numpy()
        if bad_id.any():
            i = int(np.flatnonzero(bad_id)[0])
            raise InputError("record has an empty or missing animal ID", file=path,
                             line=int(out.at[i, "line"]), value=out.at[i, "animal"],
                             expected="the animal's ID", remedy="fill in the ID or remove "
                             "the record")
        out.attrs["missing_trait"] = dropped
        return out


def missing_mask(values: pd.Series, codes) -> np.ndarray:
    """Which ``values`` (strings) are missing-value ``codes``: equal as text, or, for a code
    that is a number, equal as numbers (BLUPF90's 0 is 0, 0.0 and 0.00 alike).

    Examples
    --------
    >>> missing_mask(pd.Series(["0.0", "3", "NA", "0"]), ["0", "NA"]).tolist()
    [True, False, True, True]
    """
    gone = values.isin(list(codes)).to_numpy().copy()
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    for code in codes:
        try:
            number = float(code)
        except ValueError:
            continue
        if np.isfinite(number):
            gone |= numbers == number
    return gone


def parse_record_columns(spec, *, missing=None, where="--records-columns") -> RecordColumns:
    """A :class:`RecordColumns` from ``"animal=1,cg=6+8,trait=4"`` or a mapping
    ``{"animal": 1, "cg": [6, 8], "trait": 4}``; ``missing``: the trait's missing codes."""
    if isinstance(spec, RecordColumns):
        return spec
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, eq, val = part.partition("=")
            if not eq:
                raise InputError("a column map is role=column pairs", value=part, file=where,
                                 expected=_EXAMPLE, remedy=f"write the map as {_EXAMPLE}")
            items[key.strip()] = [v.strip() for v in re.split(r"\+", val)]
        spec = {k: (v if len(v) > 1 or k == "cg" else v[0]) for k, v in items.items()}
    if not isinstance(spec, dict):
        raise InputError("a column map is role=column pairs", value=spec, file=where,
                         expected=_EXAMPLE, remedy=f"write the map as {_EXAMPLE}")
    unknown = sorted(set(spec) - {"animal", "cg", "trait"})
    if unknown:
        raise InputError(f"unknown role {unknown[0]!r} in the column map", value=unknown[0],
                         file=where, expected="animal, cg, trait",
                         remedy="name the animal, contemporary-group and trait columns")
    if "animal" not in spec or "cg" not in spec:
        raise InputError("a column map names at least the animal and the contemporary group",
                         value=", ".join(spec), file=where, expected=_EXAMPLE,
                         remedy=f"write the map as {_EXAMPLE}")
    cg = spec["cg"] if isinstance(spec["cg"], (list, tuple)) else [spec["cg"]]
    codes = DEFAULT_MISSING if missing is None else tuple(str(m) for m in missing)
    return RecordColumns(animal=_spec(spec["animal"], "animal", where),
                         cg=tuple(_spec(c, "cg", where) for c in cg),
                         trait=None if spec.get("trait") is None else _spec(spec["trait"],
                                                                            "trait", where),
                         missing=codes)
