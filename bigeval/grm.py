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
SNP blocks. The terms with ``U`` are sparse products over the missing calls only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from numba import njit

from bigeval._resources import check_dense
from bigeval.errors import InputError
from bigeval.io.genotypes import MISSING, open_genotypes
from bigeval.io.writers import atomic_dir, atomic_path

__all__ = ["grm", "allele_frequencies", "write_grm", "read_grm"]

EXACT_F32_SNPS = 2**24 // 4  # SNPs per block for which sums of 0/1/2 products are exact in f32


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
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(f"SNP column {j + 1} holds genotypes that are not 0/1/2 counts "
                         f"({int(bad.sum())} such genotypes)", value=j + 1,
                         expected="0, 1, 2, or -1 for missing",
                         remedy="recode the genotypes (import_genotypes checks them)")
    empty = np.flatnonzero(called == 0)
    if empty.size:
        raise InputError(f"SNP column {empty[0] + 1} has no genotype, so its allele frequency "
                         f"is unknown ({empty.size} such SNPs)", value=int(empty[0] + 1),
                         expected="at least one called genotype per SNP",
                         remedy="drop SNPs without calls (bigeval.qc), or pass freq")
    return counts / (2.0 * called)


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
    n, m = M.shape
    X = np.empty((n, m), np.float32)
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
    return X, u, missing


def _prepared(M, c):
    """X, u = X c and the sparse missing-call indicator U (None when nothing is missing)."""
    M = np.ascontiguousarray(M)
    X, u, missing = _prepare(M, c)
    U = sp.csr_matrix((M == MISSING).astype(np.float64)) if missing else None
    return X, u, U


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
    Xi, ui, Ui = _prepared(Mi, c)
    Xj, uj, Uj = (Xi, ui, Ui) if same else _prepared(Mj, c)
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
    if Ui is not None or Uj is not None:
        c2 = c * c
        P = np.zeros(state["f32"].shape)
        if Uj is not None:  # (X_i D) U_j' - 1 r_j'
            P += (Uj @ (Xi.astype(np.float64) * c).T).T
            P -= (Uj @ c2)[None, :]
        if Ui is not None:  # U_i (X_j D)' - r_i 1'
            P += Ui @ (Xj.astype(np.float64) * c).T
            P -= (Ui @ c2)[:, None]
        if Ui is not None and Uj is not None:  # U_i D^2 U_j'
            P += (Ui.multiply(c2[None, :]) @ Uj.T).toarray()
        state["miss"] = P if state["miss"] is None else state["miss"] + P
    return state


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
        t = 64
        for a0 in range(0, ni, t):
            for b0 in range(0, nj, t):
                for b in range(b0, min(nj, b0 + t)):
                    for a in range(a0, min(ni, a0 + t)):
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


