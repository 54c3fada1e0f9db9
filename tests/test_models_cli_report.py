"""The model commands through the CLI: what they print, the run's configuration, BLUPF90
files (column numbers, no header), pedigree header synonyms, genotypes in every format,
unsupported models, ID order."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bigeval.cli import build_parser, main

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parents[1] / "examples"
TUTORIAL = DATA / "blupf90-tutorial"
SSGWAS = DATA / "ssgwas-lab"

# AIREMLF90 on the BLUPF90 tutorial's aireml1.txt (Y. Masuda, BLUPF90 tutorial, "Variance
# component estimation", single-trait analysis): G 38.538, R 62.691, printed to 3 decimals.
AIREMLF90 = {"sigma_a2": 38.538, "sigma_e2": 62.691}
PRINTED_3 = 5e-4  # half a unit of the 3rd decimal printed
# Mrode (2014), Example 3.1 (σa² 20, σe² 40): EBVs of animals 1-8, printed to 3 decimals.
MRODE_3_1 = [0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249, 0.183]

# aireml1.txt as a model file: OBSERVATION 9, WEIGHT 4, EFFECTS 6, 7, 8 cross and 1 animal;
# simped.txt has 3 columns, so add_animal builds A⁻¹ without inbreeding.
AIREML1 = f"""
[data]
file = "{TUTORIAL / 'simdata.txt.gz'}"
trait = 9
weights = 4
[fixed]
intercept = false
factors = [6, 7, 8]
[animal]
column = 1
pedigree = "{TUTORIAL / 'simped.txt.gz'}"
inbreeding = false
[variance]
sigma_a2 = 100.0
sigma_e2 = 100.0
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def shown(v: float) -> str:
    """A number as the commands print it (5 significant digits)."""
    return f"{v:.5g}"


def test_reml__blupf90_aireml1_by_column_number_prints_what_it_did(tmp_path, capsys):
    cfg = write(tmp_path / "aireml1.toml", AIREML1)
    out = tmp_path / "out"
    assert main(["reml", str(cfg), "--out", str(out)]) == 0
    cap = capsys.readouterr()
    v = pd.read_csv(out / "variances.csv").set_index("component")
    for k, published in AIREMLF90.items():
        assert abs(v.loc[k, "estimate"] - published) < PRINTED_3
    log = pd.read_csv(out / "reml_log.csv")
    # the summary (stdout): model, estimates with SEs and h², convergence, files
    assert "model: 9 = 6 (155 levels) + 7 (2 levels) + 8 (11 levels) + animal (pedigree A, " \
           "without inbreeding: 4,641 animals" in cap.out
    assert "4,641 records, 4,807 equations (166 fixed, 4,641 animal)" in cap.out
    assert f"AI-REML converged in {len(log)} rounds" in cap.out
    est = (f"σa² {shown(v.loc['sigma_a2', 'estimate'])} (SE {shown(v.loc['sigma_a2', 'se'])}), "
           f"σe² {shown(v.loc['sigma_e2', 'estimate'])} (SE {shown(v.loc['sigma_e2', 'se'])}); "
           f"h² {shown(v.loc['h2', 'estimate'])} (SE {shown(v.loc['h2', 'se'])})")
    assert est in cap.out
    assert f"{out / 'variances.csv'} (4 rows)" in cap.out
    assert f"{out / 'reml_log.csv'} ({len(log)} rows)" in cap.out
    # progress (stderr): one line per round with its log-likelihood
    rounds = re.findall(r"round (\d+) \((EM|AI)\): log L (-?[\d.]+)", cap.err)
    assert [int(r[0]) for r in rounds] == log["iteration"].tolist()
    assert rounds[0][1] == "EM"
    np.testing.assert_allclose([float(r[2]) for r in rounds], log["loglik"], atol=5e-5)


