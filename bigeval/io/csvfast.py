"""Result tables as CSV at the I/O floor: the bytes of ``DataFrame.to_csv(index=False,
float_format="%.10g")``, written by compiled passes.

pandas formats every float through Python's ``%`` operator, one value at a time: about
8 s for the 1 000 000-row reliability table (seven columns), ten times what writing the
bytes costs. Here each float column is formatted by a compiled kernel into one byte buffer
with offsets, the string columns come from Arrow's buffers, and the rows are assembled in
one more compiled pass.

The kernel computes the ten significant digits from ``|x| · 10^(9−e)`` rounded to an
integer. That product carries at most one rounding error (below 1e-6 at 10¹⁰), so its
digits are those of the correctly rounded decimal unless its fractional part lies within
``TIE_BAND`` of one half; those values, and those outside the kernel's exponent range, are
formatted by Python's ``%.10g`` (the same text, bit for bit), which keeps the output equal
to pandas' for every input. :func:`format_floats_slow` is the obviously-correct twin.
Frames with a column of another type, or with text that would need CSV quoting, are
written by pandas itself.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

__all__ = ["FLOAT_FORMAT", "TIE_BAND", "format_floats", "format_floats_slow", "to_csv_bytes",
           "write_csv"]

#: The text of floats in result tables (10 significant digits), the one pandas is given.
FLOAT_FORMAT = "%.10g"
#: A product whose fractional part is this close to one half goes to Python's formatting.
TIE_BAND = 1e-5
_POW10 = np.array([10.0 ** k for k in range(23)])
_NEEDS_QUOTES = (",", '"', "\n", "\r")


@numba.njit(cache=True)
def _digits(m, out, pos):  # pragma: no cover - compiled
    """The 10 decimal digits of 10⁹ ≤ m < 10¹⁰ into out[pos:pos+10] (unsigned arithmetic:
    a division by 10 is then a multiplication)."""
    u = np.uint64(m)
    ten = np.uint64(10)
    for k in range(9, -1, -1):
        q = u // ten
        out[pos + k] = np.uint8(48 + (u - q * ten))
        u = q


@numba.njit(cache=True)
def _format_kernel(x, pow10, band, buf, offsets, slow):  # pragma: no cover - compiled
    """%.10g of every finite x (NaN: empty) into buf; slow[i] marks values left to Python.

    buf holds 24 bytes per value (more than %.10g ever needs); offsets[i + 1] - offsets[i]
    is the length written for value i (0 for NaN and for slow values).
    """
    digits = np.empty(10, np.uint8)
    pos = 0
    for i in range(x.shape[0]):
        offsets[i] = pos
        v = x[i]
        if v != v:  # NaN: pandas' empty na_rep
            continue
        if v == 0.0:
            if np.signbit(v):
                buf[pos] = 45
                pos += 1
            buf[pos] = 48
            pos += 1
            continue
        a = -v if v < 0 else v
        if not a < np.inf:
            slow[i] = True
            continue
        e = int(np.floor(np.log10(a)))
        m = 0
        ok = False
        for _ in range(3):  # log10 may be off by one near powers of ten
            k = 9 - e
            if k > 22 or k < -22:
                break
            s = a * pow10[k] if k >= 0 else a / pow10[-k]
            f = np.floor(s)
            frac = s - f
            if abs(frac - 0.5) < band:
                break
            m = int(f) + (1 if frac > 0.5 else 0)
            if m >= 10_000_000_000:
                e += 1
                continue
            if m < 1_000_000_000:
                e -= 1
                continue
            ok = True
            break
        if not ok:
            slow[i] = True
            continue
        _digits(m, digits, 0)
        n = 10
        while n > 1 and digits[n - 1] == 48:  # %g drops trailing zeros
            n -= 1
        if v < 0:
            buf[pos] = 45
            pos += 1
        if -4 <= e < 10:
            if e >= 0:
                for j in range(e + 1):
                    buf[pos] = digits[j] if j < n else 48
                    pos += 1
                if n > e + 1:
                    buf[pos] = 46
                    pos += 1
                    for j in range(e + 1, n):
                        buf[pos] = digits[j]
                        pos += 1
            else:
                buf[pos] = 48
                buf[pos + 1] = 46
                pos += 2
                for _ in range(-e - 1):
                    buf[pos] = 48
                    pos += 1
                for j in range(n):
                    buf[pos] = digits[j]
                    pos += 1
        else:
            buf[pos] = digits[0]
            pos += 1
            if n > 1:
                buf[pos] = 46
                pos += 1
                for j in range(1, n):
                    buf[pos] = digits[j]
                    pos += 1
            buf[pos] = 101
            pos += 1
            buf[pos] = 45 if e < 0 else 43
            pos += 1
            ae = -e if e < 0 else e
            if ae >= 100:
                buf[pos] = 48 + ae // 100
                pos += 1
            buf[pos] = 48 + (ae // 10) % 10
            buf[pos + 1] = 48 + ae % 10
            pos += 2
    offsets[x.shape[0]] = pos


def format_floats(x) -> tuple[np.ndarray, np.ndarray]:
    """``"%.10g" % v`` of every value (NaN: empty), as one uint8 buffer and offsets.

    Examples
    --------
    >>> buf, off = format_floats(np.array([0.25, 1e-7, np.nan, -3.0, 123456789012.0]))
    >>> [bytes(buf[off[i]:off[i + 1]]).decode() for i in range(5)]
    ['0.25', '1e-07', '', '-3', '1.23456789e+11']
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n = x.shape[0]
    buf = np.empty(24 * n + 1, np.uint8)
    offsets = np.empty(n + 1, np.int64)
    slow = np.zeros(n, np.bool_)
    _format_kernel(x, _POW10, TIE_BAND, buf, offsets, slow)
    if not slow.any():
        return buf[:offsets[n]], offsets
    # rebuild with Python's formatting at the marked values (a few per million)
    lengths = np.diff(offsets)
    texts = {int(i): ("%.10g" % x[i]).encode() for i in np.flatnonzero(slow)}
    for i, t in texts.items():
        lengths[i] = len(t)
    new_off = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=new_off[1:])
    out = np.empty(new_off[n], np.uint8)
    _move_fields(buf, offsets, out, new_off, slow)
    for i, t in texts.items():
        out[new_off[i]:new_off[i + 1]] = np.frombuffer(t, np.uint8)
    return out, new_off


