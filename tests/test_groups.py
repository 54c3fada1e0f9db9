"""Unknown parent groups (genetic groups): recognised in the pedigree, never animals; the
Quaas-Pollak A⁻¹ (and H⁻¹) in the models against its dense twin and the explicit model
a = Qg + u; Mrode's Example 3.4 through `bigeval solve`; `bigeval reliability` with group
codes equal to the same pedigree with those parents unknown."""

from __future__ import annotations

from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.groups import group_mask, pedigree_groups
from bigeval.groups import ainv_qp_dense, ainv_qp_sparse, group_contributions
from bigeval.io import read_pedigree
from bigeval.models.anova import design_matrix
from bigeval.models.mme import load_relationship, model_data, read_genotypes
from bigeval.models.relationship import genomic_matrix, relationship_a
from bigeval.models.reml import loglik
from bigeval.models.solve import fit_mixed
from bigeval.models.spec import ModelSpec, read_data
from bigeval.models.upg import relationship_h_groups
from bigeval.pedigree import a_matrix_dense, ainv_dense
from bigeval.prepare import renumber_pedigree

DATA = Path(__file__).parent / "data"
MRODE = DATA / "mrode"
GRYPHON = DATA / "gryphon"
EXAMPLES = Path(__file__).parents[1] / "examples"

# BLUPF90 tutorial (Y. Masuda, "Introduction to BLUPF90 suite programs", Numerical examples
# from Mrode (2014), "Animal model with unknown parent groups", reproducing Mrode 2014,
# Example 3.4; σa² 20, σe² 40): the solutions printed by BLUPF90 (FSPAK) with the zero
# constraint on group 1 (animal 9 of the tutorial, code -1 here), 8 decimals:
# sex 1 (male), sex 2 (female), animals 1-8, group 1, group 2.
BLUPF90_G1_ZERO = [5.45807483, 4.31342367, -0.76706148, -0.92310585, -0.96296296,
                   -1.26790750, -1.09907877, -0.72776838, -1.33840948, -0.76790750,
                   0.00000000, -1.76875353]
# The same tutorial, BLUPF90's own constraint (on animal 5): another solution of the same
# singular system; estimable functions (differences of animals, sex + animal) agree.
BLUPF90_OWN = [4.35899605, 3.21434490, 0.33201730, 0.17597293, 0.13611581, -0.16882873,
               0.00000000, 0.37131040, -0.23933070, 0.33117127, 1.09907877, -0.66967475]
PRINTED_8 = 5e-9  # half a unit of the 8th decimal printed
# ... except BLUPF90's female solution, 9.4e-8 from the exact (rational) solution of the same
# equations in both runs (4.31342367 printed, 4.3134235759 exact; the tutorial warns of
# FSPAK's rounding on this tiny singular system): that entry is compared to 1e-7.
FSPAK_FEMALE = 1e-7

# Mrode (2014) Example 3.4 (as transcribed in JuliaBnG/Mrode-4ed-examples.jl, ch. 4 ex. 4):
# Q' (the groups' contributions to animals 1-8) and the group rows of A*⁻¹ (2 decimals).
MRODE_Q_T = [[0.5, 0.5, 0.5, 0.25, 0.5, 0.5, 0.375, 0.5],
             [0.5, 0.5, 0.5, 0.75, 0.5, 0.5, 0.625, 0.5]]
MRODE_AINV_GROUPS = [[-0.5, -0.5, -0.5, 0, 0, 0, 0, 0, 0.75, 0.75],
                     [-0.17, -0.5, -0.5, -0.67, 0, 0, 0, 0, 0.75, 1.08]]

EX34 = """
[data]
file = "{data}"
trait = "wwg_kg"
[fixed]
intercept = false
factors = ["sex"]
[animal]
column = "animal"
pedigree = "{ped}"
inbreeding = false
[variance]
sigma_a2 = 20.0
sigma_e2 = 40.0
"""


def _ex34(tmp_path: Path) -> Path:
    cfg = tmp_path / "ex34.toml"
    cfg.write_text(EX34.format(data=MRODE / "ex3_1_data.csv",
                               ped=MRODE / "ex3_4_pedigree.csv"))
    return cfg


def _renumbered(path, groups=None):
    ped = read_pedigree(path, groups=groups)
    ids, sire, dam, _ = renumber_pedigree(ped, path=path)
    return ids, sire, dam, pedigree_groups(ped, ids)


