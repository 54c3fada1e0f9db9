"""Atomic writers: a file appears whole under its name, or not at all.

Everything bigeval writes goes to a temporary name in the target folder first and is then
renamed over the target (``os.replace`` is atomic on POSIX within one file system), so a
failed or killed run leaves the previous results intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents), or say clearly why it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder: {exc.strerror}", file=path,
                         remedy="choose a folder you can write to (--out)") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError("the output folder is not writable", file=path,
                         remedy="choose a folder you can write to (--out)")
    return path


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
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # Make the data durable before the rename makes it visible.
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary folder beside ``path``; put it in place of ``path`` if the block succeeds.

    A folder cannot be renamed over a non-empty one, so an existing target is first renamed
    aside, then the new one renamed in, then the old one deleted: at every moment ``path`` is
    either the complete old store or the complete new one (or briefly absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists() or path.is_symlink():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
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