def test_reml__no_progress_keeps_the_summary(tmp_path, capsys):
    cfg = write(tmp_path / "m.toml", (EXAMPLES / "reml.toml").read_text().replace(
        '"gryphon/', f'"{EXAMPLES}/gryphon/'))
    assert main(["reml", str(cfg), "--out", str(tmp_path / "o"), "--method", "em",
                 "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "round" not in cap.err and "EM-REML converged" in cap.out
    assert "estimates: σa² " in cap.out


def test_solve__headerless_file_named_columns_is_a_clear_error(tmp_path, capsys):
    cfg = write(tmp_path / "m.toml", AIREML1.replace("trait = 9", 'trait = "obs1"'))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "has no header line" in err and "column number 1-12" in err
    assert "1.00" not in err  # not the first line's values as the column names


def test_solve__column_numbers_with_a_header_line(tmp_path):
    """Numbers name the columns of a file with a header too (ex3_1_data.csv: animal, sex,
    wwg_kg), with the same solutions as the names."""
    named = EXAMPLES / "pblup.toml"
    text = named.read_text().replace('"ex3_1', f'"{EXAMPLES}/ex3_1')
    numbered = text.replace('trait = "wwg_kg"', "trait = 3").replace(
        'factors = ["sex"]', "factors = [2]").replace('column = "animal"', "column = 1")
    for name, t in (("named", text), ("numbered", numbered)):
        assert main(["solve", str(write(tmp_path / f"{name}.toml", t)), "--out",
                     str(tmp_path / name), "--no-progress"]) == 0
    a = pd.read_csv(tmp_path / "named" / "animals.csv")
    b = pd.read_csv(tmp_path / "numbered" / "animals.csv")
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_allclose(a["ebv"], MRODE_3_1, atol=PRINTED_3)


@pytest.mark.parametrize("change,what", [
    (('trait = 9', 'trait = [9, 10]'), "2 traits given"),
    (('[variance]', '[random]\nmaternal = "dam"\n[variance]'), "maternal effects"),
    (('[variance]', '[random]\nherd = 6\n[variance]'), "a [random] section"),
    (('inbreeding = false', 'inbreeding = false\nmaternal = true'), "maternal effects")])
def test_model__unsupported_models_say_what_is_supported(tmp_path, capsys, change, what):
    cfg = write(tmp_path / "m.toml", AIREML1.replace(*change))
    assert main(["reml", str(cfg), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert what in err and "Traceback" not in err
    assert "one trait; fixed class effects and covariates; the animal effect" in err


def test_solve__pedigree_header_synonyms(tmp_path):
    """The gryphon pedigree as published ("id","father","mother"), and ID,SIRE,DAM: the same
    solutions as the pedigree with animal,sire,dam."""
    ped = pd.read_csv(DATA / "gryphon" / "gryphonped.csv", dtype=str)
    assert list(ped.columns) == ["id", "father", "mother"]
    upper = tmp_path / "upper.csv"
    ped.set_axis(["ID", "SIRE", "DAM"], axis=1).to_csv(upper, index=False)
    runs = {}
    for name, path in (("renamed", DATA / "models" / "gryphon" / "gryphonped.csv"),
                       ("published", DATA / "gryphon" / "gryphonped.csv"), ("upper", upper)):
        cfg = write(tmp_path / f"{name}.toml", f"""
[data]
file = "{DATA / 'gryphon' / 'gryphon.csv'}"
trait = "bwt"
[animal]
column = "animal"
pedigree = "{path}"
[variance]
sigma_a2 = 3.4
sigma_e2 = 3.8
""")
        assert main(["solve", str(cfg), "--out", str(tmp_path / name), "--no-progress",
                     "--no-se"]) == 0
        runs[name] = pd.read_csv(tmp_path / name / "animals.csv")
    assert len(runs["renamed"]) == len(ped)
    pd.testing.assert_frame_equal(runs["renamed"], runs["published"])
    pd.testing.assert_frame_equal(runs["renamed"], runs["upper"])


def _gblup_model(genotypes, extra: str = "") -> str:
    """A GBLUP model file on ssgwas-lab's first 200 records with ``genotypes``."""
    return f"""
[data]
file = "{SSGWAS / 'phenotypes_first200.txt'}"
trait = 3
[animal]
column = 2
relationship = "G"
genotypes = "{genotypes}"
{extra}[variance]
sigma_a2 = 0.3
sigma_e2 = 0.7
"""


def _gblup_oracle(marker: Path, records: pd.DataFrame, sa2, se2, ridge) -> pd.Series:
    """GBLUP EBVs by numpy from the BLUPF90 marker text: VanRaden G + ridge, dense MME."""
    lines = [ln.split() for ln in marker.read_text().splitlines()]
    ids = [a for a, _ in lines]
    M = np.array([[int(c) for c in g] for _, g in lines], dtype=float)
    p = M.mean(axis=0) / 2
    Z = M - 2 * p
    G = Z @ Z.T / (2 * (p * (1 - p)).sum()) + ridge * np.eye(len(ids))
    pos = pd.Index(ids).get_indexer(records["animal"])
    n, q = len(records), len(ids)
    W = np.zeros((n, 1 + q))
    W[:, 0] = 1
    W[np.arange(n), 1 + pos] = 1
    lhs = W.T @ W / se2
    lhs[1:, 1:] += np.linalg.inv(G) / sa2
    x = np.linalg.solve(lhs, W.T @ records["y"].to_numpy() / se2)
    return pd.Series(x[1:], index=ids)


def test_solve__genotypes_marker_file_store_and_csv_agree(tmp_path, capsys):
    """GBLUP on ssgwas-lab (200 genotyped animals × 3 000 SNPs): the BLUPF90 marker file, the
    store `bigeval genotypes import` makes of it and a CSV give the same EBVs, those of a
    numpy GBLUP."""
    marker = SSGWAS / "marker_first200.txt"
    store = tmp_path / "geno.zarr"
    assert main(["genotypes", "import", str(marker), "--out", str(store)]) == 0
    X = np.array([[int(c) for c in g] for _, g in
                  (ln.split() for ln in marker.read_text().splitlines())])
    ids = [ln.split()[0] for ln in marker.read_text().splitlines()]
    csv = tmp_path / "geno.csv"
    pd.DataFrame(X, columns=[f"snp{j + 1}" for j in range(X.shape[1])]).assign(
        animal=ids)[["animal"] + [f"snp{j + 1}" for j in range(X.shape[1])]].to_csv(
        csv, index=False)
    capsys.readouterr()
    ebv = {}
    for name, path in (("marker", marker), ("store", store), ("csv", csv)):
        cfg = write(tmp_path / f"{name}.toml", _gblup_model(path, "g_ridge = 0.01\n"))
        assert main(["solve", str(cfg), "--out", str(tmp_path / name), "--no-se"]) == 0
        out = capsys.readouterr().out
        assert "animal (genomic G: 200 animals, 200 with records)" in out
        ebv[name] = pd.read_csv(tmp_path / name / "animals.csv", dtype={"animal": str})
    pd.testing.assert_frame_equal(ebv["marker"], ebv["store"])
    pd.testing.assert_frame_equal(ebv["marker"], ebv["csv"])
    rec = pd.read_csv(SSGWAS / "phenotypes_first200.txt", sep=r"\s+", header=None,
                      dtype={1: str}).rename(columns={1: "animal", 2: "y"})
    oracle = _gblup_oracle(marker, rec, 0.3, 0.7, 0.01)
    a = ebv["marker"].set_index("animal")["ebv"]
    np.testing.assert_allclose(a.to_numpy(), oracle.loc[a.index].to_numpy(), rtol=1e-8,
                               atol=1e-10)


def test_solve__genotypes_folder_not_a_store_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "geno.zarr").mkdir()
    cfg = write(tmp_path / "m.toml", _gblup_model("geno.zarr"))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "not a genotype store" in err and "Traceback" not in err


def test_solve_and_reml__accept_the_run_configuration(tmp_path, capsys):
    run_cfg = tmp_path / "config.toml"
    shutil.copytree(EXAMPLES / "mrode-ex3.1", tmp_path / "mrode-ex3.1")
    shutil.copy(EXAMPLES / "config-mrode-ex3.1.toml", run_cfg)
    assert main(["solve", str(run_cfg), "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    cfg = tomllib.loads(run_cfg.read_text())["model"]
    assert "run configuration" in out
    assert (f"variances used: σa² {shown(cfg['sigma_a2'])}, σe² {shown(cfg['sigma_e2'])}"
            in out)
    a = pd.read_csv(tmp_path / "s" / "animals.csv")
    np.testing.assert_allclose(a["ebv"], MRODE_3_1, atol=PRINTED_3)  # = Mrode Ex 3.1
    rc = main(["reml", str(run_cfg), "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0 and "AI-REML from σa² 20, σe² 40 ([model] of the run configuration)" in out
    assert (tmp_path / "r" / "variances.csv").exists()


def test_reml__run_configuration_without_model_is_a_clear_error(tmp_path, capsys):
    shutil.copytree(EXAMPLES / "mrode-ex3.1", tmp_path / "mrode-ex3.1")
    text = (EXAMPLES / "config-mrode-ex3.1.toml").read_text()
    text = re.sub(r"\[model\][^\[]*", "", text)
    cfg = write(tmp_path / "config.toml", text)
    assert main(["reml", str(cfg), "--out", str(tmp_path / "r")]) == 1
    assert "has no [model] section" in capsys.readouterr().err


def test_solve__rows_in_numeric_id_order(tmp_path):
    cfg = write(tmp_path / "aireml1.toml", AIREML1.replace("100.0", "50.0"))
    assert main(["solve", str(cfg), "--out", str(tmp_path / "o"), "--no-progress",
                 "--no-se"]) == 0
    a = pd.read_csv(tmp_path / "o" / "animals.csv", dtype={"animal": str})
    assert a["animal"].tolist() == sorted(a["animal"], key=int)
    s = pd.read_csv(tmp_path / "o" / "solutions.csv", dtype={"level": str})
    farms = s.loc[s["effect"] == "6", "level"].tolist()
    assert len(farms) == 155 and farms == sorted(farms, key=int)


def test_cv__prints_each_fold_and_the_mean(tmp_path, capsys):
    cfg = write(tmp_path / "m.toml", (EXAMPLES / "pblup.toml").read_text().replace(
        '"ex3_1', f'"{EXAMPLES}/ex3_1'))
    assert main(["cv", str(cfg), "--out", str(tmp_path / "o"), "--folds", "2"]) == 0
    cap = capsys.readouterr()
    t = pd.read_csv(tmp_path / "o" / "cv.csv")
    assert len(re.findall(r"fold \d/2: ", cap.err)) == 2
    assert f"MSE {shown(t['mse'].mean())}" in cap.out


def test_reml__method_has_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["reml"].format_help()
    assert "average-information" in text and "EM-REML" in text


def test_run__summary_lists_the_variances_its_solve_used(tmp_path, capsys):
    shutil.copytree(EXAMPLES / "mrode-ex3.1", tmp_path / "mrode-ex3.1")
    text = (EXAMPLES / "config-mrode-ex3.1.toml").read_text()
    text = re.sub(r"\[exact\][^\[]*", "", text)  # no exact check: faster
    cfg = write(tmp_path / "config.toml", text)
    assert main(["run", str(cfg), "--no-progress"]) == 0
    model = tomllib.loads(text)["model"]
    used = f"solve: variances used σa² {model['sigma_a2']:.6g}, σe² {model['sigma_e2']:.6g}"
    assert used in capsys.readouterr().out
    folder = tmp_path / tomllib.loads(text)["output"]["folder"]
    assert used in (folder / "summary.txt").read_text()


@pytest.mark.parametrize("change,what", [
    (('trait = "wwg_kg"', 'trait = ["wwg_kg", "wwg_kg"]'), "2 traits given ([model] trait"),
    (("[model]", "[model]\nmaternal = true"), "maternal effects"),
    (("[model]", "[random]\nherd = 1\n[model]"), "a [random] section")])
def test_reml__run_configuration_unsupported_models_say_what_is_supported(tmp_path, capsys,
                                                                          change, what):
    shutil.copytree(EXAMPLES / "mrode-ex3.1", tmp_path / "mrode-ex3.1")
    text = (EXAMPLES / "config-mrode-ex3.1.toml").read_text()
    assert change[0] in text
    cfg = write(tmp_path / "config.toml", text.replace(*change))
    assert main(["reml", str(cfg), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert what in err and "the animal effect (relationship A, G or H)" in err
