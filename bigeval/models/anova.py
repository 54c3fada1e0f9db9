"""Fixed-effects models: design matrices, sequential ANOVA and OLS/BLUE.

Constraint for rank-deficient designs (documented once, used everywhere in
``bigeval.models``): the columns of X are taken in order — intercept, then each factor's
levels in sorted order (:func:`factor_levels`: as numbers when every level is a number, 1, 2,
10, 100; else as text), then covariates — and a column is **set to zero** (its equation
deleted, estimate 0, no standard error) when it is a linear combination of the columns kept
before it. With an intercept this sets the **last** level (in sorted order) of every
factor to zero, as SAS PROC GLM does; without an intercept the first factor keeps all its
levels. Further dependencies (e.g. empty cells that confound two factors) are removed by the
same rule, as BLUPF90/FSPAK does for redundant equations. Only estimable functions
(differences between levels, fitted values) do not depend on this choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.stats

from bigeval.errors import InputError

RANK_TOL = 1e-10  # relative pivot below which a column is a combination of earlier ones


@dataclass(frozen=True)
class Design:
    """Fixed-effects design: X (records × p, sparse CSR) and the label of each column."""

    X: sp.csr_matrix
    effect: tuple[str, ...]
    level: tuple[str, ...]
    term: np.ndarray  # term number of each column (0 = intercept or first term)
    keep: np.ndarray  # bool, columns kept by the set-to-zero rule

    @property
    def Xk(self) -> sp.csr_matrix:
        """X with only the kept (independent) columns."""
        return self.X[:, np.flatnonzero(self.keep)].tocsr()


def independent_columns(XtX: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Which columns are kept, in order, by a sequential (left-to-right) Cholesky of X'X.

    A column whose Cholesky pivot is ≤ tol × its diagonal is a combination of the columns
    kept before it and is dropped.

    >>> independent_columns(np.array([[2., 1., 1.], [1., 1., 0.], [1., 0., 1.]])).tolist()
    [True, True, False]
    """
    XtX = np.asarray(XtX, dtype=np.float64)
    p = XtX.shape[0]
    keep = np.zeros(p, dtype=bool)
    L = np.zeros((p, p))
    k = 0
    idx = []
    for j in range(p):
        d = XtX[j, j]
        if d <= 0:
            continue
        l = np.linalg.solve(np.tril(L[:k, :k]), XtX[idx, j]) if k else np.zeros(0)
        piv = d - l @ l
        if piv > tol * d:
            L[k, :k] = l
            L[k, k] = np.sqrt(piv)
            idx.append(j)
            keep[j] = True
            k += 1
    return keep


def factor_levels(values) -> tuple[np.ndarray, np.ndarray]:
    """Codes (0-based, one per value) and sorted levels (str) of a factor.

    Levels sort as numbers when every one of them is a number (``1, 2, 10, 100``, not the
    text order ``1, 10, 100, 2``), else as text.

    >>> factor_levels(["10", "2", "1", "2"])[1].tolist()
    ['1', '2', '10']
    """
    codes, levels = pd.factorize(pd.Series(values).astype(str), sort=False)
    levels = np.asarray(levels, dtype=object).astype(str)
    num = pd.to_numeric(pd.Series(levels), errors="coerce").to_numpy(dtype=np.float64)
    order = np.argsort(num if np.isfinite(num).all() else levels, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[codes], levels[order]


def design_matrix(df: pd.DataFrame, factors=(), covariates=(), intercept=True) -> Design:
    """Build X from a records frame: intercept, factor levels (sorted), covariates."""
    n = len(df)
    blocks, effect, level, term = [], [], [], []
    t = 0
    if intercept:
        blocks.append(sp.csr_matrix(np.ones((n, 1))))
        effect.append("intercept"), level.append(""), term.append(t)
        t += 1
    for f in factors:
        codes, levels = factor_levels(df[f])
        blocks.append(sp.csr_matrix((np.ones(n), (np.arange(n), codes)),
                                    shape=(n, len(levels))))
        effect += [f] * len(levels)
        level += [str(v) for v in levels]
        term += [t] * len(levels)
        t += 1
    for c in covariates:
        blocks.append(sp.csr_matrix(np.asarray(df[c], dtype=np.float64)[:, None]))
        effect.append(c), level.append(""), term.append(t)
        t += 1
    if not blocks:
        raise InputError("the model has no fixed effect",
                         remedy="keep the intercept or give a factor or covariate")
    X = sp.hstack(blocks, format="csr")
    if len(factors) == 1 and not intercept and not covariates:
        # one factor's incidence alone: X'X is diagonal and every level has records, so all
        # columns are independent (no dense p × p X'X: 10⁴-10⁵ contemporary groups)
        keep = np.asarray(X.getnnz(axis=0) > 0)
    else:
        keep = independent_columns((X.T @ X).toarray())
    return Design(X, tuple(effect), tuple(level), np.asarray(term), keep)


@dataclass(frozen=True)
class OLSResult:
    """OLS/BLUE fit: estimates and SEs per column of X (0 and NaN for set-to-zero columns)."""

    design: Design
    estimate: np.ndarray
    se: np.ndarray
    sigma2: float
    df_resid: int
    rss: float
    fitted: np.ndarray

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"effect": self.design.effect, "level": self.design.level,
                             "estimate": self.estimate, "se": self.se})


