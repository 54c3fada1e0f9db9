"""Relationships of the genotyped animals for single-step and Part II: A22, A22⁻¹, G*, G*⁻¹.

Nothing here forms the relationship matrix A of the whole pedigree.

* **Pruning.** A22 depends only on the genotyped animals and their ancestors, so every
  computation first drops the other animals (:func:`prune_to_ancestors`): in a national
  pedigree with young genotyped animals that removes most of it.
* **A22⁻¹ from the sparse A⁻¹** (``method="sparse"``). With the non-genotyped animals (1) and
  the genotyped ones (2) of the pruned pedigree, ``A22⁻¹ = A²² − A²¹ (A¹¹)⁻¹ A¹²``: the Schur
  complement of the sparse A⁻¹ (Henderson's rules). ``A¹¹`` is factored once by a sparse
  Cholesky (CHOLMOD when installed, else SuperLU: :func:`bigeval.linalg.cholesky.cholesky`),
  and ``(A¹¹)⁻¹ A¹²`` is solved a panel of genotyped columns at a time. The cost is about
  ``4 nnz(L) n_g`` flops, against ``n_g³`` for a dense inverse of A22.
* **A22 and its Cholesky inverse** (``method="dense"``): A22 by Colleau's (2002) indirect
  method (the columns of :func:`bigeval.pedigree.a22_dense`, in parallel) on the pruned
  pedigree, then potrf + potri in place (:func:`bigeval.linalg.spd_inverse`). The twin
  against which the sparse route is tested, and the faster one for small n_g without
  CHOLMOD.
* **G* without a dense A22** (:func:`g_star`, the one definition every command uses):
  G is first blended with A22, ``(1 − w) G + w A22``, a block of Colleau columns at a time
  (:func:`blend_with_a22`), then tuned to A22's mean diagonal and off-diagonal, which come
  from the diagonal ``1 + F`` and one Colleau product ``A22 1`` (:func:`a22_means`). That is
  preGSf90's order (its ``OPTION saveG all`` writes ``G_Alpha_Beta``, the blended matrix,
  before ``G_suggest``, the tuned one) and the one of Mrode & Pocrnic (2023), Example 12.1.

References
----------
Misztal, I., Legarra, A., Aguilar, I. (2009) Computing procedures for genetic evaluation
including phenotypic, full pedigree, and genomic information. J. Dairy Sci. 92:4648-4655
(A22⁻¹ from the sparse A⁻¹).
Colleau, J.-J. (2002) An indirect approach to the extensive calculation of relationship
coefficients. Genet. Sel. Evol. 34:409-421.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from bigeval._resources import check_dense
from bigeval.defaults import BLEND
from bigeval.errors import InputError, opt
from bigeval.genomic import tune_g_means
from bigeval.linalg import mirror_lower, spd_inverse
from bigeval.progress import Progress
from bigeval.pedigree import (
    _as_pedigree,
    _colleau_columns,
    _sorted_pedigree,
    ainv_sparse,
    inbreeding,
    mendelian_variance,
    topological_order,
)

__all__ = ["A22_METHODS", "Pruned", "a22_inverse", "a22_means", "blend_with_a22",
           "g_from_store", "g_star", "genomic_inverses", "inverses_from_store",
           "positions_in_pedigree", "prune_to_ancestors"]

A22_METHODS = ("auto", "sparse", "dense")

#: Bytes of work space for one panel of solves / Colleau columns.
PANEL_BYTES = 2**28
#: ``auto`` takes the dense route up to this many genotyped animals when the sparse
#: Cholesky is SuperLU (with CHOLMOD the sparse route is always faster; measured by
#: ``benchmarks/bench_part2.py --compare``)
DENSE_UP_TO = 10_000


def _as_genotyped(genotyped, n: int) -> np.ndarray:
    g = np.asarray(genotyped)
    if g.ndim != 1 or (g.size and not np.issubdtype(g.dtype, np.integer)):
        raise InputError("genotyped must be a one-dimensional array of animal numbers",
                         value=f"dtype {g.dtype}, shape {g.shape}",
                         expected="integer animal numbers 0..n-1",
                         remedy="map genotyped IDs to internal numbers first")
    g = g.astype(np.int64, copy=False)
    bad = np.flatnonzero((g < 0) | (g >= n))
    if bad.size:
        raise InputError(f"genotyped[{bad[0]}] is not an animal of the pedigree",
                         value=int(g[bad[0]]), expected=f"an animal number 0..{n - 1}",
                         remedy="give every genotyped animal a pedigree row")
    uniq, counts = np.unique(g, return_counts=True)
    if uniq.size != g.size:
        raise InputError("an animal is listed twice among the genotyped",
                         value=int(uniq[counts > 1][0]), expected="each animal once",
                         remedy="remove the duplicated genotype row (QC finds duplicates)")
    return g


# --------------------------------------------------------------------------------------
# pruning
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """The genotyped animals and their ancestors, renumbered with parents first.

    Attributes
    ----------
    animals
        Original numbers of the kept animals (length n_p), indexed by new number.
    sire, dam
        Parents in the new numbering (-1 unknown); parents come before progeny.
    genotyped
        New numbers of the genotyped animals, in the order they were given.
    """

    animals: np.ndarray
    sire: np.ndarray
    dam: np.ndarray
    genotyped: np.ndarray


def prune_to_ancestors(sire, dam, genotyped) -> Pruned:
    """Keep the genotyped animals and all their ancestors (relationships among them need
    nothing else), renumbered with parents first.

    Examples
    --------
    Animals 0-1 are the parents of 2; 3 is unrelated; 4 is a progeny of 2:

    >>> p = prune_to_ancestors([-1, -1, 0, -1, 2], [-1, -1, 1, -1, -1], [2])
    >>> p.animals.tolist(), p.sire.tolist(), p.dam.tolist(), p.genotyped.tolist()
    ([0, 1, 2], [-1, -1, 0], [-1, -1, 1], [2])
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    g = _as_genotyped(genotyped, n)
    keep = np.zeros(n, bool)
    keep[g] = True
    frontier = g
    while frontier.size:  # one generation of parents per step
        parents = np.concatenate([sire[frontier], dam[frontier]])
        parents = np.unique(parents[parents >= 0])
        frontier = parents[~keep[parents]]
        keep[frontier] = True
    kept = np.flatnonzero(keep)
    new = np.full(n, -1, np.int64)
    new[kept] = np.arange(kept.size)
    s = np.where(sire[kept] >= 0, new[np.maximum(sire[kept], 0)], -1)
    d = np.where(dam[kept] >= 0, new[np.maximum(dam[kept], 0)], -1)
    order = topological_order(s, d)  # parents first (raises on a loop)
    s2, d2, rank = _sorted_pedigree(s, d, order)
    return Pruned(animals=kept[order], sire=s2, dam=d2, genotyped=rank[new[g]])


