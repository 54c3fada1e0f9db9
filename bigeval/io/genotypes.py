"""Genotype import to Zarr: PLINK .bed, BLUPF90 text and CSV into one chunked int8 store.

The store is a Zarr (v3) group::

    geno.zarr/
        genotypes   int8, animals x SNPs, allele counts 0/1/2, missing = -1,
                    chunked (animals, SNPs), Blosc zstd + bitshuffle
        sample_id   str, one per animal (row)
        snp_id      str, one per SNP (column)

Import streams: one block of animal rows at a time, as many rows as a chunk of the store holds,
so every Zarr chunk is written exactly once and whole (shared/notes: writes that straddle
chunks are where zarr 3 + dask corrupt silently). The store is written under a temporary
name beside the target and renamed into place only when complete.

Which allele is counted does not matter for G (VanRaden 2008: p -> 1 - p turns Z into -Z):
for PLINK the count is of allele 1 (A1, the fifth column of the .bim, bed-reader's
``count_A1=True``); for text and CSV the codes are stored as written.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import itertools
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError
from bigeval.io import readers
from bigeval.io.readers import damaged_gzip, first_not_utf8, not_utf8
from bigeval.io.writers import atomic_dir, refuse_overwriting_inputs

__all__ = ["import_genotypes", "is_zarr_store", "open_genotypes", "write_genotypes", "GENOTYPES",
           "SAMPLE_ID", "SNP_ID", "MISSING", "DEFAULT_CHUNKS", "FORMATS"]

GENOTYPES = "genotypes"  # array names in the store: one name per concept
SAMPLE_ID = "sample_id"
SNP_ID = "snp_id"
DIMENSIONS = ("animals", "snps")
MISSING = -1  # stored code of a missing call
ALL_CHUNKS = "every_chunk_written"  # attribute: chunks of missing calls only are stored too
DEFAULT_CHUNKS = (4096, 8192)  # animals, SNPs: 32 MiB of int8 per chunk before compression
FORMATS = ("plink", "blupf90", "csv")
_TEXT_MISSING = (5, 9)  # BLUPF90 codes of a missing call

Progress = Callable[[int, int | None], None]


# ---------------------------------------------------------------------------------------------
# Readers: each yields (ids, int8 block, lines) for consecutive blocks of ``rows`` animals.


def is_zarr_store(path) -> bool:
    """A Zarr (v3 or v2) group folder."""
    path = Path(path)
    return path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zgroup"))


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")  # a byte-order mark is no ID


def _animal_lines(fh, line: int = 0) -> Iterator[tuple[int, str]]:
    """(1-based line, text) of the lines of ``fh`` that are not blank; ``line`` lines were
    read before."""
    for k, text in enumerate(fh, start=line + 1):
        if text.strip():
            yield k, text


def _check_utf8(path: Path) -> None:
    """An error at the first line that is not UTF-8 (a plain text file), if any."""
    line, raw = first_not_utf8(path)
    if line is not None:
        raise not_utf8(path, "the genotype file", line, raw, ids=True)


@contextlib.contextmanager
def _text_errors(path: Path):
    """Turn what reading a text genotype file can fail with (bytes that are not UTF-8, a
    damaged or truncated gzip file) into an :class:`InputError` naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        line, raw = first_not_utf8(path)
        raise not_utf8(path, "the genotype file", line,
                       raw if raw is not None else exc.object[exc.start:exc.end],
                       ids=True) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise damaged_gzip(path, "the genotype file", exc) from None


def _bad_code(path: Path, line: int, snp: int, value: object, fmt: str) -> InputError:
    missing = "5 or 9" if fmt == "blupf90" else "empty, NA, 5, 9 or -1"
    return InputError(f"genotype of SNP column {snp} is not a 0/1/2 count", file=path, line=line,
                      value=value, expected=f"0, 1, 2, or {missing} for missing",
                      remedy="recode genotypes as counts of one allele")


class _Reader:
    """A genotype source: ``snp_ids``, ``n_animals`` (None if unknown) and ``blocks(rows)``."""

    snp_ids: np.ndarray
    n_animals: int | None = None

    def blocks(self, rows: int) -> Iterator[tuple[list[str], np.ndarray, list[int]]]:
        """Yield (ids, int8 block of ``rows`` animals, the last fewer; each animal's 1-based
        line, or its number in a .fam)."""
        raise NotImplementedError


