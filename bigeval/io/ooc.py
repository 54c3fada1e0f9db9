"""Out-of-core building blocks: chunked readers, ID keys without Python strings, chunked writers.

A national pedigree of 10 million animals read with pandas into Python strings, factorized and
looked up in dictionaries needs tens of GiB. Here the files are read in blocks of rows with the
same parser, rules and error messages as :mod:`bigeval.io.readers`, and every ID is turned into
a *key*: its UTF-8 bytes packed big-endian into ``nw`` unsigned 64-bit words, zero-padded
(``keys`` arrays have shape ``(nw, n)``, word 0 the most significant). Comparing keys word by
word is comparing the IDs byte by byte, which for UTF-8 is comparing them by code point, the
order Python and :func:`pandas.factorize` sort strings in; so sorting keys sorts IDs exactly as
the in-memory path does, and the empty ID (an unknown parent) is the all-zero key.

* :class:`ChunkReader` yields checked frames of a file block by block and, if the file is bad,
  raises the error :func:`bigeval.io.readers.read_table` would have raised for the whole file.
* :func:`pack_keys`, :func:`keys_to_strings`: strings to keys and back (Arrow buffers, numba).
* :func:`radix_argsort`: a stable LSD radix sort of keys (slow twin: :func:`numpy.lexsort`).
* :class:`KeyIndex`: an open-addressing hash table from keys to their positions in a sorted
  unique key array (slow twin: a dict).
* :func:`write_table_chunks`: a CSV or Parquet table written block by block, atomically.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa

from bigeval.io.csvfast import FLOAT_FORMAT, to_csv_bytes
from bigeval.errors import InputError
from bigeval.io import readers
from bigeval.io.writers import atomic_path

#: Rows per block read from a file (about 100 MB of pandas frame for a pedigree).
DEFAULT_CHUNK_ROWS = 1_000_000


# ---------------------------------------------------------------------------------------------
# Chunked reading with the whole-file reader's errors


class ChunkReader:
    """Read a methodology file in blocks of rows, with :func:`bigeval.io.readers.read_table`'s
    rules and errors.

    Iterating yields tidy frames (string columns ``columns`` and ``line``, blank lines
    dropped, ``rows_fn`` applied), in file order. The row checks run on every block; once one
    fails, nothing more is yielded but the file is read to its end, and then the error that
    the whole-file reader would have raised is raised: that of the first check
    (:data:`bigeval.io.readers.ROW_CHECKS`, then ``rows_fn``) failing anywhere, at its first
    row. A file without data rows raises as the whole-file reader does.

    Parameters
    ----------
    path
        The file (``.csv``: comma-separated with a header; else whitespace-separated).
    columns
        The columns wanted, in positional order.
    kind
        What the file is, for messages.
    rows_fn
        Kind-specific step after the row checks, e.g. :func:`bigeval.io.readers.pedigree_rows`;
        called as ``rows_fn(frame, path)``, may raise :class:`InputError`.
    chunk_rows
        Rows per block.
    optional
        Further columns read when the file has them, as in :func:`bigeval.io.readers.read_table`;
        a block where no line has one lacks it (its rows are empty there).
    """

    def __init__(self, path: str | os.PathLike, columns: tuple[str, ...], *, kind: str,
                 rows_fn: Callable[[pd.DataFrame, Path], pd.DataFrame] | None = None,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS,
                 optional: dict[str, tuple[str, ...]] | None = None):
        if chunk_rows < 1:
            raise InputError("chunk_rows must be at least 1", value=chunk_rows)
        self.path = Path(path)
        self.columns = tuple(columns)
        self.kind = kind
        self.rows_fn = rows_fn
        self.chunk_rows = int(chunk_rows)
        self.optional = optional
        self.n_rows = 0  # data rows seen so far

    def __iter__(self) -> Iterator[pd.DataFrame]:
        path = readers._check_file(self.path, self.columns, kind=self.kind)
        cols, kind = self.columns, self.kind
        with readers._parse_errors(path, cols, kind=kind):
            readers.check_not_blank(path, cols, kind=kind)
            readers.check_line_ends(path, kind=kind)
            readers.check_csv_fields(path, cols, kind=kind)
        reader, raw = self._open(path)
        self.n_rows = 0
        first: tuple[int, InputError] | None = None  # (rank of the check, its error)
        with reader:
            while raw is not None:
                out = readers._tidy(raw, cols, kind=kind, path=path, optional=self.optional)
                self.n_rows += len(out)
                if len(out):
                    err, done = _first_failure(out, cols, kind=kind, path=path,
                                               rows_fn=self.rows_fn)
                    if err is not None:
                        if first is None or err[0] < first[0]:
                            first = err
                    elif first is None:
                        yield done
                with readers._parse_errors(path, cols, kind=kind):
                    raw = _get_chunk(reader, self.chunk_rows)
        if self.n_rows == 0:
            raise readers._no_rows(path, cols, kind)
        if first is not None:
            raise first[1]

    def _open(self, path: Path):
        """pandas' chunked reader in the layout the whole-file reader would choose, and the
        first block.

        The whole-file reader takes the optional columns, then the named ones, when *some*
        line has them; pandas' chunked reader fixes the columns from its first block. So
        when the first block has no line long enough, the first such line is looked up and
        the first block made long enough to hold it (only a file whose long lines come late
        makes that block large). A file that pandas cannot read in blocks as it reads it
        whole (no line long enough, a short first line) is bad: the whole-file reader then
        reads it to raise its error.
        """
        cols, kind = self.columns, self.kind
        csv = readers.is_csv(path)
        n_opt = len(self.optional or ())
        for n_o in ([n_opt, 0] if n_opt and not csv else [0]):
            rows = self.chunk_rows
            for attempt in range(2):
                with readers._parse_errors(path, cols, kind=kind):
                    reader = readers._read_csv(path, cols, chunksize=self.chunk_rows,
                                               n_optional=n_o)
                try:
                    first = _get_chunk(reader, rows)
                except ValueError as exc:  # pandas' ParserError, UnicodeDecodeError, ...
                    reader.close()
                    if csv or (n_o == 0 and not _too_few_columns(exc)):
                        with readers._parse_errors(path, cols, kind=kind):
                            raise
                    row = first_row_with_fields(path, len(cols) + n_o) if attempt == 0 else -1
                    if row < 0:
                        break
                    rows = max(rows, row + 1)
                else:
                    if csv or first is None or first.shape[1] >= len(cols):
                        return reader, first
                    reader.close()  # pandas took the columns of a short first line
                    break
        # No line has the named columns, or the first line is short: the file is bad, and
        # the whole-file reader raises its error (it may be a parse error on a later line).
        readers.read_table(path, cols, kind=kind, optional=self.optional)
        raise RuntimeError(f"{path}: pandas could not read the file in blocks, but whole")


def _get_chunk(reader, rows: int):
    try:
        with warnings.catch_warnings():  # the empty fields of rows ending in a comma
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return reader.get_chunk(rows)
    except StopIteration:
        return None


def _too_few_columns(exc: Exception) -> bool:
    """Whether pandas failed because the first block has fewer columns than asked for."""
    return "Too many columns specified" in str(exc) or "secols" in str(exc)


@numba.njit(cache=True)
def _scan_fields(buf, need, state):  # pragma: no cover - numba
    """Whitespace-separated fields per line (pandas' ``sep=r"\\s+"``: space and tab; ``\\r``
    before ``\\n`` ignored); the 0-based line of the first line with ``need`` fields or -1.
    ``state`` = (line, fields so far, inside a field) carries over from block to block."""
    line, fields, inside = state[0], state[1], state[2]
    for b in buf:
        if b == 10:  # \n
            if fields >= need:
                return line
            line += 1
            fields = 0
            inside = 0
        elif b == 32 or b == 9 or b == 13:
            inside = 0
        elif inside == 0:
            inside = 1
            fields += 1
    state[0], state[1], state[2] = line, fields, inside
    return -1


def first_row_with_fields(path, need: int, block: int = 1 << 24) -> int:
    """0-based number of the first line of a whitespace-separated file with at least
    ``need`` fields, or -1 (one streaming pass in blocks of ``block`` bytes).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "ped.txt"
    >>> _ = p.write_text("a 0 0\\n\\nb 0 0 2001\\n")
    >>> first_row_with_fields(p, 4), first_row_with_fields(p, 5)
    (2, -1)
    """
    state = np.zeros(3, np.int64)
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(block)
            if not buf:
                break
            found = _scan_fields(np.frombuffer(buf, np.uint8), need, state)
            if found >= 0:
                return int(found)
    return int(state[0]) if state[1] >= need else -1


def _first_failure(out, cols, *, kind, path, rows_fn):
    """``((rank, error), None)`` for the first check of a block that fails, else
    ``(None, frame)``: the block as ``rows_fn`` returns it (a column map makes a new frame)."""
    for rank, check in enumerate(readers.ROW_CHECKS):
        try:
            check(out, cols, kind=kind, path=path)
        except InputError as exc:
            return (rank, exc), None
    if rows_fn is not None:
        try:
            return None, rows_fn(out, path)
        except InputError as exc:
            return (len(readers.ROW_CHECKS), exc), None
    return None, out


# ---------------------------------------------------------------------------------------------
# Keys: IDs as packed big-endian uint64 words


def arrow_strings(values) -> pa.LargeStringArray:
    """A string column (pandas Series, Arrow array, or sequence of str) as one Arrow
    ``large_string`` array (64-bit offsets), without Python objects where the input has none."""
    if isinstance(values, pd.Series):
        values = values.array
    arr = pa.array(values) if not isinstance(values, (pa.Array, pa.ChunkedArray)) else values
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = arr.fill_null("")
    return arr


def _buffers(arr: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64, length n + 1, starting where the array starts) and the data bytes."""
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=arr.offset + n + 1)[arr.offset:]
    data = (np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None
            else np.zeros(0, np.uint8))
    return offsets, data


