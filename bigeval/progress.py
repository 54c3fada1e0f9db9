"""Progress, the one printer of every command: log lines always, live updates on a terminal.

Log lines (``bigeval run: [3/6] relationships ... done in 12.3 s``) go to stderr in every
case: they are what a log of a non-interactive run should hold. Within a step, rounds of the
iteration, blocks of G (Dask tasks), counters (animals imported, columns of A22) and
factorisation phases are shown as one line rewritten in place (``\\r``), and only when
``enabled`` (by default: stderr is a terminal), so logs stay quiet.
"""

from __future__ import annotations

import contextlib
import sys
import time

__all__ = ["Progress"]


class Progress:
    """Progress display of a run (``enabled``: live in-stage updates).

    ``name`` is the command named in front of each line (``run``; ``reml`` for the model
    commands).
    """

    def __init__(self, enabled: bool | None = None, stream=None, *, name: str = "run"):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.name = name  # the command, in front of every line ("bigeval run: ...")
        self._live = False

    def line(self, text: str) -> None:
        """A line for the log, always shown."""
        self._end_live()
        print(f"bigeval {self.name}: {text}", file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A line for a terminal only (``enabled``): the steps of a long command."""
        if self.enabled:
            self.line(text)

    def counter(self, label: str):
        """A ``(done, total)`` callback showing ``label: done/total  seconds`` live (total may
        be None); the line is ended when done reaches total."""
        t0 = time.perf_counter()

        def show(done: int, total: int | None) -> None:
            of = "" if total is None else f"/{total:,}"
            self.update(f"{label}: {done:,}{of}  {time.perf_counter() - t0:6.1f} s")
            if total is not None and done >= total:
                self._end_live()
        return show

    def rounds(self, label: str, total: int):
        """A ``(round, max change)`` callback for an iteration of ``total`` rounds, and
        :meth:`done` ends its line."""
        t0 = time.perf_counter()

        def show(k: int, change: float) -> None:
            self.update(f"{label}: round {k}/{total}  max Δrel {change:.2e}  "
                        f"{time.perf_counter() - t0:6.1f} s")
        return show

    def done(self) -> None:
        """End a live line (if one is shown)."""
        self._end_live()

    def phase(self, text: str) -> None:
        """A phase inside a stage (e.g. "factorising the MME"): live only."""
        if self.enabled:
            self.update(text)

    def update(self, text: str) -> None:
        if self.enabled:
            self.stream.write("\r  " + text[:110].ljust(110))
            self.stream.flush()
            self._live = True

    def _end_live(self) -> None:
        if self._live:
            self.stream.write("\n")
            self.stream.flush()
            self._live = False

    @contextlib.contextmanager
    def dask(self, label: str):
        """Count finished Dask tasks under the local schedulers (live only).

        Under a distributed client the local callbacks see nothing; the client's dashboard
        shows the progress there.
        """
        if not self.enabled:
            yield
            return
        from dask.callbacks import Callback

        progress = self
        t0 = time.perf_counter()

        class _Count(Callback):
            def _start_state(self, dsk, state):
                self.total = sum(len(state[k]) for k in ("ready", "waiting", "running"))
                self.done = 0
                self.shown = 0.0

            def _posttask(self, key, result, dsk, state, worker_id):
                self.done += 1
                now = time.perf_counter()
                if now - self.shown >= 0.2 or self.done == self.total:  # a few lines a second
                    self.shown = now
                    progress.update(f"{label}: {self.done:,}/{self.total:,} tasks  "
                                    f"{time.perf_counter() - t0:6.1f} s")

        with _Count():
            yield
        self._end_live()
