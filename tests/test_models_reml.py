"""Tests of bigeval.models.reml (and .evaluate): gryphon published estimates, brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

from bigeval.models.evaluate import aic_bic, kfold_cv, lrt_variance, mse
from bigeval.models.mme import load_relationship, model_data
from bigeval.models.reml import loglik, reml
from bigeval.models.spec import ModelSpec, read_data

DATA = Path(__file__).parent / "data" / "models"
EXAMPLES = Path(__file__).parents[1] / "examples"

# Wilson et al. (2010), J. Anim. Ecol. 79:13-26, ASReml-R tutorial (supplement; also
# JulienGAMartin/wam_tuto), model bwt ~ 1 + animal: V_A = 3.3954 (SE 0.6350),
# V_R = 3.8286 (SE 0.5186), h2 = 0.47 (SE 0.08).
GRYPHON_VA, GRYPHON_VA_SE = 3.3954, 0.6350
GRYPHON_VR, GRYPHON_VR_SE = 3.8286, 0.5186
GRYPHON_H2 = 0.47


@pytest.fixture(scope="module")
def gryphon():
    spec = ModelSpec(data=DATA / "gryphon" / "gryphon.csv", trait="bwt", animal="animal",
                     pedigree=DATA / "gryphon" / "gryphonped.csv")
    return model_data(spec, read_data(spec), load_relationship(spec))


def test_reml__gryphon_asreml_published(gryphon):
    r = reml(gryphon, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    assert r.converged and r.iterations < 20
    np.testing.assert_allclose(r.theta, [GRYPHON_VA, GRYPHON_VR], atol=5e-4)
    np.testing.assert_allclose(r.se, [GRYPHON_VA_SE, GRYPHON_VR_SE], atol=5e-4)
    assert round(r.h2, 2) == GRYPHON_H2


@pytest.mark.slow
def test_reml__em_and_ai_agree_with_brute_force(gryphon):
    # brute-force maximisation of the dense REML log-likelihood on a log scale
    obj = lambda t: -loglik(gryphon, sigma_a2=np.exp(t[0]), sigma_e2=np.exp(t[1]))  # noqa
    opt = scipy.optimize.minimize(obj, np.log([3.0, 4.0]), method="Nelder-Mead",
                                  options={"xatol": 1e-7, "fatol": 1e-9})
    ai = reml(gryphon, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    np.testing.assert_allclose(ai.theta, np.exp(opt.x), rtol=1e-4)
    assert ai.loglik >= -opt.fun - 1e-8
    em = reml(gryphon, {"sigma_a2": 3.3, "sigma_e2": 3.9}, method="em")
    assert em.converged
    # EM steps are small: its 1e-6 criterion stops near, not at, the maximum
    assert ai.loglik - 0.05 < em.loglik <= ai.loglik + 1e-9


def test_reml__repeatability_runs_and_increases_loglik():
    spec = ModelSpec.from_toml(EXAMPLES / "repeatability.toml")
    md = model_data(spec, read_data(spec), load_relationship(spec))
    start = {"sigma_a2": 20.0, "sigma_pe2": 12.0, "sigma_e2": 28.0}
    r = reml(md, start, method="em", maxiter=2000)
    assert r.loglik >= loglik(md, **start)
    lls = [row[1] for row in r.log]
    assert all(b >= a - 1e-9 for a, b in zip(lls, lls[1:]))  # EM never decreases logL


def test_evaluate__lrt_aic_bic(gryphon):
    r = reml(gryphon, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    import bigeval.models.anova as an
    import dataclasses
    md0 = dataclasses.replace(gryphon, rel=None, animal_index=None)
    ll0 = reml(md0, {"sigma_e2": 5.0}).loglik
    D, p = lrt_variance(r.loglik, ll0)
    assert D > 10 and p < 1e-3
    aic, bic = aic_bic(r.loglik, 2, len(gryphon.y) - 1)
    assert bic > aic
    assert mse([1, 2], [1, 4]) == 2.0
    assert an is not None


def test_kfold_cv__runs():
    spec = ModelSpec.from_toml(EXAMPLES / "pblup.toml")
    df = read_data(spec)
    cv = kfold_cv(spec, df, load_relationship(spec), k=2)
    assert cv["n"].sum() == len(df)
