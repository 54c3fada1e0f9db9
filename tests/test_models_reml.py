"""Tests of bigeval.models.reml (and .evaluate): gryphon published estimates, brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.optimize

from bigeval.models.evaluate import aic_bic, kfold_cv, lrt_variance, mse
from bigeval.models.mme import load_relationship, model_data
from bigeval.models.reml import _round, loglik, reml
from bigeval.models.spec import ModelSpec, read_data

DATA = Path(__file__).parent / "data" / "models"
EXAMPLES = Path(__file__).parents[1] / "examples"

# Gryphon birth weight (data of Wilson et al. 2010, "An ecologist's guide to the animal
# model", J. Anim. Ecol. 79:13-26). The figures are those printed by ASReml-R 4.2 in the
# updated tutorial of that paper: J. Martin, "How to fit an animal model", ch. 2
# "Asreml-R" (JulienGAMartin/wam_tuto, 02_01-univ_asreml.html, run 26/03/2024):
# model1 bwt ~ 1 + vm(animal, ainv): V_A 3.395398 (SE 0.6349915), V_R 3.828602
# (SE 0.5185919), h2 0.4700163 (SE 0.07650881), LogLik -1247.183 (9 iterations);
# model2 bwt ~ 1 + sex: V_A 3.060441 (0.5243571), V_R 2.938412 (0.4161473),
# intercept 6.058669 (0.1718244) with sex_1 = 0, sex_2 2.206996 (0.1619974), LogLik -1165.093.
# ASReml's LogLik leaves out the constant −½(n − p) log 2π that bigeval's includes.
GRYPHON_1 = dict(theta=[3.395398, 3.828602], se=[0.6349915, 0.5185919], h2=0.4700163,
                 h2_se=0.07650881, asreml_loglik=-1247.183)
GRYPHON_2 = dict(theta=[3.060441, 2.938412], se=[0.5243571, 0.4161473], sex2=2.206996,
                 sex2_se=0.1619974, intercept=6.058669, asreml_loglik=-1165.093)
# ASReml stops when its log L changes by < 0.002 (its iterations print to 3 decimals); its
# components and SEs are then within 1e-5 relative of the maximum (measured: bigeval's AI
# at 1e-8 differs from them by ≤ 3e-6 relative for the components, ≤ 3e-5 for the SEs).
ASREML_RTOL, ASREML_SE_RTOL = 1e-5, 1e-4

# BLUPF90 tutorial (Y. Masuda, "Variance component estimation", section "Single-trait
# analysis", aireml1.txt on simdata.txt / simped.txt; masuday.github.io/blupf90_tutorial/
# vc_aireml.html): AIREMLF90 final estimates after 8 rounds, G 38.538, R 62.691, inverse
# of the AI matrix [[13.471, -6.7551], [-6.7551, 6.5499]], SE for G 3.6703, SE for R 2.5593,
# -2 logL 33423.4510659485. The model: farm, sex, year fixed, additive animal, residual
# weights (column 4). The pedigree file has 3 columns, so add_animal builds A⁻¹ without
# inbreeding (with inbreeding bigeval gives 38.6115, 62.7898: another model).
BLUPF90_THETA = [38.538, 62.691]
BLUPF90_SE = [3.6703, 2.5593]
PRINTED_3 = 5e-4  # half a unit of the 3rd decimal printed


@pytest.fixture(scope="module")
def gryphon():
    spec = ModelSpec(data=DATA / "gryphon" / "gryphon.csv", trait="bwt", animal="animal",
                     pedigree=DATA / "gryphon" / "gryphonped.csv")
    return model_data(spec, read_data(spec), load_relationship(spec))


def _asreml_loglik(r, md):
    n, p = len(md.y), md.design.Xk.shape[1]
    return r.loglik + 0.5 * (n - p) * np.log(2 * np.pi)


def test_reml__gryphon_asreml_published(gryphon):
    r = reml(gryphon, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    assert r.converged and r.iterations < 20
    np.testing.assert_allclose(r.theta, GRYPHON_1["theta"], rtol=ASREML_RTOL)
    np.testing.assert_allclose(r.se, GRYPHON_1["se"], rtol=ASREML_SE_RTOL)
    np.testing.assert_allclose(r.h2, GRYPHON_1["h2"], rtol=ASREML_RTOL)
    np.testing.assert_allclose(r.h2_se, GRYPHON_1["h2_se"], rtol=ASREML_SE_RTOL)
    assert abs(_asreml_loglik(r, gryphon) - GRYPHON_1["asreml_loglik"]) < 5e-4


def test_reml__gryphon_with_sex_asreml_published():
    from bigeval.models.solve import fit_mixed
    spec = ModelSpec(data=DATA / "gryphon" / "gryphon.csv", trait="bwt", animal="animal",
                     factors=("sex",), pedigree=DATA / "gryphon" / "gryphonped.csv")
    md = model_data(spec, read_data(spec), load_relationship(spec))
    r = reml(md, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    np.testing.assert_allclose(r.theta, GRYPHON_2["theta"], rtol=ASREML_RTOL)
    np.testing.assert_allclose(r.se, GRYPHON_2["se"], rtol=ASREML_SE_RTOL)
    assert abs(_asreml_loglik(r, md) - GRYPHON_2["asreml_loglik"]) < 5e-4
    f = fit_mixed(md, sigma_a2=r.theta[0], sigma_e2=r.theta[1]).fixed.set_index("level")
    # bigeval sets the last level (sex 2) to zero, ASReml the first: compare estimable
    # functions, the sex difference (and its SE) and the mean of sex 1
    assert f.loc["2", "estimate"] == 0.0
    np.testing.assert_allclose(-f.loc["1", "estimate"], GRYPHON_2["sex2"], atol=2e-6)
    np.testing.assert_allclose(f.loc["1", "se"], GRYPHON_2["sex2_se"], rtol=ASREML_SE_RTOL)
    intercept = f.loc["", "estimate"] if "" in f.index else f["estimate"].iat[0]
    np.testing.assert_allclose(intercept + f.loc["1", "estimate"], GRYPHON_2["intercept"],
                               atol=2e-6)


@pytest.fixture(scope="module")
def simdata():
    spec = ModelSpec.from_toml(EXAMPLES / "aireml_simdata.toml")
    return model_data(spec, read_data(spec), load_relationship(spec))


def test_reml__blupf90_tutorial_aireml_simdata(simdata):
    assert len(simdata.y) == 4641 and simdata.rel.kinv.shape[0] == 4641
    r = reml(simdata, {"sigma_a2": 100.0, "sigma_e2": 100.0})  # the tutorial's start
    assert r.converged and r.iterations <= 8  # AIREMLF90: 8 rounds
    np.testing.assert_allclose(r.theta, BLUPF90_THETA, atol=PRINTED_3)
    # bigeval's inverse AI matrix is [[13.462, -6.748], [-6.748, 6.544]] (measured): SEs
    # 0.03-0.05 % below AIREMLF90's. The difference is not explained by rounding or by the
    # round the AI matrix is taken at; how AIREMLF90 builds the residual working variate
    # with weights is not documented. Hence a relative tolerance of 1e-3, not printed
    # precision.
    np.testing.assert_allclose(r.se, BLUPF90_SE, rtol=1e-3)


def test_reml__sparse_engine_equals_dense_twin(gryphon):
    th = {"sigma_a2": 2.0, "sigma_e2": 5.0}
    names = ("sigma_a2", "sigma_e2")
    dense = _round(gryphon, th, names, "ai", "dense")
    sparse = _round(gryphon, th, names, "ai", "sparse")
    assert np.isclose(dense[0], sparse[0], rtol=1e-12, atol=0)
    for a, b in zip(dense[1:], sparse[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_reml__sparse_engine_equals_dense_twin_repeatability():
    spec = ModelSpec.from_toml(EXAMPLES / "repeatability.toml")
    md = model_data(spec, read_data(spec), load_relationship(spec))
    th = {"sigma_a2": 20.0, "sigma_pe2": 12.0, "sigma_e2": 28.0}
    names = ("sigma_a2", "sigma_pe2", "sigma_e2")
    dense = _round(md, th, names, "ai", "dense")
    sparse = _round(md, th, names, "ai", "sparse")
    for a, b in zip(dense, sparse):
        np.testing.assert_allclose(a, b, rtol=1e-9)


@pytest.mark.parametrize("toml", ["ssgblup.toml", "gblup.toml"])
@pytest.mark.parametrize("method", ["ai", "em"])
def test_reml__schur_engine_with_genomics_equals_dense_twin(monkeypatch, toml, method):
    # G and H: the sparse engine keeps the genotyped block apart (Schur complement); the
    # round's log L, estimates and AI matrix must be the dense twin's
    import bigeval.linalg.schur as schur
    spec = ModelSpec.from_toml(EXAMPLES / toml)
    md = model_data(spec, read_data(spec), load_relationship(spec))
    assert md.rel.dense is not None
    calls = []
    inner = schur.schur_factor
    monkeypatch.setattr(schur, "schur_factor",
                        lambda *a, **k: calls.append(len(a[1])) or inner(*a, **k))
    th = {"sigma_a2": 20.0, "sigma_e2": 40.0}
    names = ("sigma_a2", "sigma_e2")
    dense = _round(md, th, names, method, "dense")
    sparse = _round(md, th, names, method, "sparse")
    assert calls and set(calls) == {len(md.rel.dense)}
    assert np.isclose(dense[0], sparse[0], rtol=1e-12, atol=0)
    for a, b in zip(dense[1:], sparse[1:]):
        if a is None:  # EM has no AI matrix
            assert b is None
            continue
        np.testing.assert_allclose(a, b, rtol=1e-9)


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
    # and a tighter criterion takes it to the maximum (reml.py docstring: EM is linear)
    em = reml(gryphon, {"sigma_a2": 3.3, "sigma_e2": 3.9}, method="em", tol=1e-10)
    assert ai.loglik - 1e-5 < em.loglik <= ai.loglik + 1e-9
    np.testing.assert_allclose(em.theta, ai.theta, rtol=1e-3)


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
