"""A run's results appear together or not at all (:mod:`bigeval.io.publish`).

The strongest check is a real kill: a child process publishes one generation over another and
is SIGKILLed at its k-th file-system change (every rename, link, unlink and removal of the
publisher), for every k until it finishes. After each kill the folder must show exactly the
old files or exactly the new ones, and the next publisher must clean up what the killed one
left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bigeval.io.publish import ABOUT, RESULTS, generation_of, published, publishing

ROOT = Path(__file__).resolve().parent.parent


def visible(folder: Path) -> dict:
    """What a user sees: result name -> text (hidden names left out)."""
    return {p.name: p.read_text() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def without_about(files: dict) -> dict:
    return {n: t for n, t in files.items() if n != ABOUT}


#: every name these tests publish (what a command passes as ``known``)
KNOWN = ("reliability.csv", "summary.txt", "exact_check.csv", "report.html")


def publish(folder: Path, files: dict, **about) -> None:
    with publishing(folder, list(files), about=about, known=KNOWN) as gen:
        for name, text in files.items():
            (gen / name).write_text(text)


OLD = {"reliability.csv": "animal,rel\na,0.3\n", "summary.txt": "h2 0.3\n",
       "exact_check.csv": "n,corr\n3,0.99\n"}
NEW = {"reliability.csv": "animal,rel\na,0.35\n", "summary.txt": "h2 0.35\n",
       "report.html": "<html></html>\n"}


def test_publishing__second_run_replaces_every_file_of_the_first(tmp_path):
    publish(tmp_path, OLD, run="old")
    assert without_about(visible(tmp_path)) == OLD
    publish(tmp_path, NEW, run="new")
    assert without_about(visible(tmp_path)) == NEW  # exact_check.csv went with the old run
    about = published(tmp_path)
    assert about["run"] == "new" and about["files"] == {n: len(t) for n, t in NEW.items()}
    assert json.loads((tmp_path / ABOUT).read_text()) == about
    assert [p.name for p in (tmp_path / RESULTS).iterdir()] != []
    gens = [p for p in (tmp_path / RESULTS).iterdir() if p.name != "current"]
    assert gens == [generation_of(tmp_path)]  # the old generation was removed


def test_publishing__error_in_the_block_leaves_previous_results(tmp_path):
    publish(tmp_path, OLD, run="old")
    with pytest.raises(ZeroDivisionError):
        with publishing(tmp_path, list(NEW)) as gen:
            (gen / "reliability.csv").write_text("half")
            1 / 0
    assert without_about(visible(tmp_path)) == OLD and published(tmp_path)["run"] == "old"
    assert [p.name for p in (tmp_path / RESULTS).iterdir() if p.name.startswith(".")] == []


def test_publishing__a_file_not_written_is_a_bug_not_a_partial_result(tmp_path):
    publish(tmp_path, OLD, run="old")
    with pytest.raises(RuntimeError, match="summary.txt not written"):
        with publishing(tmp_path, ["reliability.csv", "summary.txt"]) as gen:
            (gen / "reliability.csv").write_text("x")
    assert without_about(visible(tmp_path)) == OLD


def test_publishing__plain_files_of_an_older_bigeval_are_adopted_then_replaced(tmp_path):
    for name, text in OLD.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "notes.txt").write_text("the user's own file")
    publish(tmp_path, NEW, run="new")
    got = visible(tmp_path)
    assert got.pop("notes.txt") == "the user's own file"  # not a result name: untouched
    assert without_about(got) == NEW
    assert not (tmp_path / "notes.txt").is_symlink()


def test_publishing__results_read_like_files(tmp_path):
    import shutil

    publish(tmp_path / "out", NEW)
    shutil.copytree(tmp_path / "out", tmp_path / "copy")  # links followed (symlinks=False)
    assert without_about(visible(tmp_path / "copy")) == NEW
    shutil.copy(tmp_path / "out" / "summary.txt", tmp_path / "s.txt")
    assert (tmp_path / "s.txt").read_text() == NEW["summary.txt"]
    publish(tmp_path / "copy", OLD)  # the copy is a result folder like any other
    assert without_about(visible(tmp_path / "copy")) == OLD


_CHILD = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    from bigeval.io import publish as P

    folder, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    count = [0]

    def counted(fn):
        def wrapper(*a, **k):
            count[0] += 1
            if count[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return wrapper

    for name in ("rename", "replace", "symlink", "unlink", "link"):
        setattr(P.os, name, counted(getattr(os, name)))
    P.shutil.rmtree = counted(shutil.rmtree)
    files = {NEW}
    with P.publishing(folder, list(files), about={{"run": "new"}}, known={KNOWN}) as gen:
        for name, text in files.items():
            (gen / name).write_text(text)
    print(count[0])
""")


def test_publishing__sigkill_at_every_step_shows_old_or_new_never_a_mixture(tmp_path):
    child = tmp_path / "child.py"
    child.write_text(_CHILD.replace("{NEW}", repr(NEW)).replace("{KNOWN}", repr(KNOWN))
                     .replace("{{", "{").replace("}}", "}"))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outcomes = set()
    for start in ("plain", "published"):  # over an older bigeval's plain files, and over ours
        for k in range(1, 200):
            folder = tmp_path / f"{start}-{k}"
            folder.mkdir()
            if start == "plain":
                for name, text in OLD.items():
                    (folder / name).write_text(text)
            else:
                publish(folder, OLD, run="old")
            proc = subprocess.run([sys.executable, str(child), str(folder), str(k)], env=env,
                                  capture_output=True, text=True, timeout=120)
            shown = without_about(visible(folder))
            assert shown in (OLD, NEW), (start, k, shown)
            outcomes.add((start, shown == NEW))
            publish(folder, {"reliability.csv": "third\n"}, run="third")  # cleans up after it
            assert without_about(visible(folder)) == {"reliability.csv": "third\n"}
            hidden = [p.name for p in (folder / RESULTS).iterdir() if p.name.startswith(".")]
            gens = [p for p in (folder / RESULTS).iterdir() if not p.name.startswith(".")]
            assert hidden == [] and len(gens) == 2, (start, k, hidden, gens)  # current + one
            if proc.returncode == 0:  # it ran to the end: every step was tried
                break
            assert proc.returncode == -9, proc.stderr
        else:
            pytest.fail("the publisher never finished")
    assert outcomes == {(s, b) for s in ("plain", "published") for b in (False, True)}