def grm(genotypes, *, freq=None, chunks=None, blas_threads: int | None = None) -> np.ndarray:
    """VanRaden (2008) method 1 G, blockwise over animals and SNPs.

    Parameters
    ----------
    genotypes
        A store from :func:`bigeval.io.genotypes.import_genotypes` (path), or a dask or numpy
        integer array, animals by SNPs, 0/1/2 with -1 for missing. Rows are the animals of G
        in the same order.
    freq
        Allele frequencies (one per SNP) of the counted allele; estimated from the data (one
        pass) when None.
    chunks
        Rechunk to (animals, SNPs) before the work; by default the store's (or the dask
        array's) chunks. Animal chunks set the blocks of G (each task holds two row blocks and
        one float64 block of G); SNP chunks the memory of each task.
    blas_threads
        BLAS threads inside each task; default 1 when there are at least as many pair blocks
        as cores (dask's threads then keep the cores busy), else BLAS's own default.

    Returns
    -------
    G : numpy.ndarray
        float64, animals by animals.

    Examples
    --------
    >>> grm(np.array([[0], [2]], np.int8)).tolist()
    [[2.0, -2.0], [-2.0, 2.0]]
    """
    import dask
    from dask import delayed

    X, _ = _as_dask(genotypes, chunks)
    n, m = X.shape
    if freq is None:
        freq = allele_frequencies(X)
    else:
        freq = np.array(freq, dtype=np.float64)
        if freq.shape != (m,) or not np.all((freq >= 0) & (freq <= 1)):
            raise InputError("allele frequencies must be one value in [0, 1] per SNP",
                             value=f"shape {freq.shape}", expected=f"shape ({m},) in [0, 1]",
                             remedy="pass frequencies of the allele counted, or freq=None")
    scale = 2.0 * np.sum(freq * (1.0 - freq))  # VanRaden (2008): 2 sum p_j (1 - p_j)
    if not scale > 0.0:
        raise InputError("every SNP is monomorphic (all p are 0 or 1), so G has no scale",
                         value=0.0, expected="at least one SNP with 0 < p < 1",
                         remedy="check the genotype coding, or remove monomorphic SNPs (QC)")
    # The float64 G, the computed upper blocks (about half of G) and the task buffers.
    check_dense(n, copies=1.6, what="the genomic relationship matrix G")
    c = 2.0 * freq
    snp_edges = np.concatenate([[0], np.cumsum(X.chunks[1])])
    row_edges = np.concatenate([[0], np.cumsum(X.chunks[0])])
    nb, kb = X.numblocks
    if blas_threads is None:
        blas_threads = 1 if nb * (nb + 1) // 2 >= (os.cpu_count() or 1) else None
    parts = X.to_delayed()
    pairs, tasks = [], []
    for i in range(nb):
        for j in range(i, nb):
            state = None
            for k in range(kb):
                ck = c[snp_edges[k]:snp_edges[k + 1]]
                state = delayed(_pair_block, pure=True)(state, parts[i, k], parts[j, k], ck,
                                                        i == j)
            pairs.append((i, j))
            tasks.append(delayed(_finish_fast, pure=True)(state, i == j, 1.0 / scale))
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    # one limit for the whole compute (threaded scheduler; distributed workers run BLAS on
    # one thread already)
    limit = nullcontext() if blas_threads is None else \
        threadpool_limits(limits=blas_threads, user_api="blas")
    with limit:
        blocks = dask.compute(*tasks)  # stage boundary: all products at once
    G = np.empty((n, n))
    for (i, j), b in zip(pairs, blocks):  # blocks are already divided by the scale
        _place(G, b, row_edges[i], row_edges[j], i != j)
    del blocks, tasks
    return G


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
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        import h5py

        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset(name, data=G, chunks=True if G.size > 1 else None)
            f.create_dataset("ids", data=ids.astype(object), dtype=h5py.string_dtype())
        return path
    if suffix == ".zarr":
        import zarr

        n = G.shape[0]
        with atomic_dir(path) as tmp:
            group = zarr.open_group(tmp, mode="w", zarr_format=3)
            group.create_array(name, data=G, chunks=(min(n, 4096), min(n, 4096)))
            group.create_array("ids", shape=(n,), dtype=str)[:] = ids.astype(object)
        return path
    raise InputError("unknown output format for G", file=path, value=path.suffix,
                     expected=".h5 (HDF5) or .zarr", remedy="name the output *.h5 or *.zarr")


def read_grm(path: str | os.PathLike, name: str = "G") -> tuple[np.ndarray, np.ndarray]:
    """Read a matrix and its IDs written by :func:`write_grm` (HDF5 or Zarr)."""
    path = Path(path)
    if path.suffix.lower() == ".zarr":
        import zarr

        group = zarr.open_group(path, mode="r")
        return group[name][:], np.array(group["ids"][:].tolist(), dtype=str)
    import h5py

    with h5py.File(path, "r") as f:
        return f[name][:], f["ids"].asstr()[:].astype(str)
