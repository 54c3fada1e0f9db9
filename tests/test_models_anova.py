"""Tests of bigeval.models.anova: ANOVA and OLS against a published table and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.models.anova import anova, design_matrix, independent_columns, ols

EXAMPLES = Path(__file__).parents[1] / "examples"

# PlantGrowth (Dobson 1983, An Introduction to Statistical Modelling, Table 7.1; R
# datasets::PlantGrowth), one-way ANOVA as printed by R's anova(lm(weight ~ group)):
# group Df 2, Sum Sq 3.7663, Mean Sq 1.8832, F 4.8461, Pr(>F) 0.01591;
# Residuals Df 27, Sum Sq 10.4921, Mean Sq 0.3886.
PG_SS = (3.7663, 10.4921)
PG_F, PG_P = 4.8461, 0.01591


def test_anova__plantgrowth_published_table():
    df = pd.read_csv(EXAMPLES / "plantgrowth.csv")
    t = anova(df["weight"], df, ["group"])
    assert t["df"].tolist() == [2, 27]
    np.testing.assert_allclose(t["sum_sq"], PG_SS, atol=5e-5)
    np.testing.assert_allclose(t.loc[0, "F"], PG_F, atol=5e-5)
    np.testing.assert_allclose(t.loc[0, "p"], PG_P, atol=5e-6)


def test_anova__one_way_formulas():
    df = pd.read_csv(EXAMPLES / "plantgrowth.csv")
    y = df["weight"].to_numpy()
    means = df.groupby("group")["weight"].transform("mean").to_numpy()
    ssb = ((means - y.mean()) ** 2).sum()
    sse = ((y - means) ** 2).sum()
    t = anova(y, df, ["group"])
    np.testing.assert_allclose(t["sum_sq"], [ssb, sse], rtol=1e-12)


def test_ols__matches_lstsq_rank_deficient():
    rng = np.random.default_rng(3)
    n = 40
    df = pd.DataFrame({"a": rng.choice(list("xyz"), n), "b": rng.choice(list("pq"), n),
                       "c": rng.normal(size=n)})
    y = rng.normal(size=n) + (df["a"] == "x") * 2 + df["c"]
    d = design_matrix(df, ["a", "b"], ["c"])
    assert d.keep.tolist() == [True, True, True, False, True, False, True]  # last levels = 0
    r = ols(y, d)
    X = d.X.toarray()
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(r.fitted, X @ b, atol=1e-10)  # estimable: fitted values
    e = y - X @ b
    np.testing.assert_allclose(r.sigma2, e @ e / (n - 5), rtol=1e-10)
    Xk = X[:, d.keep]
    se = np.sqrt(np.diag(np.linalg.inv(Xk.T @ Xk)) * r.sigma2)
    np.testing.assert_allclose(r.se[d.keep], se, rtol=1e-10)
    assert np.isnan(r.se[~d.keep]).all() and (r.estimate[~d.keep] == 0).all()


def test_anova__sequential_sums_add_up():
    rng = np.random.default_rng(5)
    n = 30
    df = pd.DataFrame({"a": rng.choice(list("xyz"), n), "b": rng.choice(list("pq"), n)})
    y = rng.normal(size=n)
    t = anova(y, df, ["a", "b"])
    np.testing.assert_allclose(t["sum_sq"].sum(), ((y - y.mean()) ** 2).sum(), rtol=1e-12)
    assert t["df"].sum() == n - 1


def test_independent_columns__confounded():
    X = np.array([[1, 1, 0, 1, 0], [1, 1, 0, 0, 1], [1, 0, 1, 0, 1.]])
    keep = independent_columns(X.T @ X)
    assert keep.sum() == np.linalg.matrix_rank(X)


def test_design_matrix__one_factor_alone_keeps_every_level_like_the_rank_check():
    """A single factor without intercept or covariates skips the dense rank check (its X'X is
    diagonal); the columns kept are the rank check's."""
    rng = np.random.default_rng(4)
    df = pd.DataFrame({"cg": rng.choice([f"h{i}" for i in range(30)], 200)})
    d = design_matrix(df, ["cg"], intercept=False)
    assert d.keep.all() and d.X.shape == (200, df["cg"].nunique())
    assert np.array_equal(d.keep, independent_columns((d.X.T @ d.X).toarray()))
    assert d.level == tuple(sorted(df["cg"].unique()))
