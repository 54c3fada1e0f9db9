"""Errors name an option the way the front end showing them does (issue: one schema of every
option): the same bad heritability is ``--h2`` to ``bigeval reliability`` and ``[parameters]
h2`` to ``bigeval run``, from the one place the message is written
(:func:`bigeval.reliability.engine.alpha_from`, with :func:`bigeval.errors.opt`)."""

from __future__ import annotations

from _runkit import cli_in_process

from bigeval.cli import option_namer
from bigeval.errors import InputError, opt, option_style


def _files(tmp_path):
    ped = tmp_path / "ped.txt"
    ped.write_text("a 0 0\nb 0 0\nc a b\n")
    rec = tmp_path / "rec.txt"
    rec.write_text("a g1\nb g1\nc g1\n")
    return ped, rec


def test_reliability__bad_h2_names_the_flag(tmp_path):
    ped, rec = _files(tmp_path)
    rc, err = cli_in_process(["reliability", "--pedigree", str(ped), "--records", str(rec),
                              "--h2", "25", "--out", str(tmp_path / "out")])
    assert rc == 2
    assert "heritability must be in (0, 1)" in err
    assert "give --h2 as a fraction" in err and "with --alpha" in err
    assert "{opt:" not in err and "[parameters]" not in err


def test_run__bad_h2_names_the_config_key(tmp_path):
    ped, rec = _files(tmp_path)
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[inputs]\npedigree = "{ped}"\nrecords = "{rec}"\n'
                   f'[parameters]\nh2 = 25\n[output]\nfolder = "{tmp_path / "res"}"\n')
    rc, err = cli_in_process(["run", str(cfg)])
    assert rc == 2
    assert "heritability must be in (0, 1)" in err
    assert "give [parameters] h2 as a fraction" in err and "with [parameters] alpha" in err
    assert "--h2" not in err and "--alpha" not in err and "{opt:" not in err


def test_option_namer__flag_of_the_command_or_the_key():
    grm, run, sample = option_namer("grm"), option_namer("run"), option_namer("sample")
    assert grm("genomics.blend") == "--blend"
    assert grm("parameters.h2") == "--h2"  # the flag of `reliability`, where grm has none
    assert grm("exact.max_equations") == "[exact] max_equations"  # no flag sets it
    assert run("genomics.blend") == "[genomics] blend"
    assert sample("sample.herds") == "--herds"


def test_opt__rendered_when_shown_not_when_raised():
    exc = InputError("bad", remedy=f"give {opt('parameters.tau')} > 0")
    assert str(exc).endswith("give parameters.tau > 0")  # no front end: the key
    with option_style(option_namer("reliability")):
        assert str(exc).endswith("give --tau > 0")
    with option_style(option_namer("run")):
        assert str(exc).endswith("give [parameters] tau > 0")
