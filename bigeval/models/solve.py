"""Solvers for the MME: sparse direct (CHOLMOD when installed), dense Cholesky, PCG.

CHOLMOD (supernodal sparse Cholesky) comes from scikit-sparse, an optional extra
(``pip install -e '.[cholmod]'``) that builds against the system SuiteSparse headers. Without
it the direct path is a dense LAPACK Cholesky for small systems and SuperLU (``splu``,
~7× slower than CHOLMOD on a 210 000-equation MME, shared/notes) otherwise. The iterative
path is preconditioned conjugate gradients with a block-diagonal preconditioner: a dense
block for the fixed effects and the diagonal for the rest, as in BLUPF90.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from bigeval.errors import InputError

try:  # optional supernodal CHOLMOD
    from sksparse.cholmod import cholesky as _cholmod_cholesky
except ImportError:  # pragma: no cover - depends on the environment
    _cholmod_cholesky = None

HAVE_CHOLMOD = _cholmod_cholesky is not None
DENSE_MAX = 5000  # equations: above this the direct path never densifies


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
        if not HAVE_CHOLMOD:
            raise InputError("CHOLMOD is not installed", value="cholmod",
                             remedy="pip install scikit-sparse (needs SuiteSparse), "
                                    "or use method 'auto'")
        x = _cholmod_cholesky(lhs)(rhs)
    elif method == "dense":
        try:
            c = scipy.linalg.cho_factor(lhs.toarray(), lower=True)
        except np.linalg.LinAlgError:
            raise InputError("the MME are not positive definite",
                             remedy="check the variances and the fixed-effect design") from None
        x = scipy.linalg.cho_solve(c, rhs)
    elif method == "splu":
        x = spla.splu(lhs, permc_spec="MMD_AT_PLUS_A").solve(np.asarray(rhs, dtype=float))
    else:
        raise InputError("unknown solver", value=method,
                         expected="auto, cholmod, dense, splu or pcg")
    return Solution(np.asarray(x).ravel(), method)


def block_preconditioner(lhs, n_fixed: int) -> spla.LinearOperator:
    """M⁻¹ for PCG: dense inverse of the fixed-effect block, 1/diag for the other equations."""
    lhs = sp.csr_matrix(lhs)
    n = lhs.shape[0]
    d = lhs.diagonal().copy()
    inv_d = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 1.0)
    Fi = np.linalg.inv(lhs[:n_fixed, :n_fixed].toarray()) if n_fixed else None

    def apply(r):
        r = np.asarray(r).ravel()
        z = inv_d * r
        if n_fixed:
            z[:n_fixed] = Fi @ r[:n_fixed]
        return z
    return spla.LinearOperator((n, n), matvec=apply, dtype=np.float64)


def solve_pcg(lhs, rhs, *, n_fixed: int = 0, x0=None, rtol: float = 1e-12,
              maxiter: int | None = None) -> Solution:
    """Preconditioned conjugate gradients; convergence on ||r|| / ||rhs|| < rtol."""
    lhs = sp.csr_matrix(lhs)
    rhs = np.asarray(rhs, dtype=np.float64)
    n = len(rhs)
    maxiter = maxiter or max(1000, 10 * n)
    Minv = block_preconditioner(lhs, n_fixed)
    x = np.zeros(n) if x0 is None else np.array(x0, dtype=np.float64)
    r = rhs - lhs @ x
    z = Minv.matvec(r)
    p = z.copy()
    rz = r @ z
    norm_b = np.linalg.norm(rhs) or 1.0
    it = 0
    for it in range(1, maxiter + 1):
        q = lhs @ p
        alpha = rz / (p @ q)
        x += alpha * p
        r -= alpha * q
        res = np.linalg.norm(r) / norm_b
        if res < rtol:
            break
        z = Minv.matvec(r)
        rz_new = r @ z
        p = z + (rz_new / rz) * p
        rz = rz_new
    else:
        raise InputError(f"PCG did not converge in {maxiter} iterations", value=res,
                         remedy="use the direct solver or raise maxiter")
    return Solution(x, "pcg", it, float(res))


def solve(lhs, rhs, method: str = "auto", *, n_fixed: int = 0, **kw) -> Solution:
    """Solve the MME with ``method``: auto (direct), cholmod, dense, splu or pcg."""
    if method == "pcg":
        return solve_pcg(lhs, rhs, n_fixed=n_fixed, **kw)
    return solve_direct(lhs, rhs, method)


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


def fit_mixed(md, *, sigma_a2, sigma_e2, sigma_pe2=None, method: str = "auto",
              se: bool | None = None) -> BLUPResult:
    """Build and solve the MME of ``md`` (:class:`bigeval.models.mme.ModelData`).

    Standard errors are sqrt(diag(C⁻¹)) of the Henderson-form LHS (= PEV for animals);
    ``rel = 1 − PEV / (K_ii σa²)``. They are computed by a dense inverse, by default only
    when the system has ≤ DENSE_MAX equations.
    """
    import pandas as pd

    from bigeval.models.mme import assemble
    m = assemble(md, sigma_a2=sigma_a2, sigma_pe2=sigma_pe2, sigma_e2=sigma_e2)
    sol = solve(m.lhs, m.rhs, method, n_fixed=m.blocks["fixed"].stop)
    n = len(m.rhs)
    se = (n <= DENSE_MAX) if se is None else se
    d = np.diag(inverse_dense(m.lhs)) if se else np.full(n, np.nan)
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