def _gryphon_with_groups(tmp_path: Path, *, dams: bool) -> Path:
    """The gryphon pedigree with its unknown sires as groups -1/-3 (by the parity of the ID)
    and, with ``dams``, its unknown dams as group -2 (else they stay unknown)."""
    ped = pd.read_csv(GRYPHON / "gryphonped.csv", dtype=str, keep_default_na=False)
    na = ped["father"] == "NA"
    ped.loc[na, "father"] = np.where(ped.loc[na, "id"].astype(int) % 2 == 0, "-1", "-3")
    if dams:
        ped.loc[ped["mother"] == "NA", "mother"] = "-2"
    out = tmp_path / f"gryphonped_groups{'_dams' if dams else ''}.csv"
    ped.to_csv(out, index=False)
    return out


# ------------------------------------------------------------------------- recognition

def test_group_codes__negative_by_default_or_a_pattern_or_a_list():
    assert group_mask(["-1", "-12", "3", "", "x-1"]).tolist() == [True, True, False, False,
                                                                   False]
    assert group_mask(["G1", "17", "UPG"], "^(G|UPG)").tolist() == [True, False, True]
    assert group_mask(["9", "10", "1"], ["9", "10"]).tolist() == [True, True, False]
    assert not group_mask(["-1"], False).any()
    with pytest.raises(InputError, match="not a regular expression"):
        group_mask(["-1"], "(")


def test_groups_are_not_animals_and_their_rows_are_dropped(tmp_path):
    ped = tmp_path / "ped.txt"
    ped.write_text("G1 0 0\nG2 0 0\na G1 G2\nb a G2\nc a b\n")
    ids, sire, dam, pg = _renumbered(ped, groups="^G")
    assert list(ids) == ["a", "b", "c"]
    assert list(pg.codes) == ["G1", "G2"] and pg.counts().tolist() == [1, 2]
    assert sire.tolist() == [-1, 0, 0] and dam.tolist() == [-1, -1, 1]
    assert pg.sire.tolist() == [0, -1, -1] and pg.dam.tolist() == [1, 1, -1]
    bad = tmp_path / "bad.txt"
    bad.write_text("G1 a 0\na G1 0\n")
    with pytest.raises(InputError, match="group's pedigree row has a known parent") as e:
        read_pedigree(bad, groups="^G")
    assert e.value.line == 1


# ------------------------------------------------------------------ A*⁻¹ and its twins

def test_qp_ainv__mrode_example_3_4_and_the_dense_twin():
    ids, sire, dam, pg = _renumbered(MRODE / "ex3_4_pedigree.csv")
    fast = ainv_qp_sparse(sire, dam, pg.sire, pg.dam, pg.n_groups).toarray()
    slow = ainv_qp_dense(sire, dam, pg.sire, pg.dam, pg.n_groups)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-14)
    np.testing.assert_allclose(fast[8:], MRODE_AINV_GROUPS, atol=5e-3)  # printed 2 decimals
    q = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)
    np.testing.assert_array_equal(q.T, MRODE_Q_T)
    # the animal block is A⁻¹ of the pedigree without groups
    np.testing.assert_allclose(fast[:8, :8], ainv_dense(sire, dam), atol=1e-14)


def test_qp_ainv__is_the_qp_transformation_of_a_inverse_with_inbreeding(tmp_path):
    """A*⁻¹ = [I; −Q'] A⁻¹ [I, −Q] (Quaas 1988) on the gryphon pedigree (inbred animals),
    A⁻¹ as the inverse of the tabular A; Q's rows sum to 1 when every unknown parent is a
    group."""
    ids, sire, dam, pg = _renumbered(_gryphon_with_groups(tmp_path, dams=True))
    q = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)
    np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-12)
    t = np.hstack([np.eye(len(ids)), -q])
    expected = t.T @ np.linalg.inv(a_matrix_dense(sire, dam)) @ t
    fast = ainv_qp_sparse(sire, dam, pg.sire, pg.dam, pg.n_groups).toarray()
    np.testing.assert_allclose(fast, expected, atol=1e-9)
    np.testing.assert_allclose(fast, ainv_qp_dense(sire, dam, pg.sire, pg.dam, pg.n_groups),
                               atol=1e-11)


