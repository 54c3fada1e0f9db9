"""APY (algorithm for proven and young) inverse of G*, without the n_g × n_g matrix.

With the genotyped animals split into a core (c) and the others (n), APY (Misztal, Legarra &
Aguilar 2014; Misztal 2016) takes every non-core animal's breeding value as a regression on
the core's plus an independent residual, so that

    G_APY⁻¹ = [[G_cc⁻¹ + P' M⁻¹ P, −P' M⁻¹], [−M⁻¹ P, M⁻¹]],
    P = G_nc G_cc⁻¹ (n × c),   M = diag(m_i),   m_i = g_ii − g_ic G_cc⁻¹ g_ci.

:class:`ApyInverse` holds G_cc⁻¹ (c × c), P and m: ``8 (n_g c + c²)`` bytes instead of
``8 n_g²``; its :meth:`~ApyInverse.matvec` costs ``4 n c + 2 c²`` flops. With c = n_g it is
G⁻¹ itself.

**From the genotype store** (:func:`apy_from_store`), one pass over SNP panels (all animals,
a few hundred SNPs, read with Dask chunk by chunk): each panel's genotypes are centred with
the allele frequencies of that panel's SNPs over all animals (missing calls mean-imputed,
as :func:`bigeval.genomic.vanraden_g`) and ``Z Z_c'`` is added to an n_g × c accumulator,
together with the diagonal ``Σ z²`` and the column sums ``Z'1`` (for the sum of all elements
of G, ``|Z'1|²``); VanRaden's scale ``2 Σ p(1 − p)`` divides at the end. So APY's G is the
G of :func:`bigeval.genomic.relationships.g_from_store` on the same animals and QC (the core columns
and the diagonal; the rest of G is never formed).

**Blending and tuning** in the project's order, G* = tune(blend(G, A22)): blending puts
``(1 − w) G + w A22`` into the accumulator with the core columns of A22 (Colleau's method on
the pruned pedigree, :func:`bigeval.pedigree._colleau_columns`, a panel of core animals at a
time) and ``diag A22 = 1 + F`` for the non-core diagonal; no other A22 entry enters APY.
Tuning ``G* = a + b G_b`` needs the mean diagonal and mean off-diagonal of G_b: its diagonal
is known, and its sum is ``(1 − w) |Z'1|²/s + w 1'A22 1`` (one Colleau product,
:func:`bigeval.genomic.relationships.a22_means`). ``a`` and ``b`` are then applied to the pieces.

**The core** (:func:`choose_core`): the user's list, or c animals drawn at random with a
seed (Pocrnic et al. 2016: a random core is as good as any), c given or set by the
eigenvalue rule: the number of largest eigenvalues of G that explain 98 % of its variance
(its trace). Above ``EIG_SAMPLE`` genotyped animals the eigenvalues are those of G of a
random subsample of ``EIG_SAMPLE`` animals (frequencies of the subsample): the count is
then an estimate, and it is reported as such; it cannot exceed the subsample, and a count
close to it is flagged (give the core size then).

References
----------
Misztal, I., Legarra, A., Aguilar, I. (2014) Using recursion to compute the inverse of the
genomic relationship matrix. J. Dairy Sci. 97:3943-3952.
Pocrnic, I., Lourenco, D.A.L., Masuda, Y., Misztal, I. (2016) Dimensionality of genomic
information and performance of the Algorithm for Proven and Young for different livestock
species. Genet. Sel. Evol. 48:82.
"""

from __future__ import annotations

import os
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd

from bigeval._resources import available_memory, check_dense, size_text
from bigeval.genomic.a22op import A22InverseOperator
from bigeval.defaults import APY_FROM, GENOMIC_INVERSES
from bigeval.errors import InputError, ResourceError
from bigeval.genomic.grm import (
    PANEL_BYTES,
    _count_calls_parallel,
    _distributed_client,
    _frequencies,
    _matvec64,
    _panel_ranges,
    _scale,
    allele_frequencies,
    grm,
)
from bigeval.io.genotypes import open_genotypes
from bigeval.io.writers import atomic_path
from bigeval.linalg import spd_inverse
from bigeval.pedigree import _colleau_columns, inbreeding, mendelian_variance
from bigeval.genomic.relationships import PANEL_BYTES as COLLEAU_BYTES
from bigeval.genomic.relationships import (
    _colleau_matvec,
    _qc_line,
    parent_ids,
    positions_in_pedigree,
    prune_to_ancestors,
    StoreInverses,
    qc_store,
)

