"""Tests of bigeval.linalg: in-place blocked Cholesky inverses against numpy's general inverse."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bigeval.errors import BigevalWarning, InputError
from bigeval.linalg import (
    cholesky_lower,
    mirror_lower,
    spd_inverse,
    spd_inverse_diag,
    symmetric_inverse_diag,
)

TOL = 1e-10


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n + 5))
    return x @ x.T / n + 0.1 * np.eye(n)


def _indefinite(n, seed=1):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eig = np.linspace(0.5, 3.0, n)
    eig[n // 3] = -0.7  # one negative eigenvalue
    return (q * eig) @ q.T


@pytest.mark.parametrize("block", [None, 1, 7, 16, 50, 64])
@pytest.mark.parametrize("order", ["C", "F"])
def test_spd_inverse__blocked_equals_numpy_inv(block, order):
    a = np.array(_spd(50), order=order)
    keep = a.copy()
    ref = np.linalg.inv(a)  # the slow twin: a general inverse
    inv = spd_inverse(a, block=block)
    np.testing.assert_allclose(inv, ref, rtol=0, atol=TOL * np.abs(ref).max())
    np.testing.assert_array_equal(a, keep)  # not modified without overwrite
    np.testing.assert_allclose(spd_inverse_diag(a, block=block), np.diag(ref), rtol=0,
                               atol=TOL * np.abs(ref).max())


@pytest.mark.parametrize("order", ["C", "F"])
def test_spd_inverse__overwrite_works_in_place(order):
    a = np.array(_spd(40, seed=3), order=order)
    ref = np.linalg.inv(a)
    inv = spd_inverse(a, overwrite=True, block=9)
    assert np.shares_memory(inv, a)
    np.testing.assert_allclose(a, ref, rtol=0, atol=TOL * np.abs(ref).max())


@pytest.mark.parametrize("block", [None, 5])
def test_cholesky_lower__not_pd_names_the_row_and_animal(block):
    a = _spd(30, seed=4)
    a[17, :] = a[:, 17] = a[3, :]  # row 18 (1-based) a copy of row 4, minus 0.01 on the
    a[17, 17] = a[3, 3] - 0.01  # diagonal: its pivot is -0.01, so minor 18 is negative
    ids = [f"cow{i}" for i in range(30)]
    with pytest.raises(InputError, match=r"G is not positive definite \(leading minor 18 of 30"
                       ) as exc:
        cholesky_lower(np.asfortranarray(a), what="G", ids=ids, block=block)
    assert "cow17" in str(exc.value)


@pytest.mark.parametrize("block", [None, 4, 13])
@pytest.mark.parametrize("overwrite", [False, True])
def test_symmetric_inverse_diag__indefinite_falls_back_to_ldlt(block, overwrite):
    a = _indefinite(40)
    ref = np.diag(np.linalg.inv(a))
    work = a.copy()
    with pytest.warns(BigevalWarning, match="not positive definite"):
        diag, pd_ = symmetric_inverse_diag(work, overwrite=overwrite, block=block)
    assert not pd_
    np.testing.assert_allclose(diag, ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    if not overwrite:
        np.testing.assert_array_equal(work, a)


def test_symmetric_inverse_diag__positive_definite_uses_cholesky():
    a = _spd(33, seed=5)
    diag, pd_ = symmetric_inverse_diag(a, block=8)
    assert pd_
    np.testing.assert_allclose(diag, np.diag(np.linalg.inv(a)), rtol=0, atol=1e-10)


def test_mirror_lower__blocks():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((23, 23))
    ref = np.tril(a) + np.tril(a, -1).T
    np.testing.assert_array_equal(mirror_lower(a.copy(), block=5), ref)
    np.testing.assert_array_equal(mirror_lower(np.asfortranarray(a), block=4), ref)


@pytest.mark.slow
def test_spd_inverse__no_openblas_crash_above_16300():
    """Regression: the wheel's OpenBLAS segfaults in multithreaded dpotrf at n = 17 000, and
    in a multithreaded dsyrk whose result spans more than 2 GiB — which a first trailing
    update of 16 100 columns (block 900) of a 17 000-row matrix would do without tiling.

    Run in a child process so that a crash fails this test instead of killing pytest.
    """
    code = textwrap.dedent("""
        import numpy as np
        from bigeval.linalg import spd_inverse_diag
        n = 17_000
        a = np.zeros((n, n), order="F")
        a[np.diag_indices(n)] = 2.0
        a[1:, 0] = a[0, 1:] = 1.0 / n
        d = spd_inverse_diag(a, overwrite=True, block=900)
        assert np.all(np.isfinite(d)) and abs(d[5] - 0.5) < 1e-6, d[:6]
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "ok" in proc.stdout
