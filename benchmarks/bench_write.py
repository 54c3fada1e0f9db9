"""Writing the per-animal results table: the compiled CSV writer against pandas (its twin).

Both write the same bytes (``DataFrame.to_csv(index=False, float_format="%.10g")``; checked
here). The table has the columns of ``reliability.csv``, 10 % of the animals genotyped. The
floor is pyarrow's CSV writer on the same table (it writes floats with up to 17 digits, so a
different text). Medians of ``--repeats`` runs.

    python benchmarks/bench_write.py [--animals 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _population import median_time
import pandas as pd

from bigeval.io.csvfast import write_csv


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rel = rng.random(n)
    erc = 3 * rel / (1 - rel)
    return pd.DataFrame({
        "animal": pd.array([f"CZ{i:010d}" for i in rng.permutation(n)], dtype="string"),
        "erc_records": rng.integers(0, 12, n) * (1 - 1 / 37), "erc_pedigree": erc,
        "rel_pedigree": rel, "rel_genomic": np.where(rng.random(n) < 0.9, np.nan, rel),
        "erc_final": erc * 1.01, "rel_final": erc * 1.01 / (erc * 1.01 + 3)})




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import pyarrow as pa
    import pyarrow.csv as pacsv

    frame = table(args.animals)
    folder = Path(tempfile.mkdtemp(prefix="bench-write-"))
    write_csv(frame.head(10), folder / "warm.csv")  # compile once
    t_pandas = median_time(lambda: frame.to_csv(folder / "pandas.csv", index=False,
                                                float_format="%.10g"), args.repeats)
    t_fast = median_time(lambda: write_csv(frame, folder / "fast.csv"), args.repeats)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    t_floor = median_time(lambda: pacsv.write_csv(arrow, folder / "arrow.csv"), args.repeats)
    same = (folder / "pandas.csv").read_bytes() == (folder / "fast.csv").read_bytes()
    size = (folder / "fast.csv").stat().st_size / 2**20
    print(f"{args.animals:,} rows, {size:.0f} MiB; medians of {args.repeats}")
    print(f"  pandas to_csv (%.10g)  {t_pandas:6.2f} s")
    print(f"  bigeval write_csv      {t_fast:6.2f} s   {t_fast / t_pandas:.2f}x pandas, "
          f"{t_fast / t_floor:.2f}x the floor; same bytes as pandas: {same}")
    print(f"  floor: pyarrow csv     {t_floor:6.2f} s   (other float text)")


if __name__ == "__main__":
    main()
