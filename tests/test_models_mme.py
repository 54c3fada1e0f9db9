"""Tests of bigeval.models.mme and .solve against Mrode's published solutions."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from bigeval.errors import InputError
from bigeval.models.mme import load_relationship, model_data
from bigeval.models.solve import HAVE_CHOLMOD, fit_mixed, solve
from bigeval.models.spec import ModelSpec, read_data

MRODE = Path(__file__).parent / "data" / "mrode"
DATA = Path(__file__).parent / "data" / "models"
EXAMPLES = Path(__file__).parents[1] / "examples"
PRINTED = 0.0005  # half a unit of the 3rd decimal

# Mrode (2014) Example 3.1, p. 39 (4th ed. section 4.3): sex M 4.359, F 3.404; animals 1-8
SEX_3_1 = {"M": 4.359, "F": 3.404}
ANIMAL_3_1 = np.array([0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249, 0.183])
# Mrode (2014) Example 4.1, p. 64 (also in tests/test_exact.py): HYS 1 and 3 set to zero
HYS_4_1 = np.array([0.0, 44.065, 0.0, 0.013])
PARITY_4_1 = np.array([175.472, 241.893])
ANIMAL_4_1 = np.array([10.148, -3.084, -7.063, 13.581, -18.207, -18.387, 9.328, 24.194])
PE_4_1 = np.array([8.417, -7.146, -17.229, -1.390, 17.347])  # cows 4-8
# Mrode & Pocrnic (2023) Example 11.3: GBLUP with G + 0.01 I, reference bulls 13-20;
# transcribed in JuliaBnG/Mrode-4ed-examples.jl src/chapter-11/ex-3.jl
MEAN_11_3 = 9.944
DGV_11_3 = np.array([0.069, 0.116, 0.049, 0.260, -0.500, -0.359, 0.146, -0.231, 0.028,
                     0.115, -0.240, 0.143, 0.054, 0.353])  # bulls 13-26
# Mrode & Pocrnic (2023) Example 12.1: ssGBLUP, G* = tune(0.95 G + 0.05 A22);
# JuliaBnG/Mrode-4ed-examples.jl src/chapter-12/ex-1.jl
SS_12_1 = np.array([0.009, 0.121, 0.009, 0.010, -0.250, -0.196, -0.001, 0.026, -0.076, 0.040,
                    -0.137, 0.136, 0.048, 0.082, 0.039, 0.202, -0.356, -0.254, 0.098, -0.169,
                    0.018, 0.079, -0.164, 0.101, 0.039, 0.245])  # animals 1-26
BOOK_ROUNDING = 1.5e-3  # the book's G and solutions printed to 3 decimals


def fit(toml, **kw):
    spec = ModelSpec.from_toml(EXAMPLES / toml)
    md = model_data(spec, read_data(spec), load_relationship(spec))
    return spec, md, fit_mixed(md, sigma_a2=spec.sigma_a2, sigma_e2=spec.sigma_e2,
                               sigma_pe2=spec.sigma_pe2, **kw)


def by_id(frame, col, ids):
    return frame.set_index("animal").loc[[str(i) for i in ids], col].to_numpy()


def test_fit_mixed__mrode_example_3_1():
    _, _, r = fit("pblup.toml")
    sex = r.fixed.set_index("level")["estimate"]
    assert abs(sex["M"] - SEX_3_1["M"]) < PRINTED and abs(sex["F"] - SEX_3_1["F"]) < PRINTED
    np.testing.assert_allclose(by_id(r.animals, "ebv", range(1, 9)), ANIMAL_3_1, atol=PRINTED)


def test_fit_mixed__mrode_example_3_1_pev_matches_exact():
    from tests.test_exact import SE_40_3_1  # BLUPF90 sqrt(PEV), sigma_e2 = 40
    _, _, r = fit("pblup.toml")
    np.testing.assert_allclose(np.sqrt(by_id(r.animals, "pev", range(1, 9))), SE_40_3_1,
                               atol=1e-7)


def test_fit_mixed__mrode_example_4_1_repeatability():
    _, _, r = fit("repeatability.toml")
    np.testing.assert_allclose(by_id(r.animals, "ebv", range(1, 9)), ANIMAL_4_1, atol=PRINTED)
    np.testing.assert_allclose(r.pe.set_index("animal").loc[list("45678"), "estimate"],
                               PE_4_1, atol=1e-3)  # book prints -17.229 for -17.2285
    # estimable functions: parity i + HYS j are invariant to the set-to-zero choice
    f = r.fixed.set_index(["effect", "level"])["estimate"]
    for i, j in ((1, 1), (1, 2), (2, 3), (2, 4)):
        book = PARITY_4_1[i - 1] + HYS_4_1[j - 1]
        assert abs(f[("parity", str(i))] + f[("hys", str(j))] - book) < 2 * PRINTED


def test_fit_mixed__mrode_example_11_3_gblup():
    _, _, r = fit("gblup.toml")
    assert abs(r.fixed["estimate"].iat[0] - MEAN_11_3) < PRINTED
    np.testing.assert_allclose(by_id(r.animals, "ebv", range(13, 27)), DGV_11_3,
                               atol=BOOK_ROUNDING)


def test_fit_mixed__mrode_example_12_1_single_step():
    _, _, r = fit("ssgblup.toml")
    np.testing.assert_allclose(by_id(r.animals, "ebv", range(1, 27)), SS_12_1,
                               atol=BOOK_ROUNDING)


@pytest.mark.parametrize("toml", ["pblup.toml", "repeatability.toml", "gblup.toml",
                                  "ssgblup.toml"])
@pytest.mark.parametrize("method", ["dense", "splu", "superlu", "pcg"]
                         + (["cholmod"] if HAVE_CHOLMOD else []))
def test_solve__methods_agree(toml, method):
    _, _, ref = fit(toml, method="dense")
    m = ref.mme
    x = solve(m.lhs, m.rhs, method, n_fixed=m.blocks["fixed"].stop).x
    np.testing.assert_allclose(x, ref.solution.x, atol=1e-8)


def test_fit_mixed__dense_oracle_numpy_inv():
    """Against MME written out with numpy.linalg.inv(A) (Mrode Ex 3.1)."""
    from bigeval.pedigree import a_matrix_dense
    spec, md, r = fit("pblup.toml")
    X = md.design.Xk.toarray()
    n, q = len(md.y), md.rel.kinv.shape[0]
    Z = np.zeros((n, q))
    Z[np.arange(n), md.animal_index] = 1
    from bigeval.prepare import renumber_pedigree
    from bigeval.io.readers import read_pedigree
    _, s, d, _ = renumber_pedigree(read_pedigree(spec.pedigree))
    Ainv = np.linalg.inv(a_matrix_dense(s, d))
    a = spec.sigma_e2 / spec.sigma_a2
    lhs = np.block([[X.T @ X, X.T @ Z], [Z.T @ X, Z.T @ Z + Ainv * a]])
    sol = np.linalg.solve(lhs, np.concatenate([X.T @ md.y, Z.T @ md.y]))
    np.testing.assert_allclose(r.solution.x, sol, atol=1e-10)


def test_model_data__unknown_animal(tmp_path):
    (tmp_path / "d.csv").write_text("animal,y\n99,1.0\n")
    spec = ModelSpec(data=tmp_path / "d.csv", trait="y", animal="animal",
                     pedigree=MRODE / "ex3_1_pedigree.csv", sigma_a2=1, sigma_e2=1)
    with pytest.raises(InputError, match="not in the pedigree"):
        model_data(spec, read_data(spec), load_relationship(spec))


# ---------------------------------------------------------------- sparse PEV, clear errors

@pytest.mark.parametrize("toml", ["pblup.toml", "repeatability.toml", "ssgblup.toml",
                                  "gblup.toml"])
@pytest.mark.parametrize("method", ["auto", "superlu"])
def test_fit_mixed__selected_inversion_pev_equals_dense(monkeypatch, toml, method):
    solve_mod = importlib.import_module("bigeval.models.solve")  # the package hides it
    _, _, ref = fit(toml, method="dense")
    monkeypatch.setattr(solve_mod, "DENSE_MAX", 0)  # every system counts as large
    import bigeval.linalg.schur as schur
    calls = []
    inner = schur.schur_factor
    monkeypatch.setattr(schur, "schur_factor", lambda *a, **k: calls.append(len(a[1]))
                        or inner(*a, **k))
    _, md, r = fit(toml, method=method)
    assert r.solution.method in ("cholmod", "superlu")
    # G and H: the genotyped block kept apart by its Schur complement; A: factored whole
    assert calls == ([] if md.rel.dense is None else [len(md.rel.dense)])
    np.testing.assert_allclose(r.solution.x, ref.solution.x, atol=1e-9)
    np.testing.assert_allclose(r.animals["pev"], ref.animals["pev"], rtol=1e-10)
    np.testing.assert_allclose(r.animals["rel"], ref.animals["rel"], atol=1e-12)
    np.testing.assert_allclose(r.fixed["se"], ref.fixed["se"], rtol=1e-10)


def test_fit_mixed__pcg_skips_standard_errors_by_default():
    _, _, r = fit("pblup.toml", method="pcg")
    assert r.animals["pev"].isna().all()


def test_solve__auto_without_cholmod_uses_the_fallback(monkeypatch):
    import bigeval.linalg.cholesky as chol
    solve_mod = importlib.import_module("bigeval.models.solve")  # the package hides it
    _, _, ref = fit("ssgblup.toml", method="dense")
    monkeypatch.setattr(chol, "HAVE_CHOLMOD", False)
    monkeypatch.setattr(solve_mod, "HAVE_CHOLMOD", False)
    monkeypatch.setattr(solve_mod, "DENSE_MAX", 0)
    _, _, r = fit("ssgblup.toml")
    assert r.solution.method == "superlu"
    np.testing.assert_allclose(r.animals["pev"], ref.animals["pev"], rtol=1e-10)


def test_fit_mixed__zero_variance_is_a_clear_error():
    spec = ModelSpec.from_toml(EXAMPLES / "pblup.toml")
    md = model_data(spec, read_data(spec), load_relationship(spec))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="variance sigma_a2 must be positive"):
            fit_mixed(md, sigma_a2=bad, sigma_e2=40.0)
    with pytest.raises(InputError, match="variance sigma_e2 must be positive"):
        fit_mixed(md, sigma_a2=20.0, sigma_e2=0.0)


@pytest.mark.parametrize("method", ["auto", "dense", "splu", "superlu", "pcg"]
                         + (["cholmod"] if HAVE_CHOLMOD else []))
def test_solve__empty_fixed_level_is_a_clear_error(method):
    from bigeval.models.mme import build_mme
    y = np.array([1.0, 2.0, 3.0])
    X = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # level 2 has no records
    m = build_mme(y, X)
    with pytest.raises(InputError, match="not positive definite|<= 0|singular"):
        solve(m.lhs, m.rhs, method, n_fixed=2)


def test_relationship_g__not_positive_definite_is_a_clear_error():
    from bigeval.models.mme import relationship_g
    G = np.array([[1.0, 1.0], [1.0, 1.0]])  # two identical genotypes: singular G
    with pytest.raises(InputError, match="G is not positive definite.*ridge"):
        relationship_g(["a", "b"], G)


def test_solve__pcg_indefinite_is_a_clear_error():
    import scipy.sparse as sp
    A = sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(InputError, match="not positive definite"):
        solve(A, np.array([1.0, 0.0]), "pcg")


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_pcg_kernels__equal_numpy_twins(n):
    """The compiled PCG steps (one-pass dot product; x, r update with r·r) against numpy."""
    from bigeval.models.solve import _dot, _update

    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(size=n)
    np.testing.assert_allclose(_dot(a, b), a @ b, rtol=1e-12, atol=1e-12)
    x, r, p, q = (rng.normal(size=n) for _ in range(4))
    x_ref, r_ref = x + 0.3 * p, r - 0.3 * q
    rr = _update(x, r, p, q, 0.3)
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(r, r_ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(rr, r_ref @ r_ref, rtol=1e-12, atol=1e-12)
