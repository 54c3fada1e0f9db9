"""Errors that tell the user what went wrong, where, and what to do.

Every error raised for bad input names the file, the line (1-based, as an editor shows it),
the offending value, what was expected and what to do about it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re

#: ``{opt:section.name}`` in a message: an option, shown as the front end names it
_OPTION = re.compile(r"\{opt:([a-z_]+\.[a-z0-9_]+)\}")
_option_style = contextvars.ContextVar("bigeval_option_style", default=None)


def opt(key: str) -> str:
    """An option named in an error message, by its configuration key (``parameters.h2``).

    The front end that shows the error renders it: a ``bigeval`` command as its flag
    (``--h2``), ``bigeval run`` as the key of its config file (:func:`option_style`); without
    a front end the key itself is shown.

    Examples
    --------
    >>> print(InputError("h2 outside (0, 1)", remedy=f"give {opt('parameters.h2')} = 0.25"))
    h2 outside (0, 1); what to do: give parameters.h2 = 0.25
    >>> with option_style(lambda key: "--" + key.split(".")[1]):
    ...     print(InputError("h2 outside (0, 1)", remedy=f"give {opt('parameters.h2')} 0.25"))
    h2 outside (0, 1); what to do: give --h2 0.25
    """
    return "{opt:" + key + "}"


def show_options(text):
    """``text`` with its :func:`opt` placeholders rendered in the current style."""
    if not isinstance(text, str) or "{opt:" not in text:
        return text
    style = _option_style.get()
    return _OPTION.sub(lambda m: style(m.group(1)) if style else m.group(1), text)


@contextlib.contextmanager
def option_style(style):
    """Render :func:`opt` placeholders with ``style(key) -> str`` while in the block."""
    token = _option_style.set(style)
    try:
        yield
    finally:
        _option_style.reset(token)


class BigevalError(Exception):
    """Base class of every error bigeval raises on purpose."""


class _Located:
    """Message formatting shared by the errors that point at a file: where, what, what to do."""

    def _locate(self, message, file, line, value, expected, remedy) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.value = value
        self.expected = expected
        self.remedy = remedy

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f", line {self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        parts = [where + show_options(self.message)]
        if self.value is not None:
            parts.append(f"value: {self.value!r}")
        if self.expected:
            parts.append(f"expected: {show_options(self.expected)}")
        if self.remedy:
            parts.append(f"what to do: {show_options(self.remedy)}")
        return "; ".join(parts)


class InputError(_Located, BigevalError, ValueError):
    """Bad input data or parameters.

    Parameters
    ----------
    message
        What is wrong, in one sentence.
    file, line, value
        Where it is: the file path, the 1-based line number, the offending value.
    expected
        What would have been accepted.
    remedy
        What the user can do about it.

    Examples
    --------
    >>> print(InputError("animal is its own sire", file="ped.txt", line=3, value="A7",
    ...                  expected="a sire other than the animal", remedy="correct the sire"))
    ped.txt, line 3: animal is its own sire; value: 'A7'; expected: a sire other than the animal; what to do: correct the sire
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike | None = None,
        line: int | None = None,
        value: object = None,
        expected: str | None = None,
        remedy: str | None = None,
    ):
        self._locate(message, file, line, value, expected, remedy)
        super().__init__(str(self))


class OutputError(_Located, BigevalError, OSError):
    """An output could not be written (disk full, folder not writable, ...).

    Raised by the atomic writers of :mod:`bigeval.io.writers` after they removed their
    temporary file: the target still holds what it held before. ``errno`` is the operating
    system's error number. Keyword arguments as :class:`InputError`; ``file`` is the target.

    Examples
    --------
    >>> import errno
    >>> err = OutputError("no space left on the device", errno=errno.ENOSPC, file="out/x.csv",
    ...                   remedy="free some space")
    >>> print(err)
    out/x.csv: no space left on the device; what to do: free some space
    >>> isinstance(err, OSError), err.errno == errno.ENOSPC
    (True, True)
    """

    def __init__(
        self,
        message: str,
        *,
        errno: int | None = None,
        file: str | os.PathLike | None = None,
        line: int | None = None,
        value: object = None,
        expected: str | None = None,
        remedy: str | None = None,
    ):
        self._locate(message, file, line, value, expected, remedy)
        super().__init__(str(self))
        self.errno = errno
        self.strerror = message
        self.filename = self.file


class ResourceError(BigevalError, MemoryError):
    """Not enough memory or disk for a step; raised before the step starts."""


class BigevalWarning(UserWarning):
    """Something a user should know about a result that was nevertheless computed."""
