"""Pedigree stage: ordering, inbreeding, the relationship matrix A and its inverse.

Conventions (shared by every stage): animals are numbered ``0 .. n-1``; ``sire`` and ``dam``
are integer arrays of length ``n`` holding the parent's number, ``-1`` when unknown. Parents
need *not* come before their progeny in the numbering; every function here accepts any
numbering and returns results in that same numbering.

Fast functions (:func:`topological_order`, :func:`inbreeding`, :func:`ainv_sparse`,
:func:`a22_dense`) scale to millions of animals. Their slow, obviously-correct twins
(:func:`a_matrix_dense`, :func:`inbreeding_dense`, :func:`ainv_dense`) build dense ``n x n``
matrices and serve as test oracles on small pedigrees.

References
----------
Henderson, C.R. (1976) A simple method for computing the inverse of a numerator relationship
matrix used in prediction of breeding values. Biometrics 32:69-83.
Quaas, R.L. (1976) Computing the diagonal elements and inverse of a large numerator
relationship matrix. Biometrics 32:949-953.
Colleau, J.-J. (2002) An indirect approach to the extensive calculation of relationship
coefficients. Genet. Sel. Evol. 34:409-421.
Meuwissen, T.H.E. and Luo, Z. (1992) Computing inbreeding coefficients in large populations.
Genet. Sel. Evol. 24:305-313.
Mrode, R.A. (2014) Linear Models for the Prediction of Animal Breeding Values, 3rd ed., ch. 2.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from bigeval._resources import check_dense
from bigeval.errors import InputError

__all__ = [
    "a22_dense",
    "ancestors",
    "a_matrix_dense",
    "ainv_dense",
    "ainv_sparse",
    "generations",
    "inbreeding",
    "inbreeding_dense",
    "mendelian_variance",
    "parents_first_order",
    "topological_order",
]

_MAX_LISTED = 20  # animals named in an error message; the full list is in exc.animals


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def _as_pedigree(sire, dam) -> tuple[np.ndarray, np.ndarray]:
    """Check ``sire``/``dam`` and return them as int64 arrays (no copy when already int64)."""
    sire = np.asarray(sire)
    dam = np.asarray(dam)
    for name, arr in (("sire", sire), ("dam", dam)):
        if arr.ndim != 1:
            raise InputError(
                f"{name} must be a one-dimensional array of parent numbers",
                value=f"shape {arr.shape}",
                expected="shape (n,)",
                remedy="pass one entry per animal",
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise InputError(
                f"{name} must hold integer animal numbers",
                value=str(arr.dtype),
                expected="an integer array with -1 for an unknown parent",
                remedy="renumber animals 0..n-1 first (unknown parent = -1)",
            )
    if sire.shape != dam.shape:
        raise InputError(
            "sire and dam must have one entry per animal",
            value=f"{sire.shape[0]} sires, {dam.shape[0]} dams",
            expected="equal lengths",
            remedy="pass both parents of every animal, -1 where unknown",
        )
    n = sire.shape[0]
    sire = sire.astype(np.int64, copy=False)
    dam = dam.astype(np.int64, copy=False)
    for name, arr in (("sire", sire), ("dam", dam)):
        bad = np.flatnonzero((arr < -1) | (arr >= n))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                f"{name} of animal {i} is not an animal of the pedigree "
                f"({bad.size} such entr{'y' if bad.size == 1 else 'ies'})",
                value=int(arr[i]),
                expected=f"-1 (unknown) or an animal number 0..{n - 1}",
                remedy="give every parent its own pedigree row, or set it to unknown",
            )
    return sire, dam


def _as_f(f, n: int) -> np.ndarray:
    """Check a vector of inbreeding coefficients of length ``n``."""
    f = np.asarray(f, dtype=np.float64)
    if f.shape != (n,):
        raise InputError(
            "inbreeding coefficients must have one entry per animal",
            value=f"shape {f.shape}",
            expected=f"shape ({n},)",
            remedy="pass f from bigeval.pedigree.inbreeding(sire, dam), or leave f=None",
        )
    bad = np.flatnonzero(~np.isfinite(f) | (f < 0.0) | (f > 1.0))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"inbreeding coefficient of animal {i} is outside [0, 1]",
            value=float(f[i]),
            expected="0 <= F <= 1",
            remedy="recompute f with bigeval.pedigree.inbreeding(sire, dam)",
        )
    return f


# --------------------------------------------------------------------------------------
# ordering
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _kahn_generations(sire, dam):  # pragma: no cover - compiled
    """Generation of every animal by Kahn's algorithm; -1 for animals in or below a loop.

    O(n) time: one pass builds the parent -> progeny lists (counting sort), one breadth-first
    pass releases an animal once all of its known parents are placed.
    """
    n = sire.shape[0]
    start = np.zeros(n + 1, np.int64)
    for i in range(n):
        if sire[i] >= 0:
            start[sire[i] + 1] += 1
        if dam[i] >= 0:
            start[dam[i] + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    fill = start[:n].copy()
    progeny = np.empty(start[n], np.int64)
    for i in range(n):
        s = sire[i]
        if s >= 0:
            progeny[fill[s]] = i
            fill[s] += 1
        d = dam[i]
        if d >= 0:
            progeny[fill[d]] = i
            fill[d] += 1

    waiting = np.zeros(n, np.int8)  # known parents not yet placed (a selfed animal counts 2)
    gen = np.full(n, -1, np.int64)
    queue = np.empty(n, np.int64)
    tail = 0
    for i in range(n):
        k = 0
        if sire[i] >= 0:
            k += 1
        if dam[i] >= 0:
            k += 1
        waiting[i] = k
        if k == 0:
            gen[i] = 0
            queue[tail] = i
            tail += 1
    head = 0
    while head < tail:
        v = queue[head]
        head += 1
        for e in range(start[v], start[v + 1]):
            c = progeny[e]
            waiting[c] -= 1
            if waiting[c] == 0:
                # generation = 1 + max(generation of the known parents)
                g = gen[sire[c]] if sire[c] >= 0 else 0
                if dam[c] >= 0 and gen[dam[c]] > g:
                    g = gen[dam[c]]
                gen[c] = g + 1
                queue[tail] = c
                tail += 1
    return gen


@njit(cache=True)
def _order_by_generation(gen):  # pragma: no cover - compiled
    """Stable counting sort of animals by generation (ties keep their numbering)."""
    n = gen.shape[0]
    top = 0
    for i in range(n):
        if gen[i] > top:
            top = gen[i]
    pos = np.zeros(top + 2, np.int64)
    for i in range(n):
        pos[gen[i] + 1] += 1
    for g in range(top + 1):
        pos[g + 1] += pos[g]
    order = np.empty(n, np.int64)
    for i in range(n):
        order[pos[gen[i]]] = i
        pos[gen[i]] += 1
    return order


def _raise_loop(sire: np.ndarray, dam: np.ndarray, gen: np.ndarray) -> None:
    """Raise InputError naming the animals that are their own ancestors.

    Animals left unplaced by Kahn's algorithm are on a loop or descend from one. Those on a
    loop are the members of a strongly connected component of more than one animal in the
    parent -> progeny graph, plus animals given as their own parent.
    """
    from scipy.sparse.csgraph import connected_components

    stuck = np.flatnonzero(gen < 0)
    m = stuck.size
    local = np.full(sire.shape[0], -1, np.int64)
    local[stuck] = np.arange(m)
    rows, cols = [], []
    for parent in (sire[stuck], dam[stuck]):
        known = parent >= 0
        p_local = np.where(known, local[np.where(known, parent, 0)], -1)
        keep = p_local >= 0
        rows.append(p_local[keep])
        cols.append(np.arange(m)[keep])
    rows = np.concatenate(rows)
    cols = np.concatenate(cols)
    graph = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(m, m))
    _, labels = connected_components(graph, directed=True, connection="strong")
    size = np.bincount(labels)
    own_parent = (sire[stuck] == stuck) | (dam[stuck] == stuck)
    on_loop = (size[labels] > 1) | own_parent
    animals = stuck[on_loop]
    listed = ", ".join(str(a) for a in animals[:_MAX_LISTED])
    more = f" and {animals.size - _MAX_LISTED} more" if animals.size > _MAX_LISTED else ""
    below = m - animals.size
    exc = InputError(
        f"the pedigree has a loop: {animals.size} animal(s) are their own ancestors "
        f"(animals {listed}{more})"
        + (f"; {below} more animal(s) descend from the loop" if below else ""),
        value=animals[:_MAX_LISTED].tolist(),
        expected="every animal born after its sire and dam (no animal its own ancestor)",
        remedy="correct the sire or dam of these animals (often a swapped or reused ID)",
    )
    exc.animals = animals  # internal indices; callers map them back to IDs
    raise exc


def generations(sire, dam) -> np.ndarray:
    """Generation number of every animal: 0 for founders, else 1 + the older parent's.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.

    Returns
    -------
    numpy.ndarray
        int64, length n: ``g_i = 0`` when both parents are unknown, otherwise
        ``g_i = 1 + max(g_sire, g_dam)`` over the known parents.

    Raises
    ------
    InputError
        If an animal is its own ancestor; ``exc.animals`` holds the animals on the loop.

    Examples
    --------
    Mrode (2014) Table 2.1, animals 1..6 numbered 0..5:

    >>> generations([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1])
    array([0, 0, 1, 1, 2, 3])
    """
    sire, dam = _as_pedigree(sire, dam)
    gen = _kahn_generations(sire, dam)
    if sire.size and gen.min() < 0:
        _raise_loop(sire, dam, gen)
    return gen


def topological_order(sire, dam) -> np.ndarray:
    """A permutation that puts every parent before its progeny.

    Animals are sorted by :func:`generations`; within a generation they keep their numbering.
    Runs in O(n) (Kahn's algorithm and a counting sort): a few seconds for 10 million
    animals, whatever the depth of the pedigree.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.

    Returns
    -------
    numpy.ndarray
        int64, length n: ``order[k]`` is the animal placed k-th. With
        ``rank[order] = arange(n)``, ``rank[sire[i]] < rank[i]`` for every known sire (and dam).

    Raises
    ------
    InputError
        If an animal is its own ancestor; ``exc.animals`` holds the animals on the loop.

    Examples
    --------
    Progeny numbered before its parents:

    >>> topological_order([1, -1, -1], [2, -1, -1])
    array([1, 2, 0])
    """
    gen = generations(sire, dam)
    return _order_by_generation(gen)


def parents_first_order(sire, dam) -> np.ndarray:
    """The numbering itself (``arange``) when every parent is numbered before its progeny (as
    after :func:`bigeval.prepare.prepare`), else :func:`topological_order`.

    >>> parents_first_order([-1, 0], [-1, -1]), parents_first_order([1, -1], [-1, -1])
    (array([0, 1]), array([1, 0]))
    """
    sire = np.asarray(sire)
    dam = np.asarray(dam)
    ar = np.arange(len(sire))
    if bool(np.all(sire < ar) and np.all(dam < ar)):
        return ar
    return topological_order(sire, dam)


def _sorted_pedigree(sire: np.ndarray, dam: np.ndarray, order: np.ndarray):
    """Renumber a pedigree in ``order``: animal ``order[k]`` becomes ``k``."""
    n = sire.shape[0]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    s = sire[order]
    d = dam[order]
    s = np.where(s >= 0, rank[np.maximum(s, 0)], -1)
    d = np.where(d >= 0, rank[np.maximum(d, 0)], -1)
    return s, d, rank


# --------------------------------------------------------------------------------------
# inbreeding
# --------------------------------------------------------------------------------------


@njit(cache=True)
def _meuwissen_luo(sire, dam, gen):  # pragma: no cover - compiled
    """Inbreeding by Meuwissen & Luo (1992) of a pedigree sorted by generation.

    With A = L D L' (L: the gene flow matrix T of Mrode 2014, eqn 2.1),
    ``F_i = sum_j L_ij^2 D_j - 1`` over i and its ancestors j. Row i of L is traced from i
    towards the founders: ``L_i,s += L_i,j / 2`` and ``L_i,d += L_i,j / 2`` for the parents s, d
    of j, expanding j only once L_i,j is complete, i.e. after all of j's descendants among i's
    ancestors. Meuwissen & Luo keep the pending ancestors ordered by number; here they are
    kept in one stack per generation and expanded from the youngest generation down, which
    is enough (a descendant is always of a later generation) and costs O(1) per ancestor.
    """
    n = sire.shape[0]
    # 1-based: index 0 stands for an unknown parent, with F = -1 so that Quaas' d_i needs no
    # special cases: 0.5 - 0.25 (F_s + F_d) -> 0.75 - 0.25 F_s (one known) -> 1 (none)
    F = np.zeros(n + 1)
    F[0] = -1.0
    D = np.zeros(n + 1)
    L = np.zeros(n + 1)
    pending = np.zeros(n + 1, np.bool_)
    below = np.zeros(n + 1, np.int64)  # next animal in the same generation's stack
    top = np.zeros(gen.max() + 1 if n else 1, np.int64)  # top of each generation's stack
    for i in range(1, n + 1):
        s = sire[i - 1] + 1
        d = dam[i - 1] + 1
        D[i] = 0.5 - 0.25 * (F[s] + F[d])  # Quaas (1976); Mrode (2014) section 2.3
        if s == 0 or d == 0:
            F[i] = 0.0
            continue
        if i > 1 and s == sire[i - 2] + 1 and d == dam[i - 2] + 1:
            F[i] = F[i - 1]  # full sib of the previous animal
            continue
        fi = -1.0
        L[i] = 1.0
        j = i
        g = gen[i - 1]
        while True:
            for p in (sire[j - 1] + 1, dam[j - 1] + 1):
                if p == 0:
                    continue
                L[p] += 0.5 * L[j]
                if not pending[p]:
                    pending[p] = True
                    below[p] = top[gen[p - 1]]
                    top[gen[p - 1]] = p
            fi += L[j] * L[j] * D[j]
            L[j] = 0.0
            while g >= 0 and top[g] == 0:
                g -= 1
            if g < 0:
                break
            j = top[g]
            top[g] = below[j]
            pending[j] = False
        F[i] = fi
    return F[1:].copy()


def inbreeding(sire, dam) -> np.ndarray:
    """Inbreeding coefficients by Meuwissen & Luo (1992).

    Any numbering is accepted: the pedigree is reordered internally with parents first
    (generation, then sire, then dam, so that full sibs are adjacent and share one trace)
    and the result is returned in the original numbering.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent.

    Returns
    -------
    numpy.ndarray
        float64, length n: F_i, the inbreeding coefficient (0 for founders).

    Raises
    ------
    InputError
        Bad parent numbers, or an animal that is its own ancestor.

    See Also
    --------
    inbreeding_dense : the slow twin, ``diag(A) - 1`` from the tabular A.

    Examples
    --------
    Mrode (2014) Table 2.1: animals 5 and 6 (here 4 and 5) are inbred, F = 0.125.

    >>> inbreeding([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1]).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.125, 0.125]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    gen = generations(sire, dam)
    order = np.lexsort((dam, sire, gen))  # parents first; full sibs adjacent
    s, d, _ = _sorted_pedigree(sire, dam, order)
    f = np.empty(n)
    f[order] = _meuwissen_luo(s, d, gen[order])
    return f


