"""Atomic writers: a file appears whole under its name, or not at all.

Everything bigeval writes goes to a temporary name in the target folder first and is then
renamed over the target (``os.replace`` is atomic on POSIX within one file system), so a
failed or killed run leaves the previous results intact.

* Temporary names are hidden and carry the writer's host and process id,
  ``.NAME.HOST~PID.RANDOM.tmp``. A process killed with SIGKILL cannot remove its temporary
  file; the next write of the same target removes the leftovers of processes of this host
  that are no longer alive (never those of a live process).
* A write that fails for want of space (ENOSPC, EDQUOT, EFBIG) or permission (EACCES, EPERM,
  EROFS) raises :class:`bigeval.errors.OutputError` naming the target and what to do, after
  its temporary file is removed; the target is untouched.
* :func:`atomic_files` writes several files that belong together (a run's table and summary):
  every one is written completely before the first is renamed into place, so a failure
  while writing any of them leaves all the previous ones.
* :func:`refuse_overwriting_inputs` is called by every command before it starts: an output
  that is, contains or lies inside one of its inputs is refused, naming both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError, OutputError, opt

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
_OWNER = re.compile(r"^(?P<host>[A-Za-z0-9-]*)~(?P<pid>[0-9]+)$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def _owner() -> str:
    """The tag of this process in temporary names: ``HOST~PID``."""
    return f"{_host()}~{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _stale(folder: Path, name: str, suffix: str) -> list[Path]:
    """Leftovers ``.NAME.HOST~PID....SUFFIX`` in ``folder`` of dead processes of this host."""
    prefix = f".{name}."
    found = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    host = _host()
    for entry in entries:
        rest = entry.name[len(prefix):] if entry.name.startswith(prefix) else None
        if rest is None or not rest.endswith(suffix):
            continue
        m = _OWNER.match(rest.split(".")[0])
        if m is None or m["host"] != host or int(m["pid"]) == os.getpid():
            continue
        if not _alive(int(m["pid"])):
            found.append(Path(entry.path))
    return found


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


def sweep_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary leftovers of killed writers of ``path``; return what was removed.

    A folder written by :func:`atomic_dir` and killed between its two renames is absent with
    its previous version set aside as ``.NAME.HOST~PID.old``: that version is put back.
    """
    path = Path(path)
    removed = []
    for old in _stale(path.parent, path.name, ".old"):
        if not (path.exists() or path.is_symlink()):
            with contextlib.suppress(OSError):
                os.replace(old, path)
                continue
        _remove(old)
        removed.append(old)
    for tmp in _stale(path.parent, path.name, ".tmp"):
        _remove(tmp)
        removed.append(tmp)
    return removed


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError | None:
    """The :class:`OutputError` for a failed write of ``path``, or None for other failures."""
    why = exc.strerror or str(exc)
    if exc.errno in _NO_SPACE:
        return OutputError(
            f"not enough space to write this file ({why}); the previous version, if any, "
            "is unchanged", errno=exc.errno, file=path,
            expected="free space on the output's file system (and a file-size limit, "
                     "ulimit -f, or quota large enough for the file)",
            remedy=f"free some space or raise the limit, or write to another folder "
                   f"({opt('output.folder')}), then run again")
    if exc.errno in _NO_PERMISSION:
        return OutputError(
            f"this file cannot be written ({why}); the previous version, if any, is unchanged",
            errno=exc.errno, file=path,
            expected="a folder this user may create files in",
            remedy=f"choose a folder you can write to ({opt('output.folder')}), or fix its "
                   "permissions")
    return None


