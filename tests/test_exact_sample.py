"""The exact check on a seeded herd sample (bigeval.reliability.sample_check) and its place in
``bigeval run`` (bigeval.pipeline.exact_check) and ``bigeval reliability --exact``.

The population is the run tests' simulated one (tests/_runkit.py: ~1 150 animals in 10
herds, 100 genotyped), with G*⁻¹ and A22⁻¹ from the reference run's checkpoints. Every
sparse or Schur result is checked against a dense twin (numpy inverses, the dense A of
bigeval.pedigree).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import _runkit
from bigeval.errors import BigevalWarning
from bigeval.pedigree import a22_dense, a_matrix_dense
from bigeval.reliability import ReliabilityOptions
from bigeval.reliability.sample_check import (
    CAVEAT,
    SampleDoesNotFit,
    draw_exact_sample,
    exact_sample_check,
    inverse_of_sub_block,
    sub_population,
)
from bigeval.pipeline import load_config, run_pipeline
from bigeval.pipeline.stages import load_population
from bigeval.pedigree import ancestors
from bigeval.prepare.sampling import draw_herds, herd_of
from bigeval.pipeline.workflow import exact_size
from bigeval.reliability.exact import agreement

pytestmark = [pytest.mark.filterwarnings(_runkit.EXACT_BELOW_ZERO),
              # a few simulated genotyped animals with G*_ii > 1 and no information
              pytest.mark.filterwarnings("ignore:.*less genomic information:"
                                         "bigeval.BigevalWarning")]

HERDS = "^[^Y]+"  # the runkit population's herd pattern (its config's [sample] herd_pattern)


@pytest.fixture(scope="module")
def pop(ref):
    return load_population(ref / "stages" / "prepare", ref / "stages" / "relationships")


def _run(config, out, **kw):
    overrides = {"output.folder": str(out), **kw.pop("overrides", {})}
    return run_pipeline(load_config(config, overrides), progress=False, **kw)


def _stage_summary(out, name="reliabilities") -> dict:
    return json.loads((out / "stages" / name / "stage.json").read_text())["summary"]


def _manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


# ---------------------------------------------------------------------------------------------
# the draw


def test_draw__same_for_a_seed_and_different_for_another(pop):
    kw = dict(max_equations=1_000, max_genotyped=60, with_pe=True, herd_pattern=None)
    a = draw_exact_sample(pop, seed=11, **kw)
    b = draw_exact_sample(pop, seed=11, **kw)
    c = draw_exact_sample(pop, seed=12, **kw)
    np.testing.assert_array_equal(a.herds, b.herds)
    np.testing.assert_array_equal(a.animals, b.animals)
    np.testing.assert_array_equal(a.records, b.records)
    assert a.herds.size > 1 and not np.array_equal(a.herds, c.herds)
    assert not np.array_equal(a.animals, c.animals)


def test_draw__whole_herds_every_ancestor_and_within_the_target(pop):
    s = draw_exact_sample(pop, max_equations=2_000, max_genotyped=60, with_pe=True, seed=3,
                          herd_pattern=HERDS)
    herd = herd_of(pop.cg_ids, HERDS)[pop.rec_cg]
    # every record of a drawn herd, no other
    np.testing.assert_array_equal(s.records, np.isin(herd, s.herds))
    assert 0 < s.herds.size < s.herds_total == 10
    # the animals with those records, and every known parent of a kept animal is kept
    assert s.animals[pop.rec_animal[s.records]].all()
    kept = np.flatnonzero(s.animals)
    for parent in (pop.sire[kept], pop.dam[kept]):
        assert s.animals[parent[parent >= 0]].all()
    # the kept animals are exactly the record animals and their ancestors (a slow closure)
    want = set(pop.rec_animal[s.records].tolist())
    frontier = list(want)
    while frontier:
        i = frontier.pop()
        for p in (pop.sire[i], pop.dam[i]):
            if p >= 0 and p not in want:
                want.add(int(p))
                frontier.append(int(p))
    assert set(kept.tolist()) == want
    # the size it reports is the size of the sample's exact MME, within half the limits
    sub = sub_population(pop, s.records, s.animals)
    assert s.equations == exact_size(sub, True) <= 1_000
    assert s.genotyped == len(sub.genotyped) <= 30
    # the herds are `bigeval sample --herds k --seed 3`'s, and the draw of k + 1 herds is
    # over the target (the bisection's end)
    k = s.herds.size
    np.testing.assert_array_equal(s.herds, draw_herds(np.unique(herd), k, 3))
    rec = np.isin(herd, draw_herds(np.unique(herd), k + 1, 3))
    keep = np.zeros(pop.n_animals, bool)
    keep[pop.rec_animal[rec]] = True
    more = sub_population(pop, rec, ancestors(keep, pop.sire, pop.dam))
    assert exact_size(more, True) > 1_000 or len(more.genotyped) > 30


def test_draw__no_herd_fits_a_tiny_target(pop):
    with pytest.raises(SampleDoesNotFit, match="one herd with its animals' ancestors"):
        draw_exact_sample(pop, max_equations=10, max_genotyped=60, with_pe=True,
                          herd_pattern=HERDS)


def test_draw__is_the_sample_bigeval_sample_writes(pop, pop_config, tmp_path):
    # the same herds, records and animals as `bigeval sample --herds k --seed s` of the run's
    # configuration, read back and prepared
    from bigeval.prepare import prepare
    from bigeval.sample import draw_sample

    s = draw_exact_sample(pop, max_equations=2_000, max_genotyped=60, with_pe=True, seed=8,
                          herd_pattern=HERDS)
    sub = sub_population(pop, s.records, s.animals)
    files = draw_sample(load_config(pop_config), tmp_path / "s", herds=s.herds.size, seed=8,
                        herd_pattern=HERDS)
    assert files.counts["herds"] == s.herds.size
    drawn = prepare(tmp_path / "s" / "pedigree.txt", tmp_path / "s" / "records.txt")
    assert sorted(drawn.ids) == sorted(sub.ids)
    pairs = sorted(zip(drawn.ids[drawn.rec_animal], drawn.cg_ids[drawn.rec_cg]))
    assert pairs == sorted(zip(sub.ids[sub.rec_animal], sub.cg_ids[sub.rec_cg]))
    assert files.counts["genotyped"] == len(sub.genotyped)


# ---------------------------------------------------------------------------------------------
# the sample's population and its genomic relationships (dense twins)


def test_inverse_of_sub_block__equals_the_dense_inverse_of_the_sub_block():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 60))
    m = x @ x.T / 60 + 0.1 * np.eye(40)
    minv = np.linalg.inv(m)
    for keep in (rng.random(40) < 0.3, np.arange(40) % 2 == 0, np.ones(40, bool),
                 np.eye(40, dtype=bool)[7]):
        s = np.flatnonzero(keep)
        want = np.linalg.inv(m[np.ix_(s, s)])
        np.testing.assert_allclose(inverse_of_sub_block(minv, keep), want, rtol=1e-9,
                                   atol=1e-9 * np.abs(want).max())
    # integer positions keep their order
    order = np.array([9, 2, 30])
    np.testing.assert_allclose(inverse_of_sub_block(minv, order),
                               np.linalg.inv(m[np.ix_(order, order)]), rtol=1e-9, atol=1e-9)


def test_sub_population__g_star_and_a22_of_the_sample_equal_their_dense_twins(pop):
    s = draw_exact_sample(pop, max_equations=2_000, max_genotyped=60, with_pe=True, seed=2,
                          herd_pattern=HERDS)
    sub = sub_population(pop, s.records, s.animals)
    kept = np.flatnonzero(s.animals)
    np.testing.assert_array_equal(sub.ids, pop.ids[kept])
    # parents are renumbered to the same animals, before their progeny
    for new, old in ((sub.sire, pop.sire[kept]), (sub.dam, pop.dam[kept])):
        known = new >= 0
        np.testing.assert_array_equal(sub.ids[new[known]], pop.ids[old[known]])
        assert (new[known] < np.flatnonzero(known)).all()
        assert (old[~known] < 0).all()
    # records: the same (animal, group) pairs by ID and code
    np.testing.assert_array_equal(sub.ids[sub.rec_animal], pop.ids[pop.rec_animal[s.records]])
    np.testing.assert_array_equal(sub.cg_ids[sub.rec_cg], pop.cg_ids[pop.rec_cg[s.records]])
    # genotyped: the population's among the kept, in G's order
    g_keep = s.animals[pop.genotyped]
    np.testing.assert_array_equal(sub.ids[sub.genotyped], pop.ids[pop.genotyped[g_keep]])
    # G*⁻¹ of the sample = the inverse of the sample's block of G* (not a block of G*⁻¹)
    g_star = np.linalg.inv(pop.ginv)
    want = np.linalg.inv(g_star[np.ix_(g_keep, g_keep)])
    np.testing.assert_allclose(sub.ginv, want, rtol=1e-8, atol=1e-8 * np.abs(want).max())
    assert np.abs(pop.ginv[np.ix_(g_keep, g_keep)] - want).max() > 1e-3  # not the same thing
    # A22⁻¹ of the sample = the inverse of the dense A22 of the sample's pedigree ...
    a_sub = a_matrix_dense(sub.sire, sub.dam)
    a22 = a_sub[np.ix_(sub.genotyped, sub.genotyped)]
    np.testing.assert_allclose(sub.a22inv, np.linalg.inv(a22), rtol=1e-8, atol=1e-8)
    # ... which, with every ancestor kept, is the sample's block of the national A22
    a22_all = a22_dense(pop.sire, pop.dam, pop.genotyped)
    np.testing.assert_allclose(a22, a22_all[np.ix_(g_keep, g_keep)], rtol=0, atol=1e-12)
    # A22⁻¹ given as triplets: the Schur complement of the given inverse, the same here
    other = sub_population(pop, s.records, s.animals, a22_from_pedigree=False)
    np.testing.assert_allclose(other.a22inv, sub.a22inv, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(other.ginv, sub.ginv)


def test_exact_sample_check__table_and_agreement(pop):
    opts = ReliabilityOptions(alpha=3.0, tau=4.0)
    kw = dict(max_equations=2_000, max_genotyped=60, seed=4, herd_pattern=HERDS)
    res = exact_sample_check(pop, opts, **kw)
    again = exact_sample_check(pop, opts, **kw)
    pd.testing.assert_frame_equal(res.table, again.table)  # deterministic
    t = res.table
    assert len(t) == res.counts["animals"] == res.population.n_animals
    assert int(t["genotyped"].sum()) == res.counts["genotyped"] > 0
    for col in ("rel_pedigree", "rel_exact_pblup", "rel_final", "rel_exact_ssgblup"):
        v = t[col].to_numpy()
        assert np.isfinite(v).all() and (v >= 0).all() and (v < 1).all(), col
    # the exact values are those of the exact machinery on the sample's population
    from bigeval.reliability.exact import exact_reliability, publishable

    sub = res.population
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BigevalWarning)
        ex = publishable(exact_reliability(sub.sire, sub.dam, sub.rec_animal, sub.rec_cg, 3.0,
                                           tau=4.0, genotyped=sub.genotyped, ginv=sub.ginv,
                                           a22inv=sub.a22inv, method="dense"), "x")[0]
    np.testing.assert_allclose(t["rel_exact_ssgblup"], ex, rtol=0, atol=1e-9)
    # the agreement is that of the table's values
    g = t["genotyped"].to_numpy(bool)
    for group, mask in (("all", np.ones(len(t), bool)), ("genotyped", g),
                        ("not_genotyped", ~g)):
        want = agreement(t["rel_final"][mask], t["rel_exact_ssgblup"][mask])
        got = res.agreement["part3_vs_ssgblup"][group]
        assert got["corr"] == pytest.approx(want["corr"], abs=1e-12)
        assert got["slope"] == pytest.approx(want["slope"], abs=1e-12)
        assert got["bias"] == pytest.approx(float(np.mean(t["rel_final"][mask]
                                                          - t["rel_exact_ssgblup"][mask])))


# ---------------------------------------------------------------------------------------------
# bigeval run


def test_run__over_the_limits_checks_a_seeded_sample(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    res = _run(pop_config, out, overrides={"exact.max_equations": 1_000,
                                           "exact.sample_seed": 5})
    assert res.executed[-2:] == ["reliabilities", "report"]
    summary = _stage_summary(out)["exact"]
    assert summary["on"] == "sample" and summary["ran"]
    sample = summary["sample"]
    assert sample["seed"] == 5 and 0 < sample["herds"] < sample["herds_total"] == 10
    assert sample["equations"] <= 500 and sample["note"] == CAVEAT
    manifest = _manifest(out)["exact_check"]  # the manifest says it as well
    assert manifest["on"] == "sample" and manifest["sample"] == sample
    # exact_check.csv holds the sample's animals, and reliability.csv no exact column
    csv = pd.read_csv(out / "exact_check.csv")
    assert len(csv) == sample["animals"] < pd.read_csv(ref / "exact_check.csv").shape[0]
    assert int(csv["genotyped"].sum()) == sample["genotyped"]
    table = pd.read_csv(out / "reliability.csv")
    assert "rel_exact" not in table or table["rel_exact"].isna().all()
    # the summary and the report say plainly that the check ran on a seeded sample
    text = (out / "summary.txt").read_text()
    assert "exact check on a seeded sample (seed 5)" in text
    assert f"{sample['herds']:,} of 10 herds" in text and "over the limits" in text
    assert CAVEAT in text and "exact_check.csv holds the sample's animals" in text
    html = (out / "report.html").read_text()
    assert "The check ran on a seeded sample (seed 5)" in html
    assert f"bigeval sample --herds {sample['herds']} --seed 5" in html
    # the figures are those of the values in exact_check.csv: recompute r and the slope
    ag = summary["agreement"]["part3_vs_ssgblup"]
    g = csv["genotyped"].to_numpy(bool)
    for group, mask in (("all", np.ones(len(csv), bool)), ("genotyped", g),
                        ("not_genotyped", ~g)):
        a, e = csv["rel_final"].to_numpy()[mask], csv["rel_exact_ssgblup"].to_numpy()[mask]
        r = np.corrcoef(a, e)[0, 1]
        assert ag[group]["corr"] == pytest.approx(r, abs=1e-8), group
        assert ag[group]["slope"] == pytest.approx(np.polyfit(a, e, 1)[0], abs=1e-8), group
        if group == "all":
            assert f"correlation {r:.4f}" in text.split("Part III vs exact ssGBLUP:")[1]
    a, e = csv["rel_pedigree"].to_numpy(), csv["rel_exact_pblup"].to_numpy()
    assert summary["agreement"]["part1_vs_pblup"]["all"]["corr"] == pytest.approx(
        np.corrcoef(a, e)[0, 1], abs=1e-8)
    # the sample key is part of the stage's checkpoint key: another seed runs it again
    res = _run(pop_config, out, overrides={"exact.max_equations": 1_000,
                                           "exact.sample_seed": 6})
    assert res.executed[-2:] == ["reliabilities", "report"]
    assert _stage_summary(out)["exact"]["sample"]["seed"] == 6


def test_run__within_the_limits_the_whole_check_is_unchanged(ref, pop_config, tmp_path):
    # the reference run (default limits) checked every animal ...
    summary = _stage_summary(ref)["exact"]
    assert summary["ran"] and "on" not in summary and "sample" not in summary
    assert _manifest(ref)["exact_check"]["on"] == "whole"
    exact = pd.read_csv(ref / "exact_check.csv")
    assert len(exact) == len(pd.read_csv(ref / "reliability.csv"))
    assert "exact check (same information on both sides" in (ref / "summary.txt").read_text()
    # ... and switching the sample off changes none of its bytes
    out = _runkit.copy_run(ref, tmp_path / "out")
    _run(pop_config, out, overrides={"exact.sample": False})
    assert _runkit.same_bytes(ref, out) == []


def test_run__sample_off_over_the_limits_skips_the_check(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    _run(pop_config, out, overrides={"exact.max_equations": 1_000, "exact.sample": False})
    assert not (out / "exact_check.csv").exists()
    assert "exact check not run" in (out / "summary.txt").read_text()


# ---------------------------------------------------------------------------------------------
# bigeval reliability --exact


def test_reliability_exact__over_the_limits_points_at_the_sample_check(monkeypatch):
    import bigeval.pipeline.workflow as wf

    assert not wf.warn_exact_over_limits(wf.EXACT_MAX_EQUATIONS, wf.EXACT_MAX_GENOTYPED)
    with pytest.warns(BigevalWarning, match=r"\[exact\] sample"):
        assert wf.warn_exact_over_limits(wf.EXACT_MAX_EQUATIONS + 1, 0)
    with pytest.warns(BigevalWarning, match="1,000,000 equations and 20,001 genotyped"):
        wf.warn_exact_over_limits(1_000_000, wf.EXACT_MAX_GENOTYPED + 1)


def test_reliability_exact__cli_warns_and_still_computes_the_whole(tmp_path, monkeypatch):
    import bigeval.pipeline.workflow as wf

    # two founders with a son and a daughter: 4 animals + 2 groups = 6 equations
    (tmp_path / "ped.txt").write_text("s1 0 0\nd1 0 0\nkid1 s1 d1\nkid2 s1 d1\n")
    (tmp_path / "rec.txt").write_text("kid1 g1\nkid2 g1\nkid1 g2\nd1 g2\n")
    argv = ["reliability", "--pedigree", str(tmp_path / "ped.txt"), "--records",
            str(tmp_path / "rec.txt"), "--alpha", "3", "--exact", "--no-progress"]
    rc, err = _runkit.cli_in_process(argv + ["--out", str(tmp_path / "a")])
    assert rc == 0 and "[exact] sample" not in err  # within the limits: no warning
    monkeypatch.setattr(wf, "EXACT_MAX_EQUATIONS", 5)  # as if the population were large
    rc, err = _runkit.cli_in_process(argv + ["--out", str(tmp_path / "b")])
    assert rc == 0
    assert "6 equations and 0 genotyped animals, over the limits of an automatic check (5 " \
           "equations" in err
    assert "[exact] sample" in err and "bigeval sample" in err
    # the values asked for are still the whole population's, the same as without the warning
    a, b = (pd.read_csv(tmp_path / d / "reliability.csv") for d in "ab")
    pd.testing.assert_frame_equal(a, b)
    assert len(b) == 4 and b["rel_exact"].notna().all()


def test_run__a_sample_that_does_not_fit_in_memory_is_reported_not_run(ref, pop_config,
                                                                       tmp_path, monkeypatch):
    import bigeval.reliability.sample_check as sc
    from bigeval._resources import check_dense

    def tiny(n, **kw):  # as if 1 KiB were all the memory there is
        return check_dense(n, available=2**10, **kw)

    monkeypatch.setattr(sc, "check_dense", tiny)
    out = _runkit.copy_run(ref, tmp_path / "out")
    _run(pop_config, out, overrides={"exact.max_equations": 1_000})
    summary = _stage_summary(out)["exact"]
    assert not summary["ran"] and "genotyped animals outside the sample" in summary["reason"]
    assert not (out / "exact_check.csv").exists()
    text = (out / "summary.txt").read_text()
    assert "exact check not run" in text and "not on a seeded sample either" in text
    assert "Nor on a seeded sample" in (out / "report.html").read_text()
    assert _manifest(out)["exact_check"]["sample_not_run"] == summary["reason"]
