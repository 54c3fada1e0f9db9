"""Outputs never touch inputs: every command refuses an output that is, lies inside or holds
one of its inputs, before it writes anything, and names both (issue "Nothing lost")."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

import _runkit
from bigeval.cli import main
from bigeval.errors import InputError
from bigeval.io.writers import refuse_overwriting_inputs
from bigeval.pipeline import load_config
from bigeval.sample import draw_sample

pytestmark = pytest.mark.filterwarnings(_runkit.EXACT_BELOW_ZERO)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def test_refuse__equal_inside_holding_and_through_links(tmp_path):
    (tmp_path / "data").mkdir()
    ped = tmp_path / "data" / "ped.txt"
    ped.write_text("a 0 0\n")
    store = tmp_path / "g.zarr"
    store.mkdir()
    refuse_overwriting_inputs([ped, None, store], [tmp_path / "out" / "reliability.csv"])
    with pytest.raises(InputError, match="would overwrite") as e:
        refuse_overwriting_inputs([ped], [ped])
    assert e.value.file == str(ped)
    with pytest.raises(InputError, match="would write inside"):
        refuse_overwriting_inputs([store], [store / "x"])
    with pytest.raises(InputError, match="would replace"):
        refuse_overwriting_inputs([ped], [tmp_path / "data"])
    os.symlink(tmp_path / "data", tmp_path / "alias")
    with pytest.raises(InputError, match="would overwrite"):
        refuse_overwriting_inputs([ped], [tmp_path / "alias" / "ped.txt"])
    with pytest.raises(InputError, match="holds this input"):
        refuse_overwriting_inputs([ped], folders=[tmp_path / "alias" / ".." / "data"])
    refuse_overwriting_inputs([ped], folders=[tmp_path / "out"])


@pytest.fixture()
def pop(tmp_path):
    out = tmp_path / "pop"
    assert main(["simulate", "--out", str(out), "--animals", "600", "--genotyped", "30",
                 "--snps", "100"]) == 0
    return out


def test_reliability__output_folder_equal_to_the_input_folder(pop, capsys):
    shutil.copy(pop / "records.txt", pop / "summary.txt")  # an input named like an output
    before = _digest(pop)
    rc = main(["reliability", "--pedigree", str(pop / "pedigree.txt"), "--records",
               str(pop / "summary.txt"), "--h2", "0.3", "--out", str(pop)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "summary.txt" in err and "would overwrite" in err and "--out" in err
    assert _digest(pop) == before
    # inputs in the output folder under other names: allowed, and left as they were
    (pop / "summary.txt").unlink()
    before = _digest(pop)
    assert main(["reliability", "--pedigree", str(pop / "pedigree.txt"), "--records",
                 str(pop / "records.txt"), "--h2", "0.3", "--out", str(pop)]) == 0
    after = _digest(pop)
    assert all(after[name] == digest for name, digest in before.items())


def test_genotypes_import__onto_its_source(pop, capsys):
    before = _digest(pop)
    rc = main(["genotypes", "import", str(pop / "genotypes.txt"), "--out",
               str(pop / "genotypes.txt")])
    assert rc == 2 and "would overwrite" in capsys.readouterr().err
    assert _digest(pop) == before


def test_sample__into_the_folder_of_its_inputs(tmp_path):
    base = tmp_path / "runkit"
    base.mkdir()
    config = _runkit.population(base)
    cfg = load_config(config)
    data = cfg["inputs.pedigree"].parent
    before = _digest(data)
    with pytest.raises(InputError, match="holds this input"):
        draw_sample(cfg, data, herds=2)
    assert _digest(data) == before


def test_run__output_folder_holding_an_input_named_like_a_result(tmp_path, capsys):
    base = tmp_path / "runkit"
    base.mkdir()
    config = _runkit.population(base)
    cfg = load_config(config)
    data = cfg["inputs.pedigree"].parent
    shutil.copy(cfg["inputs.records"], data / "reliability.csv")
    text = config.read_text().replace(str(cfg["inputs.records"].name), "reliability.csv")
    config.write_text(text)
    before = _digest(data)
    rc = main(["run", str(config), "--out", str(data)])
    assert rc == 2
    assert "reliability.csv" in capsys.readouterr().err
    assert _digest(data) == before


def test_grm__pedigree_named_like_its_summary(pop, capsys):
    assert main(["genotypes", "import", str(pop / "genotypes.txt"), "--out",
                 str(pop / "g.zarr")]) == 0
    shutil.copy(pop / "pedigree.txt", pop / "summary.txt")
    before = _digest(pop)
    rc = main(["grm", "--genotypes", str(pop / "g.zarr"), "--pedigree", str(pop / "summary.txt"),
               "--tune", "--out", str(pop)])
    assert rc == 2 and "would overwrite" in capsys.readouterr().err
    assert _digest(pop) == before


def test_solve__data_named_like_its_solutions(tmp_path, capsys):
    (tmp_path / "solutions.csv").write_text("animal,y\na,1.0\nb,2.0\n")
    (tmp_path / "m.toml").write_text('[data]\nfile = "solutions.csv"\ntrait = "y"\n')
    rc = main(["solve", str(tmp_path / "m.toml"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0 and "would overwrite" in err, err  # the model commands exit 1 on errors
    assert (tmp_path / "solutions.csv").read_text() == "animal,y\na,1.0\nb,2.0\n"


# --- one lock for every command that writes a result folder ---------------------------------


def test_grm_solve_sample_simulate__refused_while_another_command_holds_the_folder(
        pop, tmp_path, capsys):
    from bigeval.io.writers import output_lock

    assert main(["genotypes", "import", str(pop / "genotypes.txt"), "--out",
                 str(pop / "g.zarr")]) == 0
    (tmp_path / "m.toml").write_text('[data]\nfile = "d.csv"\ntrait = "y"\n')
    (tmp_path / "d.csv").write_text("animal,y\na,1.0\nb,2.0\nc,2.5\n")
    base = tmp_path / "runkit"
    base.mkdir()
    cfg = load_config(_runkit.population(base))
    busy = tmp_path / "busy"
    busy.mkdir()
    commands = {
        "grm": ["grm", "--genotypes", str(pop / "g.zarr"), "--pedigree",
                str(pop / "pedigree.txt"), "--blend", "0.05", "--out", str(busy)],
        "solve": ["solve", str(tmp_path / "m.toml"), "--out", str(busy)],
        "sample": ["sample", str(cfg.source), "--herds", "2", "--out", str(busy)],
        "simulate": ["simulate", "--animals", "600", "--genotyped", "30", "--out", str(busy)],
    }
    with output_lock(busy):  # e.g. a `bigeval run` writing this folder
        for name, argv in commands.items():
            rc = main(argv)
            err = capsys.readouterr().err
            assert rc != 0 and "another bigeval run" in err, (name, err)
            assert list(busy.iterdir()) == [], name
    assert main(commands["grm"]) == 0  # the lock goes with the command that held it
    assert main(commands["grm"]) == 0


def test_grm__bad_input_leaves_no_output_folder(pop, tmp_path, capsys):
    assert main(["genotypes", "import", str(pop / "genotypes.txt"), "--out",
                 str(pop / "g.zarr")]) == 0
    (tmp_path / "ped.txt").write_text("x 0 0\n")  # the genotyped animals are not in it
    out = tmp_path / "new" / "grm"
    rc = main(["grm", "--genotypes", str(pop / "g.zarr"), "--pedigree",
               str(tmp_path / "ped.txt"), "--blend", "0.05", "--out", str(out)])
    assert rc == 2 and "not in the pedigree" in capsys.readouterr().err
    assert not out.exists()  # created by the command, empty when it failed: removed
