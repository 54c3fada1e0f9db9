"""Out-of-core preparation and reliability run: national pedigrees in bounded memory.

The in-memory path (:func:`bigeval.prepare.prepare`) holds every ID as a Python string and
looks them up in hash maps of strings: about 1 KiB per animal, 10 GiB and more for a
10-million-animal pedigree. Here the files are read in blocks (:class:`bigeval.io.ooc.ChunkReader`,
same rules and errors as the whole-file readers), IDs become fixed-width integer keys
(:func:`bigeval.io.ooc.pack_keys`), animals are renumbered by a radix sort of the keys and
looked up through an integer hash table, generations come from the numba Kahn pass of
:func:`bigeval.pedigree.generations`, and the renumbered arrays go to a Zarr work folder:

========================  ============================================================
``ids``                   keys of the animals' IDs by internal number, uint64 (nw, N)
``sire``, ``dam``         internal numbers of the parents, -1 unknown (N)
``generation``            generation of each animal (N)
``order``                 rank of each animal's ID among all IDs (N)
``rec_animal``, ``rec_cg`` per record: internal animal and group numbers (records)
``cg_ids``                keys of the contemporary-group codes, uint64 (nw, K)
``d0``                    the start vector (after :func:`start_vector_ooc`)
========================  ============================================================

The numbering, every array and every per-animal result equal the in-memory path's exactly
(same order by generation and ID, same floating-point operations in the same order), and bad
input raises the same error: the pedigree checks find the offending rows with array
operations, and the message is then made by :func:`bigeval.prepare.renumber_pedigree` run on
just those rows.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import zarr

from bigeval.errors import InputError, ResourceError
from bigeval.io import ooc, readers
from bigeval.pedigree import _kahn_generations, _order_by_generation
from bigeval.prepare import Population, _lookup, prepare_extras, renumber_pedigree
from bigeval.reliability.engine import check_published

#: Elements per chunk of the work folder's arrays (8 MiB of int64). They are stored
#: uncompressed: compressing them (zstd) made writing 9 times slower for ~30 % less disk.
ZARR_CHUNK = 1 << 20


class _Log:
    """Stage messages on stderr (when it is a terminal, or when asked)."""

    def __init__(self, enabled: bool | None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            sys.stderr.write(f"[out-of-core {time.perf_counter() - self.t0:7.1f} s] {msg}\n")
            sys.stderr.flush()


@dataclass(frozen=True)
class OocPopulation:
    """A population prepared out of core: the large arrays live in a Zarr work folder.

    Attributes
    ----------
    work
        The Zarr group's folder.
    n_animals, n_records, n_cg
        N, the number of records, K.
    genotyped, interbull_animal, interbull_value, ginv, a22inv
        As in :class:`bigeval.prepare.Population` (small; in memory).
    """

    work: Path
    n_animals: int
    n_records: int
    n_cg: int
    genotyped: np.ndarray | None = None
    interbull_animal: np.ndarray | None = None
    interbull_value: np.ndarray | None = None
    ginv: np.ndarray | None = field(default=None, repr=False)
    a22inv: np.ndarray | None = field(default=None, repr=False)
    #: rows of the records file left out for a missing trait value (a column map's trait)
    missing_trait: int = 0

    @property
    def group(self) -> zarr.Group:
        return zarr.open_group(self.work, mode="r+")

    def array(self, name: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """A work array (or its elements ``lo:hi`` along the last axis) in memory."""
        a = self.group[name]
        return a[..., lo:hi] if (lo is not None or hi is not None) else a[...]

    def ids(self, lo: int = 0, hi: int | None = None):
        """IDs of animals ``lo:hi`` (Arrow strings)."""
        return ooc.keys_to_strings(self.array("ids", lo, hi if hi is not None
                                              else self.n_animals))

    def ids_of(self, animals: np.ndarray) -> np.ndarray:
        """IDs of the given animals (a few) as a str array."""
        keys = self.group["ids"].oindex[:, np.asarray(animals, dtype=np.int64)]
        return np.asarray(ooc.keys_to_strings(keys).to_pylist(), dtype=object)

    def to_population(self) -> Population:
        """Everything in memory as a :class:`bigeval.prepare.Population` (small data, tests)."""
        ids = np.asarray(self.ids().to_pylist(), dtype=object)
        cg = self.group["cg_ids"][...]
        return Population(
            ids=ids, sire=self.array("sire"), dam=self.array("dam"),
            generation=self.array("generation"), rec_animal=self.array("rec_animal"),
            rec_cg=self.array("rec_cg"),
            cg_ids=np.asarray(ooc.keys_to_strings(cg).to_pylist(), dtype=object),
            genotyped=self.genotyped, interbull_animal=self.interbull_animal,
            interbull_value=self.interbull_value, ginv=self.ginv, a22inv=self.a22inv,
            missing_trait=self.missing_trait)


def _store(group: zarr.Group, name: str, data: np.ndarray) -> None:
    chunks = data.shape[:-1] + (min(ZARR_CHUNK, max(1, data.shape[-1])),)
    arr = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks,
                             compressors=None, overwrite=True)
    if data.size:
        arr[...] = data


def _check_nul(keys_nul: int, chunk: pd.DataFrame, column: str, path, kind: str) -> None:
    if keys_nul >= 0:
        raise InputError(f"{kind} {column} contains a NUL character", file=path,
                         line=int(chunk["line"].iat[keys_nul]),
                         value=chunk[column].iat[keys_nul],
                         remedy="remove the NUL bytes (the file is probably not text)")


def _check_disk(work: Path, *paths) -> None:
    """The work folder needs about as much disk as the input files; refuse early."""
    need = sum(Path(p).stat().st_size for p in paths if p is not None and Path(p).exists())
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    if free < need:
        raise ResourceError(
            f"not enough disk for the out-of-core work folder {work}: about {need / 2**30:.1f} "
            f"GiB needed, {free / 2**30:.1f} GiB free; choose another work folder "
            "(--work-dir) on a larger file system")


# ---------------------------------------------------------------------------------------------
# Pedigree


@dataclass
class _PedigreeRows:
    """The pedigree file's rows as keys (file order, blank lines dropped)."""

    animal: np.ndarray
    sire: np.ndarray
    dam: np.ndarray
    line: np.ndarray
    birth: np.ndarray | None