def mendelian_variance(sire, dam, f=None) -> np.ndarray:
    """Mendelian sampling variance of every animal, in units of the additive variance.

    The diagonal of D in ``A = T D T'`` (Mrode 2014, eqn 2.1; Quaas 1976):
    ``b_i = 1 - 0.25 (1 + F_s) - 0.25 (1 + F_d)``, each term only for a known parent, i.e.
    ``0.5 - 0.25 (F_s + F_d)`` with both parents known, ``0.75 - 0.25 F_s`` with one, 1 with none.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent.
    f
        Inbreeding coefficients (length n); computed by :func:`inbreeding` when None.

    Returns
    -------
    numpy.ndarray
        float64, length n.

    Examples
    --------
    Mrode (2014) p. 25: D = diag(1.0, 1.0, 0.5, 0.75, 0.5, 0.469).

    >>> mendelian_variance([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1]).tolist()
    [1.0, 1.0, 0.5, 0.75, 0.5, 0.46875]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    f = inbreeding(sire, dam) if f is None else _as_f(f, n)
    b = np.ones(n)
    for parent in (sire, dam):
        known = parent >= 0
        b[known] -= 0.25 * (1.0 + f[parent[known]])
    return b


# --------------------------------------------------------------------------------------
# A and A-inverse
# --------------------------------------------------------------------------------------


def a_matrix_dense(sire, dam) -> np.ndarray:
    """Numerator relationship matrix A by the tabular method (slow twin).

    Henderson (1976); Mrode (2014) section 2.2: with animals ordered parents first,
    ``a_ij = 0.5 (a_j,s + a_j,d)`` for every older animal j (an unknown parent contributes 0)
    and ``a_ii = 1 + 0.5 a_sd`` (``= 1 + F_i``; 1 unless both parents are known).

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.

    Returns
    -------
    numpy.ndarray
        float64, n by n, in the original numbering.

    Raises
    ------
    ResourceError
        If two dense n by n matrices do not fit in memory.

    Examples
    --------
    A parent and its offspring are related by 0.5:

    >>> a_matrix_dense([-1, 0], [-1, -1]).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    check_dense(n, copies=2, what="the relationship matrix A")
    order = topological_order(sire, dam)
    s, d, rank = _sorted_pedigree(sire, dam, order)
    a = np.zeros((n, n))
    for i in range(n):
        row = np.zeros(i)
        if s[i] >= 0:
            row += 0.5 * a[s[i], :i]
        if d[i] >= 0:
            row += 0.5 * a[d[i], :i]
        a[i, :i] = row
        a[:i, i] = row
        a[i, i] = 1.0 + (0.5 * a[s[i], d[i]] if s[i] >= 0 and d[i] >= 0 else 0.0)
    return a[np.ix_(rank, rank)]


