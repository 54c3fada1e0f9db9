"""Data preparation (methodology II.2.2): validation and renumbering.

Animals are renumbered 0..N-1 internally (the methodology's 1..N, shifted) and contemporary
groups 0..K-1. Animals that appear only as parents get their own founder rows. The internal
order is by generation (founders first), then by ID, so it does not depend on the order of
rows in the input files: parents always come before their progeny, and any permutation of
the input rows gives the same numbering. Results go back to the original IDs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bigeval import io
from bigeval._resources import check_dense
from bigeval.errors import InputError, opt
from bigeval.io.groups import pedigree_groups
from bigeval.io.readers import format_birth
from bigeval.linalg import cholesky_lower
from bigeval.pedigree import generations


@dataclass(frozen=True)
class Population:
    """A renumbered population, ready for the reliability engine.

    Attributes
    ----------
    ids
        Original animal IDs, indexed by internal number (length N).
    sire, dam
        Internal numbers of the parents, -1 when unknown (length N each); parents come
        before their progeny.
    generation
        0 for founders, 1 + the older parent's generation otherwise (length N).
    rec_animal, rec_cg
        Per record: the animal's internal number and the contemporary group's (0..K-1).
    cg_ids
        Original contemporary-group codes, indexed by internal number (length K).
    genotyped
        Internal numbers of the genotyped animals in the genotyped file's order, or None.
    interbull_animal, interbull_value
        Interbull bulls' internal numbers and their value (reliability or ERC), or None.
    ginv, a22inv
        Dense G⁻¹ and A22⁻¹ in the order of ``genotyped``, or None.
    """

    ids: np.ndarray
    sire: np.ndarray
    dam: np.ndarray
    generation: np.ndarray
    rec_animal: np.ndarray
    rec_cg: np.ndarray
    cg_ids: np.ndarray
    genotyped: np.ndarray | None = None
    interbull_animal: np.ndarray | None = None
    interbull_value: np.ndarray | None = None
    ginv: np.ndarray | None = field(default=None, repr=False)
    a22inv: np.ndarray | None = field(default=None, repr=False)
    #: rows of the records file left out for a missing trait value (a column map's trait)
    missing_trait: int = 0
    #: unknown parent groups of the pedigree (bigeval.groups.PedigreeGroups), or None; for
    #: the reliability method a parent that is a group is unknown (b = 0)
    groups: object = field(default=None, repr=False)

    @property
    def n_animals(self) -> int:
        return len(self.ids)

    @property
    def n_cg(self) -> int:
        return len(self.cg_ids)

    @property
    def n_records(self) -> int:
        return len(self.rec_animal)


def _line_of(df: pd.DataFrame, mask: np.ndarray) -> tuple[int, int]:
    i = int(np.flatnonzero(mask)[0])
    return i, int(df["line"].iat[i])


def _in_both(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The values in both ``a`` and ``b``, sorted: :func:`numpy.intersect1d` by hashing (it
    sorts both arrays of strings: seconds at a million parents).

    >>> _in_both(np.array(["b", "a", "c", "a"], dtype=object), np.array(["c", "a", "d"])).tolist()
    ['a', 'c']
    """
    ua, ub = pd.unique(a), pd.unique(b)
    both = ub[pd.Series(ub, dtype=object).isin(ua).to_numpy()]
    return np.sort(both.astype(object)) if len(both) else both