@contextlib.contextmanager
def _translated(path):
    """Turn a disk-full or permission OSError into an :class:`OutputError` naming ``path``."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        err = output_error(exc, path)
        if err is None:
            raise
        raise err from exc


def _real(path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _within(a: Path, b: Path) -> bool:
    """a is b or lies inside it."""
    return a == b or b in a.parents


def refuse_overwriting_inputs(inputs, outputs=(), *, folders=()) -> None:
    """Raise :class:`bigeval.errors.InputError` when an output would touch an input.

    Paths are resolved (links, ``..``) before they are compared.

    Parameters
    ----------
    inputs
        The paths a command reads (files, folders, Zarr stores); None entries are skipped.
    outputs
        The paths it writes, replaces or removes (files or stores): refused when one is an
        input, lies inside an input (a store or folder read as a whole), or holds an input.
    folders
        Output folders it fills with files of its own naming (``bigeval sample``): refused
        when they hold any input.

    Examples
    --------
    >>> refuse_overwriting_inputs(["data/ped.txt"], ["out/reliability.csv"])
    >>> refuse_overwriting_inputs(["data/ped.txt"], ["data/ped.txt"])
    Traceback (most recent call last):
    ...
    bigeval.errors.InputError: data/ped.txt: the output data/ped.txt would overwrite this input; \
