"""REML variance components of the animal model (σa², optional σpe², σe²): EM and AI.

Dense formulation on the MME (Henderson form, see :mod:`bigeval.models.mme`), for systems
of up to a few thousand equations: each round factorizes the LHS C and forms C⁻¹.

−2 log L = (n − p) log 2π + log|C| + log|K|·… (Meyer 1989; Johnson & Thompson 1995)::

    −2 logL = c + log|C| + q log σa² + log|K| + q_pe log σpe² + n log σe² − Σ log w + y'Py

with y'Py = y'R⁻¹y − ŝ'W'R⁻¹y and c = (n − p) log 2π.
EM updates (Henderson 1984): σk² ← (ûk'Kk⁻¹ûk + tr(Kk⁻¹Ckk)) / qk and
σe² ← σe² · y'Py / (n − p)  (i.e. (y'y − ŝ'W'y)/(n − p) in the α-scaled equations).
AI (Gilmour, Thompson & Cullis 1995): AI_ij = ½ f_i'P f_j with the working variates
f_a = Zâ/σa², f_pe = Zp p̂e/σpe², f_e = ê/σe²; scores from the traces of C⁻¹.
Convergence: EM when Σ(Δθ)²/Σθ² < 1e-6, AI when < 1e-8 (BLUPF90's criterion).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from bigeval.errors import BigevalWarning, InputError
from bigeval.models.mme import ModelData, assemble

EM_TOL = 1e-6
AI_TOL = 1e-8


@dataclass(frozen=True)
class REMLResult:
    names: tuple[str, ...]
    theta: np.ndarray
    se: np.ndarray  # from the inverse AI matrix (NaN for EM)
    loglik: float
    h2: float
    h2_se: float
    iterations: int
    converged: bool
    log: list = field(default_factory=list)  # (iteration, loglik, *theta, change)
    method: str = "ai"

    def as_dict(self) -> dict:
        return dict(zip(self.names, self.theta))


def _names(md: ModelData) -> tuple[str, ...]:
    return tuple(n for n, on in (("sigma_a2", md.rel is not None),
                                 ("sigma_pe2", md.pe_ids is not None), ("sigma_e2", True)) if on)


def _pieces(md: ModelData, theta: dict):
    """Everything one round needs: solutions, C⁻¹, −2logL, the blocks."""
    m = assemble(md, sigma_a2=theta.get("sigma_a2"), sigma_pe2=theta.get("sigma_pe2"),
                 sigma_e2=theta["sigma_e2"])
    C = m.lhs.toarray()
    try:
        L = scipy.linalg.cholesky(C, lower=True)
    except np.linalg.LinAlgError:
        raise InputError("the MME are not positive definite during REML",
                         value=theta, remedy="try other starting values") from None
    s = scipy.linalg.cho_solve((L, True), m.rhs)
    Cinv = scipy.linalg.cho_solve((L, True), np.eye(len(s)))
    y = md.y
    n = len(y)
    p = m.blocks["fixed"].stop
    w = np.ones(n) if md.weights is None else md.weights
    ypy = float(y @ (m.rinv * y) - s @ m.rhs)
    m2ll = (n - p) * np.log(2 * np.pi) + 2 * np.log(np.diag(L)).sum() + ypy \
        + n * np.log(theta["sigma_e2"]) - np.log(w).sum()
    if "animal" in m.blocks:
        q = m.blocks["animal"].stop - m.blocks["animal"].start
        m2ll += q * np.log(theta["sigma_a2"]) + md.rel.logdet
    if "pe" in m.blocks:
        q = m.blocks["pe"].stop - m.blocks["pe"].start
        m2ll += q * np.log(theta["sigma_pe2"])
    return m, s, Cinv, -0.5 * m2ll, ypy, p


def loglik(md: ModelData, **theta) -> float:
    """REML log-likelihood at the variances given (keywords sigma_a2, sigma_pe2, sigma_e2)."""
    return _pieces(md, theta)[3]


def _round(md, th, names, method):
    m, s, Cinv, ll, ypy, p = _pieces(md, th)
    n = len(md.y)
    se2 = th["sigma_e2"]
    e = md.y - m.W @ s
    f, score, new = {}, {}, {}
    trsum = 0.0
    for name, blk in (("sigma_a2", "animal"), ("sigma_pe2", "pe")):
        if name not in names:
            continue
        b = m.blocks[blk]
        u = s[b]
        K = md.rel.kinv if blk == "animal" else None
        Cb = Cinv[b, b]
        q = b.stop - b.start
        quad = float(u @ (K @ u)) if K is not None else float(u @ u)
        tr = float((K.multiply(Cb)).sum()) if K is not None else float(np.trace(Cb))
        sk = th[name]
        new[name] = (quad + tr) / q
        score[name] = -0.5 * (q / sk - tr / sk ** 2 - quad / sk ** 2)
        trsum += q - tr / sk
        f[name] = (m.W[:, b] @ u) / sk
    new["sigma_e2"] = se2 * ypy / (n - p)
    w = np.ones(n) if md.weights is None else md.weights
    score["sigma_e2"] = -0.5 * ((n - p - trsum) / se2 - float(e @ (w * e)) / se2 ** 2)
    f["sigma_e2"] = e / se2
    if method == "em":
        return ll, np.array([new[k] for k in names]), None
    # AI matrix: ½ f_i' P f_j, P f = R⁻¹(f − W C⁻¹ W'R⁻¹ f)
    F = np.column_stack([f[k] for k in names])
    RF = m.rinv[:, None] * F
    PF = RF - m.rinv[:, None] * (m.W @ (Cinv @ (m.W.T @ RF)))
    AI = 0.5 * F.T @ PF
    g = np.array([score[k] for k in names])
    return ll, np.array([th[k] for k in names]) + np.linalg.solve(AI, g), AI


def reml(md: ModelData, start: dict, *, method: str = "ai", maxiter: int = 500,
         tol: float | None = None, em_first: int = 1) -> REMLResult:
    """Estimate the variance components by EM-REML (``method='em'``) or AI-REML.

    ``start`` gives starting values by name (sigma_a2, sigma_pe2, sigma_e2). AI takes
    ``em_first`` EM rounds first and falls back to an EM step whenever an AI step leaves the
    parameter space.
    """
    names = _names(md)
    missing = [k for k in names if not start.get(k)]
    if missing:
        raise InputError("starting values missing", value=", ".join(missing),
                         remedy="give them under [variance]")
    tol = tol if tol is not None else (EM_TOL if method == "em" else AI_TOL)
    th = np.array([float(start[k]) for k in names])
    log, converged, AI, ll = [], False, None, np.nan
    it = 0
    for it in range(1, maxiter + 1):
        mth = "em" if (method == "em" or it <= em_first) else "ai"
        ll, new, AI_ = _round(md, dict(zip(names, th)), names, mth)
        if mth == "ai":
            AI = AI_
            if np.any(new <= 0):
                _, new, _ = _round(md, dict(zip(names, th)), names, "em")
        change = float(((new - th) ** 2).sum() / (new ** 2).sum())
        log.append((it, ll, *new, change))
        th = new
        if change < tol and (method == "em" or it > em_first):
            converged = True
            break
    else:
        import warnings
        warnings.warn(f"REML did not converge in {maxiter} rounds", BigevalWarning,
                      stacklevel=2)
    theta = dict(zip(names, th))
    ll_final, _, AI_final = _round(md, theta, names, "ai")
    se = np.full(len(names), np.nan)
    h2 = h2_se = np.nan
    cov = None
    if AI_final is not None:
        cov = np.linalg.inv(AI_final)
        se = np.sqrt(np.diag(cov))
    if "sigma_a2" in theta:
        vp = th.sum()
        h2 = theta["sigma_a2"] / vp
        if cov is not None:  # delta method
            gr = -np.full(len(th), theta["sigma_a2"] / vp ** 2)
            gr[names.index("sigma_a2")] += 1.0 / vp
            h2_se = float(np.sqrt(gr @ cov @ gr))
    return REMLResult(names, th, se, ll_final, h2, h2_se, it, converged, log, method)
