"""The run manifest (``OUT/manifest.json``): versions, inputs, parameters, stage timings, memory.

The manifest is rewritten (atomically) after every stage, so a run that dies leaves a
manifest of what it had finished. Peak memory per stage is sampled by a thread that reads the
process's resident set size every 20 ms (``/proc/self/statm``), and the process's high-water
mark (``ru_maxrss``) is recorded as well; memory of Dask workers in other processes
(``local-cluster`` or a remote scheduler) is not included.

Warnings a stage emits (:class:`bigeval.errors.BigevalWarning` and any other warning that the
warning filters let through) are recorded by :func:`collect_warnings` and passed on to the
warning display in force (the CLI prints them as they come); the runner keeps them in the
stage's ``stage.json`` (so a reused stage still has them) and in its manifest record, and the
report lists them. Warnings raised in other processes (Dask workers of a ``local-cluster`` or
a remote scheduler) are not seen.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

from bigeval.io.writers import atomic_path

__all__ = ["versions", "MemorySampler", "Manifest", "collect_warnings"]

_PACKAGES = ("bigeval", "numpy", "scipy", "pandas", "numba", "dask", "distributed", "zarr",
             "h5py", "pyarrow", "threadpoolctl", "bed-reader", "scikit-sparse", "matplotlib")

MiB = 1024**2


def versions() -> dict:
    """Versions of Python, the platform and the packages a run uses (None: not installed)."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    try:
        from threadpoolctl import threadpool_info

        out["blas"] = sorted({f"{i.get('internal_api')} {i.get('version')}"
                              for i in threadpool_info() if i.get("user_api") == "blas"})
    except Exception:  # pragma: no cover - informational only
        out["blas"] = None
    return out


def _rss() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@contextlib.contextmanager
def collect_warnings():
    """Record the warnings shown while the block runs, and show them as usual.

    Yields a list that fills with one ``{"category", "message", "count"}`` dict per distinct
    warning (in the order first seen). The warning filters decide as always what is shown,
    ignored or raised; what is shown goes on to the display in force when the block started
    (``warnings.showwarning``: the CLI's one-line printer, pytest's recorder, ...).

    Examples
    --------
    >>> import warnings
    >>> with collect_warnings() as seen:
    ...     warnings.warn("few records", UserWarning)  # doctest: +SKIP
    >>> seen  # doctest: +SKIP
    [{'category': 'UserWarning', 'message': 'few records', 'count': 1}]
    """
    seen: list[dict] = []
    index: dict[tuple, dict] = {}
    lock = threading.Lock()  # Dask threads warn too
    with warnings.catch_warnings():  # restores the display (and filters) on the way out
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            key = (category.__name__, str(message))
            with lock:
                if key in index:
                    index[key]["count"] += 1
                else:
                    index[key] = {"category": key[0], "message": key[1], "count": 1}
                    seen.append(index[key])
            shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield seen


class MemorySampler:
    """Peak resident memory of this process while the block runs (a sampling thread).

    Examples
    --------
    >>> with MemorySampler() as m:
    ...     x = bytearray(50 * MiB)
    >>> m.peak >= m.start
    True
    """

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _rss())

    def __enter__(self):
        self.start = self.peak = _rss()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bigeval-memory")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, _rss())
        return False


class Manifest:
    """What a run did; written to ``path`` after every change."""

    def __init__(self, path: str | os.PathLike, *, config, argv=None):
        from bigeval import __version__

        self.path = Path(path)
        self.t0 = time.perf_counter()
        self.data = {
            "bigeval": __version__,
            "status": "running",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "finished": None,
            "command": list(sys.argv if argv is None else argv),
            "config_file": None if config.source is None else str(config.source),
            "overrides": dict(getattr(config, "overrides", {})),
            "config": config.to_dict(),
            "versions": versions(),
            "inputs": {},
            "parameters": {},
            "stages": [],
            "seconds": None,
            "peak_rss_mb": None,
        }

    def set_inputs(self, inputs: dict) -> None:
        self.data["inputs"] = inputs
        self.write()

    def set_parameters(self, params: dict) -> None:
        self.data["parameters"] = params

    def stage(self, record: dict) -> None:
        self.data["stages"].append(record)
        self.write()

    @property
    def executed(self) -> list[str]:
        return [s["name"] for s in self.data["stages"] if s["status"] == "executed"]

    @property
    def skipped(self) -> list[str]:
        return [s["name"] for s in self.data["stages"] if s["status"] == "skipped"]

    def finish(self, status: str = "finished") -> None:
        self.data["status"] = status
        self.data["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data["seconds"] = round(time.perf_counter() - self.t0, 3)
        self.data["peak_rss_mb"] = round(_maxrss() / MiB, 1)
        self.write()

    def write(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
