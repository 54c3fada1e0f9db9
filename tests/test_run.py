"""bigeval run: configuration, stages, checkpoints, resume after crashes, manifest.

The population is a small simulated one (tests/_runkit.py); the reference run is made once.
Crashes are real: a subprocess runs ``bigeval run`` with ``BIGEVAL_TEST_KILL_AT`` and kills
itself with SIGKILL at a point inside a stage; the rerun must give the same bytes as the
reference run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _runkit
from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.writers import output_lock
from bigeval.pipeline import config_from_dict, load_config, run_pipeline, template
from bigeval.pipeline.config import SCHEMA, cli_table, dump_config, parse_override
from bigeval.pipeline.runner import STAGE_NAMES

pytestmark = pytest.mark.filterwarnings(_runkit.EXACT_BELOW_ZERO)

REPO = Path(__file__).resolve().parents[1]
ALL = list(STAGE_NAMES)


def _run(config, out, **kw):
    overrides = {"output.folder": str(out), **kw.pop("overrides", {})}
    return run_pipeline(load_config(config, overrides), progress=False, **kw)


def _manifest(out) -> dict:
    return json.loads((Path(out) / "manifest.json").read_text())


# ---------------------------------------------------------------------------------------------
# configuration


def test_config__template_loads_and_round_trips(tmp_path):
    (tmp_path / "c.toml").write_text(template())
    cfg = load_config(tmp_path / "c.toml")
    assert cfg["inputs.pedigree"] == tmp_path / "pedigree.txt"
    assert cfg.alpha() == pytest.approx((1 - 0.40) / 0.25)
    assert not cfg.has_model and not cfg.has_genomics
    # every key of the schema is in the template (set or commented out)
    text = template()
    for k in SCHEMA:
        assert f"{k.name} = " in text, k.dotted
    # a full configuration: dump, load, same values
    raw = {"inputs": {"pedigree": "p.txt", "records": "r.txt", "genotypes": "g.zarr",
                      "birth_year_column": 4, "sex_column": "sex"},
           "parameters": {"h2": 0.3, "repeatability": 0.5, "tau": 2.5, "rounds": 50,
                          "tol": 1e-7, "sib_adjust": True},
           "genomics": {"blend": 0.1, "chunks": [64, 128], "qc": False},
           "model": {"trait": "y", "factors": ["cg", 4], "pe": True},
           "exact": {"check": False}, "cluster": {"scheduler": "tcp://127.0.0.1:8786"},
           "output": {"folder": "out", "progress": True}, "report": {"title": "t"},
           "sample": {"herds": 3, "seed": 9}}
    (tmp_path / "full.toml").write_text(dump_config(raw))
    a = load_config(tmp_path / "full.toml")
    (tmp_path / "again.toml").write_text(dump_config(a.to_dict()))
    b = load_config(tmp_path / "again.toml")
    assert a.values == b.values and a.sections == b.sections
    assert a["model.factors"] == ["cg", 4] and a["genomics.chunks"] == [64, 128]
    assert a.out == tmp_path / "out"


@pytest.mark.parametrize("text, key, line, words", [
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[paramters]\nh2 = 0.3\n", None, 4,
     "unknown section"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\nrepeat = 0.4\n",
     None, 6, "did you mean repeatability"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = '0.3'\n", None, 5,
     "wrong type"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 1.3\n", None, 5,
     "heritability"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\nrepeatability = 0.2\n",
     None, 6, "repeatability"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\nalpha = 2.0\n",
     None, 6, "not both"),
    ("[inputs]\npedigree = 'p'\n[parameters]\nh2 = 0.3\n", None, None, "inputs.records"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\nginv = 'g'\n[parameters]\nh2 = 0.3\n", None, 4,
     "together"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\ngenotypes = 'g.zarr'\nginv = 'g'\n"
     "a22inv = 'a'\ngenotyped = 'l'\n[parameters]\nh2 = 0.3\n", None, 5, "one source"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\n[cluster]\n"
     "scheduler = 'slurm'\n", None, 7, "unknown scheduler"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\n[model]\n", None, None,
     "trait"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\n[model]\ntrait = 3\n"
     "relationship = 'H'\n", None, 8, "needs genomic"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters]\nh2 = 0.3\n[genomics]\n"
     "blend = 1.5\n", None, 7, "outside [0, 1]"),
    ("[inputs]\npedigree = 'p'\nrecords = 'r'\n[parameters\nh2 = 0.3\n", None, 4,
     "not valid TOML"),
])
def test_config__errors_name_file_line_and_remedy(tmp_path, text, key, line, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_config(path)
    assert words in str(e.value)
    assert e.value.file == str(path.resolve()) or e.value.file == str(path)
    assert e.value.line == line


def test_config__overrides_and_replace(pop_config):
    assert parse_override("parameters.tol=1e-5") == ("parameters.tol", 1e-5)
    assert parse_override("genomics.qc=false") == ("genomics.qc", False)
    cfg = load_config(pop_config, {"parameters.h2": 0.3})
    assert cfg["parameters.h2"] == 0.3
    assert cfg.replace(**{"parameters.rounds": 7})["parameters.rounds"] == 7
    with pytest.raises(InputError, match="unknown key"):
        load_config(pop_config, {"parameters.heritability": 0.3})
    with pytest.raises(InputError, match="unknown configuration key"):
        cfg.replace(**{"parameters.x": 1})


def _options_of(parser, path):
    """Long options of a subcommand (``path`` like ["genotypes", "import"]); ``--no-x`` of a
    boolean option counts as ``--x``."""
    import argparse

    p = parser
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return {o.replace("--no-", "--") for a in p._actions for o in a.option_strings
            if o.startswith("--")} - {"--help"}


def test_config__every_cli_option_maps_to_a_key():
    """The table of options and keys names real options and real keys, and covers every
    option of reliability, grm, genotypes import, run and sample."""
    from bigeval.cli import build_parser
    from bigeval.pipeline.config import CLI_ONLY

    parser = build_parser()
    keys = {k.dotted for k in SCHEMA}
    table = cli_table()
    mapped: dict[str, set] = {}
    for opt, key in table:
        assert key in keys
        command, flag = opt.replace("--no-", "--").rsplit(" ", 1)
        mapped.setdefault(command, set()).add(flag)
        if flag.startswith("--"):
            assert flag in _options_of(parser, command.split()), opt
    for opt in CLI_ONLY:
        command, flag = opt.rsplit(" ", 1)
        mapped.setdefault(command, set()).add(flag)
        assert flag in _options_of(parser, command.split()), opt
    for command in ("reliability", "grm", "genotypes import", "run", "sample"):
        missing = _options_of(parser, command.split()) - mapped.get(command, set())
        assert not missing, f"options of `bigeval {command}` without a config key: {missing}"


# ---------------------------------------------------------------------------------------------
# a complete run


def test_run__outputs_and_manifest(ref, pop_config):
    table = pd.read_csv(ref / "reliability.csv", dtype={"animal": str, "sex": str})
    ped = pd.read_csv(ref.parent / "pop" / "data" / "pedigree.txt", sep=" ", header=None,
                      dtype=str)
    assert set(table["animal"]) == set(ped[0]) | set(ped[1]) - {"0"} | set(ped[2]) - {"0"}
    assert list(table.columns[:4]) == ["animal", "birth_year", "sex", "genotyped"]
    for c in ("erc_records", "erc_pedigree", "rel_pedigree", "rel_genomic", "erc_final",
              "rel_final", "rel_exact", "ebv", "pev"):
        assert c in table.columns
    assert table["genotyped"].sum() == 100 == table["rel_genomic"].notna().sum()
    assert table["ebv"].notna().all()
    by = ped.set_index(0)[3].astype(int)
    t = table.set_index("animal")
    assert (t.loc[by.index, "birth_year"] == by).all()  # birth years joined by ID
    parquet = pd.read_parquet(ref / "reliability.parquet")
    assert parquet["animal"].tolist() == table["animal"].tolist()
    np.testing.assert_allclose(parquet["rel_final"], table["rel_final"], rtol=1e-9)
    m = _manifest(ref)
    assert m["status"] == "finished"
    assert [s["name"] for s in m["stages"]] == ALL
    assert all(s["status"] == "executed" and s["seconds"] >= 0 and s["peak_rss_mb"] > 0
               for s in m["stages"])
    for pkg in ("bigeval", "numpy", "scipy", "dask", "zarr", "pandas"):
        assert m["versions"][pkg]
    assert set(m["inputs"]) == {"pedigree", "records", "genotypes", "interbull"}
    assert all(len(v["hash"]) >= 64 for v in m["inputs"].values())
    assert m["parameters"]["alpha"] == pytest.approx(2.4)
    summary = (ref / "summary.txt").read_text()
    assert "Part I vs exact PBLUP" in summary and "Part III vs exact ssGBLUP" in summary


def test_run__equals_the_separate_commands(ref, pop_config, tmp_path):
    """The run's reliabilities are those of `bigeval reliability --genotypes` on the same
    files."""
    from bigeval.cli import main
    from bigeval.errors import BigevalWarning

    data = pop_config.parent / "data"
    common = ["reliability", "--pedigree", str(data / "pedigree.txt"), "--records",
              str(data / "records.txt"), "--h2", "0.25", "--repeatability", "0.4", "--tau", "4",
              "--interbull", str(data / "interbull.txt"), "--no-progress"]
    with warnings.catch_warnings():  # 17 single-record groups: not the subject here
        warnings.simplefilter("ignore", BigevalWarning)
        assert main([*common, "--genotypes", str(data / "genotypes.zarr"), "--out",
                     str(tmp_path / "rel")]) == 0
    _compare(tmp_path / "rel", ref)


@pytest.mark.slow
def test_run__without_qc_equals_the_chain_of_programs(pop_config, tmp_path):
    """Without QC: `bigeval grm --no-qc --tune --blend 0.05 --triplets`, then `bigeval
    reliability --ginv --a22inv` (the BLUPF90-style chain of programs) gives the run's values."""
    from bigeval.cli import main
    from bigeval.errors import BigevalWarning

    data = pop_config.parent / "data"
    common = ["reliability", "--pedigree", str(data / "pedigree.txt"), "--records",
              str(data / "records.txt"), "--h2", "0.25", "--repeatability", "0.4", "--tau", "4",
              "--interbull", str(data / "interbull.txt"), "--no-progress"]
    out = tmp_path / "run-noqc"
    with warnings.catch_warnings():  # without QC an animal's G*_ii > 1 with no information
        warnings.simplefilter("ignore", BigevalWarning)
        _run(pop_config, out, overrides={"genomics.qc": False})
    assert main(["grm", "--genotypes", str(data / "genotypes.zarr"), "--pedigree",
                 str(data / "pedigree.txt"), "--tune", "--blend", "0.05", "--triplets",
                 "--no-qc", "--out", str(tmp_path / "grm")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BigevalWarning)
        assert main([*common, "--genotyped", str(data / "genotyped.txt"), "--ginv",
                     str(tmp_path / "grm" / "Ginv.txt"), "--a22inv",
                     str(tmp_path / "grm" / "A22inv.txt"), "--out", str(tmp_path / "rel2")]) == 0
    _compare(tmp_path / "rel2", out)


def _compare(cli_out, run_out):
    a = pd.read_csv(cli_out / "reliability.csv", dtype={"animal": str}).set_index("animal")
    b = pd.read_csv(run_out / "reliability.csv", dtype={"animal": str}).set_index("animal")
    b = b.loc[a.index]  # join by ID
    for c in ("erc_records", "erc_pedigree", "rel_pedigree", "rel_genomic", "erc_final",
              "rel_final"):
        np.testing.assert_allclose(b[c], a[c], rtol=1e-9, atol=1e-12, err_msg=c)


def test_run__rerun_reuses_every_stage(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    before = {n: (out / n).read_bytes() for n in _runkit.FINAL}
    res = _run(pop_config, out)
    assert res.executed == [] and res.skipped == ALL
    assert {n: (out / n).read_bytes() for n in _runkit.FINAL} == before
    assert _manifest(out)["status"] == "finished"


def test_run__until_validate_checks_inputs_only(pop_config, tmp_path):
    res = _run(pop_config, tmp_path / "out", until="validate")
    assert res.executed == ["validate"] and res.report is None
    v = json.loads((tmp_path / "out" / "stages" / "validate" / "validation.json").read_text())
    assert v["genotyped"] == 100 and v["snps"] == 2000
    assert not (tmp_path / "out" / "reliability.csv").exists()


def test_run__missing_input_names_file_and_config_line(pop_config, tmp_path):
    cfg = tmp_path / "c.toml"
    text = pop_config.read_text().replace('"data/interbull.txt"', '"data/nothere.txt"')
    cfg.write_text(text.replace('"data/', f'"{pop_config.parent}/data/'))
    with pytest.raises(InputError) as e:
        _run(cfg, tmp_path / "out")
    assert "interbull input does not exist" in str(e.value)
    assert "nothere.txt" in str(e.value) and "line 5" in str(e.value)
    assert _manifest(tmp_path / "out")["status"] == "failed"


def test_run__output_folder_is_locked_while_running(pop_config, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out):  # e.g. a `bigeval reliability` writing the same folder
        with pytest.raises(InputError, match="another bigeval run"):
            _run(pop_config, out)


@pytest.mark.filterwarnings("ignore:.*hold a single record:bigeval.BigevalWarning")
def test_reliability__takes_the_same_lock_as_run(pop_config, tmp_path, capsys):
    cfg = load_config(pop_config)
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out):  # a `bigeval run` writing this folder
        rc = main(["reliability", "--pedigree", str(cfg["inputs.pedigree"]), "--records",
                   str(cfg["inputs.records"]), "--h2", "0.3", "--out", str(out)])
    assert rc == 2 and "another bigeval run" in capsys.readouterr().err
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# changes re-run exactly the stages they affect


@pytest.mark.parametrize("overrides, executed", [
    ({"parameters.h2": 0.30}, ["solve", "reliabilities", "report"]),
    ({"inputs.genotypes": "data/genotypes_v2.zarr"},
     ["validate", "relationships", "solve", "reliabilities", "report"]),
    ({"report.title": "another title"}, ["report"]),
])
def test_run__config_change_reruns_exactly_the_affected_stages(ref, pop_config, tmp_path,
                                                               overrides, executed):
    out = _runkit.copy_run(ref, tmp_path / "out")
    over = {k: (str(pop_config.parent / v) if k == "inputs.genotypes" else v)
            for k, v in overrides.items()}
    res = _run(pop_config, out, overrides=over)
    assert res.executed == executed
    assert res.skipped == [s for s in ALL if s not in executed]
    m = _manifest(out)
    assert all(s["reason"] == "inputs or parameters changed" for s in m["stages"]
               if s["status"] == "executed")
    # the values used over the file's are recorded beside the results they produced
    published = json.loads((out / "published.json").read_text())
    assert published["overrides"] == m["overrides"] and m["overrides"].items() >= over.items()


def test_run__exact_check_auto_stops_at_max_genotyped(ref, pop_config, tmp_path):
    # check = auto: the single-step check (and the solve's PEVs) only up to
    # exact.max_genotyped genotyped animals; both stages that read it run again
    out = _runkit.copy_run(ref, tmp_path / "out")
    res = _run(pop_config, out, overrides={"exact.max_genotyped": 1})
    assert res.executed == ["solve", "reliabilities", "report"]
    assert "exact check not run" in (out / "summary.txt").read_text()
    table = pd.read_csv(out / "reliability.csv")
    for col in ("pev", "rel_exact"):  # not computed: not written (or empty)
        assert col not in table or table[col].isna().all()
    assert "rel_exact" in pd.read_csv(ref / "reliability.csv")  # the full run had them
    assert "max_genotyped = 1" in (out / "report.html").read_text()


@pytest.mark.slow
def test_run__genomics_change_reruns_relationships_and_what_follows(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    res = _run(pop_config, out, overrides={"genomics.blend": 0.10})
    assert res.executed == ["relationships", "solve", "reliabilities", "report"]


def test_run__changed_input_content_is_detected_by_hash(ref, pop_config, tmp_path):
    """Same path, new content (one record's group changed): prepare and what follows re-run."""
    work = tmp_path / "pop"
    shutil.copytree(pop_config.parent, work)
    out = _runkit.copy_run(ref, tmp_path / "out")
    rec = (work / "data" / "records.txt").read_text().splitlines()
    first = rec[0].split()
    rec[0] = " ".join([first[0], first[1] + "X", *first[2:]])
    (work / "data" / "records.txt").write_text("\n".join(rec) + "\n")
    res = _run(work / "config.toml", out)
    # G and the MME's relationships read only the pedigree part of prepare's outputs
    assert res.executed == ["validate", "prepare", "solve", "reliabilities", "report"]
    assert res.skipped == ["relationships"]


# ---------------------------------------------------------------------------------------------
# crashes and corruption


def _killed_run(config: Path, out: Path, at: str | None) -> subprocess.CompletedProcess:
    """``bigeval run`` in a fresh process, killed at ``at`` (None: not killed).

    Results are compared byte for byte, so the reference run must be made in the same kind
    of process: LAPACK and the numba kernels give the same bits for the same thread counts,
    and a test process may have had its thread settings changed by earlier tests."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BIGEVAL_TEST_KILL_AT", None)
    if at is not None:
        env["BIGEVAL_TEST_KILL_AT"] = at
    return subprocess.run([sys.executable, "-m", "bigeval.cli", "run", str(config), "--out",
                           str(out), "--no-progress"], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def clean_ref(base, pop_config):
    """An uninterrupted run in a fresh process (the reference of the kill tests)."""
    out = base / "clean-reference"
    if not (out / "report.html").exists():
        proc = _killed_run(pop_config, out, None)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return out


CRASHES = [("validate", "mid"), ("prepare", "sealed"), ("relationships", "mid"),
           ("solve", "written"), ("reliabilities", "committed"), ("report", "publish")]


def test_run__sigkill_in_every_stage_in_turn_then_identical_results(clean_ref, pop_config,
                                                                    tmp_path):
    """One output folder, one run after another, each killed (SIGKILL) inside the next stage:
    every run resumes what the killed one left, and the last one, uninterrupted, gives the
    bytes of an uninterrupted run."""
    clean = clean_ref
    out = tmp_path / "out"
    for k, (stage, point) in enumerate(CRASHES):
        proc = _killed_run(pop_config, out, f"{stage}:{point}")
        assert proc.returncode == -signal.SIGKILL, (stage, proc.stderr[-2000:])
        m = _manifest(out)
        assert m["status"] == "running"  # killed: no clean-up ran
        done = [s["name"] for s in m["stages"]]
        assert done == ALL[:k + (point == "publish")], (stage, done)
        committed = (out / "stages" / stage / "stage.json").exists()
        assert committed == (point in ("committed", "publish")), stage
    res = _run(pop_config, out)
    assert res.executed == [] and res.skipped == ALL  # the last kill was after the report
    assert _runkit.same_bytes(clean, out) == []
    for name in ("reliability.parquet", "convergence.parquet", "exact.parquet"):
        a = clean / "stages" / "reliabilities" / name
        assert a.read_bytes() == (out / "stages" / "reliabilities" / name).read_bytes()
    assert not list((out / "stages").glob(".*.tmp")) and not list(out.glob(".*.tmp"))


def _kill_then_resume(clean_ref, pop_config, tmp_path, stage, at):
    done = ALL[:ALL.index(stage)]
    out = _runkit.copy_run(clean_ref, tmp_path / "out", stages=done)
    proc = _killed_run(pop_config, out, f"{stage}:{at}")
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr[-2000:]
    killed = proc.returncode == -signal.SIGKILL
    if killed:
        assert _manifest(out)["status"] == "running"  # no clean-up ran
    proc = _killed_run(pop_config, out, None)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _runkit.same_bytes(clean_ref, out) == []
    for name in ("reliability.parquet", "convergence.parquet", "exact.parquet"):
        a = clean_ref / "stages" / "reliabilities" / name
        assert a.read_bytes() == (out / "stages" / "reliabilities" / name).read_bytes()
    assert not list((out / "stages").glob(".*.tmp")) and not list(out.glob(".*.tmp"))
    return _manifest(out), killed


@pytest.mark.slow
@pytest.mark.parametrize("stage, point", CRASHES, ids=[f"{s}-{p}" for s, p in CRASHES])
def test_run__sigkill_in_each_stage_then_rerun_gives_identical_results(
        clean_ref, pop_config, tmp_path, stage, point):
    m, killed = _kill_then_resume(clean_ref, pop_config, tmp_path, stage, point)
    assert killed
    reused = ALL[:ALL.index(stage)] + ([stage] if point in ("committed", "publish") else [])
    assert [s["name"] for s in m["stages"] if s["status"] == "skipped"] == reused


@pytest.mark.slow
@pytest.mark.parametrize("stage", ALL)
@pytest.mark.parametrize("point", ["start", "mid", "written", "sealed", "committed",
                                   "after:0.05", "after:0.3", "after:1.5"])
def test_run__sigkill_anywhere_then_rerun_gives_identical_results(
        clean_ref, pop_config, tmp_path, stage, point):
    _kill_then_resume(clean_ref, pop_config, tmp_path, stage, point)


@pytest.mark.parametrize("stage, name", [("relationships", "Ginv.h5"),
                                         ("reliabilities", "reliability.parquet"),
                                         ("prepare", "animals.parquet")])
def test_run__truncated_checkpoint_is_detected_and_recomputed(ref, pop_config, tmp_path,
                                                              stage, name):
    out = _runkit.copy_run(ref, tmp_path / "out")
    path = out / "stages" / stage / name
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    res = _run(pop_config, out)
    assert stage in res.executed
    m = {s["name"]: s for s in _manifest(out)["stages"]}
    assert m[stage]["reason"] == f"checkpoint file {name} is corrupted (hash mismatch)"
    assert path.stat().st_size == size
    assert _runkit.same_bytes(ref, out) == []


def test_run__damaged_published_file_is_restored_from_the_checkpoint(ref, pop_config,
                                                                     tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    with open(out / "reliability.csv", "r+b") as fh:
        fh.truncate(100)
    (out / "summary.txt").unlink()
    res = _run(pop_config, out)
    assert res.executed == []
    assert _runkit.same_bytes(ref, out) == []


def test_run__missing_sidecar_or_debris(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    (out / "stages" / "solve" / "stage.json").unlink()
    (out / "stages" / ".reliabilities.x.tmp").mkdir()
    res = _run(pop_config, out)
    assert res.executed[0] == "solve"
    assert not (out / "stages" / ".reliabilities.x.tmp").exists()
    assert _runkit.same_bytes(ref, out) == []


def test_run__removing_the_model_removes_the_solve_stage(ref, pop_config, tmp_path):
    out = _runkit.copy_run(ref, tmp_path / "out")
    cfg = tmp_path / "c.toml"
    text = pop_config.read_text().replace("[model]\ntrait = 3\n", "")
    cfg.write_text(text.replace('"data/', f'"{pop_config.parent}/data/'))
    res = _run(cfg, out)
    assert res.executed == ["validate", "report"]  # validate checked the model's columns
    assert not (out / "stages" / "solve").exists()
    assert "ebv" not in pd.read_csv(out / "reliability.csv", nrows=1).columns


def test_run__without_genomics_or_model(pop_config, tmp_path):
    cfg = config_from_dict({
        "inputs": {"pedigree": str(pop_config.parent / "data" / "pedigree.txt"),
                   "records": str(pop_config.parent / "data" / "records.txt")},
        "parameters": {"alpha": 3.0}, "exact": {"check": False},
        "output": {"folder": str(tmp_path / "out")}})
    res = run_pipeline(cfg, progress=False)
    assert res.executed == ["validate", "prepare", "reliabilities", "report"]
    t = pd.read_csv(tmp_path / "out" / "reliability.csv")
    assert not t["genotyped"].any() and t["birth_year"].isna().all()
    assert (tmp_path / "out" / "report.html").stat().st_size > 10_000


@pytest.mark.slow
def test_run__local_cluster_equals_threads(ref, pop_config, tmp_path):
    """A local cluster builds G by tiles (bigeval.genomic.grm), the threaded run by panels: the two
    sum in different orders, so the full-precision Parquet equals to rounding, and every
    written figure (CSV, exact check, summary) byte for byte."""
    out = tmp_path / "out"
    _run(pop_config, out, overrides={"cluster.scheduler": "local-cluster",
                                     "cluster.workers": 2})
    assert _runkit.same_bytes(ref, out, names=("reliability.csv", "exact_check.csv",
                                               "summary.txt")) == []
    a = pd.read_parquet(ref / "reliability.parquet")
    b = pd.read_parquet(out / "reliability.parquet")
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        if a[c].dtype.kind == "f":
            np.testing.assert_allclose(b[c], a[c], rtol=1e-12, atol=1e-12, err_msg=c)
        else:
            assert a[c].equals(b[c]), c


# ---------------------------------------------------------------------------------------------
# the example config and the README


def test_run__mrode_example_config_gives_the_book_values(tmp_path):
    """examples/config-mrode-ex3.1.toml: Mrode (2014) Example 3.1, EBVs and exact
    reliabilities as published (3rd ed., Example 3.1 and §3.3)."""
    out = tmp_path / "out"
    res = _run(REPO / "examples" / "config-mrode-ex3.1.toml", out)
    assert res.executed == ["validate", "prepare", "solve", "reliabilities", "report"]
    t = pd.read_csv(out / "reliability.csv").set_index("animal").loc[range(1, 9)]
    ebv = [0.098, -0.019, -0.041, -0.009, -0.186, 0.177, -0.249, 0.183]  # Mrode 3rd ed. 3.1
    rel = [0.058, 0.016, 0.088, 0.144, 0.144, 0.116, 0.116, 0.156]  # §3.3
    np.testing.assert_allclose(t["ebv"], ebv, atol=1e-3)
    np.testing.assert_allclose(t["rel_exact"], rel, atol=1.5e-3)


def test_readme__has_the_current_config_reference():
    from bigeval.pipeline.config import reference_markdown

    readme = (REPO / "README.md").read_text()
    missing = [row for row in reference_markdown().splitlines() if row not in readme]
    assert not missing, "README's configuration reference is out of date: " + missing[0]


@pytest.mark.parametrize("damaged", ['[1, 2, 3]', '{"x": 5}', '{"/a": [[1, 2], "h"]}', '"s"'])
def test_input_hasher__cache_of_the_wrong_shape_is_not_trusted(tmp_path, damaged):
    from bigeval.pipeline.checkpoint import InputHasher, hash_file

    data = tmp_path / "ped.txt"
    data.write_text("a 0 0\n")
    cache = tmp_path / "input-hashes.json"
    cache.write_text(damaged)
    hasher = InputHasher(cache)
    assert hasher(data) == hash_file(data)  # hashed again, no crash
    hasher.save()
    assert str(data.resolve()) in json.loads(cache.read_text())


def test_pedigree_extra__birth_column_mixing_years_and_dates(tmp_path):
    from bigeval.pipeline.config import config_from_dict
    from bigeval.pipeline.inputs import pedigree_extra

    ped = tmp_path / "ped.txt"
    ped.write_text("a 0 0 2019\nb 0 0 2020-03-01\nc a b 20210415\nd a b 0\n")
    cfg = config_from_dict({"inputs": {"pedigree": str(ped), "records": str(ped),
                                       "birth_year_column": 4}, "parameters": {"h2": 0.3}})
    got = pedigree_extra(cfg, np.array(["a", "b", "c", "d"], dtype=object))
    assert got["birth_year"].tolist()[:3] == [2019, 2020, 2021]  # no date lost
    assert got["birth_year"].isna().tolist() == [False, False, False, True]
    ped.write_text("a 0 0 2019\nb 0 0 H12\n")
    with pytest.raises(InputError, match="neither a year nor a date") as info:
        pedigree_extra(cfg, np.array(["a", "b"], dtype=object))
    assert info.value.line == 2 and info.value.value == "H12"