__all__ = ["EIG_SAMPLE", "GENOMIC_INVERSES", "VARIANCE_EXPLAINED", "ApyInverse", "ApyStore",
           "apy_from_dense", "apy_from_store", "apy_inverse_dense", "apy_inverses_from_store",
           "apy_memory", "choose_core", "choose_inverse", "eigen_core_size", "full_memory",
           "read_apy", "resolve_genomic_inverse", "write_apy"]


#: share of G's variance (trace) that the core's eigenvalues explain (Pocrnic et al. 2016)
VARIANCE_EXPLAINED = 0.98
#: largest number of genotyped animals whose G's eigenvalues set the core size; above it, a
#: random subsample of this many
EIG_SAMPLE = 4000
#: rows of P per block in the streamed passes
ROW_BLOCK = 4096


@dataclass
class ApyInverse:
    """G_APY⁻¹ as its pieces (module docstring), in the order of the genotyped animals.

    Attributes
    ----------
    core, noncore
        Positions (0..n_g−1) of the core and the other animals.
    gcc_inv
        G_cc⁻¹ (c × c, symmetric).
    P
        G_nc G_cc⁻¹ (n × c), rows in the order of ``noncore``.
    m
        The diagonal of M (n), each > 0.
    lines
        How the core was chosen, for a run summary.
    """

    core: np.ndarray
    noncore: np.ndarray
    gcc_inv: np.ndarray
    P: np.ndarray
    m: np.ndarray
    lines: list = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of genotyped animals."""
        return self.core.size + self.noncore.size

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.n)

    @property
    def nbytes(self) -> int:
        return int(self.gcc_inv.nbytes + self.P.nbytes + self.m.nbytes)

    def matvec(self, x) -> np.ndarray:
        """``G_APY⁻¹ x`` for a vector (n_g) or a matrix (n_g × k)."""
        x = np.asarray(x, np.float64)
        xc, xn = x[self.core], x[self.noncore]
        minv = (1.0 / self.m) if x.ndim == 1 else (1.0 / self.m)[:, None]
        r = minv * (xn - self.P @ xc)  # M⁻¹ (x_n − P x_c)
        y = np.empty_like(x)
        y[self.core] = self.gcc_inv @ xc - self.P.T @ r
        y[self.noncore] = r
        return y

    def diagonal(self) -> np.ndarray:
        """diag(G_APY⁻¹)."""
        d = np.empty(self.n)
        d[self.noncore] = 1.0 / self.m
        dc = np.diag(self.gcc_inv).copy()
        for lo in range(0, self.noncore.size, ROW_BLOCK):
            p = self.P[lo:lo + ROW_BLOCK]
            dc += np.einsum("ij,ij->j", p, p / self.m[lo:lo + ROW_BLOCK, None])
        d[self.core] = dc
        return d

    def to_dense(self) -> np.ndarray:
        """G_APY⁻¹ as a dense n_g × n_g matrix (small n_g only: the twin of the tests)."""
        check_dense(self.n, what=f"the dense APY G⁻¹ of {self.n:,} genotyped animals")
        return self.matvec(np.eye(self.n))


def apy_memory(n: int, c: int, snps_per_panel: int = 8192) -> int:
    """Bytes the APY build holds at its peak: the n × c accumulator (which becomes P), G_cc
    and its inverse, one SNP panel of int8 genotypes (twice: read and reordered) and one
    slice of it in float64 (about ``2 PANEL_BYTES``)."""
    return int(8 * n * c + 16 * c * c + 8 * n + 2 * n * snps_per_panel + 2 * PANEL_BYTES)


def check_apy_memory(n: int, c: int, snps_per_panel: int = 8192, *,
                     available: int | None = None) -> int:
    """:func:`apy_memory`, or a :class:`ResourceError` when it does not fit (80 % of the
    available memory)."""
    need = apy_memory(n, c, snps_per_panel)
    have = available_memory() if available is None else available
    if need > 0.8 * have:
        raise ResourceError(
            f"APY G⁻¹ of {n:,} genotyped animals with {c:,} core animals needs "
            f"{size_text(need)} (the {n:,} x {c:,} rows of P) but only {size_text(have)} "
            "of memory is available; what to do: give a smaller core (--apy-core N)")
    return need


# --------------------------------------------------------------------------------------
# the pieces from a (tuned, blended) G, dense: the twins
# --------------------------------------------------------------------------------------


def apy_inverse_dense(G: np.ndarray, core) -> np.ndarray:
    """The textbook APY inverse of a dense G, every block written out (the tests' twin).

    Examples
    --------
    With every animal in the core, APY is the inverse:

    >>> G = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> bool(np.allclose(apy_inverse_dense(G, [0, 1]), np.linalg.inv(G)))
    True
    """
    G = np.asarray(G, np.float64)
    n = G.shape[0]
    core = np.asarray(core, np.int64)
    non = np.setdiff1d(np.arange(n), core)
    gcc_inv = np.linalg.inv(G[np.ix_(core, core)])
    P = G[np.ix_(non, core)] @ gcc_inv
    m = np.diag(G)[non] - np.einsum("ij,ij->i", P, G[np.ix_(non, core)])
    Minv = np.diag(1.0 / m)
    out = np.zeros((n, n))
    out[np.ix_(core, core)] = gcc_inv + P.T @ Minv @ P
    out[np.ix_(core, non)] = -P.T @ Minv
    out[np.ix_(non, core)] = -Minv @ P
    out[np.ix_(non, non)] = Minv
    return out


def _assemble(K: np.ndarray, dn: np.ndarray, core, noncore, *, ids=None) -> ApyInverse:
    """:class:`ApyInverse` from ``K = G*[r_[core, noncore]][:, core]`` (overwritten: its
    non-core rows become P) and ``dn``, the diagonal of G* at ``noncore``."""
    c = core.size
    gcc_inv = spd_inverse(np.array(K[:c]), overwrite=True, what="G*_cc (APY core)",
                          remedy="blend more A22 into G (--blend), or choose fewer core "
                                 "animals (--apy-core)",
                          ids=None if ids is None else np.asarray(ids)[core])
    m = np.empty(noncore.size)
    for lo in range(0, noncore.size, ROW_BLOCK):
        hi = min(noncore.size, lo + ROW_BLOCK)
        g = K[c + lo:c + hi]
        p = g @ gcc_inv
        m[lo:hi] = dn[lo:hi] - np.einsum("ij,ij->i", p, g)
        K[c + lo:c + hi] = p
    bad = np.flatnonzero(~(m > 0))
    if bad.size:
        k = int(noncore[bad[0]])
        raise InputError(
            f"APY: {bad.size:,} non-core animal(s) have no variance left after regression on "
            "the core (G* is not positive definite)",
            value=f"animal {ids[k] if ids is not None else k}: m = {m[bad[0]]:.3g}",
            expected="m > 0", remedy="blend more A22 into G (--blend), or check the "
                                     "genotypes for duplicates (QC)")
    return ApyInverse(core, noncore, gcc_inv, K[c:], m)


def apy_from_dense(G: np.ndarray, core) -> ApyInverse:
    """:class:`ApyInverse` of a dense (tuned, blended) G with the given core positions."""
    G = np.asarray(G, np.float64)
    n = G.shape[0]
    core = _as_core(core, n)
    non = np.setdiff1d(np.arange(n), core)
    K = np.ascontiguousarray(G[np.r_[core, non]][:, core])
    return _assemble(K, np.diag(G)[non].copy(), core, non)


# --------------------------------------------------------------------------------------
# the core
# --------------------------------------------------------------------------------------


def _as_core(core, n: int) -> np.ndarray:
    core = np.asarray(core)
    if core.ndim != 1 or core.size == 0 or not np.issubdtype(core.dtype, np.integer):
        raise InputError("the APY core must be a non-empty list of animal positions",
                         value=f"shape {core.shape}, dtype {core.dtype}",
                         expected=f"positions 0..{n - 1}")
    core = np.sort(core.astype(np.int64))
    if core[0] < 0 or core[-1] >= n or np.any(np.diff(core) == 0):
        raise InputError("the APY core lists an animal twice or one that is not genotyped",
                         value=int(core[0] if core[0] < 0 else core[-1]),
                         expected=f"distinct positions 0..{n - 1}")
    return core


def eigen_core_size(G: np.ndarray, share: float = VARIANCE_EXPLAINED) -> tuple[int, float]:
    """Number of largest eigenvalues of G explaining ``share`` of its trace, and the share
    they explain.

    Examples
    --------
    >>> eigen_core_size(np.diag([4.0, 3.0, 2.0, 1.0]), 0.75)
    (3, 0.9)
    """
    lam = np.clip(np.linalg.eigvalsh(np.asarray(G, np.float64))[::-1], 0.0, None)
    cum = np.cumsum(lam) / lam.sum()
    k = int(np.searchsorted(cum, share - 1e-12) + 1)
    k = min(k, lam.size)
    return k, float(cum[k - 1])


def choose_core(n: int, *, core=None, size: int | None = None, sample_g=None,
                seed: int = 0) -> tuple[np.ndarray, list]:
    """The core positions and a line on how they were chosen.

    Parameters
    ----------
    n
        Number of genotyped animals.
    core
        The user's core (positions); used as given.
    size
        Number of core animals, drawn at random with ``seed``.
    sample_g
        ``() -> (G_s, n_s)``: G of a subsample (or of all) for the eigenvalue rule, used
        when neither ``core`` nor ``size`` is given.
    seed
        Seed of the random draws.
    """
    if core is not None:
        core = _as_core(core, n)
        return core, [f"APY core: {core.size:,} animals given"]
    rng = np.random.default_rng(seed)
    if size is None:
        Gs, ns = sample_g()
        k, share = eigen_core_size(Gs)
        how = "all" if ns == n else f"a random subsample of {ns:,} (seed {seed}): an estimate"
        line = (f"APY core: {k:,} animals by the eigenvalue rule ({k:,} eigenvalues of G "
                f"explain {100 * share:.2f} % of its variance; eigenvalues of G of {how})")
        if ns < n and k > 0.9 * ns:
            line += ("; WARNING: the count is close to the subsample's size, so the true "
                     "dimensionality may be larger: give the core size (--apy-core)")
        size = k
    else:
        line = None
    if not 1 <= int(size) <= n:
        raise InputError("the APY core size must be between 1 and the number of genotyped "
                         "animals", value=size, expected=f"1..{n:,}",
                         remedy="give --apy-core N with N at most the genotyped animals")
    size = int(size)
    core = np.sort(rng.choice(n, size, replace=False)) if size < n else np.arange(n)
    return core, [line or f"APY core: {size:,} animals drawn at random (seed {seed})"]


# --------------------------------------------------------------------------------------
# from the genotype store
# --------------------------------------------------------------------------------------


def _g_core_pass(X, order: np.ndarray, c: int, progress=None):
    """One pass over SNP panels: ``K = G[order][:, order[:c]]``, diag(G)[order] and the sum
    of all elements of G (module docstring), G as :func:`bigeval.genomic.grm.grm`'s.

    Each panel (whole SNP chunks, read as int8) is converted and multiplied in slices of
    about ``PANEL_BYTES`` of float32 (:func:`_add_cross`)."""
    n, m = X.shape
    ranges = _panel_ranges(X.chunks[1], n)
    width = max(1, PANEL_BYTES // (4 * max(n, 1)))
    K = np.zeros((n, c))
    diag = np.zeros(n)
    total = 0.0
    freqs = []
    for s0, s1 in ranges:
        M = np.ascontiguousarray(X[:, s0:s1].compute())[order]
        f = _frequencies(*_count_calls_parallel(M), first=s0)
        freqs.append(f)
        for j0 in range(0, s1 - s0, width):
            j1 = min(s1 - s0, j0 + width)
            s = _add_cross(K, diag, M[:, j0:j1], M[:c, j0:j1], 2.0 * f[j0:j1])
            total += float(s @ s)
        del M
        if progress:
            progress(s1, m)
    scale = _scale(np.concatenate(freqs))
    K /= scale
    diag /= scale
    return K, diag, total / scale


def _add_cross(K, diag, M, Mc, ck) -> np.ndarray:
    """``K += Z Z_c'`` and ``diag += rowsums(Z²)`` for int8 genotypes ``M`` and core
    genotypes ``Mc`` of the same SNPs (``ck = 2p``); returns the column sums of Z.

    Without missing calls the fast route (as :func:`bigeval.genomic.grm.grm`): the product of the
    0/1/2 counts ``X X_c'`` in float32 (exact: integers below 2^24) and the centring in
    float64, ``Z Z_c' = X X_c' − u 1' − 1 u_c' + c'c`` with ``u = X c``; with missing calls
    both are centred in float64 first. A block of rows at a time (no n × c temporary)."""
    n = M.shape[0]
    if (M >= 0).all() and (Mc >= 0).all():  # exact float32 product of the counts
        Y = M.astype(np.float32)
        Yc = np.ascontiguousarray(Mc.astype(np.float32).T)
        u, uc = _matvec64(Y, ck), _matvec64(np.ascontiguousarray(Yc.T), ck)
        cc = float(ck @ ck)
        for lo in range(0, n, ROW_BLOCK):
            hi = min(n, lo + ROW_BLOCK)
            K[lo:hi] += Y[lo:hi] @ Yc
            K[lo:hi] -= u[lo:hi, None]
            K[lo:hi] -= uc[None, :]
            K[lo:hi] += cc
        diag += np.einsum("ij,ij->i", Y, Y, dtype=np.float64) - 2.0 * u + cc
        return Y.sum(axis=0, dtype=np.float64) - n * ck

    def centred(A):
        Z = A.astype(np.float64)
        Z -= ck
        Z[A < 0] = 0.0  # mean imputation: a missing call is 2p, centred 0
        return Z
    Y, Yc = centred(M), np.ascontiguousarray(centred(Mc).T)
    for lo in range(0, n, ROW_BLOCK):
        K[lo:lo + ROW_BLOCK] += Y[lo:lo + ROW_BLOCK] @ Yc
    diag += np.einsum("ij,ij->i", Y, Y)
    return Y.sum(axis=0)


def _core_block(Mb, Mc, ck):
    """One task of :func:`_g_core_pass_dask`: ``Z_b Z_c'``, rowsums(Z_b²) and the column
    sums of Z_b for a block of animals (all SNPs, in slices of about ``PANEL_BYTES``)."""
    b, m = Mb.shape
    K, diag, s = np.zeros((b, Mc.shape[0])), np.zeros(b), np.empty(m)
    width = max(1, PANEL_BYTES // (4 * max(b, 1)))
    for j0 in range(0, m, width):
        j1 = min(m, j0 + width)
        s[j0:j1] = _add_cross(K, diag, Mb[:, j0:j1], Mc[:, j0:j1], ck[j0:j1])
    return K, diag, s


def _g_core_pass_dask(X, order: np.ndarray, c: int, client, progress=None):
    """:func:`_g_core_pass` on a distributed cluster: the allele frequencies by one Dask
    pass, the core genotypes sent to every worker once, then one task per block of animals
    (all SNPs): its rows of ``Z Z_c'``, gathered into K as they complete."""
    from distributed import as_completed

    n, m = X.shape
    freq = allele_frequencies(X)
    ck = 2.0 * freq
    core = order[:c]
    Mc = np.asarray(X[np.sort(core)].compute())[np.argsort(np.argsort(core))]
    mc, ckf = client.scatter([Mc, ck], broadcast=True)
    rows = X.rechunk({1: -1})
    where = np.empty(n, np.int64)
    where[order] = np.arange(n)  # row of K of each animal
    starts = np.r_[0, np.cumsum(rows.chunks[0])]
    futures = {client.submit(_core_block, client.compute(blk), mc, ckf): k
               for k, blk in enumerate(rows.to_delayed()[:, 0])}
    K, diag, s = np.zeros((n, c)), np.zeros(n), np.zeros(m)
    done = 0
    for fut in as_completed(futures):
        k = futures[fut]
        kb, db, sb = fut.result()
        fut.release()
        at = where[starts[k]:starts[k + 1]]
        K[at] = kb
        diag[at] = db
        s += sb
        done += int(starts[k + 1] - starts[k])
        if progress:
            progress(done, n)
    scale = _scale(freq)
    K /= scale
    diag /= scale
    return K, diag, float(s @ s) / scale


def _a22_pieces(sire, dam, genotyped, order, c, f=None, progress=None):
    """``A22[order][:, order[:c]]``, diag(A22)[order] (1 + F) and 1'A22 1, by Colleau's
    method on the pruned pedigree (no n_g × n_g matrix)."""
    p = prune_to_ancestors(sire, dam, genotyped)
    fp = inbreeding(p.sire, p.dam) if f is None else np.asarray(f, np.float64)[p.animals]
    b = mendelian_variance(p.sire, p.dam, fp)
    rows = p.genotyped[order]
    x = np.zeros(p.sire.size)
    x[p.genotyped] = 1.0
    total = float(x @ _colleau_matvec(p.sire, p.dam, b, x))
    block = int(max(1, min(c, COLLEAU_BYTES // (8 * max(p.sire.size, 1)))))
    starts = list(range(0, c, block))
    A = np.empty((rows.size, c))

    def work(lo):
        hi = min(c, lo + block)  # core columns lo..hi (the first c of ``order``)
        A[:, lo:hi] = _colleau_columns(p.sire, p.dam, b, rows[lo:hi])[rows]
        return lo

    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, len(starts)))) as pool:
        for done, _ in enumerate(pool.map(work, starts)):
            if progress:
                progress(min(c, (done + 1) * block), c)
    return A, 1.0 + fp[rows], total


def _star(K, diag, gsum, a22, a22diag, a22sum, tune: bool, blend: float | None,
          tune_means=None):
    """G* = tune(blend(G, A22)) on the pieces, in place (module docstring)."""
    n = diag.size
    if blend is not None:
        if not 0 <= blend <= 1:
            raise InputError("blending weight outside [0, 1]", value=blend,
                             expected="0 ≤ w ≤ 1", remedy="give a weight such as 0.05")
        K *= 1.0 - blend
        K += blend * a22
        diag *= 1.0 - blend
        diag += blend * a22diag
        gsum = (1.0 - blend) * gsum + blend * a22sum
    if tune and n > 1:
        da = float(a22diag.sum()) / n
        oa = (a22sum - float(a22diag.sum())) / (n * (n - 1))
        dg = float(diag.sum()) / n
        og = (gsum - float(diag.sum())) / (n * (n - 1))
        if not dg != og:
            raise InputError("G has equal mean diagonal and off-diagonal elements, so it "
                             "cannot be tuned to A22", value=dg,
                             remedy="check the genotypes (QC), or leave out tuning")
        bb = (da - oa) / (dg - og)  # Chen et al. (2011), as bigeval.genomic.tune_g_means
        K *= bb
        K += da - bb * dg
        diag *= bb
        diag += da - bb * dg
    return K, diag


@dataclass(frozen=True)
class ApyStore:
    """What :func:`apy_from_store` built: the genotyped animals' pedigree positions and IDs
    (in the APY object's order), the QC report and summary lines."""

    genotyped: np.ndarray
    ids: np.ndarray
    apy: ApyInverse
    report: object
    lines: list


def apy_from_store(store, pedigree_ids, sire, dam, *, keep=None, qc=None, tune: bool = True,
                   blend: float | None = None, core=None, core_size: int | None = None,
                   seed: int = 0, chunks=None, source=None, progress=None,
                   log=None) -> ApyStore:
    """APY G*⁻¹ from a genotype store and a renumbered pedigree, blockwise (module docstring).

    Parameters
    ----------
    store, pedigree_ids, sire, dam, keep, qc, tune, blend, chunks, source
        As :func:`bigeval.genomic.relationships.inverses_from_store` (``blend`` None: no blending).
    core
        IDs of the core animals (of the genotyped ones after QC), or None.
    core_size
        Number of core animals drawn at random (``seed``); None with no ``core``: the
        eigenvalue rule (:func:`choose_core`).
    progress
        ``(done, total)`` callback over the SNPs, or None.
    log
        Called with each line of what is done (the memory needed before it starts).

    Raises
    ------
    InputError
        As :func:`bigeval.genomic.relationships.inverses_from_store`; a core ID not genotyped; G*_cc
        not positive definite.
    ResourceError
        The n_g × c pieces do not fit in memory.
    """
    named = store if source is None else source
    say = log or (lambda line: None)
    _, store_ids, snp_ids = open_genotypes(store)
    if keep is None:
        positions_in_pedigree(store_ids, pedigree_ids, file=named)
    X, ids, report = qc_store(store, qc=qc, keep=keep, source=named,
                              parents=parent_ids(pedigree_ids, sire, dam))
    if chunks is not None:
        X = X.rechunk(chunks)
    pos = positions_in_pedigree(ids, pedigree_ids, file=named)
    n = ids.size
    if core is not None:
        at = pd.Index(ids).get_indexer(np.asarray(core).astype(str))
        if (at < 0).any():
            raise InputError("an APY core animal is not among the genotyped animals (after "
                             "QC)", file=named, value=str(np.asarray(core)[at < 0][0]),
                             expected="IDs of genotyped animals",
                             remedy="list genotyped animals that pass QC as the core")
        core = at

    def sample_g():
        rows = np.arange(n) if n <= EIG_SAMPLE else np.sort(
            np.random.default_rng(seed).choice(n, EIG_SAMPLE, replace=False))
        return grm(X[rows] if rows.size < n else X), rows.size

    core, lines = choose_core(n, core=core, size=core_size, sample_g=sample_g, seed=seed)
    for line in lines:
        say(line)
    c = core.size
    need = check_apy_memory(n, c, max(e - s for s, e in _panel_ranges(X.chunks[1], n)))
    say(f"APY G*⁻¹ of {n:,} genotyped animals, {c:,} core: needs about {size_text(need)} "
        f"(a full G*⁻¹ would need {size_text(24.0 * n * n)})")
    non = np.setdiff1d(np.arange(n), core)
    order = np.r_[core, non]
    client = _distributed_client()
    if client is None:
        K, diag, gsum = _g_core_pass(X, order, c, progress=progress)
    else:  # the blocks of animals on the workers
        K, diag, gsum = _g_core_pass_dask(X, order, c, client, progress=progress)
    a22 = a22diag = a22sum = None
    if tune or blend is not None:
        a22, a22diag, a22sum = _a22_pieces(sire, dam, pos, order, c)
    _star(K, diag, gsum, a22, a22diag, a22sum, tune, blend)
    del a22
    apy = _assemble(K, diag[c:].copy(), core, non, ids=ids)
    apy.lines.extend(lines)
    lines = [f"genotypes: {named} ({len(store_ids):,} animals x {len(snp_ids):,} SNPs); "
             + ("no QC" if qc is None else _qc_line(qc, report))
             + f"; APY G of {n:,} animals ({c:,} core)"
             + (f", blended {1 - blend:g} G + {blend:g} A22" if blend is not None else "")
             + (", tuned to A22" if tune else "")] + lines
    return ApyStore(genotyped=pos, ids=ids, apy=apy, report=report, lines=lines)


# --------------------------------------------------------------------------------------
# the choice of inverse, and the run's entry point
# --------------------------------------------------------------------------------------


def full_memory(n: int) -> int:
    """Bytes the full path holds at its peak: G (turned into G*⁻¹ in place), A22⁻¹ and
    Part II's n_g × n_g work matrix."""
    return int(3 * 8 * n * n)


def resolve_genomic_inverse(choice: str, n: int, *, available: int | None = None,
                            log=None) -> str:
    """``full`` or ``apy`` for ``choice`` (``auto``: full up to
    :data:`bigeval.defaults.APY_FROM` genotyped animals when it fits in memory, else APY);
    the memory of each is given to ``log`` before anything starts.

    Raises
    ------
    InputError
        An unknown choice.
    ResourceError
        ``full`` asked for and it does not fit.
    """
    if choice not in GENOMIC_INVERSES:
        raise InputError("unknown genomic inverse", value=choice,
                         expected=" or ".join(GENOMIC_INVERSES),
                         remedy="give --genomic-inverse auto, full or apy")
    have = available_memory() if available is None else available
    need = full_memory(n)
    fits = need <= 0.8 * have
    picked = choice if choice != "auto" else ("full" if n <= APY_FROM and fits else "apy")
    if log:
        log(f"genomic inverse: {picked} ({choice}); {n:,} genotyped animals: full G*⁻¹ needs "
            f"{size_text(need)}, APY about {size_text(8 * n)} per core animal; "
            f"{size_text(have)} available")
    if picked == "full" and not fits:
        raise ResourceError(
            f"the full G*⁻¹ of {n:,} genotyped animals needs {size_text(need)} (G*⁻¹, A22⁻¹ "
            f"and Part II's work matrix, each {n:,} x {n:,}) but only {size_text(have)} of "
            "memory is available; what to do: use --genomic-inverse apy (or auto)")
    return picked


def choose_inverse(choice: str, n: int, *, needs_full=(), apy_core: int | None = None,
                   log=None) -> str:
    """:func:`resolve_genomic_inverse`, refusing APY where ``needs_full`` names something of
    the run that needs the dense G*⁻¹, and a core size with the full inverse.

    Raises
    ------
    InputError
        As described; an unknown choice.
    ResourceError
        ``full`` does not fit.
    """
    picked = resolve_genomic_inverse(choice, n, log=log)
    if picked == "apy" and needs_full:
        raise InputError(f"{needs_full[0]} needs the full G*⁻¹, and APY was chosen for "
                         f"{n:,} genotyped animals", value=choice,
                         remedy='choose the full G*⁻¹ (--genomic-inverse full, or [genomics] '
                                'inverse = "full"), or leave out what needs it')
    if picked == "full" and apy_core is not None:
        raise InputError("an APY core size is given, and the full G*⁻¹ was chosen",
                         value=apy_core, remedy="choose APY (--genomic-inverse apy, or "
                                                '[genomics] inverse = "apy"), or drop the '
                                                "core size")
    return picked


def apy_inverses_from_store(store, pedigree_ids, sire, dam, *, keep=None, qc=None,
                            tune: bool = True, blend: float | None = None, core=None,
                            core_size: int | None = None, seed: int = 0, chunks=None,
                            source=None, progress=None, log=None) -> StoreInverses:
    """:func:`bigeval.genomic.relationships.inverses_from_store` with APY: the APY G*⁻¹
    (:func:`apy_from_store`) and the A22⁻¹ operator
    (:class:`bigeval.genomic.a22op.A22InverseOperator`) in place of the dense matrices; Part II
    (:func:`bigeval.reliability.genomic.erc_gblup`) takes both."""
    res = apy_from_store(store, pedigree_ids, sire, dam, keep=keep, qc=qc, tune=tune,
                         blend=blend, core=core, core_size=core_size, seed=seed,
                         chunks=chunks, source=source, progress=progress, log=log)
    op = A22InverseOperator(sire, dam, res.genotyped)
    lines = res.lines + [f"A22⁻¹ as an operator (sparse A⁻¹, {op.method} Cholesky of A¹¹)"]
    return StoreInverses(genotyped=res.genotyped, ids=res.ids, ginv=res.apy, a22inv=op,
                         report=res.report, lines=lines)


_PIECES = ("core", "noncore", "gcc_inv", "P", "m")


def write_apy(apy: ApyInverse, ids, path) -> Path:
    """Write the APY pieces and the genotyped animals' IDs to an HDF5 file, atomically (the
    run's checkpoint; :func:`read_apy` reads it)."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name in _PIECES:
            h5.create_dataset(name, data=getattr(apy, name))
        h5.create_dataset("ids", data=np.asarray(ids).astype(str).astype(object),
                          dtype=h5py.string_dtype())
        h5.attrs["lines"] = "\n".join(apy.lines)
    return path


def read_apy(path) -> tuple[ApyInverse, np.ndarray]:
    """The :class:`ApyInverse` and IDs of :func:`write_apy`'s file."""
    try:
        with h5py.File(path, "r") as h5:
            parts = {name: h5[name][...] for name in _PIECES}
            ids = np.array([v.decode() if isinstance(v, bytes) else v for v in h5["ids"][...]],
                           dtype=str)
            lines = [x for x in str(h5.attrs.get("lines", "")).split("\n") if x]
    except (OSError, KeyError) as exc:
        raise InputError(f"not an APY checkpoint ({exc})", file=path,
                         remedy="delete the run's work folder for this stage and re-run") \
            from None
    return ApyInverse(lines=lines, **parts), ids
