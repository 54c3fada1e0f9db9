"""The genomic relationship matrix G, blockwise with Dask, from a genotype store or array.

VanRaden (2008) method 1, missing calls mean-imputed (centred value 0), as the dense twin
:func:`bigeval.genomic.vanraden_g`, against which it is tested.

The work is split over (animal block i, animal block j, SNP block k) with i <= j only (G is
symmetric: the lower blocks are mirrored). Per SNP block the integer part of the product is
exact in float32 and the centring is applied in float64. With ``X`` the genotypes with missing
set to 0, ``U`` the 0/1 indicator of a missing call, ``c = 2p`` and ``D = diag(c)``, the
centred genotypes are ``Z = X - 1c' + U D``, so

    Z_i Z_j' = X_i X_j' - u_i 1' - 1 u_j' + c'c                 (u = X c)
             + (X_i D) U_j' + U_i (X_j D)' - r_i 1' - 1 r_j' + U_i D^2 U_j'   (r = U c^2)

``X_i X_j'`` is a float32 GEMM of small integers: each entry is a sum of at most 4 per SNP,
exact while the SNP block has fewer than 2^24 / 4 SNPs; it is accumulated in float64 across
SNP blocks. The terms with ``U`` are sums over the missing calls only, in float64: with
``Y`` = X with ``c_j / 2`` at the missing calls and ``W_ij = U_i (Y_j D)'``, they are
``W_ij + W_ji' - r_i 1' - 1 r_j'`` (:func:`_missing_panel`; the ``U_i D^2 U_j'`` term is split
in two exact halves), at a cost of (missing calls) x (animals) multiply-adds.

Two schemes compute these sums (``grm(..., scheme=)``; ``"auto"`` picks one):

* **panel** (one machine, dask's threaded or synchronous scheduler; the default there): the
  SNPs are cut into panels of whole SNP chunks (about ``PANEL_BYTES`` of float32 each). Per
  panel, zarr (or dask) reads the animal chunks in parallel, the allele frequencies are
  counted from them, one parallel compiled pass makes float32 X and ``u``, and ONE
  multi-threaded SSYRK of the whole panel adds ``X X'`` (upper triangle) to a single n x n
  float32 accumulator: every genotype is read and converted once, and BLAS sees the largest
  possible problem. Before the accumulator could hold 2^24 / 4 SNPs it is flushed into the
  float64 G. Missing calls add ``W = U (Y D)'`` to G in float64 (``W + W'`` is the whole
  ``U`` part above, with ``r`` added to ``u``). One parallel compiled pass then finishes G
  in place, mirrored (:func:`_finish_panels`).
  Memory: G (8 n^2 bytes), the accumulator (4 n^2) and two panels.
* **tiles** (a distributed cluster, where G may not fit one worker; the default under a
  distributed client): one dask task chain per pair of animal blocks i <= j over the SNP
  blocks (:func:`_pair_block`, then :func:`_finish_fast`); the finished blocks are gathered
  as they complete, a bounded number of pairs in flight, and put into G or written to an
  HDF5/Zarr file (``out=``), so workers hold only the blocks in flight.

Each compiled kernel has a slow numpy twin it is tested against (:func:`_split` and
:func:`_matvec64` for :func:`_prepare`, :func:`_finish_pair` for :func:`_finish_fast`,
:func:`_missing_panel_slow`, :func:`_finish_panels_slow`), and both schemes against the dense
float64 :func:`bigeval.genomic.vanraden_g`.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from bigeval._resources import check_dense
from bigeval.errors import InputError, ResourceError
from bigeval.io.genotypes import MISSING, open_genotypes
from bigeval.io.writers import atomic_dir, atomic_path

__all__ = ["grm", "allele_frequencies", "write_grm", "read_grm", "read_grm_ids"]

EXACT_F32_SNPS = 2**24 // 4  # SNPs per block for which sums of 0/1/2 products are exact in f32
TILE = 64  # side of the tiles of the compiled passes over G


def _as_dask(genotypes, chunks):
    """A dask array of genotypes (and sample IDs if read from a store)."""
    import dask.array as da

    ids = None
    if isinstance(genotypes, (str, os.PathLike)):
        genotypes, ids, _ = open_genotypes(genotypes)
    elif not isinstance(genotypes, da.Array):
        genotypes = np.asarray(genotypes)
        genotypes = da.from_array(genotypes, chunks=chunks or (4096, 8192))
    if genotypes.ndim != 2:
        raise InputError("genotypes must be two-dimensional, animals by SNPs",
                         value=f"shape {genotypes.shape}", expected="shape (animals, SNPs)",
                         remedy="pass one row per animal and one column per SNP")
    if not np.issubdtype(genotypes.dtype, np.integer):
        raise InputError("genotypes must be integer allele counts", value=str(genotypes.dtype),
                         expected="int8 with 0/1/2 and -1 for missing",
                         remedy="import them with bigeval.io.genotypes.import_genotypes")
    if chunks is not None:
        genotypes = genotypes.rechunk(chunks)
    if max(genotypes.chunks[1]) > EXACT_F32_SNPS:
        genotypes = genotypes.rechunk({1: EXACT_F32_SNPS})
    return genotypes, ids


def allele_frequencies(genotypes, *, chunks=None) -> np.ndarray:
    """Frequency of the counted allele per SNP, from the called genotypes (one dask pass).

    ``p_j = sum_i M_ij / (2 n_j)`` over the ``n_j`` called genotypes of SNP j.

    Raises
    ------
    InputError
        A code other than -1/0/1/2, or a SNP without any call.

    Examples
    --------
    >>> allele_frequencies(np.array([[0, 2], [1, -1]], np.int8)).tolist()
    [0.25, 1.0]
    """
    import dask
    import dask.array as da

    X, _ = _as_dask(genotypes, chunks)
    observed = (X >= 0) & (X <= 2)
    # stage boundary: one pass over the genotypes for the three sums (the graph shares X)
    counts, called, bad = dask.compute(da.where(observed, X, 0).sum(axis=0, dtype=np.int64),
                                       observed.sum(axis=0, dtype=np.int64),
                                       (~observed & (X != MISSING)).sum(axis=0))
    return _frequencies(counts, called, bad)


def _frequencies(counts, called, bad, first: int = 0) -> np.ndarray:
    """``counts / (2 called)`` per SNP, or the InputError for codes that are not 0/1/2
    (``bad``) or SNPs without a call; ``first`` is the position of the first SNP given."""
    if bad.any():
        j = int(np.flatnonzero(bad)[0]) + first
        raise InputError(f"SNP column {j + 1} holds genotypes that are not 0/1/2 counts "
                         f"({int(bad.sum())} such genotypes)", value=j + 1,
                         expected="0, 1, 2, or -1 for missing",
                         remedy="recode the genotypes (import_genotypes checks them)")
    empty = np.flatnonzero(called == 0)
    if empty.size:
        raise InputError(f"SNP column {empty[0] + first + 1} has no genotype, so its allele "
                         f"frequency is unknown ({empty.size} such SNPs)",
                         value=int(empty[0] + first + 1),
                         expected="at least one called genotype per SNP",
                         remedy="drop SNPs without calls (bigeval.genomic.qc), or pass freq")
    return counts / (2.0 * called)


@njit(cache=True, nogil=True)
def _count_calls(M):  # pragma: no cover - compiled
    """Per SNP (column) of an int8 block: sum of the 0/1/2 calls, number of calls, and number
    of codes other than 0/1/2/-1; one pass. The fast twin of :func:`allele_frequencies`'s
    dask sums (tested against them)."""
    n, m = M.shape
    counts = np.zeros(m, np.int64)
    called = np.zeros(m, np.int64)
    bad = np.zeros(m, np.int64)
    for i in range(n):
        for j in range(m):
            v = M[i, j]
            if v >= 0 and v <= 2:
                counts[j] += v
                called[j] += 1
            elif v != MISSING:
                bad[j] += 1
    return counts, called, bad


def _split(block: np.ndarray):
    """float32 X (missing set to 0) and the sparse 0/1 indicator U of missing calls."""
    missing = block == MISSING
    X = np.where(missing, 0, block).astype(np.float32)
    U = sp.csr_matrix(missing.astype(np.float64)) if missing.any() else None
    return X, U


def _matvec64(X: np.ndarray, c: np.ndarray, rows: int = 256) -> np.ndarray:
    """``X c`` in float64 for a float32 X, a few rows at a time (no n x m float64 copy)."""
    out = np.empty(len(X))
    for r in range(0, len(X), rows):
        out[r:r + rows] = X[r:r + rows].astype(np.float64) @ c
    return out


@njit(cache=True, nogil=True)
def _prepare(M, c):  # pragma: no cover - compiled
    """One pass over an int8 block: float32 X (missing set to 0), ``u = X c`` in float64 and
    the number of missing calls. The fast twin of :func:`_split` + :func:`_matvec64`."""
    X = np.empty(M.shape, np.float32)
    u, missing = _prepare_into(M, c, X)
    return X, u, missing


@njit(cache=True, nogil=True)
def _prepare_into(M, c, X):  # pragma: no cover - compiled
    """:func:`_prepare` into a given float32 buffer ``X`` (same shape as ``M``)."""
    n, m = M.shape
    u = np.zeros(n)
    missing = 0
    for i in range(n):
        s = 0.0
        for j in range(m):
            v = M[i, j]
            if v == -1:  # MISSING
                X[i, j] = 0.0
                missing += 1
            else:
                X[i, j] = v
                s += v * c[j]
        u[i] = s
    return u, missing


@njit(cache=True, nogil=True, parallel=True)
def _prepare_parallel(M, c, X):  # pragma: no cover - compiled
    """:func:`_prepare_into` in parallel over blocks of rows (tested against it)."""
    n = M.shape[0]
    u = np.zeros(n)
    rows = 256
    nblocks = (n + rows - 1) // rows
    missing = np.zeros(nblocks, np.int64)
    for r in prange(nblocks):
        r0 = r * rows
        r1 = min(n, r0 + rows)
        ur, mr = _prepare_into(M[r0:r1], c, X[r0:r1])
        u[r0:r1] = ur
        missing[r] = mr
    return u, missing.sum()


@njit(cache=True, nogil=True, parallel=True)
def _count_calls_parallel(M):  # pragma: no cover - compiled
    """:func:`_count_calls` in parallel over blocks of columns (tested against it)."""
    m = M.shape[1]
    counts = np.zeros(m, np.int64)
    called = np.zeros(m, np.int64)
    bad = np.zeros(m, np.int64)
    cols = 256
    for b in prange((m + cols - 1) // cols):
        c0 = b * cols
        c1 = min(m, c0 + cols)
        counts[c0:c1], called[c0:c1], bad[c0:c1] = _count_calls(M[:, c0:c1])
    return counts, called, bad


def _pair_block(state, Mi, Mj, c, same):
    """Add one SNP block to the running sums of pair (i, j); ``state`` None for the first.

    The state holds the integer part ``sum_k X_i X_j'`` in float32 (exact below 2^24, flushed
    to float64 before it could reach that), the float64 vectors ``u = X c`` and ``c'c`` summed
    over SNP blocks, and the float64 sum of the missing-call terms (None while there is none).
    The GEMM accumulates in place (BLAS beta = 1), so a SNP block costs no pass over the block
    of G beyond the GEMM itself; on the diagonal SYRK fills the upper triangle only.
    """
    from scipy.linalg.blas import sgemm, ssyrk

    c = np.asarray(c, dtype=np.float64)
    m = len(c)
    Mi = np.ascontiguousarray(Mi)
    Mj = Mi if same else np.ascontiguousarray(Mj)
    Xi, ui, missing_i = _prepare(Mi, c)  # the numbers of missing calls
    Xj, uj, missing_j = (Xi, ui, missing_i) if same else _prepare(Mj, c)
    if state is None:
        ni, nj = len(Xi), len(Xj)
        state = {"f32": np.zeros((ni, nj), np.float32, order="F"), "snps": 0,
                 "f64": None, "ui": np.zeros(ni), "uj": np.zeros(nj), "cc": 0.0, "miss": None}
    if state["snps"] + m > EXACT_F32_SNPS:  # flush before float32 could round
        f64 = state["f32"].astype(np.float64)
        state["f64"] = f64 if state["f64"] is None else state["f64"] + f64
        state["f32"][:] = 0.0
        state["snps"] = 0
    # C-ordered X (n x m) is the Fortran-ordered X' (m x n): C += (X')' (X') = X X'.
    # BLAS threads are set once around the whole compute (grm): a per-task limit would be
    # restored by one task while another's GEMM starts, oversubscribing the cores.
    if same:
        state["f32"] = ssyrk(1.0, Xi.T, beta=1.0, c=state["f32"], trans=1, lower=0,
                             overwrite_c=1)
    else:
        state["f32"] = sgemm(1.0, Xi.T, Xj.T, beta=1.0, c=state["f32"], trans_a=1,
                             overwrite_c=1)
    state["snps"] += m
    state["ui"] += ui
    if not same:
        state["uj"] += uj
    state["cc"] += c @ c
    if missing_i or missing_j:
        # W_ij + W_ji' - r_i 1' - 1 r_j' with W of _missing_panel (rows: the missing calls of
        # one block, columns: the genotypes of the other), r = U c^2: the U terms above
        P = _missing_part(Mi, Mj, c) if missing_i else np.zeros(state["f32"].shape)
        if same:
            P += P.T
        elif missing_j:
            P += _missing_part(Mj, Mi, c).T
        state["miss"] = P if state["miss"] is None else state["miss"] + P
    return state


def _missing_part(Ma, Mb, c):
    """``W - r 1'`` (float64, ``len(Ma) x len(Mb)``) for the missing calls of the genotype
    block ``Ma`` against the genotypes of block ``Mb`` (the same SNPs): see _pair_block."""
    W = np.zeros((len(Ma), len(Mb)))
    W -= _add_missing(Ma, Mb, c, W)[:, None]
    return W


def _add_missing(Ma, Mb, c, W) -> np.ndarray:
    """``W += `` the :func:`_missing_panel` term of the missing calls of block ``Ma`` against
    the genotypes of ``Mb`` (the same SNPs); returns ``r = U c^2`` (per animal of ``Ma``)."""
    ptr, animal, snp = _missing_entries(Ma)
    _missing_panel(np.ascontiguousarray(np.asarray(Mb).T), c, ptr, animal, snp, W,
                   MISSING_ROWS, MISSING_SLAB)
    return np.bincount(animal, weights=c[snp] ** 2, minlength=len(Ma))


@njit(cache=True, nogil=True)
def _finish_kernel(f32, extra, ui, uj, cc, inv_scale, same):  # pragma: no cover - compiled
    """One pass: ``(X_i X_j' - u_i 1' - 1 u_j' + c'c + extra) * inv_scale`` in float64; on
    a diagonal block the lower triangle is read from SYRK's upper one."""
    ni, nj = f32.shape
    P = np.empty((ni, nj))
    has_extra = extra.shape[0] > 0
    for a in range(ni):
        for b in range(nj):
            if same and b < a:
                x = np.float64(f32[b, a])
            else:
                x = np.float64(f32[a, b])
            v = x - ui[a] - uj[b] + cc
            if has_extra:
                v += extra[a, b]
            P[a, b] = v * inv_scale
    return P


