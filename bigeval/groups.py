"""Unknown parent groups (genetic groups) in the pedigree.

A group code stands in a parent column for an unknown parent of a given genetic level
(birth year, sex, origin). Groups are not animals: they get no pedigree row, no result and
no count among the animals. What they are used for depends on the method:

* the reliability method (methodology Part I) treats such a parent as unknown (b = 0), as
  it does a parent written 0;
* the mixed models fit them as unknown parent groups by the Quaas–Pollak transformation
  (Quaas & Pollak 1981; Westell et al. 1988; Quaas 1988): with ``q_i = e_i − ½ e_s − ½ e_d``,
  where a parent that is a group is the group's own equation, placed after the animals,
  ``A*⁻¹ = Σ_i q_i q_i' / b_i``, b_i the Mendelian sampling variance with the groups as
  unknown parents. The solutions of the animals are then â* = Qĝ + û (Mrode 2014, section
  3.6), Q the groups' expected contributions to each animal (:func:`group_contributions`).

Which codes are groups, and each animal's sire and dam group, is read by
:mod:`bigeval.io.groups`.

References
----------
Quaas, R.L., Pollak, E.J. (1981) Modified equations for sire models with groups. J. Dairy
Sci. 64:1868-1872. Quaas, R.L. (1988) Additive genetic model with groups and relationships.
J. Dairy Sci. 71:1338-1345. Westell, R.A., Quaas, R.L., Van Vleck, L.D. (1988) Genetic groups
in an animal model. J. Dairy Sci. 71:1310-1318. Mrode, R.A. (2014) Linear Models for the
Prediction of Animal Breeding Values, 3rd ed., Example 3.4.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from bigeval.errors import InputError
from bigeval.pedigree import (_as_pedigree, inbreeding_dense, mendelian_variance,
                              topological_order)

__all__ = ["ainv_qp_dense", "ainv_qp_sparse", "group_contributions", "zero_groups"]

def _members(sire, dam, sg, dg, n_groups):
    """Checked arrays and, per animal, the equations of its parents (animal, group or
    itself with coefficient 0 when unknown)."""
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    sg = np.asarray(sg, dtype=np.int64)
    dg = np.asarray(dg, dtype=np.int64)
    for name, g, p in (("sire", sg, sire), ("dam", dg, dam)):
        if g.shape != (n,) or ((g < -1) | (g >= n_groups)).any() or ((g >= 0) & (p >= 0)).any():
            raise InputError(f"{name} groups must give, per animal, a group 0..{n_groups - 1} "
                             "or -1, and -1 where the parent is an animal",
                             value=f"shape {g.shape}", remedy="use pedigree_groups")
    return sire, dam, sg, dg


def ainv_qp_sparse(sire, dam, sire_group, dam_group, n_groups: int, f=None) -> sp.csr_matrix:
    """A⁻¹ with unknown parent groups (Quaas 1988), sparse, (n + n_groups) square.

    The rules of :func:`bigeval.pedigree.ainv_sparse` with a parent that is a group taken as
    the group's equation ``n + g``; the Mendelian sampling variances b_i (and inbreeding)
    treat the groups as unknown parents.

    Parameters
    ----------
    sire, dam
        Parent numbers (length n), -1 for unknown or a group.
    sire_group, dam_group
        Group number 0..n_groups-1 of the sire / dam, -1 where it is not a group.
    n_groups
        Number of groups (equations n .. n + n_groups - 1).
    f
        Inbreeding coefficients; computed with the groups as unknown parents when None.

    Examples
    --------
    One animal with group 0 as sire and an unknown dam (b = 1):

    >>> ainv_qp_sparse([-1], [-1], [0], [-1], 1).toarray().tolist()
    [[1.0, -0.5], [-0.5, 0.25]]
    """
    sire, dam, sg, dg = _members(sire, dam, sire_group, dam_group, n_groups)
    n = sire.shape[0]
    b = mendelian_variance(sire, dam, f)  # a group parent counts as unknown (Quaas 1988)
    ids = np.arange(n, dtype=np.int64)

    def eq(p, g):
        return np.where(p >= 0, p, np.where(g >= 0, n + g, ids))

    member = np.stack([ids, eq(sire, sg), eq(dam, dg)], 1)
    coef = np.stack([np.ones(n), np.where((sire >= 0) | (sg >= 0), -0.5, 0.0),
                     np.where((dam >= 0) | (dg >= 0), -0.5, 0.0)], 1)
    r = np.repeat(np.arange(3), 3)
    c = np.tile(np.arange(3), 3)
    vals = coef[:, r] * coef[:, c] / b[:, None]
    keep = vals != 0.0
    m = n + n_groups
    return sp.coo_matrix((vals[keep], (member[:, r][keep], member[:, c][keep])),
                         shape=(m, m)).tocsr()


def ainv_qp_dense(sire, dam, sire_group, dam_group, n_groups: int) -> np.ndarray:
    """The slow twin of :func:`ainv_qp_sparse`: ``T*' D⁻¹ T*`` with ``T* = [I − P, −P_g]``.

    P has ½ at (animal, animal parent), P_g ½ at (animal, group parent); D the Mendelian
    sampling variances with the groups as unknown parents and the inbreeding of the tabular
    A (:func:`bigeval.pedigree.inbreeding_dense`), so no code is shared with the fast path.

    Examples
    --------
    >>> ainv_qp_dense([-1], [-1], [0], [-1], 1).tolist()
    [[1.0, -0.5], [-0.5, 0.25]]
    """
    sire, dam, sg, dg = _members(sire, dam, sire_group, dam_group, n_groups)
    n = sire.shape[0]
    f = inbreeding_dense(sire, dam)
    d = np.ones(n)  # a group parent counts as unknown
    for p in (sire, dam):
        for i in range(n):
            if p[i] >= 0:
                d[i] -= 0.25 * (1.0 + f[p[i]])
    t = np.zeros((n, n + n_groups))
    t[:, :n] = np.eye(n)
    for p, g in ((sire, sg), (dam, dg)):
        for i in range(n):
            if p[i] >= 0:
                t[i, p[i]] -= 0.5
            elif g[i] >= 0:
                t[i, n + g[i]] -= 0.5
    return t.T @ (t / d[:, None])


@njit(cache=True)
def _q_columns(order, sire, dam, sg, dg, lo, hi):  # pragma: no cover - compiled
    """Columns lo..hi-1 of Q, parents first."""
    q = np.zeros((sire.shape[0], hi - lo))
    for i in order:
        for p, g in ((sire[i], sg[i]), (dam[i], dg[i])):
            if p >= 0:
                q[i, :] += 0.5 * q[p, :]
            elif lo <= g < hi:
                q[i, g - lo] += 0.5
    return q


@njit(cache=True)
def _qt_times(order, sire, dam, sg, dg, y, n_groups):  # pragma: no cover - compiled
    """Q' y = P_g' (I − P)⁻ᵀ y, progeny first: y_s += ½ y_i, y_d += ½ y_i (in a copy)."""
    y = y.copy()
    out = np.zeros((n_groups, y.shape[1]))
    for k in range(order.shape[0] - 1, -1, -1):
        i = order[k]
        for p, g in ((sire[i], sg[i]), (dam[i], dg[i])):
            if p >= 0:
                y[p, :] += 0.5 * y[i, :]
            elif g >= 0:
                out[g, :] += 0.5 * y[i, :]
    return out


def _blocks(n: int, n_groups: int):
    """Group ranges whose Q columns (n × block doubles) take at most 256 MiB."""
    step = max(1, min(n_groups, 2**25 // max(n, 1)))
    return [(lo, min(lo + step, n_groups)) for lo in range(0, n_groups, step)]


def group_contributions(sire, dam, sire_group, dam_group, n_groups: int,
                        rows=None) -> np.ndarray:
    """Q: the expected fraction of each animal's genes from each group (n × n_groups dense),
    or only its ``rows``.

    ``Q_i = ½ (Q_s or e_gs) + ½ (Q_d or e_gd)``, an unknown parent contributing 0, computed
    parents first; Q = (I − P)⁻¹ P_g (Westell et al. 1988). A row sums to 1 when every
    unknown parent of the animal's ancestry is a group. With ``rows`` the columns are made a
    block of groups at a time (at most 256 MiB of work space).

    >>> group_contributions([-1, -1, 0], [-1, -1, 1], [0, 0, -1], [1, -1, -1], 2).tolist()
    [[0.5, 0.5], [0.5, 0.0], [0.5, 0.25]]
    """
    sire, dam, sg, dg = _members(sire, dam, sire_group, dam_group, n_groups)
    order = topological_order(sire, dam)
    if rows is None:
        return _q_columns(order, sire, dam, sg, dg, 0, n_groups)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), n_groups))
    for lo, hi in _blocks(len(sire), n_groups):
        out[:, lo:hi] = _q_columns(order, sire, dam, sg, dg, lo, hi)[rows]
    return out


def zero_groups(X, animal_index, sire, dam, sire_group, dam_group, n_groups: int,
                weights=None, *, tol: float = 1e-9) -> np.ndarray:
    """Groups to set to zero so that the group equations of the MME have full rank.

    The groups enter the model as the fixed regressions ZQ; with the fixed design X (full
    column rank) the MME are singular exactly when [X, ZQ] is (every animal traced to groups:
    ZQ 1 = 1, the intercept). The part of ZQ that X does not explain is
    ``S = Q'(Z'WZ)Q − Q'Z'WX (X'WX)⁻¹ X'WZQ``; the groups are taken from the last to the
    first, and a group whose column of S lies (to ``tol`` of its own square) in the span of
    the kept ones is set to zero: among dependent groups the first is the one set to zero,
    the rule of the fixed factors and of Mrode (2014, Example 3.4). A group without records
    among its descendants is set to zero. Q is never held whole: a block of its columns at a
    time, with ``Q'y`` by a pass from the youngest animal.

    Parameters
    ----------
    X
        Fixed design (records × p), full column rank.
    animal_index
        The animal of each record (internal numbers).
    sire, dam, sire_group, dam_group, n_groups
        The pedigree and its groups, as :func:`ainv_qp_sparse` takes them.
    weights
        Residual weights of the records (default 1).

    Returns
    -------
    numpy.ndarray
        bool, one per group: True = set to zero.
    """
    import scipy.sparse.linalg as spla

    sire, dam, sg, dg = _members(sire, dam, sire_group, dam_group, n_groups)
    n = sire.shape[0]
    X = sp.csr_matrix(X)
    idx = np.asarray(animal_index, dtype=np.int64)
    w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    c = np.bincount(idx, weights=w, minlength=n)  # diag(Z'WZ)
    xwz = sp.csr_matrix((w, (np.arange(len(idx)), idx)), shape=(len(idx), n))
    xwz = (X.T @ xwz).tocsr()  # X'WZ, p × n
    order = topological_order(sire, dam)
    s = np.empty((n_groups, n_groups))
    xq = np.empty((X.shape[1], n_groups))
    for lo, hi in _blocks(n, n_groups):
        qj = _q_columns(order, sire, dam, sg, dg, lo, hi)
        s[:, lo:hi] = _qt_times(order, sire, dam, sg, dg, c[:, None] * qj, n_groups)
        xq[:, lo:hi] = xwz @ qj
    own = np.diag(s).copy()
    if X.shape[1]:
        s = s - xq.T @ spla.splu((X.T @ sp.diags(w) @ X).tocsc()).solve(xq)
    zero = np.zeros(n_groups, dtype=bool)
    kept: list[int] = []
    for g in range(n_groups - 1, -1, -1):
        if own[g] <= 0.0:
            zero[g] = True
            continue
        r = s[g, g]
        if kept:
            k = np.array(kept)
            r -= s[g, k] @ np.linalg.solve(s[np.ix_(k, k)], s[k, g])
        if r <= tol * own[g]:
            zero[g] = True
        else:
            kept.append(g)
    return zero