expected: outputs apart from the inputs; what to do: write to another folder (output.folder)
    """
    ins = [(p, _real(p)) for p in inputs if p is not None]
    for out in outputs:
        ro = _real(out)
        for given, ri in ins:
            if _within(ro, ri) or _within(ri, ro):
                how = "overwrite" if ro == ri else ("write inside" if _within(ro, ri)
                                                    else "replace")
                raise InputError(f"the output {out} would {how} this input", file=given,
                                 expected="outputs apart from the inputs",
                                 remedy=f"write to another folder ({opt('output.folder')})")
    for folder in folders:
        rf = _real(folder)
        for given, ri in ins:
            if _within(ri, rf):
                raise InputError(f"the output folder {folder} holds this input, and its files "
                                 "would be written over it", file=given,
                                 expected="an output folder apart from the inputs",
                                 remedy=f"write to a new or empty folder ({opt('output.folder')})")


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike):
    """Hold the output folder's lock while a command writes it: ``flock`` on the folder
    itself (no lock file to leave behind or to find replaced by something else). A second
    command on the same folder is refused at once, whichever command it is."""
    folder = Path(folder)
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise InputError(f"cannot open the output folder: {exc.strerror}", file=folder,
                         expected="a folder", remedy="choose another output folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another bigeval run is using this output folder", file=folder,
                             remedy="wait for it to finish, or choose another output folder"
                             ) from None
        yield
    finally:
        os.close(fd)


#: the locks of the command running now (:func:`command_outputs`), innermost last
_COMMANDS: list[tuple[contextlib.ExitStack, set, list]] = []


@contextlib.contextmanager
def command_outputs():
    """The span of one command (``bigeval.cli.main``): output folders claimed inside it with
    :func:`claim_output` stay locked until it ends; one it created and left empty when it
    fails is removed (bad input leaves nothing behind)."""
    created: list[Path] = []
    try:
        with contextlib.ExitStack() as stack:
            _COMMANDS.append((stack, set(), created))
            try:
                yield
            finally:
                _COMMANDS.pop()
    except BaseException:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty
        raise


def claim_output(folder: str | os.PathLike) -> Path:
    """Create an output folder and, inside a command (:func:`command_outputs`), take its
    lock (:func:`output_lock`) for the rest of the command: a second command writing the
    same folder is refused at once. Returns the folder."""
    existed = Path(folder).exists()
    path = ensure_dir(folder)
    if _COMMANDS:
        stack, held, created = _COMMANDS[-1]
        key = os.path.realpath(path)
        if key not in held:
            stack.enter_context(output_lock(path))
            held.add(key)
            if not existed:
                created.append(path)
    return path


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents), or say clearly why it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in [path, *path.parents] if p.exists()), None)
        detail = ""
        if blocker is not None and not blocker.is_dir():
            detail = f" ({blocker} is a file, not a folder)"
        raise InputError(f"cannot create the output folder: {exc.strerror}{detail}", file=path,
                         value=str(path), expected="a folder, or a path where one can be made",
                         remedy=f"choose a folder you can write to "
                                f"({opt('output.folder')})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError("the output folder is not writable", file=path, value=str(path),
                         expected="a folder this user may create files in",
                         remedy=f"choose a folder you can write to ({opt('output.folder')}), "
                                "or fix its permissions")
    return path


def _mkstemp(path: Path) -> Path:
    with _translated(path):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp",
                                   dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _publish_mode(tmp: Path) -> None:
    """Give a temporary file or folder the mode a plain create would (mkstemp makes 0600)."""
    with contextlib.suppress(OSError):
        os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())


def _fsync(tmp: Path) -> None:
    """Make a written file durable before a rename makes it visible."""
    if tmp.is_dir():
        return
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_files(*paths: str | os.PathLike):
    """Yield temporary paths for several files; rename them all into place if the block succeeds.

    Every file is written (and fsynced) before the first rename, so an error while writing
    any of them leaves all the targets as they were. The renames follow one another at the
    end; only a kill in that instant can mix old and new files.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_files(d / "a.txt", d / "b.txt") as (ta, tb):
    ...     _ = ta.write_text("A"), tb.write_text("B")
    >>> sorted(p.name for p in d.iterdir()), (d / "b.txt").read_text()
    (['a.txt', 'b.txt'], 'B')
    """
    targets = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for path in targets:
            ensure_dir(path.parent)
            sweep_stale(path)
            tmps.append(_mkstemp(path))
        yield tuple(tmps)
        for path, tmp in zip(targets, tmps):
            with _translated(path):
                _fsync(tmp)
                _publish_mode(tmp)
        for path, tmp in zip(targets, tmps):
            with _translated(path):
                os.replace(tmp, path)
    except BaseException as exc:
        failed = _failed(tmps)
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            err = output_error(exc, targets[failed])
            if err is not None:
                raise err from exc
        raise


def _failed(tmps: list[Path]) -> int:
    """Which of the temporary files a failed block was writing: files are written one after
    the other, so the last one that holds anything (the first, if none does)."""
    failed = 0
    for k, tmp in enumerate(tmps):
        with contextlib.suppress(OSError):
            if tmp.stat().st_size > 0:
                failed = k
    return failed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (d / "x.txt").read_text()
    'hello'
    """
    with atomic_files(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary folder beside ``path``; put it in place of ``path`` if the block succeeds.

    A folder cannot be renamed over a non-empty one, so an existing target is first renamed
    aside, then the new one renamed in, then the old one deleted: at every moment ``path`` is
    either the complete old store or the complete new one (or briefly absent; a process
    killed in that instant leaves the old one aside, and the next write of ``path`` puts it
    back first, see :func:`sweep_stale`).
    """
    path = Path(path)
    ensure_dir(path.parent)
    sweep_stale(path)
    with _translated(path):
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{_owner()}.", suffix=".tmp",
                                    dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp)
        old = None
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.{_owner()}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            _remove(old)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            err = output_error(exc, path)
            if err is not None:
                raise err from exc
        raise


def write_csv_atomic(df: pd.DataFrame, path: str | os.PathLike, **kwargs) -> Path:
    """Write a frame as CSV (no index) atomically."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_triplets(matrix, ids, path: str | os.PathLike, *, tol: float = 0.0) -> Path:
    """Write a symmetric matrix as lower-triangle triplets ``animal1 animal2 value``.

    The methodology's layout for G⁻¹ and A22⁻¹: one line per element with row ≥ column,
    whitespace-separated, values with 17 significant digits (exact round trip). Elements with
    ``|value| <= tol`` are skipped (the diagonal is always written).
    """
    m = np.asarray(matrix)
    ids = np.asarray(ids, dtype=object)
    i, j = np.tril_indices(m.shape[0])
    v = m[i, j]
    keep = (np.abs(v) > tol) | (i == j)
    frame = pd.DataFrame({"animal1": ids[i[keep]], "animal2": ids[j[keep]], "value": v[keep]})
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep=" ", header=False, index=False, float_format="%.17g")
    return Path(path)