class _Blupf90Reader(_Reader):
    """``ID genotypes``: the ID, white space, then one digit per SNP (0/1/2, 5 or 9 missing)."""

    fmt = "blupf90"

    def __init__(self, path: Path, snp_ids=None):
        self.path = path
        with _text_errors(path), _open_text(path) as fh:
            first = ""
            self._skip = 0
            for first in fh:
                if first.strip():
                    break
                self._skip += 1
        fields = first.split()
        if not fields:
            _check_utf8(path)  # a byte-order mark cut short reads as nothing
            raise InputError("the genotype file is empty", file=path,
                             expected="one line per animal: ID, then a string of 0/1/2",
                             remedy="check the file name and that the file was written whole")
        if len(fields) != 2:
            raise InputError("a genotype line must hold an ID and one string of genotype codes",
                             file=path, line=self._skip + 1, value=first.strip()[:60],
                             expected="2 fields", remedy="write codes without spaces between them")
        self.m = len(fields[1])
        self.snp_ids = (np.asarray(snp_ids, dtype=str) if snp_ids is not None
                        else np.array([f"snp{j + 1}" for j in range(self.m)]))

    def blocks(self, rows):
        line = 0
        lut = np.full(256, -2, np.int8)
        lut[ord("0"):ord("3")] = (0, 1, 2)
        for code in _TEXT_MISSING:
            lut[ord(str(code))] = MISSING
        with _text_errors(self.path), _open_text(self.path) as fh:
            animals = _animal_lines(fh)
            while True:
                lines = list(itertools.islice(animals, rows))  # blank lines are not rows
                if not lines:
                    return
                ids, codes = [], []
                for line, text in lines:
                    fields = text.split()
                    if len(fields) != 2 or len(fields[1]) != self.m:
                        got = (f"{len(fields)} fields" if len(fields) != 2
                               else f"{len(fields[1])} codes")
                        raise InputError(
                            "genotype line of unequal length", file=self.path, line=line,
                            value=got, expected=f"an ID and {self.m} codes, as on the first line",
                            remedy="write every animal with the same SNPs, missing as 5")
                    ids.append(fields[0])
                    codes.append(fields[1])
                raw = np.frombuffer("".join(codes).encode("latin-1", "replace"), np.uint8)
                block = lut[raw].reshape(len(ids), self.m)
                if (block == -2).any():
                    i, j = np.argwhere(block == -2)[0]
                    raise _bad_code(self.path, lines[i][0], j + 1,
                                    chr(raw[i * self.m + j]), self.fmt)
                yield ids, block, [k for k, _ in lines]


_CSV_MISSING = {"", "NA", "na", "NaN", "nan", ".", "5", "9", "-1"}


class _CsvReader(_Reader):
    """Header ``animal,snp1,...``, then one animal per line, one column per SNP."""

    fmt = "csv"

    def __init__(self, path: Path):
        self.path = path
        with _text_errors(path), _open_text(path) as fh:
            header = fh.readline()
            later = not header.strip() and any(text.strip() for text in fh)
        if later:  # a blank first line, then the header or data
            raise InputError("the genotype CSV has no header on line 1 (it is blank)",
                             file=path, line=1, value=header.strip(),
                             expected="a header 'animal,snp1,...' on line 1",
                             remedy="delete the blank lines before the header")
        if not header.strip():
            _check_utf8(path)  # a byte-order mark cut short reads as nothing
            raise InputError("the genotype file is empty", file=path,
                             expected="a header 'animal,snp1,...' then one line per animal",
                             remedy="check the file name and that the file was written whole")
        names = header.rstrip("\r\n").split(",")
        if len(names) < 2:
            raise InputError("the CSV header names no SNP column", file=path, line=1,
                             value=header.strip()[:60], expected="animal,snp1,snp2,...",
                             remedy="write comma-separated columns with a header row")
        self.snp_ids = np.array([s.strip() for s in names[1:]])
        self.m = len(self.snp_ids)

    def blocks(self, rows):
        with _text_errors(self.path), _open_text(self.path) as fh:
            fh.readline()
            animals = _animal_lines(fh, 1)
            while True:
                lines = list(itertools.islice(animals, rows))  # blank lines are not rows
                if not lines:
                    return
                records, ids = [], []
                for line, text in lines:
                    fields = text.rstrip("\r\n").split(",")
                    if len(fields) != self.m + 1:
                        raise InputError(
                            "genotype line of unequal length", file=self.path, line=line,
                            value=f"{len(fields)} fields",
                            expected=f"{self.m + 1} fields (the ID and {self.m} SNPs, as the "
                                     "header)", remedy="write one value per SNP, empty if missing")
                    ids.append(fields[0].strip())
                    records.append((line, fields[1:]))
                tokens = np.array([f for _, f in records], dtype=object)
                # Decode each distinct token once (hash-based): '1', '1.0', 'NA', ...
                codes, uniques = pd.factorize(tokens.ravel())
                table = np.empty(len(uniques), np.int8)
                for u, tok in enumerate(uniques):
                    t = tok.strip()
                    if t in _CSV_MISSING:
                        table[u] = MISSING
                        continue
                    try:
                        v = float(t)
                    except ValueError:
                        v = np.nan
                    if v in (0.0, 1.0, 2.0):
                        table[u] = int(v)
                    elif v in (5.0, 9.0, -1.0):
                        table[u] = MISSING
                    else:
                        i, j = divmod(int(np.flatnonzero(codes == u)[0]), self.m)
                        raise _bad_code(self.path, records[i][0], j + 1, tok, self.fmt)
                yield ids, table[codes].reshape(len(ids), self.m), [k for k, _ in lines]


