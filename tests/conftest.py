"""Shared fixtures and the opt-in marks (``--run-slow``)."""

from __future__ import annotations

import _runkit
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


def local_pedigree(n: int, rng: np.random.Generator, *, n_founders: int, window: int):
    """A random pedigree whose parents are among the ``window`` animals before each animal
    (a generation-like structure; -1 unknown), then renumbered in a random order."""
    sire = np.full(n, -1, np.int64)
    dam = np.full(n, -1, np.int64)
    for i in range(n_founders, n):
        lo = max(0, i - window)
        if rng.random() < 0.9:
            sire[i] = rng.integers(lo, i)
        if rng.random() < 0.8:
            dam[i] = rng.integers(lo, i)
        if sire[i] == dam[i]:
            dam[i] = -1
    return sire, dam


def shuffled(sire, dam, rng: np.random.Generator):
    """The same pedigree under a random permutation of the animal numbers."""
    n = len(sire)
    new = rng.permutation(n)
    s = np.full(n, -1, np.int64)
    d = np.full(n, -1, np.int64)
    s[new] = np.where(sire >= 0, new[np.maximum(sire, 0)], -1)
    d[new] = np.where(dam >= 0, new[np.maximum(dam, 0)], -1)
    return s, d


def indefinite_part2_case():
    """d, G⁻¹, A22⁻¹ (5 animals, α = 2) for which the certified Part II matrix
    D + (I + G⁻¹ − A22⁻¹)α is indefinite: G⁻¹ − A22⁻¹ has an eigenvalue below −1 and the
    animals have little information of their own."""
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    diff = q @ np.diag([-1.8, 0.3, 0.5, 1.0, 2.0]) @ q.T  # G⁻¹ − A22⁻¹
    a22inv = np.eye(5) * 2.0
    return np.full(5, 0.1), a22inv + diff, a22inv


# the run tests' simulated population and its reference run (tests/_runkit.py), built once per
# session folder and shared by the modules that use them

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "runkit"


@pytest.fixture(scope="module")
def pop_config(base):
    base.mkdir(exist_ok=True)
    return _runkit.population(base)


@pytest.fixture(scope="module")
def ref(base, pop_config):
    return _runkit.reference(base)