def _read_pedigree(path, chunk_rows: int, log: _Log) -> _PedigreeRows:
    reader = ooc.ChunkReader(path, readers.PEDIGREE_COLUMNS, kind="pedigree",
                             rows_fn=readers.pedigree_rows, chunk_rows=chunk_rows,
                             optional={"birth": readers.BIRTH_COLUMNS})
    cols = {"animal": [], "sire": [], "dam": []}
    lines, births = [], []
    has_birth = False
    n_bad = n_given = 0
    first_bad = None
    for chunk in reader:
        for c in cols:
            keys, nul = ooc.pack_keys(chunk[c])
            _check_nul(nul, chunk, c, path, "pedigree")
            cols[c].append(keys)
        lines.append(chunk["line"].to_numpy(np.int64))
        if "birth" in chunk:
            has_birth = True
            tokens = chunk["birth"].to_numpy()
            b = readers.parse_birth(tokens)
            bad = b < 0
            if bad.any() and first_bad is None:
                i = int(np.flatnonzero(bad)[0])
                first_bad = (int(chunk["line"].iat[i]), chunk["birth"].iat[i])
            n_bad += int(bad.sum())
            n_given += int((~chunk["birth"].isin(readers.UNKNOWN_PARENT)).sum())
            births.append(b)
        else:
            births.append(np.zeros(len(chunk), np.int64))
        log(f"pedigree: {reader.n_rows:,} rows read")
    keep_birth = has_birth and readers.birth_column_kept(n_bad, n_given, first_bad, path=path,
                                                         birth=None)
    rows = _PedigreeRows(animal=ooc.concat_keys(cols.pop("animal")),
                         sire=ooc.concat_keys(cols.pop("sire")),
                         dam=ooc.concat_keys(cols.pop("dam")),
                         line=np.concatenate(lines),
                         birth=np.concatenate(births) if keep_birth else None)
    nw = max(rows.animal.shape[0], rows.sire.shape[0], rows.dam.shape[0])
    rows.animal, rows.sire, rows.dam = (ooc.fit_keys(k, nw)[0]
                                        for k in (rows.animal, rows.sire, rows.dam))
    return rows


