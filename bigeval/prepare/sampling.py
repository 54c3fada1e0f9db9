"""Herds of contemporary groups and seeded draws of herds: how ``bigeval sample`` and the run's
exact check on a sample choose the same animals."""

from __future__ import annotations

import re

import numpy as np

from bigeval.errors import InputError, opt

__all__ = ["draw_herds", "herd_of"]


def herd_of(cg: np.ndarray, pattern: str | None, *, path=None, lines=None) -> np.ndarray:
    """The herd of each contemporary-group code: the match of ``pattern`` (whole code if None).

    Examples
    --------
    >>> herd_of(np.array(["H0012Y2019S2", "H0012Y2020S1", "H7Y2019S1"]), "^[^Y]+").tolist()
    ['H0012', 'H0012', 'H7']
    """
    cg = np.asarray(cg, dtype=object)
    if pattern is None:
        return cg.astype(str)
    rx = re.compile(pattern)
    uniq, inv = np.unique(cg.astype(str), return_inverse=True)
    herds = []
    for k, code in enumerate(uniq):
        m = rx.search(code)
        if m is None or not m.group(0):
            i = int(np.flatnonzero(inv == k)[0])
            raise InputError("the herd pattern does not match a contemporary group", file=path,
                             line=None if lines is None else int(lines[i]), value=code,
                             expected=f"a match of {pattern!r} in every cg code",
                             remedy=f"fix {opt('sample.herd_pattern')}")
        herds.append(m.group(0))
    return np.asarray(herds, dtype=object)[inv].astype(str)


def draw_herds(all_herds: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` of ``all_herds`` drawn at random without replacement with ``seed``, sorted:
    the draw of ``bigeval sample --herds k --seed seed`` (the same herds for the same inputs).

    Examples
    --------
    >>> draw_herds(np.array(["a", "b", "c", "d"]), 2, 1).tolist()
    ['b', 'c']
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(all_herds, size=k, replace=False))