# --------------------------------------------------------------------------------------
# A22 statistics and blending, by Colleau's method
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _colleau_matvec(s, d, b, x):  # pragma: no cover - compiled
    """``A x = T D T' x`` for a pedigree sorted parents first (Colleau 2002), one vector."""
    n = s.shape[0]
    v = x.copy()
    for i in range(n - 1, -1, -1):
        if s[i] >= 0:
            v[s[i]] += 0.5 * v[i]
        if d[i] >= 0:
            v[d[i]] += 0.5 * v[i]
    for i in range(n):
        v[i] *= b[i]
        if s[i] >= 0:
            v[i] += 0.5 * v[s[i]]
        if d[i] >= 0:
            v[i] += 0.5 * v[d[i]]
    return v


def a22_means(sire, dam, genotyped, f=None) -> tuple[float, float]:
    """Mean diagonal and mean off-diagonal element of A22, without forming A22.

    The diagonal is ``1 + F``; the sum of all elements is ``1' A22 1 = x' A x`` with x the
    indicator of the genotyped animals, one Colleau product (two passes over the pedigree).
    These are what :func:`bigeval.genomic.tune_g` needs.

    Examples
    --------
    Mrode (2014) Table 2.1, animals 5 and 6: A22 = [[1.125, 0.6875], [0.6875, 1.125]].

    >>> a22_means([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5])
    (1.125, 0.6875)
    """
    p = prune_to_ancestors(sire, dam, genotyped)
    fp = inbreeding(p.sire, p.dam) if f is None else np.asarray(f, np.float64)[p.animals]
    b = mendelian_variance(p.sire, p.dam, fp)
    ng = p.genotyped.size
    x = np.zeros(p.sire.size)
    x[p.genotyped] = 1.0
    total = float(x @ _colleau_matvec(p.sire, p.dam, b, x))
    diag = float(np.sum(1.0 + fp[p.genotyped]))
    mean_off = (total - diag) / (ng * (ng - 1)) if ng > 1 else 0.0
    return diag / max(ng, 1), mean_off