def _frame_of_rows(rows: _PedigreeRows, sel: np.ndarray) -> pd.DataFrame:
    """Rows ``sel`` (in file order) as the frame :func:`bigeval.io.read_pedigree` returns."""
    sel = np.sort(sel)
    df = pd.DataFrame({c: pd.Series(ooc.keys_to_strings(getattr(rows, c)[:, sel]).to_pylist(),
                                    dtype=str)
                       for c in ("animal", "sire", "dam")})
    df["line"] = rows.line[sel]
    if rows.birth is not None:
        df["birth"] = rows.birth[sel]
    return df


@numba.njit(cache=True)
def _first_row_per_code(code, row, n):  # pragma: no cover - numba
    """For each code 0..n-1, the smallest ``row`` among entries with that code (-1: none)."""
    out = np.full(n, -1, np.int64)
    for i in range(code.shape[0]):
        c = code[i]
        if c >= 0 and (out[c] < 0 or row[i] < out[c]):
            out[c] = row[i]
    return out


class IdLookup:
    """Pedigree ID keys → internal animal numbers, for records and lists.

    Holds a hash table over the animals with pedigree rows and one over the parents-only
    animals (integer keys only).
    """

    def __init__(self, animals: ooc.KeyIndex, animal_internal: np.ndarray,
                 parents: ooc.KeyIndex, parent_internal: np.ndarray):
        self.animals, self.animal_internal = animals, animal_internal
        self.parents, self.parent_internal = parents, parent_internal

    def get(self, keys: np.ndarray) -> np.ndarray:
        """Internal numbers (int64), -1 for IDs not in the pedigree."""
        pos = self.animals.get(keys)
        out = np.where(pos >= 0, self.animal_internal[np.maximum(pos, 0)], -1)
        miss = np.flatnonzero(pos < 0)
        if len(miss) and self.parents.keys.shape[1]:
            pp = self.parents.get(keys[:, miss])
            out[miss] = np.where(pp >= 0, self.parent_internal[np.maximum(pp, 0)], -1)
        return out


