"""Unknown parent groups in a pedigree's parent columns: which codes are groups, and each
animal's sire and dam group (the reading side; the equations are :mod:`bigeval.groups`).

Which codes are groups: negative integers (BLUPF90's convention,
:data:`bigeval.defaults.GROUP_CODES`) unless a regular expression or a list of codes is
declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bigeval.defaults import GROUP_CODES
from bigeval.errors import InputError

__all__ = ["PedigreeGroups", "group_mask", "order_groups", "pedigree_groups", "split_groups"]

_EXPECTED = ("a regular expression (e.g. \"^G\" or \"^-[0-9]+$\") or a list of group codes; "
             "false for none")


def group_mask(values, groups=None, *, file=None) -> np.ndarray:
    """Which of ``values`` (strings) are group codes.

    ``groups``: None for the default (negative integers, :data:`bigeval.defaults.GROUP_CODES`),
    a regular expression (searched in each code), a list of codes, or False / "" for none.

    >>> group_mask(["-1", "17", "", "-20"]).tolist()
    [True, False, False, True]
    >>> group_mask(["G1", "17"], "^G").tolist(), group_mask(["9", "10"], ["10"]).tolist()
    ([True, False], [False, True])
    """
    v = pd.Series(np.asarray(values, dtype=object)).astype(str)
    if groups is False or groups == "" or (isinstance(groups, (list, tuple)) and not groups):
        return np.zeros(len(v), dtype=bool)
    if groups is None or groups is True:
        groups = GROUP_CODES
    if isinstance(groups, str):
        try:
            rx = re.compile(groups)
        except re.error as exc:
            raise InputError(f"group codes: not a regular expression ({exc})", file=file,
                             value=groups, expected=_EXPECTED,
                             remedy="correct the pattern") from None
        return _search(v, rx)
    if isinstance(groups, (list, tuple, set, np.ndarray)):
        return (v.isin([str(g) for g in groups]) & (v != "")).to_numpy()
    raise InputError("group codes: not a pattern or a list", file=file, value=groups,
                     expected=_EXPECTED, remedy="give a pattern or a list of codes")


def _search(v: pd.Series, rx: re.Pattern) -> np.ndarray:
    """``rx.search`` on every non-empty string of ``v``, vectorised: Arrow's regular
    expressions where they can take the pattern (RE2), else Python's on the distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    empty = (v == "").to_numpy()
    try:
        found = pc.match_substring_regex(pa.array(v.to_numpy(object), type=pa.string()),
                                         rx.pattern).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a pattern RE2 does not take
        codes, uniques = pd.factorize(v)
        hit = np.array([rx.search(x) is not None for x in uniques], dtype=bool)
        found = hit[codes] if len(codes) else np.zeros(0, bool)
    return np.asarray(found, dtype=bool) & ~empty


def split_groups(df: pd.DataFrame, path=None, groups=None) -> pd.DataFrame:
    """A pedigree frame (columns animal, sire, dam, line; unknown ``""``) with its group codes
    taken out of the parent columns.

    The parents that are groups become unknown (``""``) in ``sire``/``dam`` and their codes go
    to new columns ``sire_group``/``dam_group`` (``""`` where none). A row of a group itself
    (the methodology's "groups have their own rows with both parents 0") is dropped; a group
    row with a known parent is an error. A pedigree without groups comes back as it is.
    """
    out = df
    ms = group_mask(df["sire"].to_numpy(), groups, file=path)
    md = group_mask(df["dam"].to_numpy(), groups, file=path)
    own = group_mask(df["animal"].to_numpy(), groups, file=path)
    if not (ms.any() or md.any() or own.any()):
        return df
    out["sire_group"] = np.where(ms, df["sire"].to_numpy(dtype=object), "")
    out["dam_group"] = np.where(md, df["dam"].to_numpy(dtype=object), "")
    if ms.any():
        out["sire"] = df["sire"].where(~ms, "")
    if md.any():
        out["dam"] = df["dam"].where(~md, "")
    if own.any():
        bad = own & ((out["sire"] != "") | (out["dam"] != "")).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError("a genetic group's pedigree row has a known parent", file=path,
                             line=int(out["line"].iat[i]), value=out["animal"].iat[i],
                             expected="a group code with both parents unknown (0), or no "
                                      "row at all",
                             remedy="give the group both parents 0, or check which codes are "
                                    "declared as groups")
        out = out.loc[~own].reset_index(drop=True)
    return out


def order_groups(codes) -> np.ndarray:
    """Group codes sorted: integers by their absolute value (-1, -2, ..., -10), others as
    text."""
    codes = np.asarray(sorted(set(codes)), dtype=object)
    try:
        key = np.array([abs(int(c)) for c in codes])
    except ValueError:
        return codes
    return codes[np.argsort(key, kind="stable")]


@dataclass(frozen=True)
class PedigreeGroups:
    """The groups of a renumbered pedigree.

    codes : group codes (group number g = position); sire, dam : per animal (internal
    numbers) the group number of its sire or dam, -1 where that parent is an animal or
    unknown.
    """

    codes: np.ndarray
    sire: np.ndarray
    dam: np.ndarray

    @property
    def n_groups(self) -> int:
        return len(self.codes)

    def counts(self) -> np.ndarray:
        """How many animals have each group as a parent (an animal with the group as sire
        and as dam counts once)."""
        n = np.zeros(self.n_groups, dtype=np.int64)
        for g in range(self.n_groups):
            n[g] = int(((self.sire == g) | (self.dam == g)).sum())
        return n

    def summary(self, limit: int = 10) -> str:
        """One line: how many groups, and the animals pointing to each (the first ``limit``)."""
        c = self.counts()
        parts = [f"{code} {int(k):,}" for code, k in zip(self.codes[:limit], c[:limit])]
        more = f", and {self.n_groups - limit} more" if self.n_groups > limit else ""
        return (f"{self.n_groups:,} unknown parent group(s) in the pedigree, not animals "
                f"(animals with a parent in each: {', '.join(parts)}{more})")


def pedigree_groups(ped: pd.DataFrame, ids, *, path=None) -> PedigreeGroups | None:
    """Group numbers of the parents of the renumbered animals ``ids`` from the columns that
    :func:`split_groups` added to ``ped``; None when the pedigree has no groups."""
    if "sire_group" not in ped:
        return None
    sg = ped["sire_group"].to_numpy(dtype=object)
    dg = ped["dam_group"].to_numpy(dtype=object)
    used = [c for c in np.concatenate([sg, dg]) if c != ""]
    if not used:
        return None
    codes = order_groups(used)
    gidx = pd.Index(codes)
    pos = pd.Index(np.asarray(ids, dtype=object)).get_indexer(ped["animal"].to_numpy())
    n = len(ids)
    out = []
    for col, name in ((sg, "sire"), (dg, "dam")):
        g = np.where(col != "", gidx.get_indexer(col), -1)
        per = np.full(n, -1, dtype=np.int64)
        per[pos] = g
        back = per[pos]
        bad = back != g  # repeated rows of one animal with different groups
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"animal has conflicting pedigree rows (two {name} groups)",
                             file=path, line=int(ped["line"].iat[i]),
                             value=f"{ped['animal'].iat[i]}: {col[i]}",
                             expected="one row per animal", remedy="keep the correct row")
        out.append(per)
    return PedigreeGroups(codes, out[0], out[1])