@numba.njit(cache=True)
def _pack(offsets, data, out):  # pragma: no cover - numba
    """Bytes of string i into column i of ``out`` (nw, n), big-endian; first row with a NUL."""
    n = out.shape[1]
    nul = -1
    for i in range(n):
        lo = offsets[i]
        for b in range(offsets[i + 1] - lo):
            byte = data[lo + b]
            if byte == 0 and nul < 0:
                nul = i
            out[b >> 3, i] |= np.uint64(byte) << np.uint64(56 - 8 * (b & 7))
    return nul


def pack_keys(values, *, nw: int | None = None) -> tuple[np.ndarray, int]:
    """IDs as keys.

    Parameters
    ----------
    values
        Strings (pandas Series, Arrow array or sequence); ``""`` gives the all-zero key.
    nw
        Words per key; default the fewest that hold the longest ID (at least 1).

    Returns
    -------
    keys, nul_row
        ``keys``: uint64 ``(nw, n)``; ``nul_row``: the first row whose ID holds a NUL
        character (which keys cannot tell from padding), or -1.

    Examples
    --------
    >>> k, _ = pack_keys(["b", "a", "", "ab"])
    >>> k.shape, [hex(int(w)) for w in k[0]]
    ((1, 4), ['0x6200000000000000', '0x6100000000000000', '0x0', '0x6162000000000000'])
    """
    arr = arrow_strings(values)
    offsets, data = _buffers(arr)
    longest = int(np.max(np.diff(offsets))) if len(arr) else 0
    need = max(1, -(-longest // 8))
    if nw is None:
        nw = need
    elif nw < need:
        raise ValueError(f"nw={nw} words cannot hold an ID of {longest} bytes")
    keys = np.zeros((nw, len(arr)), np.uint64)
    nul = _pack(offsets, data, keys) if len(arr) else -1
    return keys, int(nul)


def fit_keys(keys: np.ndarray, nw: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Keys with ``nw`` words: zero-padded, or truncated with a mask of the keys that lost
    non-zero words (IDs too long to equal any key of ``nw`` words); None when none did."""
    have = keys.shape[0]
    if have == nw:
        return keys, None
    if have < nw:
        out = np.zeros((nw, keys.shape[1]), np.uint64)
        out[:have] = keys
        return out, None
    too_long = (keys[nw:] != 0).any(axis=0)
    return np.ascontiguousarray(keys[:nw]), too_long if too_long.any() else None


def concat_keys(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Keys of several blocks side by side, padded to the widest."""
    parts = list(parts)
    if not parts:
        return np.zeros((1, 0), np.uint64)
    nw = max(p.shape[0] for p in parts)
    out = np.zeros((nw, sum(p.shape[1] for p in parts)), np.uint64)
    j = 0
    for p in parts:
        out[: p.shape[0], j : j + p.shape[1]] = p
        j += p.shape[1]
    return out


@numba.njit(cache=True)
def _unpacked_lengths(keys):  # pragma: no cover - numba
    nw, n = keys.shape
    lengths = np.zeros(n, np.int64)
    for i in range(n):
        for k in range(nw - 1, -1, -1):
            w = keys[k, i]
            if w != 0:
                b = 8
                while (w & np.uint64(0xFF)) == 0:
                    w >>= np.uint64(8)
                    b -= 1
                lengths[i] = 8 * k + b
                break
    return lengths


@numba.njit(cache=True)
def _unpack(keys, offsets, data):  # pragma: no cover - numba
    n = keys.shape[1]
    for i in range(n):
        lo = offsets[i]
        for b in range(offsets[i + 1] - lo):
            data[lo + b] = np.uint8((keys[b >> 3, i] >> np.uint64(56 - 8 * (b & 7)))
                                    & np.uint64(0xFF))


def keys_to_strings(keys: np.ndarray) -> pa.LargeStringArray:
    """Keys back to IDs, as an Arrow ``large_string`` array (no Python objects).

    Examples
    --------
    >>> keys_to_strings(pack_keys(["CZ418003215", "", "é"])[0]).to_pylist()
    ['CZ418003215', '', 'é']
    """
    keys = np.ascontiguousarray(keys)
    lengths = _unpacked_lengths(keys)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.zeros(int(offsets[-1]), np.uint8)
    _unpack(keys, offsets, data)
    return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets),
                                            pa.py_buffer(data))


def key_str(keys: np.ndarray, i: int) -> str:
    """The ID of key ``i``, as a Python string (for messages)."""
    return keys_to_strings(keys[:, i : i + 1])[0].as_py()


def keys_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise equality of two key arrays of the same shape (bool, length n)."""
    return (a == b).all(axis=0)


def is_empty_key(keys: np.ndarray) -> np.ndarray:
    """Which keys are the empty ID (bool, length n)."""
    return (keys == 0).all(axis=0)


# ---------------------------------------------------------------------------------------------
# Sorting and lookup


@numba.njit(cache=True)
def _radix_argsort(keys):  # pragma: no cover - numba
    """Stable LSD radix sort on 16-bit digits, least significant word first; digits that are
    the same for every key (shared prefixes, padding) are skipped."""
    nw, n = keys.shape
    idx = np.arange(n)
    tmp = np.empty(n, np.int64)
    count = np.zeros(65537, np.int64)
    for k in range(nw - 1, -1, -1):
        row = keys[k]
        for s in range(4):
            shift = np.uint64(16 * s)
            count[:] = 0
            for i in range(n):
                count[np.int64((row[i] >> shift) & np.uint64(0xFFFF)) + 1] += 1
            constant = False
            for d in range(1, 65537):
                if count[d] == n:
                    constant = True
                    break
            if constant:
                continue
            for d in range(65536):
                count[d + 1] += count[d]
            for i in range(n):
                j = idx[i]
                d = np.int64((row[j] >> shift) & np.uint64(0xFFFF))
                tmp[count[d]] = j
                count[d] += 1
            idx, tmp = tmp, idx
    return idx


def radix_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of keys in ID order: equal keys keep their input order.

    Equals ``numpy.lexsort(keys[::-1])`` (the slow twin), in O(n · significant digits).

    Examples
    --------
    >>> radix_argsort(pack_keys(["b", "a", "ab", "a", ""])[0])
    array([4, 1, 3, 2, 0])
    """
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    if keys.shape[1] == 0:
        return np.zeros(0, np.int64)
    return _radix_argsort(keys)


def sort_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique keys, the sort order, and where each run of equal keys starts.

    Returns
    -------
    unique, order, starts
        ``unique = keys[:, order[starts]]`` (nw, u) in ID order; ``order`` the stable sort
        order (length n); ``starts`` (length u + 1, last = n): run ``g`` of equal keys is
        ``order[starts[g]:starts[g + 1]]``, in input order.
    """
    order = radix_argsort(keys)
    n = len(order)
    sk = keys[:, order]
    new = np.ones(n, dtype=bool)
    if n > 1:
        new[1:] = (sk[:, 1:] != sk[:, :-1]).any(axis=0)
    starts = np.append(np.flatnonzero(new), n).astype(np.int64)
    return np.ascontiguousarray(sk[:, starts[:-1]]), order, starts


@numba.njit(cache=True, inline="always")
def _hash(keys, i):  # pragma: no cover - numba
    h = np.uint64(0x9E3779B97F4A7C15)
    for k in range(keys.shape[0]):
        x = h ^ keys[k, i]  # splitmix64 finaliser per word
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = x ^ (x >> np.uint64(31))
    return h


@numba.njit(cache=True)
def _build_table(keys, bits):  # pragma: no cover - numba
    size = 1 << bits
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)
    for i in range(keys.shape[1]):
        slot = np.int64(_hash(keys, i) & mask)
        while table[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        table[slot] = i
    return table


@numba.njit(cache=True)
def _probe(table, keys, query, out):  # pragma: no cover - numba
    size = table.shape[0]
    mask = np.uint64(size - 1)
    nw = keys.shape[0]
    for i in range(query.shape[1]):
        slot = np.int64(_hash(query, i) & mask)
        out[i] = -1
        while True:
            j = table[slot]
            if j < 0:
                break
            same = True
            for k in range(nw):
                if keys[k, j] != query[k, i]:
                    same = False
                    break
            if same:
                out[i] = j
                break
            slot = (slot + 1) & (size - 1)


class KeyIndex:
    """Positions of keys in a key array: an open-addressing hash table (load ≤ 1/2).

    Parameters
    ----------
    keys
        Distinct keys (nw, m), e.g. the sorted unique IDs of a pedigree.

    Examples
    --------
    >>> idx = KeyIndex(pack_keys(["a", "b", "c"])[0])
    >>> idx.get(pack_keys(["c", "x", "a", "abcdefghij"])[0])
    array([ 2, -1,  0, -1])
    """

    def __init__(self, keys: np.ndarray):
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        m = self.keys.shape[1]
        bits = max(4, int(np.ceil(np.log2(max(2 * m, 2)))))
        self.table = _build_table(self.keys, bits)

    @property
    def nw(self) -> int:
        return self.keys.shape[0]

    def get(self, query: np.ndarray) -> np.ndarray:
        """Position of each query key (int64), -1 where absent."""
        q, too_long = fit_keys(np.asarray(query, dtype=np.uint64), self.nw)
        out = np.empty(q.shape[1], np.int64)
        _probe(self.table, self.keys, np.ascontiguousarray(q), out)
        if too_long is not None:
            out[too_long] = -1
        return out


@numba.njit(cache=True)
def _merge_positions(a, b):  # pragma: no cover - numba
    """Positions of the elements of two disjoint sorted key arrays in their sorted union."""
    nw = a.shape[0]
    na, nb = a.shape[1], b.shape[1]
    pa_ = np.empty(na, np.int64)
    pb = np.empty(nb, np.int64)
    i = j = 0
    while i < na or j < nb:
        take_a = j >= nb
        if not take_a and i < na:
            for k in range(nw):
                if a[k, i] != b[k, j]:
                    take_a = a[k, i] < b[k, j]
                    break
        if take_a:
            pa_[i] = i + j
            i += 1
        else:
            pb[j] = i + j
            j += 1
    return pa_, pb


def merge_sorted(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of two disjoint sorted unique key arrays, and where each input's keys went.

    Examples
    --------
    >>> u, pa_, pb = merge_sorted(pack_keys(["a", "c"])[0], pack_keys(["b", "d"])[0])
    >>> keys_to_strings(u).to_pylist(), pa_.tolist(), pb.tolist()
    (['a', 'b', 'c', 'd'], [0, 2], [1, 3])
    """
    nw = max(a.shape[0], b.shape[0])
    a, _ = fit_keys(a, nw)
    b, _ = fit_keys(b, nw)
    pos_a, pos_b = _merge_positions(np.ascontiguousarray(a), np.ascontiguousarray(b))
    u = np.empty((nw, a.shape[1] + b.shape[1]), np.uint64)
    u[:, pos_a] = a
    u[:, pos_b] = b
    return u, pos_a, pos_b


# ---------------------------------------------------------------------------------------------
# Chunked output


def write_table_chunks(chunks: Iterable[pd.DataFrame], path: str | os.PathLike, *,
                       fmt: str = "csv", float_format: str | None = FLOAT_FORMAT,
                       atomic: bool = True) -> Path:
    """Write a table given as consecutive blocks of rows.

    ``fmt="csv"``: the bytes :meth:`pandas.DataFrame.to_csv` writes for the whole table
    (header once, no index, ``float_format``). ``fmt="parquet"``: one row group per block
    (floats exact). With ``atomic`` the file appears complete or not at all (written under a
    temporary name, then renamed); without, ``path`` is written directly (it is already a
    temporary file, e.g. from :func:`bigeval.io.writers.atomic_files`).
    """
    if fmt not in ("csv", "parquet"):
        raise InputError("unknown table format", value=fmt, expected="'csv' or 'parquet'")
    if atomic:
        with atomic_path(path) as tmp:
            write_table_chunks(chunks, tmp, fmt=fmt, float_format=float_format, atomic=False)
        return Path(path)
    if fmt == "csv":
        with open(path, "wb") as fh:
            for k, chunk in enumerate(chunks):
                data = to_csv_bytes(chunk, header=k == 0) if float_format == FLOAT_FORMAT \
                    else None
                if data is None:
                    data = chunk.to_csv(header=k == 0, index=False,
                                        float_format=float_format).encode()
                fh.write(data)
        return Path(path)
    import pyarrow.parquet as pq

    writer = None
    try:
        for chunk in chunks:
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return Path(path)
