"""The report says what the run gave, also when it is wrong (issue 13, item 4).

Values outside [0, 1) stay on the plots and are counted; a negative mean gain from genomics is
said in words; the approximate-vs-exact table has rows for genotyped and non-genotyped
animals; every warning of the run is listed (or "no warnings"); the genomic method is shown.
The figure and section functions get small hand-made tables; the warnings go through a real
(tiny) run: Mrode's Example 3.1.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.errors import BigevalWarning
from bigeval.pipeline import report as rp

REPO = Path(__file__).resolve().parents[1]


def _table(n=12, *, final_shift=0.0, odd=True) -> pd.DataFrame:
    """A result table by hand: every other animal genotyped, two birth years, two sexes; with
    ``odd`` a non-genotyped animal has a final reliability above 1 and a Part I one below 0."""
    rng = np.random.default_rng(3)
    g = np.arange(n) % 2 == 0
    ped = rng.uniform(0.1, 0.6, n)
    final = ped + np.where(g, 0.05, 0.0) + final_shift * g
    if odd:
        final[1], ped[1] = 1.25, -0.3
    rec = np.where(np.arange(n) < n // 2, 0.0, 1.5)
    return pd.DataFrame({
        "animal": [f"A{i}" for i in range(n)],
        "birth_year": np.where(np.arange(n) < n // 2, 2024, 2020).astype(float),
        "sex": np.where(np.arange(n) % 3 == 0, "M", "F"),
        "genotyped": g,
        "erc_records": rec,
        "rel_pedigree": ped,
        "rel_genomic": np.where(g, final, np.nan),
        "rel_final": final,
    })


def _holds(lim, *values):
    return all(lim[0] <= v <= lim[1] for v in values)


# ---------------------------------------------------------------------------------------------
# values outside [0, 1)


def test_outside_range__counts_below_and_at_or_above_one():
    c = rp.outside_range([-0.1, 0.0, 0.5, 0.999, 1.0, 1.7, np.nan])
    assert c == {"n": 6, "below": 1, "above": 2, "min": -0.1, "max": 1.7}
    assert rp._limits([0.2, 0.4])[0] < 0 and rp._limits([0.2, 0.4])[1] > 1  # band always in
    lo, hi = rp._limits([-2.0, 3.0])
    assert lo <= -2.0 and hi >= 3.0


def test_distributions__axes_hold_every_value_and_note_counts_them():
    t = _table()
    fig = rp._draw_distributions(t)
    for ax in fig.axes[:2]:
        assert _holds(ax.get_xlim(), -0.3, 1.25, 0.0, 1.0)
        # the band [0, 1) is drawn (a span behind the data)
        assert any(p.get_zorder() == 0 for p in ax.patches)
    # every value is in a bin: the histograms' bins reach both extremes
    xs = np.concatenate([p.get_xy()[:, 0] for ax in fig.axes[:2] for p in ax.patches
                         if p.get_zorder() != 0])
    assert xs.min() <= -0.3 and xs.max() >= 1.25
    html = rp._fig_distributions(t)
    assert "outside [0, 1)" in html
    assert "Part I: 1 of 12 (1 below 0, lowest -0.3)" in html
    assert "final: 1 of 12 (1 at or above 1, highest 1.25)" in html


def test_distributions__says_when_all_in_range():
    html = rp._fig_distributions(_table(odd=False))
    assert "No reliabilities outside [0, 1)" in html


def test_birth_year_and_sex__axes_hold_means_outside_the_band():
    t = _table()
    t["rel_final"] = t["rel_final"] + 1.0  # every mean above 1
    fig, means = rp._draw_by_birth_year(t)
    assert means.max() > 1 and _holds(fig.axes[0].get_ylim(), 0.0, means.max(), means.min())
    fig, means = rp._draw_by_sex(t)
    assert _holds(fig.axes[0].get_ylim(), 0.0, means.max(), means.min())
    assert "plotted means outside [0, 1)" in rp._fig_of_means(rp._draw_by_sex, t).lower()


def test_exact_figure__axes_hold_every_value_also_when_sampled():
    n = 4_500  # more than drawn: the sample keeps the odd values
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 0.9, n)
    exact = pd.DataFrame({"animal": [f"A{i}" for i in range(n)], "rel_pedigree": x,
                          "rel_exact_pblup": x - 0.01, "rel_final": x,
                          "rel_exact_ssgblup": x - 0.02})
    exact.loc[7, "rel_exact_ssgblup"] = -0.4
    exact.loc[9, "rel_final"] = 1.1
    fig = rp._draw_exact(exact)
    ax = fig.axes[1]
    assert _holds(ax.get_xlim(), 1.1, 0.0) and _holds(ax.get_ylim(), -0.4, 1.0)
    xs, ys = ax.lines[-2].get_data()  # the points (last line: the diagonal)
    assert np.isclose(xs, 1.1).any() and np.isclose(ys, -0.4).any()
    html = rp._fig_exact(exact)
    assert "exact ssGBLUP: 1 of 4,500 (1 below 0, lowest -0.4)" in html
    assert "Part III: 1 of 4,500 (1 at or above 1, highest 1.1)" in html


# ---------------------------------------------------------------------------------------------
# negative gain, exact rows


def test_gain__negative_mean_is_said_with_its_causes():
    t = _table(final_shift=-0.2, odd=False)  # genomics lowers every genotyped animal
    stats = rp.gain_stats(t, young_years=1)
    assert stats["mean_gain_genotyped"] < 0 and stats["mean_gain_young_genotyped"] < 0
    assert stats["n_young_genotyped_no_records"] == 3
    text = rp.negative_gain_text(stats, exact_ran=True)
    assert len(text) == 3
    assert text[0].startswith("The mean gain from genomics of the genotyped animals is "
                              "negative (-0.1500)")
    assert "genomic relationships" in text[0] and "compare with the exact check" in text[0]
    assert "young genotyped animals without own records" in text[2]
    assert "did not run" in rp.negative_gain_text(stats, exact_ran=False)[0]
    # a positive gain: nothing said
    assert rp.negative_gain_text(rp.gain_stats(_table(odd=False), 1), True) == []


def test_exact_rows__all_genotyped_and_not_genotyped_by_agreement():
    from bigeval.pipeline.workflow import agreement

    t = _table(odd=False)
    exact = t[["animal", "rel_pedigree", "rel_final"]].iloc[::-1].reset_index(drop=True)
    exact["rel_exact_pblup"] = exact["rel_pedigree"] * 0.9
    exact["rel_exact_ssgblup"] = exact["rel_final"] * 0.95 + 0.01
    exact = exact.drop(index=[0, 5]).reset_index(drop=True)  # not every animal, other order
    rows = rp.exact_rows(t, exact)
    assert [(r[0], r[1]) for r in rows] == [
        (c, grp) for c in ("Part I vs exact PBLUP", "Part III vs exact ssGBLUP")
        for grp in ("all", "genotyped", "not genotyped")]
    g = t.set_index("animal").loc[exact["animal"], "genotyped"].to_numpy()
    a = agreement(exact["rel_final"][g], exact["rel_exact_ssgblup"][g])
    assert rows[4][2:] == (a["n"], a["corr"], a["slope"], a["mad"], a["mean_approx"],
                           a["mean_exact"])
    assert rows[4][2] + rows[5][2] == len(exact)
    # a group of fewer than two animals: counted, no statistics (and no warning)
    few = rp.exact_rows(t.assign(genotyped=t["animal"] == "A1"), exact)
    assert few[1][2] == 1 and few[1][3:] == (None,) * 5


# ---------------------------------------------------------------------------------------------
# the whole report from hand-made stage folders


class _Cfg(dict):
    source = None

    def get(self, key, default=None):
        v = dict.get(self, key)
        return default if v is None else v


_CFG = {"report.title": "honest", "report.young_years": 1, "parameters.tau": None,
        "parameters.h2": 0.3, "parameters.repeatability": None, "exact.max_equations": 10}


def _stage_folders(tmp_path: Path, table: pd.DataFrame, warned=None) -> tuple[dict, dict]:
    val = tmp_path / "validate"
    val.mkdir()
    (val / "validation.json").write_text(json.dumps({
        "animals": len(table), "records": 6, "contemporary_groups": 2,
        "animals_with_records": 6, "interbull": 0}))
    rel = tmp_path / "reliabilities"
    rel.mkdir()
    exact = table[["animal", "rel_pedigree", "rel_final"]].copy()
    exact["rel_exact_pblup"] = exact["rel_pedigree"] - 0.01
    exact["rel_exact_ssgblup"] = exact["rel_final"] - 0.02
    exact.to_parquet(rel / "exact.parquet")
    summary = {"alpha": 2.0, "rounds_part1": 5, "rounds_part3": 5,
               "exact": {"ran": True, "equations": 24}}
    info = {"validate": {"seconds": 0.1, "warnings": []},
            "reliabilities": {"seconds": 0.2, "summary": summary,
                              "warnings": warned or []}}
    return {"validate": val, "reliabilities": rel}, info


def test_write_report__every_honest_part(tmp_path):
    t = _table(final_shift=-0.2)
    warned = [{"category": "BigevalWarning", "message": "REML did not converge in 5 rounds",
               "count": 2}]
    up, info = _stage_folders(tmp_path, t, warned)
    cfg = _Cfg(_CFG, **{"parameters.genomic_method": "certified"})
    page = rp.write_report(cfg, t, up, info, tmp_path / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "genomic method (Part II)  certified" in text
    assert "The run gave 1 warning:" in text
    assert "reliabilities  BigevalWarning  REML did not converge in 5 rounds  2" in text
    assert "no warnings" not in text
    for grp in ("all", "genotyped", "not genotyped"):
        assert f"Part III vs exact ssGBLUP  {grp}  " in text
    assert "The mean gain from genomics of the genotyped animals is negative" in text
    assert "compare with the exact check below" in text
    assert "Part I: 1 of 12 (1 below 0, lowest -0.3)" in text
    assert text.index("Warnings") < text.index("Reliability of genotyped")


def test_write_report__no_warnings_and_no_method_when_absent(tmp_path):
    t = _table(odd=False)
    up, info = _stage_folders(tmp_path, t)
    info["prepare"] = {"seconds": 0.1}  # a checkpoint from before warnings were kept
    page = rp.write_report(_Cfg(_CFG), t, up, info, tmp_path / "report.html").read_text()
    assert "The run gave no warnings." in page
    assert "Not recorded for prepare" in page
    assert "genomic method" not in page
    assert "is negative" not in page


# ---------------------------------------------------------------------------------------------
# warnings of a real run: collected, still shown, kept with the checkpoint, in the report


def test_run__warnings_are_shown_kept_and_reported(tmp_path, monkeypatch):
    from bigeval.pipeline import load_config, run_pipeline, runner as pipeline

    def warn_then(run):
        def stage(ctx):
            warnings.warn("few records in this herd", BigevalWarning)
            return run(ctx)
        return stage

    patched = tuple(dataclasses.replace(s, run=warn_then(s.run)) if s.name == "prepare" else s
                    for s in pipeline.STAGES)
    monkeypatch.setattr(pipeline, "STAGES", patched)
    cfg = load_config(REPO / "examples" / "config-mrode-ex3.1.toml",
                      {"output.folder": str(tmp_path / "out")})
    with pytest.warns(BigevalWarning, match="few records in this herd"):  # still shown
        run_pipeline(cfg, progress=False)
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    by = {s["name"]: s for s in manifest["stages"]}
    assert by["prepare"]["warnings"] == [{"category": "BigevalWarning",
                                          "message": "few records in this herd", "count": 1}]
    assert by["validate"]["warnings"] == []
    side = json.loads((out / "stages" / "prepare" / "stage.json").read_text())
    assert side["warnings"] == by["prepare"]["warnings"]
    page = (out / "report.html").read_text()
    assert "The run gave 1 warning:" in page and "few records in this herd" in page
    # reused stages keep their warnings (in the manifest; the report is reused as it was)
    monkeypatch.setattr(pipeline, "STAGES", tuple(s for s in patched))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing runs, nothing warns
        res = run_pipeline(cfg, progress=False)
    assert res.executed == []
    prep = next(s for s in res.manifest["stages"] if s["name"] == "prepare")
    assert prep["status"] == "skipped" and prep["warnings"][0]["count"] == 1
    assert "few records in this herd" in (out / "report.html").read_text()


def test_write_report__lists_its_own_warnings(tmp_path, monkeypatch):
    t = _table(odd=False)
    up, info = _stage_folders(tmp_path, t)

    def convergence(conv):
        warnings.warn("nothing to draw", UserWarning)
        return None

    monkeypatch.setattr(rp, "_fig_convergence", convergence)
    with pytest.warns(UserWarning, match="nothing to draw"):
        page = rp.write_report(_Cfg(_CFG), t, up, info, tmp_path / "report.html").read_text()
    text = re.sub(r"<[^>]+>", " ", page)
    assert "report  UserWarning  nothing to draw  1" in text


def test_collect_warnings__counts_passes_on_and_keeps_the_filters():
    from bigeval.pipeline.manifest import collect_warnings

    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        with collect_warnings() as seen:
            for _ in range(3):
                warnings.warn("again", BigevalWarning)
            warnings.warn("other", RuntimeWarning)
    assert seen == [{"category": "BigevalWarning", "message": "again", "count": 3},
                    {"category": "RuntimeWarning", "message": "other", "count": 1}]
    assert [str(w.message) for w in outer] == ["again"] * 3 + ["other"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BigevalWarning), collect_warnings() as seen:
            warnings.warn("stop", BigevalWarning)
    assert seen == []
