"""Model evaluation: predictive ability, MSE, LRT of σa², AIC/BIC, k-fold cross-validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.stats


def predictive_ability(ebv, y, h2: float) -> float:
    """Accuracy estimated as cor(û, y)/√h² (Legarra et al. 2008)."""
    return float(np.corrcoef(ebv, y)[0, 1] / np.sqrt(h2))


def mse(y, yhat) -> float:
    """(1/n) Σ (y − ŷ)²."""
    y, yhat = np.asarray(y, float), np.asarray(yhat, float)
    return float(np.mean((y - yhat) ** 2))


def lrt_variance(loglik_full: float, loglik_reduced: float) -> tuple[float, float]:
    """LRT of one variance component: statistic 2Δ logL and its p-value.

    Under H0 the variance lies on the boundary: the statistic follows ½χ²₀ + ½χ²₁ (Self &
    Liang 1987), so p = ½ P(χ²₁ > D).
    """
    D = max(0.0, 2.0 * (loglik_full - loglik_reduced))
    return D, 0.5 * float(scipy.stats.chi2.sf(D, 1)) if D > 0 else 1.0


def aic_bic(loglik: float, k: int, n: int) -> tuple[float, float]:
    """AIC = −2logL + 2k, BIC = −2logL + k log n (n: residual degrees of freedom for REML)."""
    return -2 * loglik + 2 * k, -2 * loglik + k * np.log(n)


def kfold_cv(spec, df: pd.DataFrame, rel, *, k: int = 5, seed: int = 1,
             method: str = "auto", progress=None) -> pd.DataFrame:
    """k-fold cross-validation by animal: each fold's phenotypes are masked, the model is
    solved on the rest at the spec's variances, and the masked animals' EBVs are compared
    with their records.

    Returns one row per fold: fold, n, cor (EBV, y), mse (y vs fixed mean + EBV).
    ``progress``, when given, is called with each row as it is done.
    """
    from bigeval.models.mme import model_data
    from bigeval.models.solve import fit_mixed
    spec.require_variances()
    animals = np.unique(df[spec.animal].astype(str))
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(animals), np.arange(len(animals)) % k))
    fold = df[spec.animal].astype(str).map(fold_of).to_numpy()
    rows = []
    for j in range(k):
        train, test = df.loc[fold != j].reset_index(drop=True), df.loc[fold == j]
        md = model_data(spec, train, rel)
        r = fit_mixed(md, sigma_a2=spec.sigma_a2, sigma_e2=spec.sigma_e2,
                      sigma_pe2=spec.sigma_pe2, method=method, se=False)
        ebv = r.animals.set_index("animal")["ebv"]
        u = ebv.loc[test[spec.animal].astype(str)].to_numpy()
        yt = test[spec.trait].to_numpy(float)
        mean = float(np.mean(md.design.Xk @ r.solution.x[r.mme.blocks["fixed"]]))
        c = float(np.corrcoef(u, yt)[0, 1]) if len(yt) > 2 and np.std(u) > 0 else np.nan
        rows.append((j, len(yt), c, mse(yt, mean + u)))
        if progress is not None:
            progress(*rows[-1])
    return pd.DataFrame(rows, columns=["fold", "n", "cor", "mse"])
