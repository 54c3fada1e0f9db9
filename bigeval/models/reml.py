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

The traces tr(K⁻¹C^kk) need only the entries of C⁻¹ on the pattern of K⁻¹, which lies in
the pattern of C: the sparse engine takes them from the selected inverse of the sparse
Cholesky factor (Takahashi equations, :mod:`bigeval.linalg.selinv`), as BLUPF90 does with
FSPAK/YAMS, and log|C| from the factor's diagonal.

Why EM stops short of the maximum: EM converges linearly, with a rate close to 1 when the
data say little about the variance ratio, so its steps are small long before the estimates
are close: the distance left is about step/(1 − rate). The criterion measures the step, not
the distance. On the gryphon data (start 3.3, 3.9; AI optimum 3.3954, 3.8286) the first EM
step is already below the 1e-6 criterion (log L 0.012 below the maximum); with tol 1e-8 EM
takes 73 rounds and stops 3.5e-4 short, with 1e-10 165 rounds and 3.5e-6 short (measured).
EM is monotone and goes to the same maximum as AI; only the criterion is loose. For
precise estimates use AI (the default) or a tighter ``tol``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse as sp

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


# ``engine='auto'`` is sparse: on the gryphon data (1 310 equations) a sparse round took
# 0.05-0.1 s against 3.5-6.5 s for the dense one on a loaded 2-core machine (measured); the
# dense engine stays as the twin the tests compare with.


class _DenseC:
    """C = LHS factored densely: C⁻¹ formed whole (the twin of :class:`_SparseC`)."""

    def __init__(self, lhs, theta):
        try:
            self.L = scipy.linalg.cholesky(lhs.toarray(), lower=True)
        except np.linalg.LinAlgError:
            raise InputError("the MME are not positive definite during REML", value=theta,
                             remedy="try other starting values; check that every fixed-effect "
                                    "level has records") from None
        self.Cinv = scipy.linalg.cho_solve((self.L, True), np.eye(lhs.shape[0]))
        self.logdet = 2.0 * float(np.log(np.diag(self.L)).sum())

    def solve(self, b):
        return scipy.linalg.cho_solve((self.L, True), b)

    def trace(self, b: slice, K=None) -> float:
        """tr(K C⁻¹_bb) (tr(C⁻¹_bb) when K is None)."""
        Cb = self.Cinv[b, b]
        return float(np.trace(Cb)) if K is None else float(K.multiply(Cb).sum())


class _SparseC:
    """C = LHS by sparse Cholesky; the traces from its selected inverse (the entries of C⁻¹
    on the pattern of C, which holds every K⁻¹ block: Takahashi equations)."""

    def __init__(self, lhs, theta):
        from bigeval.linalg.cholesky import cholesky
        from bigeval.linalg.selinv import selected_inverse
        try:
            self.f = cholesky(lhs, what="the MME left-hand side during REML")
        except InputError as exc:
            raise InputError(exc.message, value=theta,
                             remedy="try other starting values; check that every "
                                    "fixed-effect level has records") from None
        self.sel = selected_inverse(self.f)
        self.logdet = self.f.logdet()

    def solve(self, b):
        return self.f.solve(b)

    def trace(self, b: slice, K=None) -> float:
        if K is None:
            return float(self.sel.diagonal()[b].sum())
        K = sp.coo_matrix(K)
        return float(K.data @ self.sel.entries(K.row + b.start, K.col + b.start))


class _SchurC(_SparseC):
    """C = LHS with G or H: the genotyped block kept apart by its Schur complement
    (:func:`bigeval.linalg.schur.schur_factor`); the traces from the same entries."""

    def __init__(self, lhs, theta, dense_eq):
        from bigeval.linalg.schur import schur_factor
        try:
            self.f = schur_factor(lhs, dense_eq, what="the MME left-hand side during REML")
        except InputError as exc:
            raise InputError(exc.message, value=theta,
                             remedy="try other starting values; check that every "
                                    "fixed-effect level has records") from None
        self.sel = self.f
        self.logdet = self.f.logdet


def _pieces(md: ModelData, theta: dict, engine: str = "dense"):
    """Everything one round needs: solutions, C (factored), −2logL, the blocks."""
    m = assemble(md, sigma_a2=theta.get("sigma_a2"), sigma_pe2=theta.get("sigma_pe2"),
                 sigma_e2=theta["sigma_e2"])
    dense = None if md.rel is None else md.rel.dense
    if engine == "dense":
        C = _DenseC(m.lhs, theta)
    elif dense is not None:
        C = _SchurC(m.lhs, theta, m.blocks["animal"].start + np.asarray(dense, np.int64))
    else:
        C = _SparseC(m.lhs, theta)
    s = C.solve(m.rhs)
    y = md.y
    n = len(y)
    p = m.blocks["fixed"].stop
    w = np.ones(n) if md.weights is None else md.weights
    ypy = float(y @ (m.rinv * y) - s @ m.rhs)
    m2ll = (n - p) * np.log(2 * np.pi) + C.logdet + ypy \
        + n * np.log(theta["sigma_e2"]) - np.log(w).sum()
    if "animal" in m.blocks:
        q = m.blocks["animal"].stop - m.blocks["animal"].start
        m2ll += q * np.log(theta["sigma_a2"]) + md.rel.logdet
    if "pe" in m.blocks:
        q = m.blocks["pe"].stop - m.blocks["pe"].start
        m2ll += q * np.log(theta["sigma_pe2"])
    return m, s, C, -0.5 * m2ll, ypy, p