def _finish_fast(state, same, inv_scale):
    """:func:`_finish_pair` times ``inv_scale`` in one compiled pass (tested against it)."""
    extra = state["f64"]
    if state["miss"] is not None:
        extra = state["miss"] if extra is None else extra + state["miss"]
    if extra is None:
        extra = np.zeros((0, 0))
    uj = state["ui"] if same else state["uj"]
    return _finish_kernel(state["f32"], np.ascontiguousarray(extra), state["ui"], uj,
                          float(state["cc"]), float(inv_scale), same)


@njit(cache=True, nogil=True)
def _place(G, block, r0, c0, mirror):  # pragma: no cover - compiled
    """``G[r0:, c0:] = block`` and, with ``mirror``, its transpose at ``G[c0:, r0:]`` (tiled)."""
    ni, nj = block.shape
    for a in range(ni):
        for b in range(nj):
            G[r0 + a, c0 + b] = block[a, b]
    if mirror:
        for a0 in range(0, ni, TILE):
            for b0 in range(0, nj, TILE):
                for b in range(b0, min(nj, b0 + TILE)):
                    for a in range(a0, min(ni, a0 + TILE)):
                        G[c0 + b, r0 + a] = block[a, b]


def _finish_pair(state, same):
    """Z_i Z_j' from the running sums (see the module docstring); the slow twin."""
    P = state["f32"].astype(np.float64, order="C")
    if same:  # SYRK filled the upper triangle; the lower one is still 0
        P += np.triu(P, 1).T
    if state["f64"] is not None:
        P += state["f64"]
    uj = state["ui"] if same else state["uj"]
    P -= state["ui"][:, None]
    P -= uj[None, :]
    P += state["cc"]
    if state["miss"] is not None:
        P += state["miss"]
    return P