class _PlinkReader(_Reader):
    """PLINK 1 binary fileset (.bed/.bim/.fam) through bed-reader, blocks of animals."""

    fmt = "plink"

    def __init__(self, path: Path):
        try:
            from bed_reader import open_bed
        except ImportError:  # pragma: no cover - bed-reader is a dependency
            raise InputError("reading PLINK .bed files needs the bed-reader package",
                             file=path, remedy="pip install bed-reader") from None
        self.path = path.with_suffix(".bed")
        for ext in (".bed", ".bim", ".fam"):
            p = self.path.with_suffix(ext)
            if not p.exists():
                raise InputError(f"the PLINK fileset lacks its {ext} file", file=p,
                                 remedy="give the .bed of a complete .bed/.bim/.fam fileset")
        with self._errors(".bed"):
            self._bed = open_bed(self.path, count_A1=True)  # counts of allele 1
        with self._errors(".fam"):
            self._ids = np.asarray(self._bed.iid, dtype=str)
        self.n_animals = len(self._ids)
        if self.n_animals == 0:
            self.close()
            raise InputError("the genotype file is empty (no animal in the .fam)",
                             file=self.path.with_suffix(".fam"),
                             remedy="check the fileset was written whole")
        with self._errors(".bim"):
            self.snp_ids = np.asarray(self._bed.sid, dtype=str)
        self.m = len(self.snp_ids)
        size, need = self.path.stat().st_size, 3 + self.m * ((self.n_animals + 3) // 4)
        if size != need:
            self.close()
            raise InputError(
                "the .bed does not match its .fam and .bim (truncated, or from another "
                "fileset)", file=self.path, value=f"{size:,} bytes",
                expected=f"{need:,} bytes for the .fam's {self.n_animals:,} animals and the "
                         f".bim's {self.m:,} SNPs (SNP-major)",
                remedy="give the .bed/.bim/.fam written together, whole")

    @contextlib.contextmanager
    def _errors(self, ext: str):
        """bed-reader's errors on the fileset's ``ext`` file as an :class:`InputError`."""
        try:
            yield
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            if ext != ".bed":
                self.close()
            what = ("not a PLINK .bed (SNP-major) or damaged" if ext == ".bed" else
                    f"not a PLINK {ext} file or damaged")
            layout = {".bed": "the magic bytes 6c 1b 01, then the genotypes",
                      ".fam": "6 whitespace-separated columns per animal (UTF-8)",
                      ".bim": "6 tab- or space-separated columns per SNP (UTF-8)"}[ext]
            raise InputError(f"{what} ({str(exc).strip()[:120]})",
                             file=self.path.with_suffix(ext), expected=layout,
                             remedy="write the fileset again with PLINK (--make-bed)"
                             ) from None

    def blocks(self, rows):
        for r0 in range(0, self.n_animals, rows):
            r1 = min(r0 + rows, self.n_animals)
            # count_A1=True: counts of allele 1 (the .bim's 5th column); missing -127 in int8
            with self._errors(".bed"):
                block = self._bed.read(index=np.s_[r0:r1, :], dtype="int8", order="C")
            block[block < 0] = MISSING
            yield self._ids[r0:r1].tolist(), block, range(r0 + 1, r1 + 1)

    def close(self):
        bed = getattr(self, "_bed", None)
        if bed is not None:
            bed.__exit__(None, None, None)


def _format_of(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".bed", ".bim", ".fam")):
        return "plink"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".txt", ".dat", ".geno")) or "." not in name:
        return "blupf90"
    raise InputError("cannot tell the genotype format from the file name", file=path,
                     value=path.suffix, expected=".bed (PLINK), .csv, or .txt (BLUPF90 layout)",
                     remedy="pass the format explicitly (fmt= / --format)")


