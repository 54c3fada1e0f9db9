"""Parquet tables (zstd), the format of the run's stage outputs and of results beside the CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["read_parquet", "write_parquet"]


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` to ``path`` (no index, zstd); returns the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd")
    return path


def read_parquet(path: Path) -> pd.DataFrame:
    """A table written by :func:`write_parquet`."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()