def _engine(md: ModelData, engine: str) -> str:
    if engine not in ("auto", "dense", "sparse"):
        raise InputError("unknown REML engine", value=engine, expected="auto, dense or sparse")
    return "sparse" if engine == "auto" else engine


def loglik(md: ModelData, engine: str = "auto", **theta) -> float:
    """REML log-likelihood at the variances given (keywords sigma_a2, sigma_pe2, sigma_e2)."""
    return _pieces(md, theta, _engine(md, engine))[3]


def _round(md, th, names, method, engine="dense"):
    m, s, C, ll, ypy, p = _pieces(md, th, engine)
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
        q = b.stop - b.start
        quad = float(u @ (K @ u)) if K is not None else float(u @ u)
        tr = C.trace(b, K)
        sk = th[name]
        new[name] = (quad + tr) / q
        score[name] = -0.5 * (q / sk - tr / sk ** 2 - quad / sk ** 2)
        trsum += q - tr / sk
        f[name] = (m.W[:, b] @ u) / sk
    new["sigma_e2"] = se2 * ypy / (n - p)
    w = np.ones(n) if md.weights is None else md.weights
    score["sigma_e2"] = -0.5 * ((n - p - trsum) / se2 - float(e @ (w * e)) / se2 ** 2)
    f["sigma_e2"] = e / se2
    em = np.array([new[k] for k in names])
    if method == "em":
        return ll, em, None, None
    # AI matrix: ½ f_i' P f_j, P f = R⁻¹(f − W C⁻¹ W'R⁻¹ f)
    F = np.column_stack([f[k] for k in names])
    RF = m.rinv[:, None] * F
    PF = RF - m.rinv[:, None] * (m.W @ C.solve(np.asarray(m.W.T @ RF)))
    AI = 0.5 * F.T @ PF
    g = np.array([score[k] for k in names])
    return ll, em, np.array([th[k] for k in names]) + np.linalg.solve(AI, g), AI


def reml(md: ModelData, start: dict, *, method: str = "ai", maxiter: int = 500,
         tol: float | None = None, em_first: int = 1, engine: str = "auto",
         progress=None) -> REMLResult:
    """Estimate the variance components by EM-REML (``method='em'``) or AI-REML.

    ``start`` gives starting values by name (sigma_a2, sigma_pe2, sigma_e2). AI takes
    ``em_first`` EM rounds first and falls back to an EM step whenever an AI step leaves the
    parameter space. ``engine``: ``sparse`` (default ``auto``: sparse Cholesky, traces from
    the selected inverse) or ``dense`` (C⁻¹ formed whole; the twin).

    ``progress``, when given, is called after every round as ``progress(round, kind, loglik,
    theta, change)``: ``kind`` "em" or "ai" (the step taken), ``loglik`` the REML
    log-likelihood at the values the round started from, ``theta`` the new values by name.
    """
    if method not in ("ai", "em"):
        raise InputError("unknown REML method", value=method, expected="ai or em")
    engine = _engine(md, engine)
    names = _names(md)
    missing = [k for k in names if not start.get(k)]
    if missing:
        raise InputError("starting values missing", value=", ".join(missing),
                         remedy="give them under [variance]")
    tol = tol if tol is not None else (EM_TOL if method == "em" else AI_TOL)
    th = np.array([float(start[k]) for k in names])
    log, converged, ll = [], False, np.nan
    it = 0
    for it in range(1, maxiter + 1):
        mth = "em" if (method == "em" or it <= em_first) else "ai"
        ll, new_em, new_ai, _ = _round(md, dict(zip(names, th)), names, mth, engine)
        new, step = new_em, "em"
        if mth == "ai":
            if np.all(new_ai > 0):  # else an EM step (it stays in the parameter space)
                new, step = new_ai, "ai"
        change = float(((new - th) ** 2).sum() / (new ** 2).sum())
        log.append((it, ll, *new, change))
        if progress is not None:
            progress(it, step, ll, dict(zip(names, new)), change)
        th = new
        if change < tol and (method == "em" or it > em_first):
            converged = True
            break
    else:
        import warnings
        warnings.warn(f"REML did not converge in {maxiter} rounds", BigevalWarning,
                      stacklevel=2)
    theta = dict(zip(names, th))
    ll_final, _, _, AI_final = _round(md, theta, names, "ai", engine)
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