# ------------------------------------------------------------- Mrode Ex 3.4 by the CLI

def test_solve__mrode_example_3_4_as_blupf90_prints_it(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["solve", str(_ex34(tmp_path)), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr()
    said = text.out + text.err
    assert "unknown parent groups (2, fixed" in said and "-1 0 (set to zero)" in said
    sol = pd.read_csv(out / "solutions.csv", dtype={"level": str})
    got = np.concatenate([
        sol.set_index("level").loc[["M", "F"], "estimate"].to_numpy(),
        sol[sol["effect"] == "animal"]["estimate"].to_numpy(),
        sol[sol["effect"] == "group"]["estimate"].to_numpy()])
    assert list(sol[sol["effect"] == "group"]["level"]) == ["-1", "-2"]
    np.testing.assert_allclose(got, _ex34_exact(), rtol=0, atol=1e-12)
    tol = np.full(12, PRINTED_8)
    tol[1] = FSPAK_FEMALE
    assert (np.abs(got - BLUPF90_G1_ZERO) <= tol).all(), got - BLUPF90_G1_ZERO
    # BLUPF90's other solution: the same estimable functions (sex + animal, animal - animal)
    own = np.asarray(BLUPF90_OWN)
    for i in range(2, 12):
        for j in (0, 1):
            np.testing.assert_allclose(got[j] + got[i], own[j] + own[i],
                                       atol=PRINTED_8 + tol[j])
        np.testing.assert_allclose(got[i] - got[2], own[i] - own[2], atol=2 * PRINTED_8)
    animals = pd.read_csv(out / "animals.csv", dtype={"animal": str})
    assert list(animals["animal"]) == [str(i) for i in range(1, 9)]  # no group as animal
    groups = pd.read_csv(out / "groups.csv", dtype={"group": str})
    assert list(groups["group"]) == ["-1", "-2"] and list(groups["zero"]) == [True, False]


def _ex34_exact() -> np.ndarray:
    """The twin: Mrode's Example 3.4 equations built from the rules by hand and solved in
    exact rational arithmetic, group 1 set to zero (sex M, F, animals 1-8, group 1, 2)."""
    sire = [None, None, None, 0, 2, 0, 3, 2]
    dam = [None, None, None, None, 1, 1, 4, 5]
    sg = [8, 8, 8, None, None, None, None, None]  # group 1 = equation 8, group 2 = 9
    dg = [9, 9, 9, 9, None, None, None, None]
    ainv = [[F(0)] * 10 for _ in range(10)]
    for i in range(8):
        b = 1 - F(1, 4) * ((sire[i] is not None) + (dam[i] is not None))
        mem = [(i, F(1))] + [(p if p is not None else g, F(-1, 2))
                             for p, g in ((sire[i], sg[i]), (dam[i], dg[i]))
                             if p is not None or g is not None]
        for a, ca in mem:
            for c, cc in mem:
                ainv[a][c] += ca * cc / b
    rec, sex = [3, 4, 5, 6, 7], [0, 1, 1, 0, 0]
    y = [F(45, 10), F(29, 10), F(39, 10), F(35, 10), F(50, 10)]
    eqs = [("s", 0), ("s", 1)] + [("a", i) for i in range(8)] + [("a", 9)]  # no group 1
    w = [[F(int((sex if t == "s" else rec)[r] == j)) for t, j in eqs] for r in range(5)]
    m = len(eqs)
    lhs = [[sum(w[r][a] * w[r][c] for r in range(5))
            + (2 * ainv[eqs[a][1]][eqs[c][1]] if eqs[a][0] == eqs[c][0] == "a" else 0)
            for c in range(m)] + [sum(w[r][a] * y[r] for r in range(5))] for a in range(m)]
    for i in range(m):  # Gauss-Jordan, exact
        for r in range(m):
            if r != i and lhs[r][i]:
                f = lhs[r][i] / lhs[i][i]
                lhs[r] = [x - f * z for x, z in zip(lhs[r], lhs[i])]
    x = [float(lhs[i][m] / lhs[i][i]) for i in range(m)]
    return np.array(x[:10] + [0.0] + x[10:])


def test_solve__no_standard_errors_with_groups(tmp_path):
    spec = ModelSpec.from_toml(_ex34(tmp_path))
    md = model_data(spec, read_data(spec), load_relationship(spec))
    with pytest.raises(InputError, match="no standard errors"):
        fit_mixed(md, sigma_a2=20.0, sigma_e2=40.0, se=True)


# ------------------------------------------- QP against the explicit model a = Qg + u

def _explicit(y, X, rec, ainv, q, zero, sigma_a2, sigma_e2):
    """Dense solve of y = Xb + ZQg + Zu + e with A⁻¹ (no groups) and the groups ``zero``
    left out; returns (b, g, û + Qĝ)."""
    n = ainv.shape[0]
    Z = np.zeros((len(y), n))
    Z[np.arange(len(y)), rec] = 1.0
    keep = ~zero
    F = np.hstack([X, Z @ q[:, keep]])
    W = np.hstack([F, Z])
    lhs = W.T @ W / sigma_e2
    lhs[F.shape[1]:, F.shape[1]:] += ainv / sigma_a2
    s = np.linalg.solve(lhs, W.T @ y / sigma_e2)
    g = np.zeros(q.shape[1])
    g[keep] = s[X.shape[1]:F.shape[1]]
    u = s[F.shape[1]:]
    return s[:X.shape[1]], g, u + q @ g


@pytest.mark.parametrize("dams", [True, False])
def test_qp_solutions_equal_the_explicit_group_model(tmp_path, dams):
    """Gryphon birth weight ~ sex + animal with groups: every unknown parent a group (one
    group set to zero: ZQ1 = 1 = the sex columns' sum), or the dams left unknown (no
    dependency)."""
    ped = _gryphon_with_groups(tmp_path, dams=dams)
    spec = ModelSpec(data=GRYPHON / "gryphon.csv", trait="bwt", factors=("sex",),
                     intercept=False, animal="animal", pedigree=ped)
    df = read_data(spec)
    md = model_data(spec, df, load_relationship(spec))
    assert len(md.rel.groups_zero) == (1 if dams else 0)
    r = fit_mixed(md, sigma_a2=3.4, sigma_e2=3.8)
    ids, sire, dam, pg = _renumbered(ped)
    q = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)
    zero = np.isin(pg.codes, md.rel.groups_zero)
    design = design_matrix(df, ("sex",), (), False)
    rec = pd.Index(ids).get_indexer(df["animal"].astype(str))
    b, g, astar = _explicit(md.y, design.Xk.toarray() if hasattr(design.Xk, "toarray")
                            else np.asarray(design.Xk), rec, ainv_dense(sire, dam), q, zero,
                            3.4, 3.8)
    np.testing.assert_allclose(r.animals["ebv"].to_numpy(), astar, atol=1e-8)
    np.testing.assert_allclose(r.groups.set_index("group").loc[pg.codes, "estimate"], g,
                               atol=1e-8)
    np.testing.assert_allclose(r.fixed["estimate"].to_numpy()[md.design.keep], b, atol=1e-8)


def test_reml_likelihood_with_groups_equals_the_explicit_model(tmp_path):
    """The REML log-likelihood of the QP equations equals that of the explicit model with
    the groups' contributions ZQ as covariates (the transformation has determinant 1)."""
    ped = _gryphon_with_groups(tmp_path, dams=False)
    spec = ModelSpec(data=GRYPHON / "gryphon.csv", trait="bwt", factors=("sex",),
                     intercept=False, animal="animal", pedigree=ped)
    df = read_data(spec)
    md = model_data(spec, df, load_relationship(spec))
    ids, sire, dam, pg = _renumbered(ped)
    q = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)
    rec = pd.Index(ids).get_indexer(df["animal"].astype(str))
    cov = tuple(f"q{g}" for g in range(pg.n_groups))
    df2 = df.assign(**{c: q[rec, g] for g, c in enumerate(cov)})
    spec2 = spec.replace(covariates=cov, groups=False)
    md2 = model_data(spec2, df2, relationship_a(ids, sire, dam))
    for th in ({"sigma_a2": 3.4, "sigma_e2": 3.8}, {"sigma_a2": 1.0, "sigma_e2": 6.0}):
        for engine in ("dense", "sparse"):
            assert loglik(md, engine, **th) == pytest.approx(loglik(md2, engine, **th),
                                                             abs=1e-8)