def _reader(path: Path, fmt: str | None) -> _Reader:
    fmt = _format_of(path) if fmt is None else fmt.lower()
    if fmt not in FORMATS:
        raise InputError("unknown genotype format", value=fmt, expected=" or ".join(FORMATS),
                         remedy="pass one of the supported formats")
    if fmt == "plink":
        return _PlinkReader(path)
    if not path.exists():
        raise InputError("the genotype file does not exist", file=path,
                         remedy="check the path")
    if path.is_dir():
        raise InputError("the genotype file is a folder", file=path,
                         expected="a genotype file: PLINK .bed, BLUPF90 text or CSV (a store "
                                  "is given to the commands that read one, not imported)",
                         remedy="give the path of the file inside the folder")
    with _text_errors(path):
        readers.check_line_ends(path, kind="genotype")
    return _CsvReader(path) if fmt == "csv" else _Blupf90Reader(path)


def _check_chunks(chunks) -> tuple[int, int]:
    try:
        a, s = (int(c) for c in chunks)
    except (TypeError, ValueError):
        raise InputError("chunks must be two positive integers (animals, SNPs)", value=chunks,
                         expected="e.g. (4096, 8192)", remedy="pass chunks=(animals, snps)"
                         ) from None
    if a < 1 or s < 1:
        raise InputError("chunks must be positive", value=chunks, expected="e.g. (4096, 8192)",
                         remedy="pass chunks=(animals, snps) with both above 0")
    return a, s


# ---------------------------------------------------------------------------------------------
# Import and open


def write_genotypes(blocks, out: str | os.PathLike, *, snp_ids,
                    chunks: tuple[int, int] = DEFAULT_CHUNKS, attrs: dict | None = None,
                    progress: Progress | None = None, total: int | None = None) -> Path:
    """Write consecutive blocks of animal rows to a genotype store, atomically.

    Parameters
    ----------
    blocks
        Iterable of ``(ids, block)``: the animal IDs and an int8 block, rows x SNPs (0/1/2,
        -1 missing). Every block but the last must hold exactly ``chunks[0]`` rows, so that
        each Zarr chunk is written once and whole (shared/notes: misaligned writes corrupt
        silently).
    out
        The store (a folder) to create or replace.
    snp_ids
        One ID per SNP column.
    chunks, progress
        As for :func:`import_genotypes`; ``total`` is passed to ``progress``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> blocks = [(["a", "b"], np.int8([[0, 1], [2, -1]])), (["c"], np.int8([[1, 1]]))]
    >>> X, ids, _ = open_genotypes(write_genotypes(blocks, d / "g.zarr", snp_ids=["s1", "s2"],
    ...                                            chunks=(2, 2)))
    >>> X.compute().tolist(), ids.tolist()
    ([[0, 1], [2, -1], [1, 1]], ['a', 'b', 'c'])
    """
    import zarr
    from zarr.codecs import BloscCodec, BloscShuffle

    rows, cols = _check_chunks(chunks)
    snp_ids = np.asarray(snp_ids).astype(str)
    m = len(snp_ids)
    ids: list[str] = []
    with atomic_dir(out) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        geno = group.create_array(
            GENOTYPES, shape=(0, m), chunks=(rows, max(1, min(cols, m))), dtype="int8",
            fill_value=MISSING, dimension_names=DIMENSIONS, config={"write_empty_chunks": True},
            compressors=BloscCodec(cname="zstd", clevel=5, shuffle=BloscShuffle.bitshuffle))
        # every chunk is written, all-missing ones too: a chunk file lost is then found
        geno.attrs.update({"missing": MISSING, ALL_CHUNKS: True, **(attrs or {})})
        row0, last = 0, False
        for block_ids, block in blocks:
            block = np.asarray(block)
            if last or len(block_ids) > rows or block.shape != (len(block_ids), m):
                raise InputError("genotype blocks must hold chunks[0] rows (the last fewer) "
                                 "and one column per SNP", value=f"block shape {block.shape}",
                                 expected=f"({rows}, {m})", remedy="cut blocks at chunk rows")
            last = len(block_ids) < rows
            ids.extend(block_ids)
            row1 = row0 + len(block_ids)
            geno.resize((row1, m))
            geno[row0:row1, :] = block.astype(np.int8, copy=False)  # whole chunk row, once
            row0 = row1
            if progress is not None:
                progress(row0, total)
        if not ids:
            raise InputError("no animal to write", expected="at least one block of genotypes")
        group.create_array(SAMPLE_ID, shape=(len(ids),), dtype=str)[:] = np.array(
            ids, dtype=object)
        group.create_array(SNP_ID, shape=(m,), dtype=str)[:] = np.array(
            snp_ids.tolist(), dtype=object)
    return Path(out)


