"""Progress of a run: one line per stage always, live updates only on a terminal.

Stage lines (``[3/6] relationships ... done in 12.3 s``) go to stderr in every case: they are
what a log of a non-interactive run should hold. Within a stage, rounds of the iteration,
blocks of G (Dask tasks) and factorisation phases are shown as one line rewritten in place
(``\\r``), and only when ``enabled`` (by default: stderr is a terminal), so logs stay quiet.
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

    def __init__(self, enabled: bool, stream=None, *, name: str = "run"):
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.name = name  # the command, in front of every line ("bigeval run: ...")
        self._live = False

    def line(self, text: str) -> None:
        """A line for the log, always shown."""
        self._end_live()
        print(f"bigeval {self.name}: {text}", file=self.stream, flush=True)

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
