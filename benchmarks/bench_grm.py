"""Benchmark: blockwise G (bigeval.genomic.grm) against an in-memory numpy float32 GEMM.

Simulates a population, streams its genotypes (``iter_genotype_chunks``) into a Zarr store,
then times, in the same run:

* ``grm(store)`` with Dask's threaded scheduler (the default: the panel scheme, one
  multi-threaded SSYRK per SNP panel); with ``--tiles`` also the tile scheme (one task chain
  per pair of animal blocks, single-threaded BLAS per task) on the same scheduler;
* the baseline: ``Z @ Z.T`` of the same shape in numpy float32 with everything in memory
  (numpy calls ssyrk for ``Z @ Z.T``, so it does the same n²m flops as grm's upper blocks);
* with ``--bounded``: ``grm(store)`` on a ``distributed.LocalCluster`` whose workers have a
  memory limit smaller than the genotype store (``--worker-memory``), so the genotypes can
  never be held by one worker: bounded memory. grm then streams the finished blocks of G to
  the client as they complete (a few pairs in flight), into G in memory or, with
  ``--bounded-out``, into an HDF5 file (G never whole in any process).

Prints the median time of each, the throughput of grm as a share of numpy's (the issue's goal:
at least 85 %), and the peak memory (RSS) of this process and of the workers.

    flock /tmp/bigeval-heavy.lock python benchmarks/bench_grm.py            # 20 000 x 50 000
    python benchmarks/bench_grm.py --animals 4000 --snps 10000 --bounded
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _population import vm_hwm_gib


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _warm_up():
    """Import and compile what grm's tasks use, in a worker (not counted in its time)."""
    import numpy as np

    from bigeval.genomic.grm import _finish_fast, _pair_block

    M = np.zeros((2, 3), np.int8)
    _finish_fast(_pair_block(None, M, M, np.ones(3), True), True, 1.0)


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    return statistics.median(times), times


