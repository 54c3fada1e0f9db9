"""Publishing a run's results all together or not at all.

A result folder holds one *generation* of results: the files of one run, written together.
Each generation is a hidden folder ``OUT/.results/GEN/`` (with ``published.json``, which
says which run wrote it); ``OUT/.results/current`` is a link to the one in force, and every
result name ``OUT/NAME`` is a link to ``.results/current/NAME``. Publishing writes the whole
new generation beside the old one, then switches ``current`` with one rename: at every moment
(a kill included) ``OUT/NAME`` reads the old run's files or the new run's, never a mixture.
Names the new run does not publish (say ``exact_check.csv`` of an earlier run that checked
against exact values) stop resolving at the same instant, and their links are removed after.

Reading is unchanged: ``OUT/reliability.csv`` opens, copies (``cp``, ``rsync -L``) and loads
as a file. Files of an older bigeval (plain files under the result names) are first made a
generation of their own, each still readable throughout.

The caller holds the folder's lock (:func:`bigeval.io.writers.output_lock`); leftovers of a
killed publisher (its unfinished generation, a generation never switched to) are removed by
the next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bigeval.errors import OutputError
from bigeval.io.writers import (
    _failed,
    _fsync,
    _owner,
    _publish_mode,
    ensure_dir,
    output_error,
    sweep_stale,
)

__all__ = ["RESULTS", "ABOUT", "publishing", "published", "generation_of"]

#: The hidden folder of generations inside a result folder.
RESULTS = ".results"
#: The link (inside :data:`RESULTS`) to the generation in force.
CURRENT = "current"
#: The file of each generation that says which run wrote it (also linked as ``OUT/NAME``).
ABOUT = "published.json"


def _link_target(name: str) -> str:
    return f"{RESULTS}/{CURRENT}/{name}"


def _is_ours(link: Path) -> bool:
    """A result link made by :func:`publishing` (``.results/current/NAME``)."""
    try:
        return os.readlink(link) == _link_target(link.name)
    except OSError:
        return False


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_link(path: Path, target: str) -> None:
    """Make ``path`` a link to ``target`` with one rename (whatever ``path`` was)."""
    tmp = path.parent / f".{path.name}.{_owner()}.link.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, path)


def generation_of(out) -> Path | None:
    """The generation folder in force in ``out`` (``None``: nothing published this way)."""
    current = Path(out) / RESULTS / CURRENT
    if not current.is_symlink():
        return None
    return current.parent / os.readlink(current)


def published(out) -> dict:
    """What ``out/published.json`` says of the results in force (``{}``: nothing)."""
    gen = generation_of(out)
    if gen is None or not (gen / ABOUT).is_file():
        return {}
    return json.loads((gen / ABOUT).read_text())


def _new_generation_name() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{os.urandom(3).hex()}"


def _sweep(root: Path) -> None:
    """Remove generations not in force and unfinished ones of dead processes."""
    current = root / CURRENT
    if current.is_dir() and not current.is_symlink():
        # a copy of a result folder that followed the links: its result names are plain
        # copies too (adopted next), and this folder is one more copy of them
        shutil.rmtree(current)
    sweep_stale(root / "gen")  # .gen.HOST~PID.*.tmp of killed publishers
    sweep_stale(root / CURRENT)  # .current.HOST~PID.link.tmp
    gen = generation_of(root.parent)
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.name == CURRENT:
            continue
        if gen is None or entry.name != gen.name:
            shutil.rmtree(entry, ignore_errors=True)


def _hardlink_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _adopt(out: Path, root: Path, names) -> None:
    """Plain files under result names (an older bigeval's, or left by an adoption that was
    killed) join the generation in force, or become one, then are replaced by links to it:
    each name reads the same bytes before, during and after."""
    plain = [n for n in names if (out / n).is_file() and not (out / n).is_symlink()]
    if not plain:
        return
    gen = generation_of(out)
    if gen is None or not gen.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix=f".gen.{_owner()}.", suffix=".tmp", dir=root))
        for n in plain:
            _hardlink_or_copy(out / n, tmp / n)
        (tmp / ABOUT).write_text(json.dumps({"adopted": sorted(plain), "note": (
            "files of an earlier bigeval run, kept as they were")}, indent=1) + "\n")
        _publish_mode(tmp)
        gen = root / f"adopted-{_new_generation_name()}"
        os.rename(tmp, gen)
        _replace_link(root / CURRENT, gen.name)
    else:
        for n in plain:
            if (gen / n).exists() and os.path.samefile(gen / n, out / n):
                continue
            tmp = gen / f".{n}.{_owner()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            _hardlink_or_copy(out / n, tmp)
            os.replace(tmp, gen / n)
    for n in plain:
        _replace_link(out / n, _link_target(n))
    _fsync_dir(out)


@contextlib.contextmanager
def publishing(out, names, *, about: dict | None = None, known=()):
    """Yield a folder to write the files ``names`` into; publish them together on success.

    Parameters
    ----------
    out
        The result folder (created if needed; the caller holds its lock).
    names
        The file names this run publishes, in the order they are written (an error names the
        last one written to). Each must exist in the yielded folder when the block ends.
    about
        What ``published.json`` records of the run (command, parameters, inputs), with the
        time of publishing and the files' sizes added.
    known
        Further names earlier runs may have published in ``out``: plain files of an older
        bigeval under these names are adopted first. (Links of earlier generations that this
        run does not publish are removed whatever their names.)

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with publishing(d, ["a.txt", "b.txt"]) as gen:
    ...     _ = (gen / "a.txt").write_text("A"), (gen / "b.txt").write_text("B")
    >>> (d / "a.txt").read_text(), (d / "b.txt").read_text(), published(d)["files"]["b.txt"]
    ('A', 'B', 1)
    """
    out = ensure_dir(out)
    names = list(dict.fromkeys(names))
    known = list(dict.fromkeys([*names, *known, ABOUT]))
    root = out / RESULTS
    try:
        ensure_dir(root)
        _sweep(root)
        for n in known:  # .NAME.HOST~PID.link.tmp (and older writers' temporary files)
            sweep_stale(out / n)
        _adopt(out, root, known)
        tmp = Path(tempfile.mkdtemp(prefix=f".gen.{_owner()}.", suffix=".tmp", dir=root))
    except OSError as exc:
        err = output_error(exc, out / names[0])
        if err is not None:
            raise err from exc
        raise
    try:
        yield tmp
        missing = [n for n in names if not (tmp / n).is_file()]
        if missing:
            raise RuntimeError(f"publishing: {', '.join(missing)} not written")  # a bug
        record = dict(about or {})
        record["published"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record["files"] = {n: (tmp / n).stat().st_size for n in names}
        (tmp / ABOUT).write_text(json.dumps(record, indent=1, default=str) + "\n")
        for n in [*names, ABOUT]:
            _fsync(tmp / n)
            _publish_mode(tmp / n)
        _publish_mode(tmp)
        _fsync_dir(tmp)
        final = root / _new_generation_name()
        os.rename(tmp, final)
        for n in [*names, ABOUT]:  # before the switch these read the old files, or nothing
            if not _is_ours(out / n):
                _replace_link(out / n, _link_target(n))
        _fsync_dir(out)
        _replace_link(root / CURRENT, final.name)  # the switch: one rename
        _fsync_dir(root)
    except BaseException as exc:
        failed = names[_failed([tmp / n for n in names])]
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.rmdir()  # nothing was ever published here: leave no trace
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            err = output_error(exc, out / failed)
            if err is not None:
                raise err from exc
        raise
    keep = {*names, ABOUT}
    for entry in os.scandir(out):  # links of names this run does not publish: now dangling
        if entry.name not in keep and entry.is_symlink() and _is_ours(Path(entry.path)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    _sweep(root)