def inbreeding_dense(sire, dam) -> np.ndarray:
    """Inbreeding coefficients as ``diag(A) - 1`` from the tabular A (slow twin).

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.

    Returns
    -------
    numpy.ndarray
        float64, length n.

    Examples
    --------
    >>> inbreeding_dense([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1]).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.125, 0.125]
    """
    return np.diag(a_matrix_dense(sire, dam)) - 1.0


def ainv_dense(sire, dam, f=None) -> np.ndarray:
    """Inverse of A with inbreeding as ``T^-1' D^-1 T^-1`` (slow twin).

    Mrode (2014) eqn 2.3: ``T^-1 = I - M`` has ones on the diagonal and -0.5 in row i at the
    columns of i's known parents; D holds the Mendelian sampling variances of
    :func:`mendelian_variance` (Quaas 1976). Built with dense matrix products, independent of
    the triplet assembly in :func:`ainv_sparse`.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.
    f
        Inbreeding coefficients (length n); when None they come from the tabular A
        (:func:`inbreeding_dense`), so that this twin shares no code with the fast path.

    Returns
    -------
    numpy.ndarray
        float64, n by n, in the original numbering.

    Raises
    ------
    ResourceError
        If three dense n by n matrices do not fit in memory.

    Examples
    --------
    >>> ainv_dense([-1, 0], [-1, -1]).round(4).tolist()
    [[1.3333, -0.6667], [-0.6667, 1.3333]]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    check_dense(n, copies=3, what="the inverse relationship matrix A^-1")
    f = inbreeding_dense(sire, dam) if f is None else _as_f(f, n)
    b = mendelian_variance(sire, dam, f)
    t_inv = np.eye(n)
    for parent in (sire, dam):
        known = np.flatnonzero(parent >= 0)
        np.subtract.at(t_inv, (known, parent[known]), 0.5)  # a selfed animal gets -1
    return t_inv.T @ (t_inv / b[:, None])


def ainv_sparse(sire, dam, f=None) -> sp.csr_matrix:
    """Inverse of A with inbreeding by Henderson's rules, as a sparse matrix.

    Henderson (1976) with Quaas (1976) for inbreeding (Mrode 2014, section 2.4): with
    ``q_i = e_i - 0.5 e_s - 0.5 e_d`` (known parents only) and ``b_i`` from
    :func:`mendelian_variance`, ``A^-1 = sum_i q_i q_i' / b_i``: add ``1/b_i`` to (i,i),
    ``-0.5/b_i`` to (i,s), (s,i), (i,d), (d,i) and ``0.25/b_i`` to (s,s), (d,d), (s,d), (d,s).
    All animals are assembled at once as up to 9 coordinate triplets each; duplicates are
    summed by the conversion to CSR.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.
    f
        Inbreeding coefficients (length n); computed by :func:`inbreeding` when None.

    Returns
    -------
    scipy.sparse.csr_matrix
        float64, n by n, symmetric, in the original numbering.

    See Also
    --------
    ainv_dense : the slow twin.

    Examples
    --------
    >>> ainv_sparse([-1, 0], [-1, -1]).toarray().round(4).tolist()
    [[1.3333, -0.6667], [-0.6667, 1.3333]]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    b = mendelian_variance(sire, dam, f)
    idx = np.int32 if n < np.iinfo(np.int32).max else np.int64
    ids = np.arange(n, dtype=np.int64)
    # members (animal, sire, dam) and their coefficients in q_i; unknown parent: weight 0
    member = np.stack([ids, np.where(sire >= 0, sire, ids), np.where(dam >= 0, dam, ids)], 1)
    coef = np.stack([np.ones(n), np.where(sire >= 0, -0.5, 0.0), np.where(dam >= 0, -0.5, 0.0)], 1)
    r = np.repeat(np.arange(3), 3)  # pairs (0,0) (0,1) (0,2) (1,0) ... (2,2)
    c = np.tile(np.arange(3), 3)
    vals = coef[:, r] * coef[:, c] / b[:, None]
    keep = vals != 0.0
    rows = member[:, r][keep].astype(idx, copy=False)
    cols = member[:, c][keep].astype(idx, copy=False)
    return sp.coo_matrix((vals[keep], (rows, cols)), shape=(n, n)).tocsr()