# --------------------------------------------------------------------- single step

def _ch11(tmp_path):
    ped = pd.read_csv(EXAMPLES / "ch11_pedigree.csv",
                      dtype=str)
    ped.loc[ped["sire"] == "0", "sire"] = "-1"
    ped.loc[ped["dam"] == "0", "dam"] = "-2"
    path = tmp_path / "ch11_pedigree_groups.csv"
    ped.to_csv(path, index=False)
    ids, sire, dam, pg = _renumbered(path)
    gids, M = read_genotypes(MRODE / "ch11_genotypes.csv")
    G = genomic_matrix(M, 0.01)
    pos = pd.Index(ids).get_indexer(gids)
    return ids, sire, dam, pg, pos, G


def test_h_with_groups__both_variants_against_dense_twins(tmp_path):
    """Groups in A⁻¹ only: H⁻¹ = A*⁻¹ + [0 0 0; 0 G⁻¹ − A22⁻¹ 0; 0 0 0]. With the genomic
    part transformed too: H*⁻¹ = [I; −Q'] H⁻¹ [I, −Q], H⁻¹ of the pedigree without groups
    (G untuned, unblended, so the twin builds it from G and the tabular A alone)."""
    ids, sire, dam, pg, pos, G = _ch11(tmp_path)
    n, ng = len(ids), pg.n_groups
    A = a_matrix_dense(sire, dam)
    delta = np.linalg.inv(G) - np.linalg.inv(A[np.ix_(pos, pos)])
    hinv = np.linalg.inv(A)
    hinv[np.ix_(pos, pos)] += delta
    q = group_contributions(sire, dam, pg.sire, pg.dam, ng)
    t = np.hstack([np.eye(n), -q])
    astar = ainv_qp_dense(sire, dam, pg.sire, pg.dam, ng)
    only_a = astar.copy()
    only_a[np.ix_(pos, pos)] += delta
    for genomic, expected in ((False, only_a), (True, t.T @ hinv @ t)):
        rel = relationship_h_groups(ids, sire, dam, pg, pos, G, blend=0.0, tune=False,
                                    genomic=genomic)
        assert rel.kinv.shape == (n + ng, n + ng) and rel.n_groups == ng
        np.testing.assert_allclose(rel.kinv.toarray(), expected, atol=1e-8)