def _pair(text):
    a, s = (int(x) for x in text.split(","))
    return a, s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--animals", type=int, default=20_000)
    ap.add_argument("--snps", type=int, default=50_000)
    ap.add_argument("--chunks", type=_pair, default=(4096, 8192), metavar="A,S",
                    help="store chunks animals,SNPs (default 4096,8192)")
    ap.add_argument("--grm-chunks", type=_pair, default=None, metavar="A,S",
                    help="rechunk for grm (default: the store's chunks)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the store (default: a temp folder)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the numpy GEMM")
    ap.add_argument("--no-local", action="store_true",
                    help="skip grm with the threaded scheduler (e.g. for --bounded alone)")
    ap.add_argument("--bounded", action="store_true",
                    help="also run on a LocalCluster with a worker memory limit below the "
                         "store's size")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--bounded-chunks", type=_pair, default=(2048, 4096), metavar="A,S",
                    help="grm chunks for the bounded run (default 2048,4096: one task's "
                         "blocks fit a worker's limit; with 2048,8192 the workers peaked at "
                         "0.63 GiB and paused at 80 %% of 715 MiB, same time)")
    ap.add_argument("--tiles", action="store_true",
                    help="also time the tile scheme with the threaded scheduler")
    ap.add_argument("--bounded-out", action="store_true",
                    help="bounded run: write G blockwise to an HDF5 file in the temp folder")
    ap.add_argument("--in-flight", type=int, default=None,
                    help="bounded run: pairs of blocks in flight (default: grm's)")
    ap.add_argument("--worker-memory", default=None,
                    help="memory limit per worker (default: 3/4 of the store's int8 size, "
                         "at least 600 MiB)")
    args = ap.parse_args(argv)

    from bigeval.genomic.grm import grm
    from bigeval.io.genotypes import open_genotypes, write_genotypes
    from bigeval.simulate import SimulationConfig, iter_genotype_chunks, simulate

    rows, cols = args.chunks
    n, m = args.animals, args.snps
    flops = 1.0 * n * n * m  # the upper triangle: what ssyrk and grm's upper blocks do
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = time.perf_counter()
        pop = simulate(SimulationConfig(n_animals=max(2 * n, 2_000), n_genotyped=n, n_snps=m),
                       keep_genotypes=False)
        ids = pop.genotyped.to_numpy().astype(str)
        blocks = ((ids[r0:r0 + len(b)].tolist(), b)
                  for r0, b in iter_genotype_chunks(pop, chunk_rows=rows))
        store = write_genotypes(blocks, Path(tmp) / "geno.zarr", snp_ids=pop.snp_map["snp"],
                                chunks=(rows, cols))
        del pop, blocks
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        print(f"store: {n:,} x {m:,} int8 ({n * m / 1024**3:.2f} GiB), chunks ({rows}, {cols}), "
              f"{size / 1024**2:.1f} MiB on disk ({n * m / max(size, 1):.1f}x), simulated and "
              f"written in {time.perf_counter() - t:.1f} s", flush=True)

        t_grm = None
        if not args.no_local:
            t_grm, all_grm = _timed(lambda: grm(store, chunks=args.grm_chunks), args.repeats)
            print(f"grm (dask threads, panel scheme): median {t_grm:.2f} s of "
                  f"{[round(x, 2) for x in all_grm]}  ({flops / t_grm / 1e9:.0f} GFLOP/s, "
                  f"n²m flops); peak RSS so far {_peak_rss_gib():.2f} GiB", flush=True)
        if args.tiles:
            t_t, all_t = _timed(lambda: grm(store, chunks=args.grm_chunks, scheme="tiles"),
                                args.repeats)
            print(f"grm (dask threads, tile scheme): median {t_t:.2f} s of "
                  f"{[round(x, 2) for x in all_t]}  ({flops / t_t / 1e9:.0f} GFLOP/s); "
                  + (f"panel / tiles time {t_grm / t_t:.2f}" if t_grm else ""), flush=True)
        t_np = None
        if not args.no_baseline:
            X, _, _ = open_genotypes(store)
            M = X.compute()
            Z = np.empty(M.shape, np.float32)  # centred in float32, no float64 n x m copy
            np.subtract(M, M.mean(axis=0), out=Z, casting="unsafe")
            del M, X
            t_np, all_np = _timed(lambda: Z @ Z.T, args.repeats)
            del Z
            print(f"numpy float32 Z @ Z.T in memory: median {t_np:.2f} s of "
                  f"{[round(x, 2) for x in all_np]}  ({flops / t_np / 1e9:.0f} GFLOP/s)")
            if t_grm:
                print(f"grm / numpy time: {t_grm / t_np:.2f}; grm throughput = "
                      f"{100 * t_np / t_grm:.0f} % of numpy's (goal >= 85 %)", flush=True)
        print(f"peak memory (RSS) of this process: {_peak_rss_gib():.2f} GiB", flush=True)

        if args.bounded:
            import dask
            from distributed import Client, LocalCluster

            # below the store's size, but not below what a worker process itself needs
            limit = args.worker_memory or f"{max(600, int(0.75 * n * m / 1024**2))}MiB"
            with LocalCluster(n_workers=args.workers, threads_per_worker=1,
                              memory_limit=limit, processes=True,
                              dashboard_address=":0") as cluster, Client(cluster) as client, \
                    dask.config.set({"distributed.worker.memory.target": 0.6,
                                     "distributed.worker.memory.spill": 0.7}):
                bc = args.bounded_chunks
                client.run(_warm_up)  # worker imports, numba compile
                out = Path(tmp) / "G.h5" if args.bounded_out else None
                t_b, all_b = _timed(lambda: grm(store, chunks=bc, out=out,
                                                in_flight=args.in_flight), args.repeats)
                peaks = client.run(vm_hwm_gib)
            print(f"bounded: {args.workers} workers x 1 thread, memory limit {limit} each, "
                  f"grm chunks {bc} "
                  f"(store {n * m / 1024**2:.0f} MiB int8): median {t_b:.2f} s of "
                  f"{[round(x, 2) for x in all_b]}" + (
                      f"; {100 * t_np / t_b:.0f} % of numpy's throughput" if t_np else "")
                  + f"; worker peak RSS {max(peaks.values()):.2f} GiB; this process "
                  f"{_peak_rss_gib():.2f} GiB "
                  + ("(G written blockwise to HDF5)" if out else "(holds G)"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