@numba.njit(cache=True)
def _move_fields(buf, offsets, out, new_off, skip):  # pragma: no cover - compiled
    for i in range(offsets.shape[0] - 1):
        if skip[i]:
            continue
        a, b, c = offsets[i], offsets[i + 1], new_off[i]
        for j in range(b - a):
            out[c + j] = buf[a + j]


def format_floats_slow(x) -> list[str]:
    """The twin: pandas' own text of each value (``"%.10g" % v``, NaN as empty)."""
    return ["" if v != v else "%.10g" % v for v in np.asarray(x, np.float64)]


@numba.njit(cache=True)
def _rows(bufs, offs, n_rows, total):  # pragma: no cover - compiled
    """Fields of every column, row by row, separated by ``,`` and ended by ``\\n``."""
    out = np.empty(total, np.uint8)
    pos = 0
    n_cols = len(bufs)
    for r in range(n_rows):
        for c in range(n_cols):
            b, o = bufs[c], offs[c]
            for j in range(o[r], o[r + 1]):
                out[pos] = b[j]
                pos += 1
            out[pos] = 44 if c < n_cols - 1 else 10
            pos += 1
    return out


def _column(values: pd.Series):
    """(buffer, offsets) of one column, or None where pandas must write the frame."""
    if pd.api.types.is_float_dtype(values.dtype):
        return format_floats(values.to_numpy(np.float64, na_value=np.nan))
    if pd.api.types.is_bool_dtype(values.dtype) and not values.hasnans:
        text = np.where(values.to_numpy(bool), "True", "False").astype(object)
    elif pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        if values.isna().any():
            return None
        text = values.to_numpy(object)
    else:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(text, type=pa.large_string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # not all text: pandas
        return None
    if len(arr) and any(pc.any(pc.match_substring(arr, ch)).as_py() for ch in _NEEDS_QUOTES):
        return None  # csv quoting: pandas
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data[offsets[0]:], offsets - offsets[0]


def to_csv_bytes(frame: pd.DataFrame, *, header: bool = True) -> bytes | None:
    """The bytes of ``frame.to_csv(index=False, float_format="%.10g")``, or None when the
    frame needs pandas (a column of another type, or text that CSV must quote)."""
    cols = []
    for name in frame.columns:
        col = _column(frame[name])
        if col is None:
            return None
        cols.append(col)
    head = ""
    if header:
        names = [str(c) for c in frame.columns]
        if any(ch in n for n in names for ch in _NEEDS_QUOTES):
            return None
        head = ",".join(names) + "\n"
    n = len(frame)
    if not cols:
        return None
    total = sum(int(o[-1]) for _, o in cols) + n * len(cols)
    body = _rows(numba.typed.List([d for d, _ in cols]), numba.typed.List([o for _, o in cols]),
                 n, total)
    return head.encode() + body.tobytes()


def write_csv(frame: pd.DataFrame, file, *, header: bool = True) -> None:
    """``frame.to_csv(file, index=False, header=header, float_format=FLOAT_FORMAT)``, fast
    (:func:`to_csv_bytes`) where it can be; ``file`` is a path or an open text file."""
    data = to_csv_bytes(frame, header=header)
    if data is None:
        frame.to_csv(file, index=False, header=header, float_format=FLOAT_FORMAT)
        return
    if hasattr(file, "write"):
        file.write(data.decode())
    else:
        with open(file, "wb") as fh:
            fh.write(data)