def test_solve__ssgblup_with_groups_by_the_cli(tmp_path, capsys):
    ids, *_ = _ch11(tmp_path)
    ex = EXAMPLES
    cfg = tmp_path / "ss.toml"
    out = tmp_path / "out"
    for genomic in ("false", "true"):
        cfg.write_text(f"""
[data]
file = "{ex / 'ch11_reference.csv'}"
trait = "fat_dyd"
[animal]
column = "animal"
relationship = "H"
pedigree = "{tmp_path / 'ch11_pedigree_groups.csv'}"
genotypes = "{ex / 'ch11_genotypes.csv'}"
groups_in_genomic = {genomic}
[variance]
sigma_a2 = 35.241
sigma_e2 = 245.0
""")
        assert main(["solve", str(cfg), "--out", str(out), "--no-progress"]) == 0
        text = capsys.readouterr()
        said = text.out + text.err
        assert "unknown parent groups (2, fixed, Quaas-Pollak in A⁻¹" in said
        assert ("G⁻¹ − A22⁻¹" in said) == (genomic == "true")
        animals = pd.read_csv(out / "animals.csv", dtype={"animal": str})
        assert set(animals["animal"]) == set(ids)
        assert np.isfinite(animals["ebv"]).all()
        assert (out / "groups.csv").exists()


# ------------------------------------------------------------- the reliability method

def test_reliability__group_codes_are_unknown_parents_and_never_animals(tmp_path, capsys):
    grouped = _gryphon_with_groups(tmp_path, dams=True)
    common = ["--records", str(GRYPHON / "gryphon.csv"), "--records-columns",
              "animal=animal,cg=byear", "--h2", "0.3", "--no-progress"]
    outs = {}
    for name, ped, extra in (("plain", GRYPHON / "gryphonped.csv", []),
                             ("groups", grouped, []),
                             ("as_animals", grouped, ["--no-groups"])):
        outs[name] = tmp_path / name
        assert main(["reliability", "--pedigree", str(ped), "--out", str(outs[name]),
                     *common, *extra]) == 0
    said = capsys.readouterr().out
    assert "3 unknown parent group(s) in the pedigree, not animals" in said
    plain = pd.read_csv(outs["plain"] / "reliability.csv", dtype={"animal": str})
    grp = pd.read_csv(outs["groups"] / "reliability.csv", dtype={"animal": str})
    pd.testing.assert_frame_equal(plain, grp)
    assert not grp["animal"].str.startswith("-").any()
    summary = (outs["groups"] / "summary.txt").read_text()
    assert "animals 1,309" in summary and "-1 " in summary and "-2 225" in summary
    # --no-groups: the old behaviour, the codes are animals (and change the reliabilities)
    old = pd.read_csv(outs["as_animals"] / "reliability.csv", dtype={"animal": str})
    assert set(old["animal"]) - set(plain["animal"]) == {"-1", "-2", "-3"}