def import_genotypes(src: str | os.PathLike, out: str | os.PathLike, *, fmt: str | None = None,
                     chunks: tuple[int, int] = DEFAULT_CHUNKS,
                     progress: Progress | None = None) -> Path:
    """Import genotypes into a chunked, compressed int8 Zarr store.

    Parameters
    ----------
    src
        The genotype file: PLINK ``.bed`` (with its ``.bim`` and ``.fam``), BLUPF90 text (ID
        then a fixed-width string of 0/1/2, 5 or 9 for missing) or CSV (header
        ``animal,snp1,...``; missing as empty, NA, 5, 9 or -1). Text and CSV may be gzipped.
    out
        The Zarr store to create (a folder); an existing one is replaced once the new one is
        complete.
    fmt
        ``"plink"``, ``"blupf90"`` or ``"csv"``; by default from the suffix of ``src``.
    chunks
        Chunk shape of the store, (animals, SNPs). Animals are read one chunk row at a time,
        so memory is about ``chunks[0] x SNPs`` bytes (plus the text of those lines).
    progress
        Called as ``progress(animals_done, animals_total_or_None)`` after each block.

    Returns
    -------
    The path of the store.

    Raises
    ------
    InputError
        A code outside 0/1/2/missing (file, line, SNP column, value); a line of a different
        length (file, line, expected length); a duplicated animal ID; an empty file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "g.txt").write_text("a1 0125\\na2 2210\\n")
    >>> store = import_genotypes(d / "g.txt", d / "g.zarr", chunks=(1, 2))
    >>> X, animals, snps = open_genotypes(store)
    >>> X.compute().tolist(), animals.tolist()
    ([[0, 1, 2, -1], [2, 2, 1, 0]], ['a1', 'a2'])
    """
    src = Path(src)
    fileset = [src.with_suffix(e) for e in (".bed", ".bim", ".fam")] \
        if src.suffix in (".bed", ".bim", ".fam") else [src]
    refuse_overwriting_inputs(fileset, [out])
    rows, _ = _check_chunks(chunks)
    reader = _reader(src, fmt)
    first_line: dict[str, int] = {}

    def checked():
        for block_ids, block, lines in reader.blocks(rows):
            for k, a in enumerate(block_ids):
                if not a:
                    raise InputError(
                        "a genotyped animal has an empty ID", file=src, value=a,
                        line=lines[k] if reader.fmt != "plink" else None,
                        expected="an animal ID before the genotypes",
                        remedy="fill in the ID or remove the line")
                odd = readers._ODD_CHARACTERS.search(a)
                if odd is not None:
                    raise InputError(
                        f"a genotyped animal ID holds a control or invisible character "
                        f"(U+{ord(odd[0]):04X})", file=src, value=a,
                        line=lines[k] if reader.fmt != "plink" else None,
                        expected="printable text: no NUL or other control character, no "
                                 "byte-order mark inside the file",
                        remedy="remove the character")
                if a in first_line:
                    where = (f"line {lines[k]}" if reader.fmt != "plink"
                             else f"animal {lines[k]} of the .fam")
                    raise InputError(
                        f"animal ID {a!r} is genotyped twice ({where}; first at "
                        f"{first_line[a]})", file=src, value=a,
                        line=lines[k] if reader.fmt != "plink" else None,
                        expected="one genotype record per animal",
                        remedy="remove or rename the duplicate (QC can find duplicated "
                               "genotypes under different IDs)")
                first_line[a] = lines[k]
            yield block_ids, block
        if not first_line:
            raise InputError("the genotype file holds no animal", file=src,
                             expected="one line per animal after any header",
                             remedy="check the file name and that it was written whole")

    attrs = {"source": src.name, "format": reader.fmt,
             "allele_counted": "allele 1 (A1) of the .bim" if reader.fmt == "plink"
             else "as in the file"}
    try:
        return write_genotypes(checked(), out, snp_ids=reader.snp_ids, chunks=chunks,
                               attrs=attrs, progress=progress, total=reader.n_animals)
    finally:
        if isinstance(reader, _PlinkReader):
            reader.close()


