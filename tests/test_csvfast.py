"""The fast CSV writer of result tables against pandas, its obviously-correct twin: the same
bytes for every value (issue: end to end at the I/O floor)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from bigeval.io.csvfast import format_floats, format_floats_slow, to_csv_bytes, write_csv

EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 1e-4, 9.99999999949e-5, 9.9999999995e-5, 1e-5,
         0.000123456789012, 1e9, 9999999999.0, 9999999999.5, 1e10, 12345678905.0,
         123456789.05, 2.5, 1.00000000005, 1.0000000005, 0.99999999995, 5e-324, 1e-300,
         1.7976931348623157e308, np.inf, -np.inf, np.nan, 3.0e-12, -2.2250738585072014e-308]


def _texts(x):
    buf, off = format_floats(np.asarray(x, np.float64))
    return [bytes(buf[off[i]:off[i + 1]]).decode() for i in range(len(x))]


def test_format_floats__edges_equal_python():
    assert _texts(EDGES) == format_floats_slow(EDGES)


def _rounded(rng, n):
    """Values with few decimals (as counts and ratios are): ties of the 11th digit likely."""
    k = 10.0 ** rng.integers(1, 12, n)
    return np.round(rng.random(n) * k) / k


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1.0, 1e3, 1e9, 1e15])
def test_format_floats__random_values_equal_python(scale):
    rng = np.random.default_rng(int(np.log10(scale)) + 20)
    x = np.concatenate([rng.random(50_000) * scale, -rng.lognormal(0, 8, 20_000),
                        _rounded(rng, 20_000),
                        rng.integers(-10**6, 10**6, 10_000) / 8.0])
    assert _texts(x) == format_floats_slow(x)


def test_format_floats__ties_go_to_python_and_still_agree():
    # exact decimal ties at the 11th digit: 1.00000000005 is not exact in binary, but
    # these are: k + 0.5 scaled by powers of two
    x = (np.arange(10**9, 10**9 + 2000) + 0.5) / 2.0**10
    assert _texts(x) == format_floats_slow(x)


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    rel = rng.random(n)
    rel_g = np.where(rng.random(n) < 0.7, np.nan, rng.random(n))
    return pd.DataFrame({"animal": pd.array([f"A{i:07d}" for i in rng.permutation(n)],
                                            dtype="string"),
                         "erc_records": rng.integers(0, 12, n) * (1 - 1 / 37),
                         "rel_pedigree": rel, "rel_genomic": rel_g,
                         "erc_final": 3 * rel / (1 - rel), "exact_below_zero": rel < 0.01})


def test_to_csv_bytes__equals_pandas():
    frame = _frame(20_000, 1)
    want = frame.to_csv(index=False, float_format="%.10g").encode()
    assert to_csv_bytes(frame) == want
    assert to_csv_bytes(frame.iloc[:0]) == frame.iloc[:0].to_csv(
        index=False, float_format="%.10g").encode()
    assert to_csv_bytes(frame, header=False) == frame.to_csv(
        index=False, header=False, float_format="%.10g").encode()


@pytest.mark.parametrize("bad", ["a,b", 'a"b', "a\nb"])
def test_write_csv__text_needing_quotes_is_written_by_pandas(tmp_path, bad):
    frame = pd.DataFrame({"animal": ["x", bad], "rel": [0.5, 0.25]})
    assert to_csv_bytes(frame) is None
    write_csv(frame, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == frame.to_csv(
        index=False, float_format="%.10g").encode()


def test_write_csv__open_text_file_and_other_types():
    frame = _frame(500, 2)
    fh = io.StringIO()
    write_csv(frame, fh)
    assert fh.getvalue() == frame.to_csv(index=False, float_format="%.10g")
    ints = pd.DataFrame({"animal": ["a", "b"], "n": [1, 2]})  # an int column: pandas
    assert to_csv_bytes(ints) is None