def test_blupf90_add_an_upg__converted_and_solved_as_blupf90_prints_it(tmp_path, capsys):
    """The tutorial's parameter file (add_an_upg, groups 9 and 10 numbered after the 8
    animals) through `config from-blupf90` and `solve`: BLUPF90's solutions with group 9
    (the tutorial's "replace 9 with 0" run) set to zero."""
    src = DATA / "blupf90-tutorial" / "mrode_ex3_4"
    model = tmp_path / "model.toml"
    assert main(["config", "from-blupf90", str(src / "param_mr03d.txt"),
                 "--out", str(model)]) == 0
    text = model.read_text()
    assert 'groups = ["9", "10"]' in text and "inbreeding = false" in text
    out = tmp_path / "out"
    assert main(["solve", str(model), "--out", str(out), "--no-progress"]) == 0
    sol = pd.read_csv(out / "solutions.csv", dtype={"level": str})
    got = sol["estimate"].to_numpy()  # sex 1, 2, animals 1-8, groups 9, 10
    assert list(sol["level"].iloc[-2:]) == ["9", "10"]
    np.testing.assert_allclose(got, _ex34_exact(), rtol=0, atol=1e-12)
    tol = np.full(12, PRINTED_8)
    tol[1] = FSPAK_FEMALE
    assert (np.abs(got - BLUPF90_G1_ZERO) <= tol).all(), got - BLUPF90_G1_ZERO
    animals = pd.read_csv(out / "animals.csv", dtype={"animal": str})
    assert list(animals["animal"]) == [str(i) for i in range(1, 9)]


def test_run__mrode_example_3_4_groups_in_the_solve_stage_unknown_for_the_method(tmp_path):
    """`bigeval run` on Mrode's Example 3.4 (sex the contemporary group, the run's routine
    model without an intercept): the solve stage's EBVs are BLUPF90's (group 1 set to zero),
    the groups are no animals of the results, and the summary says what each part did."""
    for name in ("records.csv",):
        (tmp_path / name).write_bytes((EXAMPLES / "mrode-ex3.1" / name).read_bytes())
    (tmp_path / "pedigree.csv").write_bytes((MRODE / "ex3_4_pedigree.csv").read_bytes())
    cfg = tmp_path / "config.toml"
    cfg.write_text('[inputs]\npedigree = "pedigree.csv"\nrecords = "records.csv"\n'
                   '[parameters]\nalpha = 2.0\n[model]\ntrait = "wwg_kg"\nsigma_a2 = 20.0\n'
                   'sigma_e2 = 40.0\n[output]\nfolder = "out"\n')
    assert main(["run", str(cfg), "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "out" / "reliability.csv", dtype={"animal": str})
    assert list(table["animal"]) == [str(i) for i in range(1, 9)]
    np.testing.assert_allclose(table["ebv"], _ex34_exact()[2:10], atol=1e-9)
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "2 unknown parent group(s) in the pedigree, not animals" in summary
    assert "solve: 2 unknown parent group(s) as Quaas-Pollak equations" in summary


@pytest.mark.parametrize("dams", [True, False])
def test_zero_groups__by_blocks_equals_the_rank_of_the_dense_design(tmp_path, dams):
    """The groups set to zero leave [X, ZQ] of full column rank with the rank of the whole
    [X, ZQ] (Q whole and dense here; blockwise in zero_groups)."""
    from bigeval.groups import zero_groups

    ids, sire, dam, pg = _renumbered(_gryphon_with_groups(tmp_path, dams=dams))
    df = pd.read_csv(GRYPHON / "gryphon.csv").dropna(subset=["bwt", "sex"])
    X = design_matrix(df, ("sex",), (), False).Xk
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    rec = pd.Index(ids).get_indexer(df["animal"].astype(str))
    zero = zero_groups(X, rec, sire, dam, pg.sire, pg.dam, pg.n_groups)
    zq = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)[rec]
    full = np.linalg.matrix_rank(np.hstack([X, zq]))
    kept = np.hstack([X, zq[:, ~zero]])
    assert np.linalg.matrix_rank(kept) == kept.shape[1] == full
    assert zero.tolist() == ([True, False, False] if dams else [False, False])
    np.testing.assert_array_equal(
        group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups, rows=rec), zq)