# ---------------------------------------------------------------------------------------------
# The panel scheme (one machine): one multi-threaded SYRK per SNP panel into one accumulator


PANEL_BYTES = 512 * 2**20  # float32 bytes of one SNP panel (all animals), about


def _panel_ranges(snp_chunks, n: int) -> list[tuple[int, int]]:
    """SNP ranges of the panels: consecutive SNP chunks grouped up to about
    ``PANEL_BYTES / (4 n)`` SNPs (at least one chunk, at most ``EXACT_F32_SNPS``), a short last
    group merged into the one before.

    >>> _panel_ranges((8192,) * 6 + (848,), 20_000)
    [(0, 8192), (8192, 16384), (16384, 24576), (24576, 32768), (32768, 40960), (40960, 50000)]
    >>> _panel_ranges((100,) * 5, 10)
    [(0, 500)]
    """
    target = max(1, min(EXACT_F32_SNPS, PANEL_BYTES // (4 * max(n, 1))))
    ranges, start, end = [], 0, 0
    for width in snp_chunks:
        if end > start and end - start + width > target:
            ranges.append((start, end))
            start = end
        end += width
    if end > start:
        if ranges and 2 * (end - start) < target and end - ranges[-1][0] <= EXACT_F32_SNPS:
            start = ranges.pop()[0]
        ranges.append((start, end))
    return ranges


MISSING_ROWS, MISSING_SLAB = 64, 1024  # block of W (animals x animals) per task of the kernel


def _missing_entries(M, rows: int = MISSING_ROWS):
    """The missing calls ``(a, j)`` of a panel ordered by block of ``rows`` animals, then by
    SNP: ``ptr`` (start of each block's entries), ``animal`` and ``snp``."""
    animal, snp = np.nonzero(M == MISSING)
    blocks = (len(M) + rows - 1) // rows
    ptr = np.zeros(blocks + 1, np.int64)
    np.cumsum(np.bincount(animal // rows, minlength=blocks), out=ptr[1:])
    order = np.argsort((animal // rows) * M.shape[1] + snp)
    return ptr, animal[order].astype(np.int64), snp[order].astype(np.int64)


@njit(cache=True, nogil=True, parallel=True)
def _missing_panel(MT, c, ptr, animal, snp, W, rows, slab):  # pragma: no cover - compiled
    """``W[a, b] += sum over the missing calls j of animal a of c_j Y[b, j]``, with
    ``Y = M`` where called and ``c_j / 2`` where missing (``MT = M'``, int8, SNPs by animals;
    the missing calls from :func:`_missing_entries` with the same ``rows``).

    ``W + W'`` is then the whole missing-call part of ``Z Z'`` (module docstring):
    ``(X D) U' + U (X D)' + U D^2 U'`` (the ``c_j^2 U_a U_b`` term split in two exact halves).
    Parallel over blocks of W (``rows`` animals by ``slab`` animals, accumulated in cache, the
    rows of MT streamed in SNP order): about 4 times the speed of one row of W at a time. The
    slow twin is :func:`_missing_panel_slow`.
    """
    nr, n = W.shape  # the animals of the missing calls, of MT's columns
    nslab = (n + slab - 1) // slab
    for task in prange((len(ptr) - 1) * nslab):
        k = task // nslab
        if ptr[k] == ptr[k + 1]:
            continue
        a0 = k * rows
        b0 = (task - k * nslab) * slab
        b1 = min(n, b0 + slab)
        acc = np.zeros((min(nr, a0 + rows) - a0, b1 - b0))
        for t in range(ptr[k], ptr[k + 1]):
            j = snp[t]
            cj = c[j]
            half = 0.5 * cj
            row = MT[j, b0:b1]
            out = acc[animal[t] - a0]
            for b in range(b1 - b0):
                v = row[b]
                out[b] += cj * (half if v < 0 else np.float64(v))
        for a in range(acc.shape[0]):
            for b in range(b1 - b0):
                W[a0 + a, b0 + b] += acc[a, b]


def _missing_panel_slow(M, c):
    """The slow twin of :func:`_missing_panel` in dense float64 numpy: ``U (Y D)'``."""
    U = (M == MISSING).astype(np.float64)
    Y = np.where(M == MISSING, 0.5 * c[None, :], M.astype(np.float64))
    return U @ (Y * c).T


@njit(cache=True, nogil=True, parallel=True)
def _flush_upper(G, CT):  # pragma: no cover - compiled
    """``G[a, b] += C[a, b]`` for ``a < b`` and ``G[a, a] += C[a, a] / 2``, so that
    ``G + G'`` gains C (``CT = C'``: SYRK's upper triangle of C is the lower one of CT)."""
    n = G.shape[0]
    nt = (n + TILE - 1) // TILE
    for J in prange(nt):
        for I in range(J + 1):
            for b in range(J * TILE, min(n, J * TILE + TILE)):
                for a in range(I * TILE, min(b, I * TILE + TILE)):
                    G[a, b] += CT[b, a]
                if I == J:  # the finish adds G[a, a] twice (W + W')
                    G[b, b] += 0.5 * np.float64(CT[b, b])


@njit(cache=True, nogil=True, parallel=True)
def _finish_panels(G, CT, u, cc, inv_scale, extra):  # pragma: no cover - compiled
    """G in place from the float32 SYRK accumulator (upper triangle of ``C = CT'``):
    ``G[a, b] = G[b, a] = (C[a, b] - u_a - u_b + cc + W[a, b] + W[b, a]) * inv_scale`` for
    ``a <= b``, where W is what G holds (missing-call terms and flushed products) when
    ``extra``, else nothing. Tile pairs (I, J), I <= J, each read and written by one thread.
    The slow twin is :func:`_finish_panels_slow`."""
    n = G.shape[0]
    nt = (n + TILE - 1) // TILE
    tiles_i, tiles_j = np.triu_indices(nt)
    for p in prange(len(tiles_i)):
        I = tiles_i[p]
        J = tiles_j[p]
        for b in range(J * TILE, min(n, J * TILE + TILE)):
            for a in range(I * TILE, min(b + 1, I * TILE + TILE)):
                v = np.float64(CT[b, a]) - u[a] - u[b] + cc
                if extra:
                    v += G[a, b] + G[b, a]
                v *= inv_scale
                G[a, b] = v
                G[b, a] = v


def _finish_panels_slow(W, C, u, cc, inv_scale):
    """The slow twin of :func:`_finish_panels` (``W`` None when there is none): a new G."""
    P = np.triu(C.astype(np.float64))
    P = P + np.triu(P, 1).T
    if W is not None:
        P += W + W.T
    return (P - u[:, None] - u[None, :] + cc) * inv_scale


def _panel_memory(n: int, ranges, prefetch: bool = False) -> float:
    """What the panel scheme holds at once, in copies of an n x n float64 matrix: G, the
    float32 accumulator, and per panel buffer float32 X, int8 M and M' (missing calls)."""
    width = max(e - s for s, e in ranges)
    return 1.5 + (2 if prefetch else 1) * (4 + 1 + 1) * width / (8.0 * n)


def _scale(freq) -> float:
    """VanRaden (2008)'s ``2 sum p_j (1 - p_j)``, or the InputError when every SNP is
    monomorphic (G would have no scale)."""
    scale = 2.0 * np.sum(freq * (1.0 - freq))
    if not scale > 0.0:
        raise InputError("every SNP is monomorphic (all p are 0 or 1), so G has no scale",
                         value=0.0, expected="at least one SNP with 0 < p < 1",
                         remedy="check the genotype coding, or remove monomorphic SNPs (QC)")
    return scale


def _grm_panels(X, freq, *, read=None, prefetch: bool = False, progress=None) -> np.ndarray:
    """G on one machine: per SNP panel (all animals, a few thousand SNPs) the panel's int8
    genotypes are read (``read(s0, s1)``, default: dask, the chunks in parallel), one compiled
    pass converts them to float32 (and ``u = X c``), and ONE multi-threaded SSYRK adds the
    panel's ``X X'`` to a float32 accumulator (exact while it holds fewer than
    ``EXACT_F32_SNPS`` SNPs; flushed into float64 G before that). With ``prefetch`` the next
    panel is read and converted in a background thread meanwhile; off by default: on 2 cores
    it slowed the whole down (73.1 s without, 74.9 s with, at 20 000 x 50 000), as any work
    beside OpenBLAS's threads delays them all. With ``freq`` None the allele frequencies are counted
    from each panel as it is read (no separate pass). Missing calls add their sparse terms to
    G in float64 (:func:`_missing_panel`); one parallel pass finishes G in place
    (:func:`_finish_panels`)."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy.linalg.blas import ssyrk

    n, m = X.shape
    ranges = _panel_ranges(X.chunks[1], n)
    check_dense(n, copies=_panel_memory(n, ranges, prefetch),
                what="the genomic relationship matrix G (with its float32 accumulator)")
    if read is None:
        def read(s0, s1):
            return X[:, s0:s1].compute()
    width = max(e - s for s, e in ranges)
    buffers = [np.empty(n * width, np.float32) for _ in range(2 if prefetch else 1)]
    freqs = [] if freq is None else None

    def load(p):
        s0, s1 = ranges[p]
        M = np.ascontiguousarray(read(s0, s1))
        if freq is None:
            fk = _frequencies(*_count_calls_parallel(M), first=s0)
        else:
            fk = freq[s0:s1]
        ck = 2.0 * fk
        P = buffers[p % len(buffers)][:n * (s1 - s0)].reshape(n, s1 - s0)
        up, missing = _prepare_parallel(M, ck, P)
        return P, up, ck, fk, (M if missing else None)

    G = np.zeros((n, n))  # holds W (float64 terms) until the finish pass; zero pages are lazy
    CT = np.zeros((n, n), np.float32)  # C' in C order: C (Fortran) is what SSYRK updates
    u = np.zeros(n)
    cc, in_c, extra = 0.0, 0, False
    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(load, 0) if prefetch else None
        for p, (s0, s1) in enumerate(ranges):
            P, up, ck, fk, M = nxt.result() if prefetch else load(p)
            if prefetch and p + 1 < len(ranges):
                nxt = pool.submit(load, p + 1)
            if freqs is not None:
                freqs.append(fk)
            if in_c + (s1 - s0) > EXACT_F32_SNPS:  # flush before float32 could round
                _flush_upper(G, CT)
                CT.fill(0.0)
                in_c, extra = 0, True
            # C-ordered P (n x w) is the Fortran P' (w x n): C += (P')' P' = P P'
            C = ssyrk(1.0, P.T, beta=1.0, c=CT.T, trans=1, lower=0, overwrite_c=1)
            if C.ctypes.data != CT.ctypes.data:  # pragma: no cover - a copy would be wrong
                raise RuntimeError("SSYRK did not update the accumulator in place")
            in_c += s1 - s0
            u += up
            cc += float(ck @ ck)
            if M is not None:  # missing calls: u gains r = U c^2, G gains W (float64)
                u += _add_missing(M, M, ck, G)
                extra = True
            del P, M
            if progress:
                progress(s1, m)
    if freqs is not None:
        freq = np.concatenate(freqs)
    _finish_panels(G, CT, u, cc, 1.0 / _scale(freq), extra)
    return G


# ---------------------------------------------------------------------------------------------
# The tile scheme (clusters): one task chain per pair of animal blocks i <= j over SNP blocks


def _tile_tasks(X, c, inv_scale):
    """One delayed finished block of G per pair (i, j), i <= j, and the pairs' offsets."""
    from dask import delayed

    snp_edges = np.concatenate([[0], np.cumsum(X.chunks[1])])
    row_edges = np.concatenate([[0], np.cumsum(X.chunks[0])])
    nb, kb = X.numblocks
    parts = X.to_delayed()
    pairs, tasks = [], []
    for i in range(nb):
        for j in range(i, nb):
            state = None
            for k in range(kb):
                ck = c[snp_edges[k]:snp_edges[k + 1]]
                state = delayed(_pair_block, pure=True)(state, parts[i, k], parts[j, k], ck,
                                                        i == j)
            pairs.append((int(row_edges[i]), int(row_edges[j]), i != j))
            tasks.append(delayed(_finish_fast, pure=True)(state, i == j, inv_scale))
    return pairs, tasks


class _MemorySink:
    """Finished blocks placed (and mirrored) into an in-memory G."""

    def __init__(self, n):
        self.G = np.empty((n, n))

    def put(self, block, r0, c0, mirror):
        _place(self.G, block, r0, c0, mirror)


class _FileSink:
    """Finished blocks written (and mirrored) into the dataset ``ds`` of G of an HDF5 file or
    Zarr group being written at a temporary path (:func:`_created_g`; made visible by the
    caller's atomic rename)."""

    def __init__(self, ds):
        self.ds = ds

    def put(self, block, r0, c0, mirror):
        ni, nj = block.shape
        self.ds[r0:r0 + ni, c0:c0 + nj] = block
        if mirror:
            self.ds[c0:c0 + nj, r0:r0 + ni] = block.T


def _distributed_client():
    """The distributed Client dask computes on now, or None (threads, processes, sync)."""
    try:
        from dask.base import get_scheduler
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    client = getattr(get_scheduler(), "__self__", None)
    return client if isinstance(client, Client) else None


def _grm_tiles(X, c, inv_scale, sink, *, client, in_flight, blas_threads, progress):
    """The blocks of G, i <= j, each put into ``sink`` as soon as it is finished.

    Under a distributed client at most ``in_flight`` pair chains are submitted at once and
    each finished block is gathered, put and released as it completes (``as_completed``), so
    neither the workers nor the client hold more than ``in_flight`` blocks. With dask's local
    schedulers the pairs are computed ``in_flight`` at a time (all at once by default).
    """
    from itertools import islice

    import dask

    pairs, tasks = _tile_tasks(X, c, inv_scale)
    total = len(tasks)
    if client is not None:
        from distributed import as_completed

        if in_flight is None:
            in_flight = 2 * max(1, sum(client.nthreads().values()))
        order = iter(range(total))
        futures = {client.compute(tasks[t]): t for t in islice(order, max(1, in_flight))}
        done = 0
        queue = as_completed(list(futures))
        for future in queue:
            t = futures.pop(future)
            block = future.result()
            future.release()
            sink.put(block, *pairs[t])
            del block
            done += 1
            if progress:
                progress(done, total)
            nxt = next(order, None)
            if nxt is not None:
                f = client.compute(tasks[nxt])
                futures[f] = nxt
                queue.add(f)
        return
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    if blas_threads is None:
        blas_threads = 1 if total >= (os.cpu_count() or 1) else None
    # one limit for the whole compute (threaded scheduler; distributed workers run BLAS on
    # one thread already)
    limit = nullcontext() if blas_threads is None else \
        threadpool_limits(limits=blas_threads, user_api="blas")
    step = total if in_flight is None else max(1, in_flight)
    with limit:
        for t0 in range(0, total, step):
            blocks = dask.compute(*tasks[t0:t0 + step])  # stage boundary: a batch of pairs
            for t, block in enumerate(blocks, t0):
                sink.put(block, *pairs[t])
            del blocks
            if progress:
                progress(min(total, t0 + step), total)


def _store_reader(path):
    """``read(s0, s1)``: the columns s0:s1 of a genotype store read by zarr itself (it
    decompresses the chunks concurrently, 2-3 times as fast as through dask)."""
    import zarr

    from bigeval.io.genotypes import GENOTYPES, CheckedArray

    arr = CheckedArray(zarr.open_group(path, mode="r")[GENOTYPES], Path(path))

    def read(s0, s1):
        return arr[:, s0:s1]
    return read


def grm(genotypes, *, freq=None, chunks=None, blas_threads: int | None = None,
        scheme: str = "auto", out: str | os.PathLike | None = None, ids=None,
        in_flight: int | None = None, progress: bool | None = None):
    """VanRaden (2008) method 1 G, blockwise over animals and SNPs.

    Parameters
    ----------
    genotypes
        A store from :func:`bigeval.io.genotypes.import_genotypes` (path), or a dask or numpy
        integer array, animals by SNPs, 0/1/2 with -1 for missing. Rows are the animals of G
        in the same order.
    freq
        Allele frequencies (one per SNP) of the counted allele; estimated from the data when
        None (panel scheme: counted from each panel as it is read; tile scheme: one pass).
    chunks
        Rechunk to (animals, SNPs) before the work; by default the store's (or the dask
        array's) chunks. Panels are groups of SNP chunks; in the tile scheme animal chunks set
        the blocks of G (each task holds two row blocks and one block of G) and SNP chunks the
        memory of each task.
    blas_threads
        Tile scheme with dask's local schedulers: BLAS threads inside each task; default 1
        when there are at least as many pair blocks as cores, else BLAS's own default.
    scheme
        ``"panel"``: one machine, G in memory; per SNP panel one multi-threaded SSYRK of all
        animals into a float32 accumulator, then one float64 finish pass (the fastest).
        ``"tiles"``: one task chain per pair of animal blocks (i <= j) over the SNP blocks;
        each finished block of G is streamed to G or to ``out`` as it completes, so under a
        distributed client the workers hold only the blocks in flight (bounded memory).
        ``"auto"`` (default): ``"tiles"`` when dask computes on a distributed client, or when
        G goes to ``out`` and the panel scheme would not fit in memory; else ``"panel"``.
    out
        Write G to this ``.h5`` or ``.zarr`` path instead of returning it (atomically; the
        layout of :func:`write_grm`, readable with :func:`read_grm`). In the tile scheme G is
        then never held whole in memory.
    ids
        Animal IDs for ``out``; default the store's sample IDs, else the row numbers 1..n.
    in_flight
        Tile scheme: pairs of blocks computed at once (default: twice the distributed
        client's threads; with local schedulers all pairs at once, or when ``out`` is given
        twice the cores).
    progress
        Show progress on stderr (default: when stderr is a terminal).

    Returns
    -------
    G : numpy.ndarray
        float64, animals by animals; or, with ``out``, the path written.

    Examples
    --------
    >>> grm(np.array([[0], [2]], np.int8)).tolist()
    [[2.0, -2.0], [-2.0, 2.0]]
    >>> grm(np.array([[0], [2]], np.int8), scheme="tiles").tolist()
    [[2.0, -2.0], [-2.0, 2.0]]
    """
    from bigeval.genomic.relationships import _progress_printer  # imports grm lazily too

    if scheme not in ("auto", "panel", "tiles"):
        raise InputError("unknown scheme for G", value=scheme,
                         expected='"auto", "panel" or "tiles"', remedy='leave it "auto"')
    if out is not None:
        out = Path(out)
        suffix = _g_suffix(out)
    X, store_ids = _as_dask(genotypes, chunks)
    n, m = X.shape
    if out is not None:
        ids = store_ids if ids is None else ids
        ids = np.arange(1, n + 1) if ids is None else ids
        ids = np.asarray(ids).astype(str)
        if ids.shape != (n,):
            raise InputError("one ID per animal (row) is needed to write G",
                             value=f"{len(ids)} IDs", expected=f"{n} IDs",
                             remedy="pass ids in the rows' order, or leave ids=None")
    if freq is not None:
        freq = np.array(freq, dtype=np.float64)
        if freq.shape != (m,) or not np.all((freq >= 0) & (freq <= 1)):
            raise InputError("allele frequencies must be one value in [0, 1] per SNP",
                             value=f"shape {freq.shape}", expected=f"shape ({m},) in [0, 1]",
                             remedy="pass frequencies of the allele counted, or freq=None")
        _scale(freq)  # monomorphic: fail before any work
    client = _distributed_client()
    if scheme == "auto":
        scheme = "tiles" if client is not None else "panel"
        if scheme == "panel" and out is not None:
            try:
                check_dense(n, copies=_panel_memory(n, _panel_ranges(X.chunks[1], n)),
                            what="G")
            except ResourceError:
                scheme = "tiles"
    show = _progress_printer(f"G of {n:,} animals x {m:,} SNPs", progress)
    if scheme == "panel":
        # X is then the store's array (maybe rechunked): the same genotypes
        read = _store_reader(genotypes) if isinstance(genotypes, (str, os.PathLike)) else None
        G = _grm_panels(X, freq, read=read, progress=show)
        if out is None:
            return G
        return write_grm(G, ids, out)
    if freq is None:
        freq = allele_frequencies(X)
    scale = _scale(freq)
    c = 2.0 * freq
    if out is None:
        # the float64 G, the blocks in flight (all pairs: about half of G) and task buffers
        check_dense(n, copies=1.6, what="the genomic relationship matrix G")
        sink = _MemorySink(n)
        _grm_tiles(X, c, 1.0 / scale, sink, client=client, in_flight=in_flight,
                   blas_threads=blas_threads, progress=show)
        return sink.G
    if in_flight is None and client is None:
        in_flight = 2 * (os.cpu_count() or 1)
    maker = atomic_dir if suffix == ".zarr" else atomic_path
    side = max(1, min(n, max(X.chunks[0])))
    if suffix != ".zarr":
        side = min(side, 1024)
    with maker(out) as tmp, _created_g(Path(tmp), suffix, ids, n, (side, side)) as ds:
        _grm_tiles(X, c, 1.0 / scale, _FileSink(ds), client=client, in_flight=in_flight,
                   blas_threads=blas_threads, progress=show)
    return out


def _g_suffix(path: Path) -> str:
    """The format of a file for G from its name, ``.h5``/``.hdf5`` or ``.zarr``; else the
    InputError."""
    suffix = path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".zarr"):
        raise InputError("unknown output format for G", file=path, value=path.suffix,
                         expected=".h5 (HDF5) or .zarr", remedy="name the output *.h5 or *.zarr")
    return suffix


@contextlib.contextmanager
def h5_created(path: str | os.PathLike):
    """A new HDF5 file at ``path``, flushed and closed on leaving, closed on errors too.

    A write that fails (disk full, a file-size limit) leaves the HDF5 library with data it
    cannot flush, and closing such a file, or leaving it to the interpreter's exit, crashes
    the process (a segmentation fault). So the file is flushed before it is closed, and on
    any failure its descriptor is pointed at ``os.devnull`` first: the close then succeeds,
    the half-written file is left to the caller's atomic writer to remove, and the error
    (an OSError, which the writers turn into an :class:`bigeval.errors.OutputError`)
    propagates.
    """
    import h5py

    h5 = h5py.File(path, "w")
    try:
        yield h5
        h5.flush()
    except BaseException as exc:
        _close_failed(h5)
        failed = _os_error_of(exc)
        if failed is None:
            raise
        raise failed from exc
    h5.close()


def _os_error_of(exc: BaseException) -> OSError | None:
    """The OSError (with its errno) of a failed HDF5 write, which h5py may raise as a
    RuntimeError naming ``errno = N`` in its message; None for other errors."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return None  # already one
    m = re.search(r"errno = (\d+), error message = '([^']*)'", str(exc))
    if not isinstance(exc, (OSError, RuntimeError)) or m is None:
        return None
    return OSError(int(m[1]), m[2])


def _close_failed(h5) -> None:
    """Close an HDF5 file whose writes failed, its pending writes going to ``os.devnull``."""
    try:
        fd = h5.id.get_vfd_handle()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    except Exception:  # noqa: BLE001 - closed already, or no descriptor: close as it is
        pass
    with contextlib.suppress(Exception):
        h5.close()


@contextlib.contextmanager
def _created_g(tmp: Path, suffix: str, ids, n: int, chunks, name: str = "G"):
    """A new HDF5 file or Zarr group at ``tmp`` in the layout of :func:`write_grm`: yields
    the n × n float64 dataset ``name`` (``chunks``), the ``ids`` written; an HDF5 file is
    closed on leaving, on errors too (:func:`h5_created`)."""
    if suffix != ".zarr":
        import h5py

        with h5_created(tmp) as h5:
            ds = h5.create_dataset(name, shape=(n, n), dtype="f8", chunks=chunks)
            h5.create_dataset("ids", data=ids.astype(object), dtype=h5py.string_dtype())
            yield ds
        return
    import zarr

    group = zarr.open_group(tmp, mode="w", zarr_format=3)
    ds = group.create_array(name, shape=(n, n), dtype="f8", chunks=chunks)
    group.create_array("ids", shape=(n,), dtype=str)[:] = ids.astype(object)
    yield ds


def write_grm(G: np.ndarray, ids, path: str | os.PathLike, *, name: str = "G") -> Path:
    """Write G (or any square relationship matrix) with its IDs, atomically.

    ``.h5``/``.hdf5``: HDF5 datasets ``name`` (float64, default ``G``) and ``ids`` (UTF-8
    strings); ``.zarr``: a Zarr group with arrays ``name`` and ``ids``.
    """

    path = Path(path)
    G = np.asarray(G, dtype=np.float64)
    ids = np.asarray(ids).astype(str)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or G.shape[0] != len(ids):
        raise InputError("the matrix must be square with one ID per row",
                         value=f"shape {G.shape}, {len(ids)} IDs",
                         expected="n x n and n IDs", remedy="pass the IDs in the rows' order")
    suffix = _g_suffix(path)
    n = G.shape[0]
    if suffix != ".zarr":
        with atomic_path(path) as tmp, \
                _created_g(tmp, suffix, ids, n, True if G.size > 1 else None, name) as ds:
            ds[...] = G
        return path
    with atomic_dir(path) as tmp, \
            _created_g(tmp, suffix, ids, n, (min(n, 4096), min(n, 4096)), name) as ds:
        ds[...] = G
    return path


def read_grm(path: str | os.PathLike, name: str = "G") -> tuple[np.ndarray, np.ndarray]:
    """Read a matrix and its IDs written by :func:`write_grm` (HDF5 or Zarr); a file that
    is not one (not HDF5, no ``ids``, not square) is an :class:`InputError` naming it."""
    path = Path(path)
    with _grm_errors(path, name):
        if path.suffix.lower() == ".zarr":
            import zarr

            group = zarr.open_group(path, mode="r")
            M, ids = group[name][:], np.array(group["ids"][:].tolist(), dtype=str)
        else:
            import h5py

            with h5py.File(path, "r") as f:
                M, ids = f[name][:], f["ids"].asstr()[:].astype(str)
    if M.ndim != 2 or M.shape != (len(ids), len(ids)):
        raise InputError(f"{name} is not a square matrix with one ID per row", file=path,
                         value=f"shape {M.shape}, {len(ids)} IDs",
                         expected=f"n x n and n IDs (as `bigeval grm` writes {name})",
                         remedy="give the G.h5 / G.zarr written by `bigeval grm`")
    return M, ids


def read_grm_ids(path: str | os.PathLike) -> np.ndarray:
    """The ``ids`` of a file written by :func:`write_grm`, without reading the matrix."""
    path = Path(path)
    with _grm_errors(path, "ids"):
        if path.suffix.lower() == ".zarr":
            import zarr

            return np.array(zarr.open_group(path, mode="r")["ids"][:].tolist(), dtype=str)
        import h5py

        with h5py.File(path, "r") as f:
            return f["ids"].asstr()[:].astype(str)


@contextlib.contextmanager
def _grm_errors(path: Path, name: str):
    """What reading a matrix file can fail with, as an :class:`InputError` naming it."""
    try:
        yield
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        what = "not found" if isinstance(exc, FileNotFoundError) else (
            "not an HDF5 file or Zarr group of a relationship matrix, or damaged")
        raise InputError(f"the matrix file is {what} ({str(exc).strip()[:120]})", file=path,
                         expected=f"HDF5 (.h5) or Zarr (.zarr) with the datasets "
                                  f"{'G' if name == 'ids' else name} (n x n) and ids, as "
                                  "`bigeval grm` writes",
                         remedy="give the G.h5 / G.zarr written by `bigeval grm`") from None
