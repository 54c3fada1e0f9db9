"""Shared fixtures and the opt-in marks (``--run-slow``)."""

from __future__ import annotations

import numpy as np
import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def random_pedigree(n: int, rng: np.random.Generator, *, n_founders: int | None = None,
                    p_unknown: float = 0.1):
    """A random pedigree in 0..n-1 with parents before progeny (-1 unknown)."""
    n_founders = max(2, n // 10) if n_founders is None else n_founders
    sire = np.full(n, -1, dtype=np.int64)
    dam = np.full(n, -1, dtype=np.int64)
    for i in range(n_founders, n):
        if rng.random() > p_unknown:
            sire[i] = rng.integers(0, i)
        if rng.random() > p_unknown:
            dam[i] = rng.integers(0, i)
        if sire[i] == dam[i]:
            dam[i] = -1
    return sire, dam
