"""Tests of bigeval.models.spec and bigeval.cli.models."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.cli import models as cli_models
from bigeval.errors import InputError
from bigeval.models.spec import ModelSpec, read_data

EXAMPLES = Path(__file__).parents[1] / "examples"


def parser():
    p = argparse.ArgumentParser()
    cli_models.register(p.add_subparsers(dest="command"))
    return p


@pytest.mark.parametrize("toml", ["anova", "ols", "pblup", "repeatability", "gblup",
                                  "ssgblup", "reml"])
def test_from_toml__examples_load(toml):
    spec = ModelSpec.from_toml(EXAMPLES / f"{toml}.toml")
    assert len(read_data(spec)) > 0


def test_spec__unknown_column(tmp_path):
    spec = ModelSpec(data=EXAMPLES / "ex3_1_data.csv", trait="wwg_kg", factors=("breed",))
    with pytest.raises(InputError, match="unknown column"):
        read_data(spec)


def test_spec__empty_level(tmp_path):
    (tmp_path / "d.csv").write_text("g,y\na,1\n,2\n")
    with pytest.raises(InputError, match="line 3"):
        read_data(ModelSpec(data=tmp_path / "d.csv", trait="y", factors=("g",)))


def test_spec__zero_variance_and_bad_relationship(tmp_path):
    with pytest.raises(InputError, match="positive"):
        ModelSpec(data="d.csv", trait="y", sigma_e2=0.0)
    with pytest.raises(InputError, match="relationship"):
        ModelSpec(data="d.csv", trait="y", animal="a", relationship="X")
    with pytest.raises(InputError, match="pedigree"):
        ModelSpec(data="d.csv", trait="y", animal="a", relationship="A")
    (tmp_path / "c.toml").write_text('[data]\nfile = "d.csv"\ntrait = "y"\nbogus = 1\n')
    with pytest.raises(InputError, match="unknown key"):
        ModelSpec.from_toml(tmp_path / "c.toml")


def test_read_data__whitespace_file(tmp_path):
    (tmp_path / "d.txt").write_text("g  y\na 1.5\nb 2\n")
    df = read_data(ModelSpec(data=tmp_path / "d.txt", trait="y", factors=("g",)))
    assert df["y"].tolist() == [1.5, 2.0]


@pytest.mark.parametrize("cmd,toml,files", [
    ("anova", "anova", ["anova.csv"]), ("ols", "ols", ["solutions.csv"]),
    ("solve", "pblup", ["solutions.csv", "animals.csv"]),
    ("solve", "ssgblup", ["solutions.csv", "animals.csv"]),
    ("cv", "pblup", ["cv.csv"])])
def test_cli__commands_write_outputs(tmp_path, cmd, toml, files):
    args = parser().parse_args([cmd, str(EXAMPLES / f"{toml}.toml"), "--out", str(tmp_path)]
                               + (["--folds", "2"] if cmd == "cv" else []))
    assert args.func(args) == 0
    for f in files:
        assert (tmp_path / f).exists()
    if toml == "pblup" and cmd == "solve":
        a = pd.read_csv(tmp_path / "animals.csv")
        assert list(a.columns) == ["animal", "ebv", "pev", "rel"]
        assert abs(a.loc[a.animal == 1, "ebv"].iat[0] - 0.098) < 5e-4
        s = pd.read_csv(tmp_path / "solutions.csv")
        assert list(s.columns) == ["effect", "level", "estimate", "se"]


def test_cli__reml(tmp_path):
    args = parser().parse_args(["reml", str(EXAMPLES / "reml.toml"), "--out", str(tmp_path)])
    assert args.func(args) == 0
    v = pd.read_csv(tmp_path / "variances.csv").set_index("component")
    assert np.isclose(v.loc["sigma_a2", "estimate"], 3.3954, atol=5e-4)


def test_cli__reml_em_tol_and_solver_options(tmp_path):
    args = parser().parse_args(["reml", str(EXAMPLES / "reml.toml"), "--out", str(tmp_path),
                                "--method", "ai", "--tol", "1e-12", "--maxiter", "50"])
    assert args.func(args) == 0
    v = pd.read_csv(tmp_path / "variances.csv").set_index("component")
    assert np.isclose(v.loc["sigma_a2", "estimate"], 3.395398, rtol=1e-5)  # ASReml-R
    args = parser().parse_args(["solve", str(EXAMPLES / "pblup.toml"), "--out",
                                str(tmp_path), "--solver", "pcg", "--no-se"])
    assert args.func(args) == 0
    a = pd.read_csv(tmp_path / "animals.csv")
    assert a["pev"].isna().all() and abs(a.loc[a.animal == 1, "ebv"].iat[0] - 0.098) < 5e-4


def test_cli__bad_config_exit_code(tmp_path, capsys):
    args = parser().parse_args(["solve", str(tmp_path / "none.toml"), "--out", str(tmp_path)])
    assert args.func(args) == 1
    assert "not found" in capsys.readouterr().err