def renumber_pedigree(ped: pd.DataFrame, *, path=None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Validate a pedigree frame from :func:`bigeval.io.read_pedigree` and renumber it.

    Returns
    -------
    ids, sire, dam, generation
        Original IDs by internal number; parents' internal numbers (-1 unknown); generations.
    """
    animal = ped["animal"].to_numpy()
    sire = ped["sire"].to_numpy()
    dam = ped["dam"].to_numpy()
    line = ped["line"].to_numpy()
    birth = ped["birth"].to_numpy() if "birth" in ped else None
    # An animal listed as its own parent.
    for col, name in ((sire, "sire"), (dam, "dam")):
        bad = col == animal
        if bad.any():
            i, ln = _line_of(ped, bad)
            raise InputError(f"animal is its own {name}", file=path, line=ln,
                             value=animal[i], expected=f"a {name} other than the animal itself",
                             remedy=f"correct the {name} of this animal (0 if unknown)")
    same = (sire == dam) & (sire != "")
    if same.any():
        i, ln = _line_of(ped, same)
        raise InputError("the same animal is given as sire and as dam", file=path, line=ln,
                         value=f"{animal[i]} {sire[i]} {dam[i]}",
                         expected="different animals as sire and dam",
                         remedy="correct one of the parents (an animal has one sex)")
    # Duplicated rows: identical ones are dropped, conflicting ones are an error.
    dup = pd.Series(animal).duplicated(keep=False).to_numpy()
    if dup.any():
        cols = ["animal", "sire", "dam"] + (["birth"] if birth is not None else [])
        sub = ped.loc[dup, cols + ["line"]]
        nuniq = sub.groupby("animal", sort=False)[cols[1:]].nunique()
        conflict = nuniq.index[(nuniq > 1).any(axis=1).to_numpy()]
        if len(conflict):
            rows = sub[sub["animal"] == conflict[0]]
            lines = rows["line"].tolist()
            shown = rows[cols + ["line"]].assign(
                sire=rows["sire"].replace("", "0"), dam=rows["dam"].replace("", "0"))
            if birth is not None:
                shown["birth"] = [format_birth(b) if b > 0 else "0" for b in rows["birth"]]
            raise InputError(
                f"animal has conflicting pedigree rows ({len(conflict)} such animal(s))",
                file=path, line=int(lines[1]),
                value="; ".join(f"line {r[-1]}: " + " ".join(str(x) for x in r[:-1])
                                for r in shown.itertuples(index=False)),
                expected="one row per animal (identical repeated rows are accepted)",
                remedy="keep the correct row and delete the others")
        keep = ~pd.Series(animal).duplicated(keep="first").to_numpy()
        animal, sire, dam, line = animal[keep], sire[keep], dam[keep], line[keep]
        if birth is not None:
            birth = birth[keep]
    both = _in_both(sire[sire != ""], dam[dam != ""])
    if len(both):
        i = int(np.flatnonzero(dam == both[0])[0])
        j = int(np.flatnonzero(sire == both[0])[0])
        raise InputError(
            "animal is used both as a sire and as a dam", file=path, line=int(line[i]),
            value=f"{both[0]} (sire on line {line[j]}, dam on line {line[i]})"
                  + (f"; {len(both)} such animals" if len(both) > 1 else ""),
            expected="each parent used only as a sire or only as a dam",
            remedy="correct the parent that has the wrong sex")
    if birth is not None:
        _check_birth_order(animal, sire, dam, line, birth, path)
    # Codes sorted by ID: code order is ID order, independent of the row order.
    codes, uniques = pd.factorize(np.concatenate([animal, sire, dam]), sort=True)
    n_rows = len(animal)
    a_c, s_c, d_c = codes[:n_rows], codes[n_rows:2 * n_rows], codes[2 * n_rows:]
    empty = np.flatnonzero(uniques == "")
    if len(empty):
        # "" (unknown) sorts first: drop it and shift the others down.
        e = int(empty[0])
        uniques = np.delete(uniques, e)
        a_c = np.where(a_c > e, a_c - 1, a_c)
        s_c = np.where(s_c == e, -1, np.where(s_c > e, s_c - 1, s_c))
        d_c = np.where(d_c == e, -1, np.where(d_c > e, d_c - 1, d_c))
    n = len(uniques)
    sire_c = np.full(n, -1, dtype=np.int64)
    dam_c = np.full(n, -1, dtype=np.int64)
    sire_c[a_c] = s_c
    dam_c[a_c] = d_c
    try:
        gen = generations(sire_c, dam_c)
    except InputError as exc:
        involved = getattr(exc, "animals", None)
        involved = [] if involved is None else list(involved)
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[a_c] = np.arange(n_rows)
        rows = sorted((int(row_of[i]) for i in involved if row_of[i] >= 0),
                      key=lambda r: line[r])
        shown = [f"{animal[r]} (line {line[r]}: sire {sire[r] or 0}, dam {dam[r] or 0})"
                 for r in rows[:10]]
        raise InputError(
            f"the pedigree has a loop: {len(involved)} animal(s) are their own ancestors",
            file=path, line=int(line[rows[0]]) if rows else None,
            value="; ".join(shown) + (f"; and {len(rows) - 10} more" if len(rows) > 10 else "")
            if shown else None,
            expected="every animal younger than its parents (no animal its own ancestor)",
            remedy="correct the sire or dam of one of the animals listed (often a swapped "
                   "or reused ID)") from None
    order = np.lexsort((np.arange(n), gen))  # by generation, then by ID
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    ids = np.asarray(uniques, dtype=object)[order]
    sire_new = sire_c[order]
    dam_new = dam_c[order]
    sire_new = np.where(sire_new >= 0, rank[np.maximum(sire_new, 0)], -1)
    dam_new = np.where(dam_new >= 0, rank[np.maximum(dam_new, 0)], -1)
    return ids, sire_new, dam_new, gen[order].astype(np.int32)


def _check_birth_order(animal, sire, dam, line, birth, path) -> None:
    """An error for a parent born after its progeny (both birth dates known).

    Dates are compared by year when either of the two is a bare year, otherwise by day.
    """
    pos = pd.Index(animal).get_indexer
    for parents, name in ((sire, "sire"), (dam, "dam")):
        p = pos(parents)
        ok = (p >= 0) & (birth > 0)
        ok[ok] &= birth[p[ok]] > 0
        if not ok.any():
            continue
        kid = birth[ok]
        par = birth[p[ok]]
        by_year = (kid % 10000 == 0) | (par % 10000 == 0)
        late = np.where(by_year, par // 10000 > kid // 10000, par > kid)
        if late.any():
            rows = np.flatnonzero(ok)[late]
            i = int(rows[np.argmin(line[rows])])
            j = int(p[i])
            raise InputError(
                f"{name} is born after its progeny ({len(rows)} such row(s))",
                file=path, line=int(line[i]),
                value=f"{animal[i]} born {format_birth(birth[i])} (line {line[i]}), its "
                      f"{name} {animal[j]} born {format_birth(birth[j])} (line {line[j]})",
                expected="parents born before their progeny",
                remedy=f"correct the birth date of the animal or of its {name}, or the {name} "
                       "itself (a wrong or reused ID)")


def single_record_groups(pop: Population) -> pd.DataFrame:
    """Contemporary groups that hold a single record, with the animal of that record.

    A record alone in its group carries no information on the animal (its ERC is
    1 − 1/n_k = 0): the group absorbs it. Returns a frame with columns ``cg`` and ``animal``
    (original codes and IDs), sorted by group.

    Examples
    --------
    >>> import numpy as np
    >>> pop = Population(ids=np.array(["a", "b"], dtype=object), sire=np.array([-1, -1]),
    ...                  dam=np.array([-1, -1]), generation=np.array([0, 0]),
    ...                  rec_animal=np.array([0, 1, 0]), rec_cg=np.array([0, 0, 1]),
    ...                  cg_ids=np.array(["h1", "h2"], dtype=object))
    >>> single_record_groups(pop).to_dict("records")
    [{'cg': 'h2', 'animal': 'a'}]
    """
    size = np.bincount(pop.rec_cg, minlength=pop.n_cg)
    alone = np.flatnonzero(size[pop.rec_cg] == 1)
    alone = alone[np.argsort(pop.rec_cg[alone], kind="stable")]
    return pd.DataFrame({"cg": np.asarray(pop.cg_ids, dtype=object)[pop.rec_cg[alone]],
                         "animal": np.asarray(pop.ids, dtype=object)[pop.rec_animal[alone]]})


def _lookup(index: pd.Index, df: pd.DataFrame, column: str, *, path, kind: str,
            what: str = "the pedigree") -> np.ndarray:
    pos = index.get_indexer(df[column])
    bad = pos < 0
    if bad.any():
        i, line = _line_of(df, bad)
        n_bad = int(bad.sum())
        raise InputError(
            f"{kind} animal is not in {what}"
            + (f" ({n_bad} rows of this file are affected)" if n_bad > 1 else ""),
            file=path, line=line, value=df[column].iat[i],
            expected=f"an animal of {what}",
            remedy=f"add the animal to {what} (IDs must agree across files) or remove the row")
    return pos.astype(np.int64)


def _dense_from_triplets(df: pd.DataFrame, gindex: pd.Index, *, path, kind: str) -> np.ndarray:
    i = _lookup(gindex, df, "animal1", path=path, kind=kind, what="the genotyped list")
    j = _lookup(gindex, df, "animal2", path=path, kind=kind, what="the genotyped list")
    v = df["value"].to_numpy()
    ng = len(gindex)
    check_dense(ng, copies=3, what=f"{kind} for {ng:,} genotyped animals")
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    key = lo * ng + hi
    order = np.argsort(key, kind="stable")
    ks, vs = key[order], v[order]
    same = np.flatnonzero(ks[1:] == ks[:-1])
    if len(same):
        differ = same[vs[same] != vs[same + 1]]
        if len(differ):
            r1, r2 = order[differ[0]], order[differ[0] + 1]
            raise InputError(
                f"{kind} gives two different values for the same pair", file=path,
                line=int(df["line"].iat[r2]),
                value=f"{df['animal1'].iat[r2]} {df['animal2'].iat[r2]}: "
                      f"{vs[differ[0] + 1]} vs {vs[differ[0]]} (line {df['line'].iat[r1]})",
                expected="each pair once (lower triangle), or repeated with the same value",
                remedy="remove the conflicting entry")
    m = np.zeros((ng, ng))
    m[lo, hi] = v
    m[hi, lo] = v
    return m


def prepare(
    pedigree: str | os.PathLike,
    records: str | os.PathLike | None = None,
    *,
    genotyped: str | os.PathLike | None = None,
    interbull: str | os.PathLike | None = None,
    ginv: str | os.PathLike | None = None,
    a22inv: str | os.PathLike | None = None,
    interbull_kind: str | None = None,
    record_columns=None,
    groups=None,
) -> Population:
    """Read, validate and renumber the input files into a :class:`Population`.

    Nothing is written; any problem raises :class:`bigeval.InputError` naming the file, line
    and value. With ``interbull_kind`` (``"reliability"`` or ``"erc"``) the Interbull values
    are checked against it here, with their lines. ``record_columns``
    (:class:`bigeval.io.columns.RecordColumns`) says which columns of the records file hold
    the animal, the contemporary group and the trait (default: ``animal cg``). ``groups``:
    which parent codes are unknown parent groups (:func:`bigeval.groups.group_mask`; default
    negative integers): they are no animals, and the parent is unknown.
    """
    ped = io.read_pedigree(pedigree, groups=groups)
    ids, sire, dam, gen = renumber_pedigree(ped, path=pedigree)
    pg = pedigree_groups(ped, ids, path=pedigree)
    index = pd.Index(ids)
    missing_trait = 0
    if records is not None:
        rec = io.read_records(records) if record_columns is None else \
            record_columns.read(records)
        missing_trait = int(rec.attrs.get("missing_trait", 0))
        rec_animal = _lookup(index, rec, "animal", path=records, kind="records")
        cg_codes, cg_ids = pd.factorize(rec["cg"], sort=True)
        rec_cg = cg_codes.astype(np.int64)
        cg_ids = np.asarray(cg_ids, dtype=object)
    else:
        rec_animal = np.zeros(0, dtype=np.int64)
        rec_cg = np.zeros(0, dtype=np.int64)
        cg_ids = np.zeros(0, dtype=object)
    extras = prepare_extras(index, genotyped=genotyped, interbull=interbull, ginv=ginv,
                            a22inv=a22inv, interbull_kind=interbull_kind)
    return Population(ids=ids, sire=sire, dam=dam, generation=gen, rec_animal=rec_animal,
                      rec_cg=rec_cg, cg_ids=cg_ids, missing_trait=missing_trait, groups=pg,
                      **extras)


def _check_positive_definite(dense: np.ndarray, path, what: str, ids) -> None:
    """A relationship inverse read from triplets must be positive definite (a singular or
    indefinite one is no inverse of a relationship matrix: the methods would run on it and
    publish values without meaning). One Cholesky factorisation of a copy."""
    cholesky_lower(np.asfortranarray(dense), what=f"{what} (from {os.path.basename(path)})",
                   file=path, ids=np.asarray(ids),
                   remedy=f"check that the file holds {what} itself, complete (both "
                          "triangles' values once, lower triangle), for the animals of the "
                          "genotyped list; G must be blended or tuned to be invertible")


def prepare_extras(index: pd.Index, *, genotyped=None, interbull=None, ginv=None,
                   a22inv=None, interbull_kind: str | None = None) -> dict:
    """Read and check the genotyped list, Interbull bulls and G⁻¹/A22⁻¹ against ``index``.

    ``index`` holds pedigree IDs: all of them (:func:`prepare`), or only those the genotyped
    and Interbull files name (the out-of-core path, :mod:`bigeval.prepare.ooc`); the animals
    returned are positions in it. Returns the keyword arguments ``genotyped``,
    ``interbull_animal``, ``interbull_value``, ``ginv``, ``a22inv`` of :class:`Population`.
    """
    g_idx = None
    if genotyped is not None:
        gdf = io.read_genotyped(genotyped)
        dup = gdf["animal"].duplicated().to_numpy()
        if dup.any():
            i, line = _line_of(gdf, dup)
            raise InputError("genotyped animal is listed twice", file=genotyped, line=line,
                             value=gdf["animal"].iat[i], expected="each animal once",
                             remedy="delete the repeated line")
        g_idx = _lookup(index, gdf, "animal", path=genotyped, kind="genotyped")
    ib_animal = ib_value = None
    if interbull is not None:
        ib = io.read_interbull(interbull, kind=interbull_kind)
        dup = ib["animal"].duplicated().to_numpy()
        if dup.any():
            i, line = _line_of(ib, dup)
            raise InputError("Interbull bull is listed twice", file=interbull, line=line,
                             value=ib["animal"].iat[i], expected="each bull once",
                             remedy="keep one line per bull (the current MACE run)")
        ib_animal = _lookup(index, ib, "animal", path=interbull, kind="interbull")
        ib_value = ib["value"].to_numpy()
    g_dense = a22_dense = None
    if (ginv is None) != (a22inv is None):
        raise InputError("G⁻¹ and A22⁻¹ must be given together", file=ginv or a22inv,
                         remedy=f"give both {opt('inputs.ginv')} and {opt('inputs.a22inv')}, or "
                                "neither")
    if ginv is not None:
        if g_idx is None:
            raise InputError("G⁻¹ and A22⁻¹ need the list of genotyped animals", file=ginv,
                             remedy=f"give {opt('inputs.genotyped')} FILE as well")
        gindex = pd.Index(index[g_idx])
        g_dense = _dense_from_triplets(io.read_triplets(ginv, kind="G⁻¹ triplet"), gindex,
                                       path=ginv, kind="G⁻¹ triplet")
        a22_dense = _dense_from_triplets(io.read_triplets(a22inv, kind="A22⁻¹ triplet"), gindex,
                                         path=a22inv, kind="A22⁻¹ triplet")
        for dense, path, what in ((g_dense, ginv, "G⁻¹"), (a22_dense, a22inv, "A22⁻¹")):
            _check_positive_definite(dense, path, what, gindex)
    return dict(genotyped=g_idx, interbull_animal=ib_animal, interbull_value=ib_value,
                ginv=g_dense, a22inv=a22_dense)