def blend_with_a22(G: np.ndarray, sire, dam, genotyped, w: float, f=None, *,
                   progress=None) -> np.ndarray:
    """``G ← (1 − w) G + w A22`` in place, A22 computed a block of columns at a time.

    preGSf90's blending (default w = 0.05); ``G`` must be a writeable float64 array in the
    order of ``genotyped``. No dense A22 is held: Colleau's method on the pruned pedigree
    gives ``PANEL_BYTES`` worth of columns at a time.

    Examples
    --------
    >>> G = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> blend_with_a22(G, [-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5], 0.5).tolist()
    [[1.0625, 0.34375], [0.34375, 1.0625]]
    """
    if not 0 <= w <= 1:
        raise InputError("blending weight outside [0, 1]", value=w, expected="0 ≤ w ≤ 1",
                         remedy="give a weight such as 0.05")
    p = prune_to_ancestors(sire, dam, genotyped)
    ng = p.genotyped.size
    if G.shape != (ng, ng) or G.dtype != np.float64:
        raise InputError("G must be a float64 square matrix in the order of the genotyped",
                         value=f"{G.dtype}, shape {G.shape}", expected=f"({ng}, {ng}) float64")
    fp = inbreeding(p.sire, p.dam) if f is None else np.asarray(f, np.float64)[p.animals]
    b = mendelian_variance(p.sire, p.dam, fp)
    G *= 1.0 - w
    if w == 0:
        return G
    show = progress or (lambda done, total: None)
    for lo, hi, cols in _a22_columns(p, b):
        G[:, lo:hi] += w * cols
        show(hi, ng)
    return G


def g_star(G: np.ndarray, sire, dam, genotyped, *, blend: float | None, tune: bool,
           f=None, progress=None) -> list[str]:
    """G* in place: blend G with A22, then tune it to A22 (the order every command uses).

    ``G ← (1 − w) G + w A22`` (:func:`blend_with_a22`; none when ``blend`` is None or 0),
    then ``G ← a + b G`` with A22's mean diagonal and off-diagonal (:func:`a22_means`,
    :func:`bigeval.genomic.tune_g_means`; when ``tune``). This is preGSf90's order (blending,
    then ``tunedG``) and Mrode & Pocrnic (2023), Example 12.1's; the dense twin is
    ``tune_g(blend_g(G, A22, w), A22)``.

    Parameters
    ----------
    G
        Writeable float64 G (n_g × n_g) in the order of ``genotyped``; overwritten.
    sire, dam, genotyped, f
        The pedigree (-1 unknown), the genotyped animals' numbers in it, and optionally the
        inbreeding coefficients.
    progress
        Called as ``progress(done, total)`` while blending.

    Returns
    -------
    list of str
        What was done, one line each (for summaries), empty when nothing was.

    Examples
    --------
    >>> G = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> for line in g_star(G, [-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5], blend=0.5,
    ...                    tune=True):
    ...     print(line)
    blended: G* = 0.5 G + 0.5 A22
    tuned to A22 (mean diagonal 1.1250, mean off-diagonal 0.6875)
    >>> G.round(4).tolist()
    [[1.125, 0.6875], [0.6875, 1.125]]
    """
    done = []
    if blend:
        blend_with_a22(G, sire, dam, genotyped, blend, f, progress=progress)
        done.append(f"blended: G* = {1 - blend:g} G + {blend:g} A22")
    if tune:
        da, oa = a22_means(sire, dam, genotyped, f)
        tune_g_means(G, da, oa, overwrite=True)
        done.append(f"tuned to A22 (mean diagonal {da:.4f}, mean off-diagonal {oa:.4f})")
    return done


