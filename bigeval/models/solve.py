"""Solvers for the MME: sparse direct (CHOLMOD when installed), dense Cholesky, PCG.

CHOLMOD (supernodal sparse Cholesky) comes from scikit-sparse, an optional extra
(``pip install -e '.[cholmod]'``, installed by ``./install.sh``) that builds against the
system SuiteSparse headers. Without it the direct path is a dense LAPACK Cholesky for small
systems and SuperLU otherwise (``splu``/``superlu``; 30-50× slower than CHOLMOD on a
215 000-equation herd-structured MME: 111-160 s against 2-5 s on 2 busy cores,
benchmarks/bench_mme.py). The iterative path is
preconditioned conjugate gradients with a block-diagonal preconditioner: a dense block for
the fixed effects and the diagonal for the rest, as in BLUPF90; it needs only the matrix,
so it serves systems too large to factor.

Standard errors and PEVs come from the diagonal of the inverse LHS: dense inverse for small
systems, selected inversion of the sparse factor (:mod:`bigeval.linalg.selinv`) otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numba import njit

from bigeval.errors import InputError
from bigeval.linalg.cholesky import HAVE_CHOLMOD, cholesky

DENSE_MAX = 5000  # equations: above this the direct path never densifies
_NOT_PD = ("check the variances (all > 0), that every fixed-effect level has records, and "
           "that G is positive definite")


@dataclass(frozen=True)
class Solution:
    x: np.ndarray
    method: str
    iterations: int = 0
    residual: float = 0.0


def _direct_method(n: int) -> str:
    if HAVE_CHOLMOD:
        return "cholmod"
    return "dense" if n <= DENSE_MAX else "splu"


def solve_direct(lhs, rhs, method: str = "auto") -> Solution:
    """Solve LHS x = rhs by a factorization: ``cholmod``, ``dense`` (LAPACK) or ``splu``."""
    lhs = sp.csc_matrix(lhs)
    n = lhs.shape[0]
    method = _direct_method(n) if method == "auto" else method
    if method == "cholmod":
        x = cholesky(lhs, "cholmod").solve(rhs)
    elif method == "dense":
        try:
            c = scipy.linalg.cho_factor(lhs.toarray(), lower=True)
        except np.linalg.LinAlgError:
            raise InputError("the MME are not positive definite", remedy=_NOT_PD) from None
        x = scipy.linalg.cho_solve(c, rhs)
    elif method == "splu":
        try:
            x = spla.splu(lhs, permc_spec="MMD_AT_PLUS_A").solve(np.asarray(rhs, dtype=float))
        except RuntimeError as exc:  # "Factor is exactly singular"
            raise InputError(f"the MME are singular ({exc})", remedy=_NOT_PD) from None
    else:
        raise InputError("unknown solver", value=method,
                         expected="auto, cholmod, superlu, dense, splu or pcg")
    return Solution(np.asarray(x).ravel(), method)


FIXED_BLOCK_MAX = 2000  # fixed effects inverted as one dense block up to this many


def block_preconditioner(lhs, n_fixed: int) -> spla.LinearOperator:
    """M⁻¹ for PCG: dense inverse of the fixed-effect block (up to FIXED_BLOCK_MAX
    equations; a diagonal above), 1/diag for the other equations."""
    lhs = sp.csr_matrix(lhs)
    n = lhs.shape[0]
    d = lhs.diagonal().copy()
    if np.any(d <= 0):
        i = int(np.flatnonzero(d <= 0)[0])
        raise InputError(f"the MME have a diagonal element <= 0 (equation {i})",
                         value=float(d[i]), expected="> 0", remedy=_NOT_PD)
    inv_d = 1.0 / d
    Fi = None
    if n_fixed > FIXED_BLOCK_MAX:  # e.g. 67 000 contemporary groups: their diagonal only
        n_fixed = 0
    if n_fixed:
        from bigeval.linalg import spd_inverse
        Fi = spd_inverse(lhs[:n_fixed, :n_fixed].toarray(), what="the fixed-effect block of "
                         "the MME", remedy="remove confounded or empty fixed-effect levels")

    def apply(r):
        r = np.asarray(r).ravel()
        z = inv_d * r
        if n_fixed:
            z[:n_fixed] = Fi @ r[:n_fixed]
        return z
    return spla.LinearOperator((n, n), matvec=apply, dtype=np.float64)


@njit(cache=True)
def _dot(a, b):  # pragma: no cover - compiled
    """a·b in one pass without BLAS: BLAS ddot on 2 threads was measured at 4 ms for a
    22 000-vector on a busy machine (30 ms per PCG iteration instead of 2)."""
    s = 0.0
    for i in range(a.size):
        s += a[i] * b[i]
    return s


@njit(cache=True)
def _update(x, r, p, q, alpha):  # pragma: no cover - compiled
    """x += α p; r -= α q; returns r·r."""
    s = 0.0
    for i in range(x.size):
        x[i] += alpha * p[i]
        r[i] -= alpha * q[i]
        s += r[i] * r[i]
    return s


def solve_pcg(lhs, rhs, *, n_fixed: int = 0, x0=None, rtol: float = 1e-12,
              maxiter: int | None = None) -> Solution:
    """Preconditioned conjugate gradients; convergence on ||r|| / ||rhs|| < rtol.

    BLUPF90's default criterion, 1e-12 on ||r||²/||rhs||², is ``rtol=1e-6``.
    """
    lhs = sp.csr_matrix(lhs)
    rhs = np.asarray(rhs, dtype=np.float64)
    n = len(rhs)
    maxiter = maxiter or max(1000, 10 * n)
    Minv = block_preconditioner(lhs, n_fixed)
    x = np.zeros(n) if x0 is None else np.array(x0, dtype=np.float64)
    r = rhs - lhs @ x
    z = Minv.matvec(r)
    p = z.copy()
    rz = _dot(r, z)
    norm_b = np.sqrt(_dot(rhs, rhs)) or 1.0
    it = 0
    res = float("nan")
    for it in range(1, maxiter + 1):
        q = lhs @ p
        pq = _dot(p, q)
        if not pq > 0:  # a direction of non-positive curvature: LHS not positive definite
            raise InputError("PCG: the MME are not positive definite", value=float(pq),
                             remedy=_NOT_PD)
        res = np.sqrt(_update(x, r, p, q, rz / pq)) / norm_b
        if res < rtol:
            break
        z = Minv.matvec(r)
        rz_new = _dot(r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    else:
        raise InputError(f"PCG did not converge in {maxiter} iterations", value=res,
                         remedy="use the direct solver or raise maxiter")
    return Solution(x, "pcg", it, float(res))


def solve(lhs, rhs, method: str = "auto", *, n_fixed: int = 0, **kw) -> Solution:
    """Solve the MME with ``method``: auto (direct), cholmod, superlu, dense, splu or pcg."""
    if method == "pcg":
        return solve_pcg(lhs, rhs, n_fixed=n_fixed, **kw)
    if method == "superlu":
        return Solution(cholesky(lhs, "superlu").solve(rhs), "superlu")
    return solve_direct(lhs, rhs, method)


def _check_variances(**variances) -> None:
    """Refuse a variance that is zero, negative or not finite (the MME would divide by it)."""
    for name, v in variances.items():
        if v is None:
            continue
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = float("nan")
        if not (np.isfinite(x) and x > 0):
            raise InputError(f"variance {name} must be positive", value=v,
                             expected="a finite number > 0",
                             remedy="drop the effect from the model instead of a zero variance"
                             if x == 0 else "give a positive variance")


def inverse_dense(lhs) -> np.ndarray:
    """Dense inverse of a small LHS (prediction-error covariances), by LAPACK potrf/potri."""
    from bigeval.linalg import spd_inverse
    n = lhs.shape[0]
    if n > 4 * DENSE_MAX:
        raise InputError(f"{n} equations are too many for a dense inverse",
                         remedy="skip standard errors, or use approximate reliabilities")
    return spd_inverse(sp.csr_matrix(lhs).toarray(), what="the MME")


@dataclass(frozen=True)
class BLUPResult:
    """Solutions of a mixed model.

    fixed : frame effect, level, estimate, se. animals : animal, ebv, pev, rel (pev/rel NaN
    when standard errors were not computed). pe : animal, estimate, se (or None).
    """

    fixed: "object"
    animals: "object"
    pe: "object"
    solution: Solution
    mme: "object"


def _schur_fit(m, e2: np.ndarray, method: str):
    """Solutions and diag(C⁻¹) of the MME ``m`` with the equations ``e2`` (a dense block)
    kept apart (:func:`bigeval.linalg.schur.schur_factor`)."""
    from bigeval.linalg.schur import schur_factor

    f = schur_factor(m.lhs, e2, solver=method, remedy=_NOT_PD)
    return Solution(f.solve(m.rhs), f.method), f.diagonal()


def fit_mixed(md, *, sigma_a2, sigma_e2, sigma_pe2=None, method: str = "auto",
              se: bool | None = None) -> BLUPResult:
    """Build and solve the MME of ``md`` (:class:`bigeval.models.mme.ModelData`).

    Standard errors are sqrt(diag(C⁻¹)) of the Henderson-form LHS (= PEV for animals);
    ``rel = 1 − PEV / (K_ii σa²)``. ``se=None`` computes them unless ``method='pcg'``: by a
    dense inverse up to DENSE_MAX equations, else by selected inversion of the sparse
    Cholesky factor that also gives the solutions (:mod:`bigeval.linalg.selinv`).
    """
    import pandas as pd

    from bigeval.models.mme import assemble
    _check_variances(sigma_a2=sigma_a2, sigma_pe2=sigma_pe2, sigma_e2=sigma_e2)
    m = assemble(md, sigma_a2=sigma_a2, sigma_pe2=sigma_pe2, sigma_e2=sigma_e2)
    n = len(m.rhs)
    se = (method != "pcg") if se is None else se
    d = np.full(n, np.nan)
    dense = None if md.rel is None else md.rel.dense
    if se and n > DENSE_MAX and method in ("auto", "cholmod", "superlu") and dense is not None:
        # G or H: the dense block of the genotyped apart (Schur complement), one dense copy
        sol, d = _schur_fit(m, m.blocks["animal"].start + np.asarray(dense, np.int64), method)
    elif se and n > DENSE_MAX and method in ("auto", "cholmod", "superlu"):
        from bigeval.linalg.selinv import selected_inverse
        f = cholesky(m.lhs, "auto" if method == "auto" else method)
        sol = Solution(f.solve(m.rhs), f.method)
        d = selected_inverse(f).diagonal()
    else:
        sol = solve(m.lhs, m.rhs, method, n_fixed=m.blocks["fixed"].stop)
        if se:
            d = np.diag(inverse_dense(m.lhs))
    keep = md.design.keep
    est = np.zeros(len(keep))
    fse = np.full(len(keep), np.nan)
    fb = m.blocks["fixed"]
    est[keep] = sol.x[fb]
    fse[keep] = np.sqrt(d[fb])
    fixed = pd.DataFrame({"effect": md.design.effect, "level": md.design.level,
                          "estimate": est, "se": fse})
    animals = pe = None
    if "animal" in m.blocks:
        ab = m.blocks["animal"]
        pev = d[ab]
        animals = pd.DataFrame({"animal": md.rel.ids, "ebv": sol.x[ab], "pev": pev,
                                "rel": 1.0 - pev / (md.rel.diag * sigma_a2)})
    if "pe" in m.blocks:
        pb = m.blocks["pe"]
        pe = pd.DataFrame({"animal": md.pe_ids, "estimate": sol.x[pb], "se": np.sqrt(d[pb])})
    return BLUPResult(fixed, animals, pe, sol, m)
