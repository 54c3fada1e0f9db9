"""Errors that tell the user what went wrong, where, and what to do.

Every error raised for bad input names the file, the line (1-based, as an editor shows it),
the offending value, what was expected and what to do about it.
"""

from __future__ import annotations

import os


class BigevalError(Exception):
    """Base class of every error bigeval raises on purpose."""


class InputError(BigevalError, ValueError):
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
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.value = value
        self.expected = expected
        self.remedy = remedy
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file + (f", line {self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        parts = [where + self.message]
        if self.value is not None:
            parts.append(f"value: {self.value!r}")
        if self.expected:
            parts.append(f"expected: {self.expected}")
        if self.remedy:
            parts.append(f"what to do: {self.remedy}")
        return "; ".join(parts)


class ResourceError(BigevalError, MemoryError):
    """Not enough memory or disk for a step; raised before the step starts."""


class BigevalWarning(UserWarning):
    """Something a user should know about a result that was nevertheless computed."""