def renumber_pedigree_ooc(path, group: zarr.Group, *, chunk_rows: int = ooc.DEFAULT_CHUNK_ROWS,
                          log: _Log | None = None) -> tuple[int, IdLookup]:
    """Read, validate and renumber a pedigree file into ``group`` (``ids``, ``sire``, ``dam``,
    ``generation``, ``order``), as :func:`bigeval.prepare.renumber_pedigree` would.

    Returns
    -------
    n, lookup
        The number of animals and an :class:`IdLookup` from ID keys to internal numbers.
    """
    log = log or _Log(False)
    rows = _read_pedigree(path, chunk_rows, log)
    n_rows = len(rows.line)
    # Rows that break a rule; the whole-file checker then runs on just these rows.
    viol = np.zeros(n_rows, dtype=bool)
    known_s = ~ooc.is_empty_key(rows.sire)
    known_d = ~ooc.is_empty_key(rows.dam)
    viol |= ooc.keys_equal(rows.sire, rows.animal)
    viol |= ooc.keys_equal(rows.dam, rows.animal)
    viol |= ooc.keys_equal(rows.sire, rows.dam) & known_s
    # Duplicated animals: runs of equal keys in ID order (stable: first row first).
    u_keys, order, starts = ooc.sort_unique(rows.animal)
    n_a = u_keys.shape[1]
    size = np.diff(starts)
    kept = order[starts[:-1]]  # first row of each animal, animals in ID order
    if (size > 1).any():
        group_of = np.repeat(np.arange(n_a), size)
        member = np.flatnonzero(size[group_of] > 1)
        r, f = order[member], kept[group_of[member]]
        differs = ~(ooc.keys_equal(rows.sire[:, r], rows.sire[:, f])
                    & ooc.keys_equal(rows.dam[:, r], rows.dam[:, f]))
        if rows.birth is not None:
            differs |= rows.birth[r] != rows.birth[f]
        bad_groups = np.unique(group_of[member[differs]])
        if len(bad_groups):
            viol[order[np.isin(group_of, bad_groups)]] = True
        del group_of, member
    del order
    log(f"pedigree: {n_rows:,} rows, {n_a:,} animals with rows")
    # Parents: animals with rows, else parents-only animals (founders).
    a_index = ooc.KeyIndex(u_keys)
    s_keys, d_keys = rows.sire[:, kept], rows.dam[:, kept]
    s_pos, d_pos = a_index.get(s_keys), a_index.get(d_keys)
    s_only = (s_pos < 0) & known_s[kept]
    d_only = (d_pos < 0) & known_d[kept]
    p_keys = ooc.sort_unique(ooc.concat_keys([s_keys[:, s_only], d_keys[:, d_only]]))[0]
    del s_keys, d_keys
    all_keys, a2u, p2u = ooc.merge_sorted(u_keys, p_keys)
    del u_keys
    n = all_keys.shape[1]
    p_index = ooc.KeyIndex(p_keys)
    sire_c = np.full(n, -1, np.int64)
    dam_c = np.full(n, -1, np.int64)
    for out, pos, only, keys in ((sire_c, s_pos, s_only, rows.sire),
                                 (dam_c, d_pos, d_only, rows.dam)):
        code = np.where(pos >= 0, a2u[np.maximum(pos, 0)], -1)
        if only.any():
            code[only] = p2u[p_index.get(keys[:, kept[only]])]
        out[a2u] = code
    # An animal used both as a sire and as a dam: its first rows in either role.
    both = np.zeros(n, dtype=bool)
    both[sire_c[sire_c >= 0]] = True
    is_dam = np.zeros(n, dtype=bool)
    is_dam[dam_c[dam_c >= 0]] = True
    both &= is_dam
    del is_dam
    if both.any():
        for par in (sire_c[a2u], dam_c[a2u]):
            hit = (par >= 0) & both[np.maximum(par, 0)]
            first = _first_row_per_code(np.where(hit, par, -1), kept, n)
            viol[first[first >= 0]] = True
    # A parent born after its progeny (both dates known): the rows of both.
    if rows.birth is not None:
        b = rows.birth[kept]
        for pos in (s_pos, d_pos):
            ok = (pos >= 0) & (b > 0)
            ok[ok] &= b[pos[ok]] > 0
            kid, par = b[ok], b[pos[ok]]
            by_year = (kid % 10000 == 0) | (par % 10000 == 0)
            late = np.where(by_year, par // 10000 > kid // 10000, par > kid)
            if late.any():
                viol[kept[np.flatnonzero(ok)[late]]] = True
                viol[kept[pos[ok][late]]] = True
    del s_pos, d_pos
    # Generations (Kahn); animals left unplaced are on a loop or descend from one.
    gen = _kahn_generations(sire_c, dam_c)
    stuck = gen[a2u] < 0
    if stuck.any():
        viol[kept[stuck]] = True
    if viol.any():
        sub = _frame_of_rows(rows, np.flatnonzero(viol))
        renumber_pedigree(sub, path=path)  # raises the whole-file checker's error
        raise RuntimeError("out-of-core pedigree checks found a problem that "
                           "bigeval.prepare.renumber_pedigree does not: please report")
    del rows, viol
    log(f"pedigree: {n:,} animals ({n - n_a:,} only as parents), "
        f"{int(gen.max()) + 1 if n else 0} generations")
    # Order by generation, then by ID (= key order): a stable counting sort by generation.
    order = _order_by_generation(gen)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    sire_new = sire_c[order]
    dam_new = dam_c[order]
    del sire_c, dam_c
    sire_new = np.where(sire_new >= 0, rank[np.maximum(sire_new, 0)], -1)
    dam_new = np.where(dam_new >= 0, rank[np.maximum(dam_new, 0)], -1)
    _store(group, "ids", np.ascontiguousarray(all_keys[:, order]))
    del all_keys
    _store(group, "sire", sire_new)
    _store(group, "dam", dam_new)
    del sire_new, dam_new
    _store(group, "generation", gen[order].astype(np.int32))
    _store(group, "order", order)
    lookup = IdLookup(a_index, rank[a2u], p_index, rank[p2u])
    return n, lookup


# ---------------------------------------------------------------------------------------------
# Records, lists


def _records_ooc(path, group: zarr.Group, lookup: IdLookup, *, chunk_rows: int,
                 log: _Log, record_columns=None) -> tuple[int, int]:
    """Records into ``rec_animal``, ``rec_cg`` and ``cg_ids``; returns (records, groups).
    ``record_columns``: a :class:`bigeval.io.columns.RecordColumns` (default ``animal cg``)."""
    if record_columns is None:
        reader = ooc.ChunkReader(path, readers.RECORDS_COLUMNS, kind="records",
                                 rows_fn=readers.records_rows, chunk_rows=chunk_rows)
    else:
        reader = ooc.ChunkReader(path, record_columns.table_columns(path), kind="records",
                                 rows_fn=record_columns.rows, chunk_rows=chunk_rows)
    new = dict(shape=(0,), dtype=np.int64, chunks=(ZARR_CHUNK,), compressors=None,
               overwrite=True)
    rec_animal = group.create_array("rec_animal", **new)
    rec_cg = group.create_array("rec_cg", **new)
    bad_rows, cg_parts, sizes = [], [], []
    missing_trait = 0
    for chunk in reader:
        missing_trait += int(chunk.attrs.get("missing_trait", 0))
        keys, _ = ooc.pack_keys(chunk["animal"])
        animal = lookup.get(keys)
        bad = animal < 0
        if bad.any():
            bad_rows.append(chunk.loc[bad, ["animal", "line"]])
        cg_keys, nul = ooc.pack_keys(chunk["cg"])
        _check_nul(nul, chunk, "cg", path, "records")
        cu, corder, cstarts = ooc.sort_unique(cg_keys)
        local = np.empty(len(chunk), np.int64)
        local[corder] = np.repeat(np.arange(cu.shape[1]), np.diff(cstarts))
        rec_animal.append(animal)
        rec_cg.append(local)
        cg_parts.append(cu)
        sizes.append(len(chunk))
        log(f"records: {reader.n_rows:,} rows read")
    if bad_rows:
        bad = pd.concat(bad_rows, ignore_index=True)
        _lookup(pd.Index([], dtype=object), bad, "animal", path=path, kind="records")
    # Contemporary groups numbered in code order, as pandas.factorize(sort=True) does.
    cg_all = ooc.concat_keys(cg_parts)
    cg_keys, gorder, gstarts = ooc.sort_unique(cg_all)
    to_global = np.empty(cg_all.shape[1], np.int64)
    to_global[gorder] = np.repeat(np.arange(cg_keys.shape[1]), np.diff(gstarts))
    lo = part_lo = 0
    for m, cu in zip(sizes, cg_parts):
        rec_cg[lo : lo + m] = to_global[part_lo : part_lo + cu.shape[1]][rec_cg[lo : lo + m]]
        lo += m
        part_lo += cu.shape[1]
    _store(group, "cg_ids", cg_keys)
    group.attrs["missing_trait"] = missing_trait
    return lo, cg_keys.shape[1]


def _list_index(path, reader, lookup: IdLookup, ids: list, internal: list) -> None:
    """Add the pedigree animals a (small) list file names to ``ids``/``internal``."""
    df = reader(path)
    keys, _ = ooc.pack_keys(df["animal"])
    found = lookup.get(keys)
    ok = found >= 0
    ids.extend(df["animal"].to_numpy()[ok].tolist())
    internal.extend(found[ok].tolist())


def _small_index(ids: list, internal: list) -> tuple[pd.Index, np.ndarray]:
    frame = pd.DataFrame({"id": pd.Series(ids, dtype=object), "k": internal})
    frame = frame.drop_duplicates("id")
    return pd.Index(frame["id"].to_numpy(dtype=object)), frame["k"].to_numpy(np.int64)


def prepare_ooc(
    pedigree: str | os.PathLike,
    records: str | os.PathLike | None = None,
    *,
    work: str | os.PathLike,
    genotyped: str | os.PathLike | None = None,
    interbull: str | os.PathLike | None = None,
    ginv: str | os.PathLike | None = None,
    a22inv: str | os.PathLike | None = None,
    interbull_kind: str | None = None,
    chunk_rows: int = ooc.DEFAULT_CHUNK_ROWS,
    progress: bool | None = None,
    record_columns=None,
) -> OocPopulation:
    """Read, validate and renumber the input files into a Zarr work folder, in blocks.

    The out-of-core twin of :func:`bigeval.prepare.prepare`: the same checks and errors, the
    same numbering; ``OocPopulation.to_population()`` equals ``prepare(...)`` exactly.

    Parameters
    ----------
    work
        The work folder (a Zarr group; created, or overwritten).
    chunk_rows
        Rows read per block; memory for reading grows with it (~100 MB per million rows).
    progress
        Stage messages on stderr; default: when stderr is a terminal.

    Notes
    -----
    Memory is about 100 bytes per pedigree row (ID keys, then the renumbering's integer
    arrays) plus the reading blocks; records are streamed to the work folder. The
    genotyped and Interbull lists are read whole (they are small).
    """
    log = _Log(progress)
    work = Path(work)
    if work.exists() and any(work.iterdir()) and not (work / "zarr.json").exists():
        raise InputError("the work folder exists and is not a bigeval work folder", file=work,
                         remedy="give a new or empty folder (it is overwritten)")
    _check_disk(work.parent if not work.exists() else work, pedigree, records)
    group = zarr.open_group(work, mode="w")
    n, lookup = renumber_pedigree_ooc(pedigree, group, chunk_rows=chunk_rows, log=log)
    n_rec = n_cg = 0
    if records is not None:
        n_rec, n_cg = _records_ooc(records, group, lookup, chunk_rows=chunk_rows, log=log,
                                   record_columns=record_columns)
    else:
        for name in ("rec_animal", "rec_cg"):
            _store(group, name, np.zeros(0, np.int64))
        _store(group, "cg_ids", np.zeros((1, 0), np.uint64))
    log(f"records: {n_rec:,} records in {n_cg:,} contemporary groups")
    # Genotyped and Interbull lists: the in-memory checks, against an index of only the
    # pedigree IDs they name (the checks run in prepare's order: genotyped first).
    ids, internal = [], []
    extras = dict(genotyped=None, interbull_animal=None, interbull_value=None, ginv=None,
                  a22inv=None)
    if genotyped is not None:
        _list_index(genotyped, readers.read_genotyped, lookup, ids, internal)
        index, _ = _small_index(ids, internal)
        prepare_extras(index, genotyped=genotyped)
    if interbull is not None:
        _list_index(interbull, readers.read_interbull, lookup, ids, internal)
    if genotyped is not None or interbull is not None or ginv is not None or a22inv is not None:
        index, to_internal = _small_index(ids, internal)
        extras = prepare_extras(index, genotyped=genotyped, interbull=interbull, ginv=ginv,
                                a22inv=a22inv, interbull_kind=interbull_kind)
        for name in ("genotyped", "interbull_animal"):
            if extras[name] is not None:
                extras[name] = to_internal[extras[name]]
    group.attrs.update(n_animals=n, n_records=n_rec, n_cg=n_cg)
    return OocPopulation(work=work, n_animals=n, n_records=n_rec, n_cg=n_cg,
                         missing_trait=int(group.attrs.get("missing_trait", 0)), **extras)


# ---------------------------------------------------------------------------------------------
# Start vector, run, output


@numba.njit(cache=True)
def _scatter_add(z, index, weights):  # pragma: no cover - numba
    """z[index[i]] += weights[i] in order: numpy.bincount's sums, bit for bit."""
    for i in range(index.shape[0]):
        z[index[i]] += weights[i]


def _record_blocks(pop: OocPopulation):
    g = pop.group
    a, c = g["rec_animal"], g["rec_cg"]
    for lo in range(0, pop.n_records, ZARR_CHUNK):
        hi = min(lo + ZARR_CHUNK, pop.n_records)
        yield a[lo:hi], c[lo:hi]


def start_vector_ooc(pop: OocPopulation, opts, *, interbull_source=None) -> np.ndarray:
    """d⁰ from the work folder's records, block by block; equals
    :func:`bigeval.reliability.engine.start_vector` on the same population exactly.

    Group sizes are counted in one pass, the ERC summed in a second (in record order, as
    :func:`numpy.bincount` sums). The Tier & Meyer adjustment needs each group's records
    together and reads the record arrays whole.
    """
    from bigeval.reliability import erc

    n = pop.n_animals
    if opts.sib_adjust:
        d0 = erc.own_record_erc(n, pop.array("rec_animal"), pop.array("rec_cg"), pop.n_cg,
                                sire=pop.array("sire"), dam=pop.array("dam"),
                                sib_adjust=True, tau=opts.tau)
    else:
        counts = np.zeros(pop.n_cg, np.int64)
        for _, cg in _record_blocks(pop):
            counts += np.bincount(cg, minlength=pop.n_cg)
        n_k = counts.astype(np.float64)  # erc.cg_sizes
        d0 = np.zeros(n)
        for animal, cg in _record_blocks(pop):
            _scatter_add(d0, animal, 1.0 - 1.0 / n_k[cg])
        if opts.tau is not None:
            d0 = opts.tau * d0 / (opts.tau + d0)
    if pop.interbull_animal is not None:
        b = erc.interbull_erc(pop.interbull_value, opts.alpha, kind=opts.interbull_kind,
                              source=interbull_source, animals=pop.ids_of(pop.interbull_animal))
        d0[pop.interbull_animal] += b
    return d0


def reliability_ooc(pop: OocPopulation, opts, *, interbull_source=None,
                    progress: bool | None = None, iterator=None):
    """Parts I–III on an out-of-core population: the start vector in blocks, the iteration
    in memory (about 120 bytes per animal) or by ``iterator`` (the Dask engine, see
    :func:`bigeval.reliability.reliability`); as :func:`bigeval.reliability.reliability`."""
    from bigeval.reliability.engine import memory_iterator, parts_1_to_3

    d0 = start_vector_ooc(pop, opts, interbull_source=interbull_source)
    _store(pop.group, "d0", d0)
    sire, dam = pop.array("sire"), pop.array("dam")
    if iterator is None:
        iterator = memory_iterator(sire, dam)
    ids = None if pop.genotyped is None else pop.ids_of(pop.genotyped)
    return parts_1_to_3(d0, iterator, opts, pop.genotyped, pop.ginv, pop.a22inv,
                        sire=sire, dam=dam, genotyped_ids=ids, progress=progress)


def result_chunks(pop: OocPopulation, res, *, rows: int = ZARR_CHUNK):
    """The table of :func:`bigeval.reliability.engine.result_table`, in blocks of rows."""
    n = pop.n_animals
    rel_g = np.full(n, np.nan)
    if res.rel_genomic is not None:
        rel_g[pop.genotyped] = res.rel_genomic
    alpha = res.alpha
    d1, df_ = res.part1.d, res.erc_final
    for lo in range(0, max(n, 1), rows):
        hi = min(lo + rows, n)
        p, f = d1[lo:hi], df_[lo:hi]
        cols = {
            "animal": pd.Series(pop.ids(lo, hi), dtype=str),
            "erc_records": res.erc_records[lo:hi],
            "erc_pedigree": p,
            "rel_pedigree": p / (p + alpha),
            "rel_genomic": rel_g[lo:hi],
            "erc_final": f,
            "rel_final": f / (f + alpha),
        }
        check_published(cols)
        yield pd.DataFrame(cols)


#: ``out_of_core=None`` (the CLI's default) reads pedigrees from this size on out of core:
#: about 4 million animals, where the in-memory path needs several GiB.
OUT_OF_CORE_BYTES = 128 * 2**20


def use_out_of_core(job) -> bool:
    """Whether a :class:`bigeval.pipeline.workflow.ReliabilityJob` runs out of core."""
    flag = getattr(job, "out_of_core", False)
    if flag is None:
        path = Path(job.pedigree)
        return path.exists() and path.stat().st_size >= OUT_OF_CORE_BYTES
    return bool(flag)


def single_record_groups_ooc(pop: OocPopulation) -> pd.DataFrame:
    """:func:`bigeval.prepare.single_record_groups` from the work folder, block by block."""
    size = np.zeros(pop.n_cg, np.int64)
    for _, cg in _record_blocks(pop):
        size += np.bincount(cg, minlength=pop.n_cg)
    cgs, animals = [], []
    for animal, cg in _record_blocks(pop):
        alone = size[cg] == 1
        cgs.append(cg[alone])
        animals.append(animal[alone])
    cg = np.concatenate(cgs) if cgs else np.zeros(0, np.int64)
    animal = np.concatenate(animals) if animals else np.zeros(0, np.int64)
    order = np.argsort(cg, kind="stable")
    cg_keys = pop.group["cg_ids"].oindex[:, cg[order]] if len(cg) else np.zeros((1, 0),
                                                                                 np.uint64)
    return pd.DataFrame({
        "cg": np.asarray(ooc.keys_to_strings(cg_keys).to_pylist(), dtype=object),
        "animal": pop.ids_of(animal[order]) if len(cg) else np.zeros(0, dtype=object)})


def run_reliability_ooc(job, *, progress: bool | None = None,
                        chunk_rows: int = ooc.DEFAULT_CHUNK_ROWS, fmt: str = "csv",
                        claim=None):
    """:func:`bigeval.pipeline.workflow.run_reliability` out of core: :func:`prepare_ooc`,
    :func:`reliability_ooc`, the table written in blocks; the same files and summary.

    The work folder is ``job.work_dir`` (kept), or a temporary folder in the output folder
    (deleted at the end).
    """
    from bigeval.io.writers import ensure_dir
    from bigeval.reliability.engine import ReliabilityOptions
    from bigeval.pipeline.workflow import (
        RunSummary,
        describe,
        job_about,
        warn_single_record_groups,
        write_outputs,
    )

    t0 = time.perf_counter()
    if job.exact:
        raise InputError("exact reliabilities (--exact) need the whole MME in memory and do "
                         "not run out of core",
                         remedy="drop --exact, or run without --out-of-core on small data")
    opts = ReliabilityOptions(alpha=job.resolved_alpha(), tau=job.tau, sib_adjust=job.sib_adjust,
                              interbull_kind=job.interbull_kind, rounds=job.rounds, tol=job.tol,
                              genomic_method=job.genomic_method)
    # the output folder, created (and locked by run_reliability's claim)
    out = ensure_dir(job.out) if claim is None else claim()
    work_dir = getattr(job, "work_dir", None)
    tmp = None
    if work_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix=".bigeval-work.", dir=out))
        work = tmp / "work.zarr"
    else:
        work = Path(work_dir)
        if work.exists() and not work.is_dir():
            raise InputError("the out-of-core work folder is a file", file=work,
                             value=str(work), expected="a folder, or a path where one can "
                             "be made", remedy="give another --work-dir (output.work_dir)")
    log = _Log(progress)
    try:
        pop = prepare_ooc(job.pedigree, job.records, work=work, genotyped=job.genotyped,
                          interbull=job.interbull, ginv=job.ginv, a22inv=job.a22inv,
                          interbull_kind=job.interbull_kind, chunk_rows=chunk_rows,
                          record_columns=job.resolved_record_columns(),
                          progress=progress)
        lonely = single_record_groups_ooc(pop)
        warn_single_record_groups(lonely, job, stacklevel=3)
        from bigeval.reliability.distributed.cluster import reliability_engine

        from bigeval.reliability.engine import memory_iterator

        sire, dam = pop.array("sire"), pop.array("dam")  # read once, for either engine
        with reliability_engine(sire, dam, engine=job.engine, scheduler=job.scheduler,
                                cluster=job.cluster, block_size=job.block_size,
                                n_workers=job.workers, exact_sums=job.exact_sums) as engine:
            iterator = engine.iterator or memory_iterator(sire, dam)
            res = reliability_ooc(pop, opts, interbull_source=job.interbull, progress=progress,
                                  iterator=iterator)
        text = describe(pop, res, opts, time.perf_counter() - t0) + "\n" + engine.description
        text += ("\nout of core: files read in blocks of "
                 f"{chunk_rows:,} rows, work folder {work if tmp is None else '(temporary)'}")
        name = "reliability.csv" if fmt == "csv" else "reliability.parquet"
        log(f"writing {name}")
        files = write_outputs(out, {"reliability": (out / name, lambda f: ooc.write_table_chunks(
            result_chunks(pop, res), f, fmt=fmt, atomic=False))}, text, lonely,
            about=job_about(job))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return RunSummary(text=text, files=files, rounds_part1=res.part1.rounds,
                      rounds_part3=None if res.part3 is None else res.part3.rounds)