def open_genotypes(path: str | os.PathLike):
    """Open a store written by :func:`import_genotypes`.

    Returns
    -------
    genotypes : dask.array.Array
        int8, animals by SNPs, chunked as the store (missing = -1). A chunk that cannot be
        read (damaged) raises an :class:`InputError` naming the store when it is computed.
    sample_ids, snp_ids : numpy.ndarray
        str, one per row and one per column.

    Raises
    ------
    InputError
        Not a genotype store, metadata that cannot be read, or chunks missing from it (stores
        whose every chunk was written, attribute ``every_chunk_written``).
    """
    import dask.array as da
    import zarr

    path = Path(path)
    expected = f"a Zarr group with arrays {GENOTYPES}, {SAMPLE_ID}, {SNP_ID}"
    remedy = "create it with `bigeval genotypes import` (again, if it was damaged)"
    try:
        group = zarr.open_group(path, mode="r")
        arr = group[GENOTYPES]
        sample_ids = np.array(group[SAMPLE_ID][:].tolist(), dtype=str)
        snp_ids = np.array(group[SNP_ID][:].tolist(), dtype=str)
        missing = (arr.nchunks - arr.nchunks_initialized) if arr.attrs.get(ALL_CHUNKS) else 0
    except (FileNotFoundError, KeyError) as exc:
        raise InputError(f"not a genotype store ({exc})", file=path, expected=expected,
                         remedy=remedy) from None
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        raise InputError(f"the genotype store is damaged ({str(exc).strip()[:120]})",
                         file=path, expected=expected, remedy=remedy) from None
    if missing:
        raise InputError(f"the genotype store is damaged: {missing:,} of its {arr.nchunks:,} "
                         "chunks of genotypes are missing", file=path, value=missing,
                         expected="every chunk written by `bigeval genotypes import`",
                         remedy=remedy)
    if arr.shape != (len(sample_ids), len(snp_ids)):
        raise InputError("the genotype store is damaged: its genotypes do not match its IDs",
                         file=path, value=f"{arr.shape}, {len(sample_ids)} animals, "
                         f"{len(snp_ids)} SNPs", expected="one row per animal ID and one "
                         "column per SNP ID", remedy=remedy)
    return da.from_array(CheckedArray(arr, path), chunks=arr.chunks, asarray=False,
                         fancy=False), sample_ids, snp_ids


class CheckedArray:
    """A Zarr array of genotypes whose reads fail with an :class:`InputError` naming the
    store and the rows and columns read (a damaged chunk), instead of the codec's error."""

    def __init__(self, arr, path: Path):
        self.arr, self.path = arr, path
        self.shape, self.dtype, self.ndim = arr.shape, arr.dtype, arr.ndim
        self.chunks = arr.chunks

    def __getitem__(self, key):
        try:
            return self.arr[key]
        except (RuntimeError, ValueError, OSError) as exc:
            raise InputError(f"a chunk of the genotype store cannot be read "
                             f"({str(exc).strip()[:120]})", file=self.path,
                             value=f"[{_slices(key)}]",
                             expected="the chunks written by `bigeval genotypes import`",
                             remedy="import the genotypes again (the store is damaged)"
                             ) from None


def _slices(key) -> str:
    """``rows, columns`` of an index as text, e.g. ``0:4096, 0:8192``."""
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{k.start or 0}:{'' if k.stop is None else k.stop}"
                     if isinstance(k, slice) else str(k) for k in key)
