"""Resource guards: refuse work that will not fit before starting it."""

from __future__ import annotations

import os

from bigeval.errors import ResourceError

GiB = 1024**3


def available_memory() -> int:
    """Bytes of memory available to this process now (MemAvailable, or physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 * GiB


def size_text(nbytes: float) -> str:
    """Bytes as people read them.

    Examples
    --------
    >>> size_text(576), size_text(3 * 2**20), size_text(7.45 * 2**30)
    ('576 B', '3.00 MiB', '7.45 GiB')
    """
    for unit, scale in (("GiB", GiB), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes:.0f} B"


def check_dense(n: int, *, copies: float = 1.0, what: str, itemsize: int = 8,
                available: int | None = None) -> int:
    """Refuse a dense ``n × n`` computation that would not fit in memory.

    Parameters
    ----------
    n
        Order of the square matrix.
    copies
        How many ``n × n`` arrays the computation holds at once.
    what
        What the matrix is, for the message (e.g. "the MME left-hand side").
    available
        Bytes available; defaults to :func:`available_memory`.

    Returns
    -------
    The number of bytes needed.
    """
    need = int(copies * n * n * itemsize)
    have = available_memory() if available is None else available
    if need > 0.8 * have:
        raise ResourceError(
            f"{what} is a dense {n:,} x {n:,} matrix: it needs {size_text(need)} "
            f"({copies:g} cop{'y' if copies == 1 else 'ies'} of {size_text(n * n * itemsize)}) "
            f"but only {size_text(have)} of memory is available; "
            "what to do: run on a sample (fewer animals), or use the sparse/approximate method"
        )
    return need
