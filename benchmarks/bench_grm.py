"""Benchmark: blockwise G (bigeval.grm) against an in-memory numpy float32 GEMM.

Simulates a population, streams its genotypes (``iter_genotype_chunks``) into a Zarr store,
then times ``grm(store)`` and, in the same run, ``Z @ Z.T`` of the same shape in numpy
float32 (the baseline: what G costs when everything fits in memory). Prints the median time
of each, their ratio, and the peak memory (RSS) of the process.

    python benchmarks/bench_grm.py                       # 20 000 x 50 000 (minutes)
    python benchmarks/bench_grm.py --animals 4000 --snps 10000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    return statistics.median(times), times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--animals", type=int, default=20_000)
    ap.add_argument("--snps", type=int, default=50_000)
    ap.add_argument("--chunks", default="4096,8192", metavar="A,S",
                    help="store chunks animals,SNPs (default 4096,8192)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the store (default: a temp folder)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the numpy GEMM")
    args = ap.parse_args(argv)

    from bigeval.grm import grm
    from bigeval.io.genotypes import open_genotypes, write_genotypes
    from bigeval.simulate import SimulationConfig, iter_genotype_chunks, simulate

    rows, cols = (int(x) for x in args.chunks.split(","))
    n, m = args.animals, args.snps
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = time.perf_counter()
        pop = simulate(SimulationConfig(n_animals=max(2 * n, 2_000), n_genotyped=n, n_snps=m),
                       keep_genotypes=False)
        ids = pop.genotyped.to_numpy().astype(str)
        blocks = ((ids[r0:r0 + len(b)].tolist(), b)
                  for r0, b in iter_genotype_chunks(pop, chunk_rows=rows))
        store = write_genotypes(blocks, Path(tmp) / "geno.zarr", snp_ids=pop.snp_map["snp"],
                                chunks=(rows, cols))
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"store: {n:,} x {m:,} int8, chunks ({rows}, {cols}), {size / 1024**2:.1f} MiB "
              f"on disk ({n * m / max(size, 1):.1f}x), simulated and written in "
              f"{time.perf_counter() - t:.1f} s")

        t_grm, all_grm = _timed(lambda: grm(store), args.repeats)
        flops = 2.0 * n * n * m
        print(f"grm (dask, blockwise): median {t_grm:.2f} s of {[round(x, 2) for x in all_grm]}"
              f"  ({flops / t_grm / 1e9:.0f} GFLOP/s of the full n x n x m GEMM)")
        if not args.no_baseline:
            X, _, _ = open_genotypes(store)
            M = X.compute()
            Z = (M - M.mean(axis=0)).astype(np.float32)
            del M
            t_np, all_np = _timed(lambda: Z @ Z.T, args.repeats)
            print(f"numpy float32 Z @ Z.T in memory: median {t_np:.2f} s of "
                  f"{[round(x, 2) for x in all_np]}  ({flops / t_np / 1e9:.0f} GFLOP/s)")
            print(f"ratio grm / numpy f32: {t_grm / t_np:.2f}")
        print(f"peak memory (RSS): {_peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