def _a22_columns(p: Pruned, b: np.ndarray):
    """Blocks of columns of A22 (lo, hi, A22[:, lo:hi]) by Colleau's method, in order.

    Each block takes ``PANEL_BYTES`` of work space; blocks are computed by one thread per core
    (the compiled kernel releases the GIL), at most two blocks ahead of the consumer.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    ng = p.genotyped.size
    block = max(1, min(ng, PANEL_BYTES // (8 * max(p.sire.size, 1))))
    starts = list(range(0, ng, block))

    def work(lo):
        cols = _colleau_columns(p.sire, p.dam, b, p.genotyped[lo:lo + block])
        return cols[p.genotyped]

    threads = max(1, min(os.cpu_count() or 1, len(starts)))
    with ThreadPoolExecutor(threads) as pool:
        pending = [pool.submit(work, lo) for lo in starts[:threads]]
        for k, lo in enumerate(starts):
            cols = pending[k].result()
            pending[k] = None
            if k + threads < len(starts):
                pending.append(pool.submit(work, starts[k + threads]))
            yield lo, min(ng, lo + block), cols


# --------------------------------------------------------------------------------------
# A22 inverse
# --------------------------------------------------------------------------------------


def _resolve(method: str, ng: int) -> str:
    if method not in A22_METHODS:
        raise InputError("unknown method for A22⁻¹", value=method,
                         expected=" or ".join(A22_METHODS))
    if method == "auto":
        from bigeval.linalg.cholesky import HAVE_CHOLMOD

        return "sparse" if HAVE_CHOLMOD or ng > DENSE_UP_TO else "dense"
    return method


def a22_inverse(sire, dam, genotyped, f=None, *, method: str = "auto", solver: str = "auto",
                progress=None) -> np.ndarray:
    """A22⁻¹, the inverse of the relationships among the genotyped animals.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.
    genotyped
        Numbers of the genotyped animals (length n_g), in the order of the result.
    f
        Inbreeding coefficients (length n); computed (Meuwissen & Luo) when None.
    method
        ``sparse``: Schur complement of the sparse A⁻¹ of the pruned pedigree;
        ``dense``: Colleau A22 and a Cholesky inverse; ``auto``: sparse with CHOLMOD,
        else dense up to ``DENSE_UP_TO`` genotyped animals and sparse (SuperLU) above.
    solver
        Sparse Cholesky of A¹¹ for ``sparse``: ``auto`` (CHOLMOD when installed, else
        SuperLU), ``cholmod`` or ``superlu``.
    progress
        ``(done, total)`` callback over the genotyped columns, or None.

    Returns
    -------
    numpy.ndarray
        float64, n_g by n_g, symmetric (both triangles), Fortran-ordered.

    Raises
    ------
    InputError
        Bad parents or genotyped numbers, an animal genotyped twice.
    ResourceError
        If the n_g by n_g result (and the work space) does not fit in memory.

    Examples
    --------
    Mrode (2014) Table 2.1, animals 5 and 6 (here 4 and 5):

    >>> a22_inverse([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5],
    ...             method="sparse").round(4).tolist()
    [[1.4187, -0.867], [-0.867, 1.4187]]
    """
    from bigeval.linalg.cholesky import cholesky

    p = prune_to_ancestors(sire, dam, genotyped)
    ng = p.genotyped.size
    method = _resolve(method, ng)
    fp = None if f is None else np.asarray(f, np.float64)[p.animals]
    if method == "dense":  # Colleau's A22 (columns in parallel), Cholesky inverse in place
        check_dense(ng, copies=1, what=f"A22 of {ng:,} genotyped animals")
        A22 = np.empty((ng, ng), order="F")
        for lo, hi, cols in _a22_columns(p, mendelian_variance(p.sire, p.dam, fp)):
            A22[:, lo:hi] = cols
        return spd_inverse(A22, overwrite=True, what="A22",
                           remedy="check the pedigree for duplicated animals")
    n_p = p.sire.size
    check_dense(ng, copies=1, what=f"A22⁻¹ of {ng:,} genotyped animals")
    Ainv = ainv_sparse(p.sire, p.dam, fp).tocsc()  # Henderson's rules, pruned pedigree
    is_g = np.zeros(n_p, bool)
    is_g[p.genotyped] = True
    other = np.flatnonzero(~is_g)
    S = np.asfortranarray(Ainv[p.genotyped][:, p.genotyped].toarray())  # A²²
    if other.size == 0:
        return S
    A12 = Ainv[other][:, p.genotyped].tocsc()  # A¹²: non-genotyped rows, genotyped columns
    A21 = A12.T.tocsr()
    factor = cholesky(Ainv[other][:, other], solver, what="A¹¹ (A⁻¹ of the non-genotyped)")
    del Ainv
    panel = int(max(1, min(ng, PANEL_BYTES // (16 * other.size))))
    show = progress or (lambda done, total: None)
    for lo in range(0, ng, panel):
        hi = min(ng, lo + panel)
        X = factor.solve(A12[:, lo:hi].toarray())  # (A¹¹)⁻¹ A¹² for these columns
        S[lo:, lo:hi] -= A21[lo:] @ X  # lower triangle and diagonal block only
        show(hi, ng)
    return mirror_lower(S)


# --------------------------------------------------------------------------------------
# G*⁻¹ and A22⁻¹ together
# --------------------------------------------------------------------------------------


def genomic_inverses(G: np.ndarray, sire, dam, genotyped, *, tune: bool = False,
                     blend: float | None = None, f=None, method: str = "auto",
                     overwrite: bool = False, ids=None, file=None, progress: bool | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """G*⁻¹ (G blended with and tuned to A22: :func:`g_star`) and A22⁻¹, never holding more than two
    n_g × n_g matrices (G, turned into G*⁻¹ in place, and A22⁻¹).

    Parameters
    ----------
    G
        VanRaden G (n_g × n_g, float64) in the order of ``genotyped``.
    sire, dam, genotyped, f
        The pedigree (any numbering, -1 unknown), the genotyped animals' numbers, and
        optionally the inbreeding coefficients.
    tune, blend
        :func:`g_star`: ``(1 − w) G + w A22``, then scaled to A22's mean diagonal and
        off-diagonal.
    method
        How A22⁻¹ is computed (:func:`a22_inverse`).
    overwrite
        Turn G itself into G*⁻¹ (no copy).
    ids, file
        IDs of the genotyped animals and the genotype file, for the error when G* is not
        positive definite.
    progress
        Progress lines on stderr (default: when it is a terminal).

    Returns
    -------
    ginv, a22inv : numpy.ndarray
        float64, n_g by n_g, symmetric.

    Raises
    ------
    InputError
        G* is not positive definite (with the animal and what to do), bad pedigree input.
    """
    ng = len(genotyped)
    check_dense(ng, copies=(1 if overwrite else 2) + 1,
                what=f"G*⁻¹ and A22⁻¹ of {ng:,} genotyped animals")
    G = np.asarray(G)
    if G.shape != (ng, ng):
        raise InputError("G must be square with one row per genotyped animal",
                         value=f"shape {G.shape}", expected=f"({ng}, {ng})")
    work = G if overwrite and G.dtype == np.float64 and G.flags.writeable else \
        np.array(G, dtype=np.float64)
    g_star(work, sire, dam, genotyped, blend=blend, tune=tune, f=f,
           progress=Progress(progress).counter("blending G with A22"))
    if not blend:
        remedy = f"blend G with A22 (e.g. {opt('genomics.blend')} 0.05: G* = 0.95 G + 0.05 A22)"
    else:
        remedy = (f"blend more A22 into G (a larger {opt('genomics.blend')}), or check the "
                  "genotypes (QC)")
    ginv = spd_inverse(work, overwrite=True, what="G" if not (tune or blend) else "G*",
                       remedy=remedy, file=file, ids=ids)
    a22inv = a22_inverse(sire, dam, genotyped, f, method=method,
                         progress=Progress(progress).counter("A22⁻¹ (sparse Schur complement)"))
    return ginv, a22inv


# --------------------------------------------------------------------------------------
# from files: the genotype store (QC, G) and the pedigree's IDs
# --------------------------------------------------------------------------------------


def positions_in_pedigree(genotyped_ids, pedigree_ids, *, file=None) -> np.ndarray:
    """Pedigree positions of the genotyped animals (joined by ID), or a clear error.

    Examples
    --------
    >>> positions_in_pedigree(["b", "a"], ["a", "b", "c"]).tolist()
    [1, 0]
    """
    import pandas as pd

    gids = np.asarray(genotyped_ids).astype(str)
    pos = pd.Index(np.asarray(pedigree_ids).astype(str)).get_indexer(gids)
    if (pos < 0).any():
        missing = gids[pos < 0]
        raise InputError(f"{len(missing):,} genotyped animal(s) are not in the pedigree",
                         file=file, value=str(missing[0]),
                         expected="every genotyped animal in the pedigree",
                         remedy="add the genotyped animals to the pedigree (unknown parents "
                                "as 0), or remove them from the genotypes")
    dup = pd.Index(gids).duplicated()
    if dup.any():
        raise InputError("an animal is genotyped twice", file=file, value=str(gids[dup][0]),
                         expected="one genotype row per animal",
                         remedy="remove the duplicated row (QC keeps the first of duplicates)")
    return pos.astype(np.int64)


def parent_ids(pedigree_ids, sire, dam):
    """``(IDs, sire IDs, dam IDs)`` of a renumbered pedigree ("" for an unknown parent): the
    ``parents`` of :func:`g_from_store`."""
    ped = np.asarray(pedigree_ids).astype(str)
    sire, dam = np.asarray(sire), np.asarray(dam)
    return (ped, np.where(sire >= 0, ped[np.maximum(sire, 0)], ""),
            np.where(dam >= 0, ped[np.maximum(dam, 0)], ""))


def g_from_store(store, *, qc=None, keep=None, chunks=None, source=None, parents=None):
    """G of the animals of a genotype store after QC.

    Parameters
    ----------
    store
        A store from :func:`bigeval.io.genotypes.import_genotypes`.
    qc
        :class:`bigeval.genomic.qc.QCOptions`, or None for no QC.
    keep
        IDs of the animals to use (all of the store's when None).
    chunks
        Rechunk the genotypes to (animals, SNPs) for G (default: the store's chunks).
    source
        The file errors name (default the store).
    parents
        ``(pedigree IDs, sire IDs, dam IDs)`` (IDs, "" when unknown): with QC, the kept
        animals and their kept genotyped parents are checked for parent–progeny conflicts
        (:func:`bigeval.genomic.qc.parent_progeny_conflicts`; reported, not removed).

    Returns
    -------
    G, ids, report
        G (float64, n × n) of the kept animals ``ids`` (store order), and the QC report
        (:class:`bigeval.genomic.qc.QCResult` ``report``; empty without QC).

    Raises
    ------
    InputError
        An ID of ``keep`` not in the store; no SNP or no animal left after QC; every SNP
        monomorphic.
    """
    from bigeval.genomic.grm import grm

    named = store if source is None else source
    X, sample_ids, report = qc_store(store, qc=qc, keep=keep, source=source, parents=parents)
    try:
        G = grm(X, chunks=chunks)
    except InputError as exc:
        if exc.file is not None:
            raise
        raise InputError(exc.message, file=named, value=exc.value, expected=exc.expected,
                         remedy=exc.remedy) from None
    return G, np.asarray(sample_ids, dtype=str), report


def qc_store(store, *, qc=None, keep=None, source=None, parents=None):
    """The genotypes of a store that G is built from: ``keep``, then QC (as
    :func:`g_from_store`, which takes its parameters).

    Returns
    -------
    X, ids, report
        The kept genotypes (dask array, animals × SNPs, int8), their animals' IDs (store
        order) and the QC report.
    """
    import pandas as pd

    from bigeval.io.genotypes import open_genotypes
    from bigeval.genomic.qc import REPORT_COLUMNS
    from bigeval.genomic.qc import qc as run_qc

    named = store if source is None else source
    X, sample_ids, snp_ids = open_genotypes(store)
    if keep is not None:
        keep = np.asarray(keep).astype(str)
        rows = pd.Index(sample_ids).get_indexer(keep)
        if (rows < 0).any():
            raise InputError(f"{int((rows < 0).sum()):,} animal(s) to use are not in the "
                             "genotype store", file=named, value=str(keep[rows < 0][0]),
                             expected="IDs of animals in the store",
                             remedy="import their genotypes, or remove them from the list")
        rows = np.sort(rows)
        X, sample_ids = X[rows], sample_ids[rows]
    report = pd.DataFrame({c: [] for c in REPORT_COLUMNS})
    if qc is not None:
        try:
            res = run_qc(X, sample_ids, snp_ids, qc)
        except InputError as exc:
            raise InputError(exc.message, file=named, value=exc.value, expected=exc.expected,
                             remedy=exc.remedy) from None
        X = X[res.animals][:, res.snps]
        sample_ids = sample_ids[res.animals]
        report = res.report
        if parents is not None and qc.max_conflict_rate > 0:
            from bigeval.genomic.qc import parent_progeny_conflicts
            ped = pd.Index(np.asarray(parents[0]).astype(str))
            at = ped.get_indexer(np.asarray(sample_ids).astype(str))
            known = at >= 0
            sires = np.where(known, np.asarray(parents[1], dtype=object)[at], "")
            dams = np.where(known, np.asarray(parents[2], dtype=object)[at], "")
            pairs = parent_progeny_conflicts(X, sample_ids, sires, dams,
                                             max_rate=qc.max_conflict_rate,
                                             min_common=qc.min_common_snps)
            if len(pairs):
                report = pd.concat([report, pairs], ignore_index=True)
    return X, np.asarray(sample_ids, dtype=str), report


@dataclass(frozen=True)
class StoreInverses:
    """What :func:`inverses_from_store` built.

    Attributes
    ----------
    genotyped
        Pedigree positions of the genotyped animals used (after QC), in the matrices' order.
    ids
        Their IDs.
    ginv, a22inv
        G*⁻¹ and A22⁻¹ (float64, n_g × n_g, symmetric).
    report
        The QC report (empty without QC).
    lines
        A few lines for a run summary: QC, G, tuning, blending, A22⁻¹.
    """

    genotyped: np.ndarray
    ids: np.ndarray
    ginv: np.ndarray
    a22inv: np.ndarray
    report: object
    lines: list


def inverses_from_store(store, pedigree_ids, sire, dam, *, keep=None, qc=None,
                        tune: bool = True, blend: float | None = BLEND, method: str = "auto",
                        chunks=None, progress: bool | None = None,
                        source=None) -> StoreInverses:
    """G*⁻¹ and A22⁻¹ from a genotype store and a renumbered pedigree (``reliability
    --genotypes``): IDs checked against the pedigree first, then QC, G, tuning, blending,
    the inverses (:func:`genomic_inverses`).

    Parameters
    ----------
    store
        A genotype store (:func:`bigeval.io.genotypes.import_genotypes`).
    pedigree_ids, sire, dam
        The pedigree: IDs by internal number and parents' numbers (-1 unknown).
    keep
        IDs of the animals of the store to use (default: all).
    qc, tune, blend, method, chunks
        :class:`bigeval.genomic.qc.QCOptions` (None: no QC); tune G to A22; blending weight (None:
        none); A22⁻¹ method (:func:`a22_inverse`); chunks of the genotypes for G.
    source
        The file errors name (the genotype file a store was imported from; default the
        store).
    """
    from bigeval.io.genotypes import open_genotypes

    named = store if source is None else source
    _, store_ids, snp_ids = open_genotypes(store)
    if keep is None:  # every animal of the store must be in the pedigree, before G
        positions_in_pedigree(store_ids, pedigree_ids, file=named)
    G, ids, report = g_from_store(store, qc=qc, keep=keep, chunks=chunks, source=named,
                                  parents=parent_ids(pedigree_ids, sire, dam))
    pos = positions_in_pedigree(ids, pedigree_ids, file=named)
    lines = [f"genotypes: {named} ({len(store_ids):,} animals x {len(snp_ids):,} SNPs); "
             + ("no QC" if qc is None else _qc_line(qc, report))
             + f"; G of {len(ids):,} animals"
             + (f", blended {1 - blend:g} G + {blend:g} A22" if blend else "")
             + (", then tuned to A22" if tune and blend else ", tuned to A22" if tune else "")
             + f"; A22⁻¹ {_resolve(method, len(ids))}"]
    ginv, a22inv = genomic_inverses(G, sire, dam, pos, tune=tune, blend=blend, method=method,
                                    overwrite=True, ids=ids, file=named, progress=progress)
    return StoreInverses(genotyped=pos, ids=ids, ginv=ginv, a22inv=a22inv, report=report,
                         lines=lines)


def _qc_line(qc, report) -> str:
    from bigeval.genomic.qc import describe

    return (f"QC (SNP call rate >= {qc.min_call_rate_snp:g}, animal call rate >= "
            f"{qc.min_call_rate_animal:g}, MAF >= {qc.min_maf:g}, concordance <= "
            f"{qc.max_concordance:g}, parent-progeny conflicts <= {qc.max_conflict_rate:g}): "
            + describe(report))
