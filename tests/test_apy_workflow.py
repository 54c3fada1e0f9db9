"""``bigeval reliability --genotypes --genomic-inverse apy``: with every animal in the core
APY is G*⁻¹ itself, so the run equals the full path; with fewer, the published values are
valid and the memory of the choice is printed before the work."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_genomics_workflow import _run, population  # noqa: F401 (the fixture)

from bigeval.genomic.apy import resolve_genomic_inverse
from bigeval.cli import main
from bigeval.errors import InputError, ResourceError


def test_reliability_apy__full_core_equals_full_path(population, tmp_path, capsys):  # noqa: F811
    f = population
    # no tuning: the full path still tunes before blending (being changed to blend first)
    common = ("--genotypes", str(f["store"]), "--no-qc", "--blend", "0.3", "--no-tune")
    full = _run(f, tmp_path / "full", *common, "--genomic-inverse", "full")
    apy = _run(f, tmp_path / "apy", *common, "--genomic-inverse", "apy", "--apy-core", "60")
    err = capsys.readouterr().err
    assert "genomic inverse: apy (apy)" in err and "APY G*⁻¹ of 60 genotyped animals, 60 core" \
        in err
    assert apy.index.equals(full.index)
    for col in full.columns:
        np.testing.assert_allclose(apy[col], full[col], rtol=1e-8, atol=1e-10, err_msg=col)
    assert "APY G of 60 animals (60 core)" in (tmp_path / "apy" / "summary.txt").read_text()


def test_reliability_apy__smaller_core_is_valid(population, tmp_path):  # noqa: F811
    f = population
    t = _run(f, tmp_path / "a", "--genotypes", str(f["store"]), "--no-qc", "--blend", "0.3",
             "--genomic-inverse", "apy", "--apy-core", "20")
    rel = t["rel_genomic"].dropna()
    assert len(rel) == 60 and rel.between(0, 1, inclusive="left").all()
    assert t["rel_final"].between(0, 1, inclusive="left").all()


def test_reliability_apy__refusals(population, tmp_path, capsys):  # noqa: F811
    f = population
    base = ["reliability", "--pedigree", str(f["pedigree"]), "--records", str(f["records"]),
            "--h2", "0.3", "--no-progress", "--genotypes", str(f["store"]), "--no-qc",
            "--genomic-inverse", "apy"]
    for extra, message in ((["--exact"], "--exact (exact reliabilities) needs the full"),
                           (["--genomic-method", "certified"],
                            "certified Part II needs the dense"),
                           (["--genomic-inverse", "full", "--apy-core", "5"],
                            "an APY core size is given")):
        assert main(base + ["--out", str(tmp_path / "x"), *extra]) != 0
        assert message in capsys.readouterr().err
    no_store = [a for a in base if a not in ("--genotypes", str(f["store"]), "--no-qc")]
    assert main(no_store + ["--out", str(tmp_path / "x")]) != 0
    assert "built from a genotype store, and none is given" in capsys.readouterr().err


def test_run_config__apy_needs_genotypes(tmp_path):
    from bigeval.pipeline import config_from_dict

    for key, value in (("inverse", "apy"), ("apy_core", 100)):
        with pytest.raises(InputError, match="APY G.* is built from genotypes"):
            config_from_dict({"inputs": {"pedigree": "p.txt", "records": "r.txt"},
                              "parameters": {"alpha": 2.0}, "genomics": {key: value}})


def test_resolve_genomic_inverse__auto_by_size_and_memory():
    gib = 2**30
    assert resolve_genomic_inverse("auto", 1_000, available=8 * gib) == "full"
    assert resolve_genomic_inverse("auto", 25_000, available=1_000 * gib) == "apy"
    assert resolve_genomic_inverse("auto", 15_000, available=4 * gib) == "apy"  # 5.4 GB
    lines = []
    assert resolve_genomic_inverse("apy", 10, log=lines.append) == "apy"
    assert "full G*⁻¹ needs" in lines[0]
    with pytest.raises(ResourceError, match="use --genomic-inverse apy"):
        resolve_genomic_inverse("full", 50_000, available=8 * gib)
    with pytest.raises(InputError, match="unknown genomic inverse"):
        resolve_genomic_inverse("sparse", 10)


@pytest.fixture(scope="module")
def run_config(tmp_path_factory):
    import _runkit

    base = tmp_path_factory.getbasetemp() / "runkit"
    base.mkdir(exist_ok=True)
    cfg = _runkit.population(base)  # 100 genotyped animals; made once per session
    text = cfg.read_text().replace("[model]\ntrait = 3\n", "")
    out = tmp_path_factory.mktemp("apy-run") / "config.toml"
    out.write_text(text.replace('"data/', f'"{cfg.parent}/data/'))
    return cfg, out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::bigeval.errors.BigevalWarning")
def test_run_apy__full_core_equals_full_run(run_config, tmp_path):
    from bigeval.pipeline import load_config, run_pipeline

    with_model, cfg = run_config
    common = {"genomics.tune": False, "exact.check": False}
    runs = {}
    for name, extra in (("full", {"genomics.inverse": "full"}),
                        ("apy", {"genomics.inverse": "apy", "genomics.apy_core": 100})):
        out = tmp_path / name
        run_pipeline(load_config(cfg, {"output.folder": str(out), **common, **extra}),
                     progress=False)
        runs[name] = pd.read_csv(out / "reliability.csv").set_index("animal")
    assert (tmp_path / "apy" / "stages" / "relationships" / "apy.h5").exists()
    assert runs["apy"]["rel_genomic"].notna().sum() == 100
    for col in ("rel_pedigree", "rel_genomic", "rel_final"):
        np.testing.assert_allclose(runs["apy"][col], runs["full"][col], rtol=1e-8,
                                   atol=1e-10, err_msg=col)
    # the ssGBLUP solve needs the dense G*⁻¹: refused before any genomic work
    with pytest.raises(InputError, match="ssGBLUP solve .* needs the full G"):
        run_pipeline(load_config(with_model, {"output.folder": str(tmp_path / "m"),
                                              "genomics.inverse": "apy"}), progress=False)