def ols(y, design: Design, weights=None) -> OLSResult:
    """Generalised least squares with R = I σ² / w: β̂ = (X'WX)⁻¹X'Wy on the kept columns.

    σ̂² = e'We/(n − p) with p = rank X; SE = sqrt(diag((X'WX)⁻¹) σ̂²).

    >>> import pandas as pd
    >>> d = design_matrix(pd.DataFrame({"g": ["a", "a", "b", "b"]}), factors=["g"])
    >>> ols([1., 3., 5., 7.], d).estimate.tolist()
    [6.0, -4.0, 0.0]
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    Xk = design.Xk.toarray()
    XtW = Xk.T * w
    C = np.linalg.inv(XtW @ Xk)
    b = C @ (XtW @ y)
    fitted = Xk @ b
    e = y - fitted
    n, p = len(y), Xk.shape[1]
    df_resid = n - p
    rss = float(e @ (w * e))
    s2 = rss / df_resid if df_resid > 0 else np.nan
    est = np.zeros(len(design.keep))
    se = np.full(len(design.keep), np.nan)
    est[design.keep] = b
    se[design.keep] = np.sqrt(np.diag(C) * s2)
    return OLSResult(design, est, se, s2, df_resid, rss, fitted)


def anova(y, df: pd.DataFrame, factors=(), covariates=(), intercept=True,
          weights=None) -> pd.DataFrame:
    """Sequential (type I) ANOVA table: terms added in the order given, factors then covariates.

    Each row: source, df (rank gained), sum_sq (drop in residual SS), mean_sq, F (against
    the residual mean square of the full model), p (upper tail of F). Last row: Residuals.
    One factor gives Fisher's one-way ANOVA.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    terms = [("factor", f) for f in factors] + [("covariate", c) for c in covariates]
    full = design_matrix(df, factors, covariates, intercept)
    res_full = ols(y, full, w)
    ms_e = res_full.sigma2
    rows = []
    if intercept:
        prev_rss, prev_rank = float(w @ y ** 2) - float((w @ y) ** 2 / w.sum()), 1
    else:
        prev_rss, prev_rank = float(w @ y ** 2), 0
    for i, (kind, name) in enumerate(terms):
        f = [t for k, t in terms[:i + 1] if k == "factor"]
        c = [t for k, t in terms[:i + 1] if k == "covariate"]
        r = ols(y, design_matrix(df, f, c, intercept), w)
        rank = int(r.design.keep.sum())
        d = rank - prev_rank
        ss = prev_rss - r.rss
        ms = ss / d if d > 0 else np.nan
        F = ms / ms_e if d > 0 else np.nan
        rows.append((name, d, ss, ms, F, scipy.stats.f.sf(F, d, res_full.df_resid)))
        prev_rss, prev_rank = r.rss, rank
    rows.append(("Residuals", res_full.df_resid, res_full.rss, ms_e, np.nan, np.nan))
    return pd.DataFrame(rows, columns=["source", "df", "sum_sq", "mean_sq", "F", "p"])
