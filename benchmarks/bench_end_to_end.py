"""``bigeval reliability`` end to end beside its I/O floors, on a 1 000 000-animal pedigree.

The population: animals A1..An, the first 2 % founders, each later animal's sire drawn from
the males and its dam from the females of the 200 000 animals before it (10 % of sires
unknown), 1 139 861 records in 67 000 contemporary groups (the sizes of issue 20). Printed,
as medians of ``--repeats`` runs: the whole command (a fresh process, as a user runs it), and
in the same run the floors: pyarrow reading both files, pyarrow writing a table of the
result's shape.

    python benchmarks/bench_end_to_end.py [--animals 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _population import median_time


def write_population(folder: Path, n: int, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    nf = max(2, n // 50)
    ids = np.arange(n)
    male = rng.random(n) < 0.5
    sire = np.zeros(n, np.int64)
    dam = np.zeros(n, np.int64)
    window = max(1000, n // 5)
    for i0 in range(nf, n, 50_000):
        i1 = min(i0 + 50_000, n)
        near = (ids < i0) & (ids >= i0 - window)
        sire[i0:i1] = rng.choice(ids[near & male], i1 - i0) + 1
        dam[i0:i1] = rng.choice(ids[near & ~male], i1 - i0) + 1
    sire[(rng.random(n) < 0.1) & (ids >= nf)] = 0
    ped, rec = folder / "ped.txt", folder / "rec.txt"
    with open(ped, "w") as fh:
        fh.write("".join(f"A{i + 1} {f'A{s}' if s else '0'} {f'A{d}' if d else '0'}\n"
                         for i, s, d in zip(range(n), sire, dam)))
    n_rec = int(n * 1.139861)
    animal = rng.choice(np.arange(nf, n), n_rec)
    cg = rng.integers(0, max(1, int(n * 0.067)), n_rec)
    with open(rec, "w") as fh:
        fh.write("".join(f"A{a + 1} G{c}\n" for a, c in zip(animal, cg)))
    return ped, rec




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import pyarrow.csv as pacsv

    folder = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    ped, rec = write_population(folder, args.animals)
    out = folder / "out"

    def command():
        subprocess.run([sys.executable, "-m", "bigeval.cli", "reliability", "--pedigree",
                        str(ped), "--records", str(rec), "--alpha", "3", "--rounds", "100",
                        "--out", str(out), "--no-progress"], check=True,
                       stdout=subprocess.DEVNULL)

    command()  # numba caches compiled once
    t_cmd = median_time(command, args.repeats)
    opts = pacsv.ReadOptions(autogenerate_column_names=True)
    parse = pacsv.ParseOptions(delimiter=" ")
    t_read = median_time(lambda: (pacsv.read_csv(ped, read_options=opts, parse_options=parse),
                             pacsv.read_csv(rec, read_options=opts, parse_options=parse)),
                    args.repeats)
    result = pacsv.read_csv(out / "reliability.csv")
    t_write = median_time(lambda: pacsv.write_csv(result, folder / "floor.csv"), args.repeats)
    n_rows = result.num_rows
    print(f"{args.animals:,} animals, {n_rows:,} result rows; medians of {args.repeats}")
    print(f"  bigeval reliability (whole command)  {t_cmd:6.2f} s")
    print(f"  floor: pyarrow reads both files      {t_read:6.2f} s")
    print(f"  floor: pyarrow writes the table      {t_write:6.2f} s")


if __name__ == "__main__":
    main()