def test_reml__groups_by_the_cli_equal_the_explicit_model(tmp_path, capsys):
    """`bigeval reml` with groups (gryphon, unknown sires as two groups) gives the estimates
    of AI-REML on the explicit model y = Xb + ZQg + Zu + e (ZQ as covariates, A⁻¹ without
    groups)."""
    from bigeval.models.reml import reml

    ped = _gryphon_with_groups(tmp_path, dams=False)
    cfg = tmp_path / "reml.toml"
    cfg.write_text(f'[data]\nfile = "{GRYPHON / "gryphon.csv"}"\ntrait = "bwt"\n[fixed]\n'
                   f'factors = ["sex"]\n[animal]\ncolumn = "animal"\npedigree = "{ped}"\n'
                   '[variance]\nsigma_a2 = 1.0\nsigma_e2 = 1.0\n')
    out = tmp_path / "out"
    assert main(["reml", str(cfg), "--out", str(out), "--no-progress"]) == 0
    got = pd.read_csv(out / "variances.csv").set_index("component")["estimate"]
    spec = ModelSpec.from_toml(cfg)
    df = read_data(spec)
    ids, sire, dam, pg = _renumbered(ped)
    q = group_contributions(sire, dam, pg.sire, pg.dam, pg.n_groups)
    rec = pd.Index(ids).get_indexer(df["animal"].astype(str))
    cov = tuple(f"q{g}" for g in range(pg.n_groups))
    df2 = df.assign(**{c: q[rec, g] for g, c in enumerate(cov)})
    md2 = model_data(spec.replace(covariates=cov, groups=False), df2,
                     relationship_a(ids, sire, dam))
    ref = reml(md2, {"sigma_a2": 1.0, "sigma_e2": 1.0})
    for name, value in zip(ref.names, ref.theta):
        assert got[name] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("pattern", [None, "^G", r"^-[0-9]+$", r"^(.)\1"])
def test_group_mask__vectorised_equals_python_re(pattern):
    """The vectorised search (Arrow's RE2, or Python's on the distinct values for a pattern
    RE2 does not take, such as a backreference) against ``re.search`` on every value."""
    import re

    from bigeval.defaults import GROUP_CODES

    rng = np.random.default_rng(5)
    pool = np.array(["-1", "-22", "", "G7", "GG", "x-1", "-1x", "-01", "11", "A12", "aa"],
                    dtype=object)
    v = pool[rng.integers(0, len(pool), 5_000)]
    rx = re.compile(GROUP_CODES if pattern is None else pattern)
    want = np.array([x != "" and rx.search(x) is not None for x in v])
    np.testing.assert_array_equal(group_mask(v, pattern), want)


def test_run_config__pedigree_groups_pattern_list_or_none():
    from bigeval.errors import InputError as Bad
    from bigeval.pipeline.config import config_from_dict

    def cfg(v):
        return config_from_dict({"inputs": {"pedigree": "/d/p.txt", "records": "/d/r.txt",
                                            "pedigree_groups": v},
                                 "parameters": {"h2": 0.25}})["inputs.pedigree_groups"]

    assert cfg("^G") == "^G"
    assert cfg(["G1", -2]) == ["G1", "-2"]
    assert cfg(False) is False and cfg("") is False
    with pytest.raises(Bad, match="not a regular expression"):
        cfg("^(G")
    with pytest.raises(Bad, match="pedigree_groups"):
        cfg(3)
    # what prepare then does with a list: exactly those codes are groups
    assert group_mask(["G1", "G2", "-2", "7"], cfg(["G1", -2])).tolist() == [
        True, False, True, False]
