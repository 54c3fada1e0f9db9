"""Atomic outputs: a failed, full-disk or killed run leaves the previous results intact.

* every writer puts a file under its name whole, or not at all (``bigeval.io.writers``);
* a run's files are all written before the first is renamed (an error while writing the
  second leaves the first as it was);
* a full disk (a file-size limit, RLIMIT_FSIZE, in a subprocess; or ENOSPC raised in the
  middle of a write) and an unwritable folder give an error naming the path and what to do,
  with no temporary file left;
* ``bigeval reliability`` killed with SIGKILL and run again gives byte-identical results and
  leaves no partial file.

Tests run as root in CI, where ``chmod`` does not stop writes: an unwritable folder is made by
putting it under a regular file, by ``os.access`` saying no, or by the temporary file's
creation failing with EACCES (as on a read-only mount); ``chmod 0o500`` is tested only when
not root.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bigeval.errors import InputError, OutputError
from bigeval.io import writers
from bigeval.io.publish import ABOUT, RESULTS
from bigeval.io.writers import (
    atomic_dir,
    atomic_files,
    atomic_path,
    ensure_dir,
    sweep_stale,
    write_text_atomic,
)

ROOT = Path(__file__).resolve().parent.parent


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders the writers may leave (a result folder's
    generations, ``.results``, are not leftovers; hidden names inside it are)."""
    found = sorted(p.name for p in folder.iterdir()
                   if p.name.startswith(".") and p.name != RESULTS)
    if (folder / RESULTS).is_dir():
        found += sorted(f"{RESULTS}/{p.name}" for p in (folder / RESULTS).iterdir()
                        if p.name.startswith("."))
    return found