@njit(cache=True, nogil=True)
def _colleau_columns(s, d, b, cols):  # pragma: no cover - compiled
    """Columns ``cols`` of A = T D T' for a pedigree sorted parents first (n by k).

    Colleau (2002): with x the unit vectors of ``cols``, ``v = T' x`` by one pass from the
    youngest animal (``v_s += v_i / 2``, ``v_d += v_i / 2``), then ``A x = T (D v)`` by one
    pass from the oldest (``u_i = b_i v_i + (u_s + u_d) / 2``), in place.
    """
    n = s.shape[0]
    k = cols.shape[0]
    v = np.zeros((n, k))
    for c in range(k):
        v[cols[c], c] = 1.0
    for i in range(n - 1, -1, -1):
        if s[i] >= 0:
            v[s[i], :] += 0.5 * v[i, :]
        if d[i] >= 0:
            v[d[i], :] += 0.5 * v[i, :]
    for i in range(n):
        v[i, :] *= b[i]
        if s[i] >= 0:
            v[i, :] += 0.5 * v[s[i], :]
        if d[i] >= 0:
            v[i, :] += 0.5 * v[d[i], :]
    return v


def a22_dense(sire, dam, genotyped, f=None) -> np.ndarray:
    """Relationships A22 among a subset of animals (e.g. the genotyped), without the full A.

    Columns of A are computed a block at a time by Colleau's (2002) indirect method,
    ``A x = T D T' x`` in two linear passes over the pedigree, so memory is the ng by ng result
    plus about 256 MiB of work space; time is O(n ng).

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.
    genotyped
        Numbers of the animals wanted (length ng), in the order of the result.
    f
        Inbreeding coefficients (length n); computed by :func:`inbreeding` when None.

    Returns
    -------
    numpy.ndarray
        float64, ng by ng: ``A[genotyped][:, genotyped]``.

    Raises
    ------
    ResourceError
        If the ng by ng result does not fit in memory.

    Examples
    --------
    Mrode (2014) Table 2.1, animals 5 and 6 (here 4 and 5):

    >>> a22_dense([-1, -1, 0, 0, 3, 4], [-1, -1, 1, -1, 2, 1], [4, 5]).tolist()
    [[1.125, 0.6875], [0.6875, 1.125]]
    """
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    g = np.asarray(genotyped)
    if g.ndim != 1 or (g.size and not np.issubdtype(g.dtype, np.integer)):
        raise InputError(
            "genotyped must be a one-dimensional array of animal numbers",
            value=f"dtype {g.dtype}, shape {g.shape}",
            expected="integer animal numbers 0..n-1",
            remedy="map genotyped IDs to internal numbers first",
        )
    g = g.astype(np.int64, copy=False)
    bad = np.flatnonzero((g < 0) | (g >= n))
    if bad.size:
        raise InputError(
            f"genotyped[{bad[0]}] is not an animal of the pedigree",
            value=int(g[bad[0]]),
            expected=f"an animal number 0..{n - 1}",
            remedy="give every genotyped animal a pedigree row",
        )
    ng = g.size
    check_dense(ng, copies=1, what="the relationship matrix A22")
    b = mendelian_variance(sire, dam, f)
    order = topological_order(sire, dam)
    s, d, rank = _sorted_pedigree(sire, dam, order)
    rows = rank[g]
    b_sorted = b[order]
    out = np.empty((ng, ng))
    block = max(1, min(ng, 2**25 // max(n, 1)))  # n x block float64 <= 256 MiB
    for lo in range(0, ng, block):
        cols = rows[lo:lo + block]
        out[:, lo:lo + block] = _colleau_columns(s, d, b_sorted, cols)[rows]
    return out


def ancestors(keep: np.ndarray, sire: np.ndarray, dam: np.ndarray) -> np.ndarray:
    """``keep`` (boolean, per animal) extended by every ancestor (parents as row numbers,
    -1 unknown); one vectorised pass per generation.

    Examples
    --------
    >>> ancestors(np.array([False, False, False, True]), np.array([-1, -1, 0, 2]),
    ...           np.array([-1, -1, 1, -1])).tolist()
    [True, True, True, True]
    """
    keep = np.array(keep, dtype=bool)
    frontier = np.flatnonzero(keep)
    while frontier.size:
        parents = np.concatenate([sire[frontier], dam[frontier]])
        parents = np.unique(parents[parents >= 0])
        frontier = parents[~keep[parents]]
        keep[frontier] = True
    return keep