def results(folder: Path) -> dict:
    """The result files a user sees in an output folder: name -> bytes."""
    return {p.name: p.read_bytes() for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")}


def dead_pid() -> int:
    """The id of a process that has exited (a finished child)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# Writers


def test_atomic_path__error_mid_write_keeps_old_file_and_no_temp(tmp_path):
    target = write_text_atomic("old\n", tmp_path / "r.csv")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_atomic_files__nothing_renamed_until_every_file_is_written(tmp_path):
    a = write_text_atomic("old a\n", tmp_path / "a.txt")
    b = write_text_atomic("old b\n", tmp_path / "b.txt")
    with pytest.raises(RuntimeError):
        with atomic_files(a, b) as (ta, tb):
            ta.write_text("new a\n")  # complete ...
            tb.write_text("new b, ha")  # ... but the second one fails
            raise RuntimeError("fails while writing b")
    assert (a.read_text(), b.read_text()) == ("old a\n", "old b\n")
    assert leftovers(tmp_path) == []
    with atomic_files(a, b) as (ta, tb):
        ta.write_text("new a\n")
        tb.write_text("new b\n")
    assert (a.read_text(), b.read_text()) == ("new a\n", "new b\n")


def test_atomic_files__outputs_get_the_umask_mode_not_mkstemp_0600(tmp_path):
    path = write_text_atomic("x", tmp_path / "x.txt")
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_enospc_mid_write__output_error_names_file_old_intact(tmp_path):
    target = write_text_atomic("old\n", tmp_path / "r.csv")
    with pytest.raises(OutputError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("new, half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    err = info.value
    assert err.file == str(target) and err.errno == errno.ENOSPC
    assert isinstance(err, OSError)  # callers catching OSError still catch it
    text = str(err)
    assert "not enough space" in text and "No space left on device" in text
    assert "what to do: free some space" in text
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_enospc_in_atomic_dir__store_untouched(tmp_path):
    with atomic_dir(tmp_path / "g.zarr") as tmp:
        (tmp / "chunk").write_text("old")
    with pytest.raises(OutputError, match="not enough space"):
        with atomic_dir(tmp_path / "g.zarr") as tmp:
            (tmp / "chunk").write_text("ne")
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert (tmp_path / "g.zarr" / "chunk").read_text() == "old"
    assert leftovers(tmp_path) == []


def test_other_os_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "r.csv"):
            raise OSError(errno.EIO, "I/O error")
    assert not isinstance(info.value, OutputError) and info.value.errno == errno.EIO
    assert leftovers(tmp_path) == []


_FSIZE = textwrap.dedent("""\
    import resource, signal, sys
    import numpy as np, pandas as pd
    from bigeval.io.writers import write_csv_atomic
    from bigeval.errors import OutputError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    frame = pd.DataFrame({"animal": np.arange(10_000), "rel": np.linspace(0, 1, 10_000)})
    try:
        write_csv_atomic(frame, sys.argv[1])
    except OutputError as exc:
        print(exc)
        sys.exit(3)
    """)


def test_file_size_limit_in_subprocess__efbig_is_a_clear_error(tmp_path):
    """A real failed write (EFBIG under RLIMIT_FSIZE), not a simulated one."""
    target = write_text_atomic("old\n", tmp_path / "reliability.csv")
    proc = subprocess.run([sys.executable, "-c", _FSIZE, str(target)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert str(target) in proc.stdout and "File too large" in proc.stdout
    assert "what to do:" in proc.stdout
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Unwritable output folders


def test_output_under_a_regular_file__input_error(tmp_path):
    (tmp_path / "results").write_text("a file")
    with pytest.raises(InputError, match="is a file, not a folder") as info:
        ensure_dir(tmp_path / "results" / "run1")
    assert info.value.remedy.startswith("choose a folder")


def test_output_folder_access_denied__input_error(tmp_path, monkeypatch):
    monkeypatch.setattr(writers.os, "access", lambda path, mode: False)
    with pytest.raises(InputError, match="not writable"):
        ensure_dir(tmp_path)


def test_temporary_file_creation_refused__output_error_old_intact(tmp_path, monkeypatch):
    """As on a read-only mount or with an ACL that denies root: mkstemp fails with EACCES."""
    target = write_text_atomic("old\n", tmp_path / "r.csv")

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(writers.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="cannot be written") as info:
        write_text_atomic("new\n", target)
    assert info.value.file == str(target)
    assert target.read_text() == "old\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500")
def test_output_folder_chmod_500__input_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InputError, match="not writable"):
            ensure_dir(folder)
    finally:
        folder.chmod(0o700)


def test_cli_unwritable_output__exit_2_nothing_written(tmp_path, capsys):
    from bigeval.cli import main

    (tmp_path / "ped.txt").write_text("a 0 0\nb 0 0\nc a b\n")
    (tmp_path / "rec.txt").write_text("c g\nb g\n")
    (tmp_path / "results").write_text("a file")
    rc = main(["reliability", "--pedigree", str(tmp_path / "ped.txt"), "--records",
               str(tmp_path / "rec.txt"), "--alpha", "2", "--out",
               str(tmp_path / "results" / "x"), "--no-progress"])
    assert rc == 2
    assert "cannot create the output folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Leftovers of killed writers


def test_sweep__removes_dead_writers_temp_files_only(tmp_path):
    target = write_text_atomic("old\n", tmp_path / "r.csv")
    host = writers._host()
    dead = tmp_path / f".r.csv.{host}~{dead_pid()}.abc123.tmp"
    dead.write_text("half")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".r.csv.{host}~{sleeper.pid}.def456.tmp"
        alive.write_text("being written")
        other_host = tmp_path / f".r.csv.elsewhere~{dead_pid()}.ghi789.tmp"
        other_host.write_text("someone else's")
        other_file = tmp_path / f".r.csv.gz.{host}~{dead_pid()}.jkl.tmp"
        other_file.write_text("another target's")
        write_text_atomic("new\n", target)  # sweeps before writing
        assert not dead.exists()
        assert alive.exists() and other_host.exists() and other_file.exists()
        assert target.read_text() == "new\n"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_sweep__puts_back_a_folder_left_aside_by_a_kill_between_renames(tmp_path):
    # atomic_dir renames the old store aside, then the new one in; killed in between:
    aside = tmp_path / f".g.zarr.{writers._host()}~{dead_pid()}.old"
    aside.mkdir()
    (aside / "chunk").write_text("old store")
    sweep_stale(tmp_path / "g.zarr")
    assert (tmp_path / "g.zarr" / "chunk").read_text() == "old store"
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# A failed run


def _population(folder: Path, n_animals: int, seed: int = 7) -> dict:
    from bigeval.simulate import SimulationConfig, simulate, write_population

    pop = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=0, n_snps=0, seed=seed))
    return write_population(pop, folder)


def _args(files: dict, out: Path, h2: str = "0.25") -> list[str]:
    return ["reliability", "--pedigree", str(files["pedigree"]), "--records",
            str(files["records"]), "--interbull", str(files["interbull"]), "--h2", h2,
            "--repeatability", "0.4", "--tau", "4", "--sib-adjust", "--out", str(out),
            "--no-progress"]


def _without_time(summary: bytes) -> bytes:
    return b"\n".join(ln for ln in summary.splitlines() if not ln.startswith(b"time "))


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    return _population(tmp_path_factory.mktemp("pop"), 4_000)


def test_run_failing_while_writing__previous_results_intact(population, tmp_path, monkeypatch):
    from bigeval.cli import main

    out = tmp_path / "out"
    assert main(_args(population, out, h2="0.3")) == 0
    before = results(out)
    from bigeval.pipeline import workflow

    real = workflow.write_csv  # the writer of the results table

    def half_then_fail(frame, path, *args, **kwargs):
        real(frame.head(len(frame) // 2), path, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(workflow, "write_csv", half_then_fail)
    with pytest.raises(OutputError) as info:  # main reports it; here the API raises it
        from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

        run_reliability(ReliabilityJob(pedigree=population["pedigree"],
                                       records=population["records"], out=out, h2=0.25),
                        progress=False)
    assert info.value.file == str(out / "reliability.csv")
    assert results(out) == before


# ---------------------------------------------------------------------------------------------
# SIGKILL and rerun


def _spawn(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "bigeval.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when_writing(args: list[str], out: Path, tries: int = 5) -> bool:
    """Start a run and SIGKILL it as soon as its new results begin to be written (the
    generation folder being filled, :mod:`bigeval.io.publish`)."""
    for _ in range(tries):
        proc = _spawn(args)
        while proc.poll() is None:
            with contextlib.suppress(OSError):
                if any(n.startswith(".gen.") for n in os.listdir(out / RESULTS)):
                    proc.send_signal(signal.SIGKILL)
                    proc.communicate()
                    return True
            time.sleep(0.0005)
        proc.communicate()
    return False


def _assert_whole(out: Path, old: dict, new: dict) -> None:
    """The results in sight are all the previous run's or all the new run's: never partial
    files, never a mixture of the two runs (and published.json says which)."""
    got = results(out)
    plain = {n: _without_time(b) if n == "summary.txt" else b for n, b in got.items()
             if n != ABOUT}
    ref = [{n: _without_time(b) if n == "summary.txt" else b for n, b in v.items()
            if n != ABOUT} for v in (old, new)]
    assert plain in ref, "the results are neither the old run's nor the new run's"
    assert ABOUT in got


def _reference(files: dict, folder: Path, h2: str) -> dict:
    from bigeval.cli import main

    assert main(_args(files, folder, h2=h2)) == 0
    return results(folder)


def test_sigkill_while_writing_then_rerun__identical_results(population, tmp_path):
    new = _reference(population, tmp_path / "reference", "0.25")
    out = tmp_path / "out"
    old = _reference(population, out, "0.3")  # the previous results, on other parameters
    args = _args(population, out)
    assert _kill_when_writing(args, out), "the run never showed a temporary file"
    _assert_whole(out, old, new)
    from bigeval.cli import main

    assert main(args) == 0  # the rerun (in this process: another pid, same command)
    assert (out / "reliability.csv").read_bytes() == new["reliability.csv"]
    assert _without_time((out / "summary.txt").read_bytes()) == _without_time(
        new["summary.txt"])
    assert leftovers(out) == []  # the killed writer's temporary file was swept


@pytest.mark.slow
def test_sigkill_at_random_times_then_rerun__identical_results(tmp_path):
    """A medium population, killed at seeded random moments of the run, then run whole."""
    files = _population(tmp_path / "pop", 30_000, seed=11)
    new = _reference(files, tmp_path / "reference", "0.25")
    out = tmp_path / "out"
    old = _reference(files, out, "0.3")
    args = _args(files, out)
    t0 = time.perf_counter()  # how long a whole run takes, start-up included
    proc = _spawn(_args(files, tmp_path / "timing"))
    proc.communicate(timeout=600)
    duration = time.perf_counter() - t0
    assert (tmp_path / "timing" / "reliability.csv").read_bytes() == new["reliability.csv"]
    rng = np.random.default_rng(2026)
    for at in np.sort(rng.uniform(0.05, 1.0, size=6)) * duration:
        proc = _spawn(args)
        try:
            proc.wait(timeout=at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        proc.communicate()
        _assert_whole(out, old, new)
    assert _kill_when_writing(args, out)
    _assert_whole(out, old, new)
    proc = _spawn(args)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()
    assert (out / "reliability.csv").read_bytes() == new["reliability.csv"]
    assert leftovers(out) == []
