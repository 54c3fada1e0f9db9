"""Benchmark: the partitioned iteration on a 2-worker LocalCluster vs the in-memory engine.

Simulates a dairy population (default 1 000 000 animals), then times ``--rounds`` rounds of
Part I with the in-memory engine (numba, all cores: the baseline, measured in the same run)
and with the Dask engine on a ``distributed.LocalCluster`` of 2 worker processes × 1 thread
(one pedigree block per worker), and on a LocalCluster of 2 thread workers in this process
(the embedded default of ``--engine dask``), and prints the medians and their ratios. Goal (issue: the
pedigree partitioned): Dask ≤ 1.3 × the in-memory time. Also checks that both give the same
result bit for bit, and shows where the distributed time goes (the same rounds on the
threaded scheduler in one process, and the per-task overhead of the distributed scheduler).

    python benchmarks/bench_dask.py [--animals 1000000] [--rounds 100] [--repeats 3]
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from _population import iteration_inputs, iteration_parser


def main(argv=None):
    ap = iteration_parser(__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds-per-batch", type=int, default=20)
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster

    from bigeval.reliability import iterate
    from bigeval.reliability.blocks import partition
    from bigeval.reliability.dask_engine import DaskIteration

    pop, alpha, d0, graph = iteration_inputs(args)

    t = time.perf_counter()
    part = partition(pop.sire, pop.dam, n_blocks=args.workers)
    t_plan = time.perf_counter() - t
    print(f"partition: {part.describe()} ({t_plan:.2f} s to plan)")

    def time_memory():
        return iterate(d0, graph, alpha, rounds=args.rounds, progress=False)

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client, \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=False,
                         dashboard_address=":0") as tcluster, Client(tcluster) as tclient:
        it = DaskIteration(part, client, rounds_per_batch=args.rounds_per_batch)
        tit = DaskIteration(part, tclient, rounds_per_batch=args.rounds_per_batch)
        t = time.perf_counter()
        it(d0, alpha, rounds=2, progress=False)  # sends the plans, compiles on the workers
        print(f"dask: plans sent and kernels loaded on {args.workers} worker processes in "
              f"{time.perf_counter() - t:.1f} s (once per run)")
        tit(d0, alpha, rounds=2, progress=False)
        mem, dsk, tdsk = [], [], []
        for _ in range(args.repeats):  # interleaved, so that all see the same machine load
            r_mem = time_memory()
            mem.append(r_mem.seconds)
            r_dask = it(d0, alpha, rounds=args.rounds, progress=False)
            dsk.append(r_dask.seconds)
            r_tdask = tit(d0, alpha, rounds=args.rounds, progress=False)
            tdsk.append(r_tdask.seconds)
            print(f"  in-memory {mem[-1]:.2f} s, process workers {dsk[-1]:.2f} s, thread "
                  f"workers {tdsk[-1]:.2f} s", flush=True)
        # the scheduler's own cost: a chain of trivial tasks, one per round per block
        t = time.perf_counter()
        fut = client.submit(int, 0)
        for k in range(50):
            fut = client.submit(_inc, fut, pure=False)
        fut.result()
        per_task = (time.perf_counter() - t) / 51
    thr = DaskIteration(part, "threads", rounds_per_batch=args.rounds_per_batch)
    thr(d0, alpha, rounds=2, progress=False)
    r_thr = thr(d0, alpha, rounds=args.rounds, progress=False)

    mm, md, mt = statistics.median(mem), statistics.median(dsk), statistics.median(tdsk)
    same = (np.array_equal(r_dask.d, r_mem.d) and np.array_equal(r_thr.d, r_mem.d)
            and np.array_equal(r_tdask.d, r_mem.d))
    print(f"in-memory engine, {args.rounds} rounds: median {mm:.2f} s over {len(mem)} runs "
          f"({', '.join(f'{x:.2f}' for x in mem)}); {1e3 * mm / args.rounds:.1f} ms/round")
    print(f"dask, {args.workers}-worker LocalCluster: median {md:.2f} s over {len(dsk)} runs "
          f"({', '.join(f'{x:.2f}' for x in dsk)}); {1e3 * md / args.rounds:.1f} ms/round")
    print(f"dask, {args.workers}-worker LocalCluster of threads (the embedded default): median "
          f"{mt:.2f} s ({', '.join(f'{x:.2f}' for x in tdsk)})")
    print(f"dask, threaded scheduler (one process, no distributed): {r_thr.seconds:.2f} s")
    for what, m in (("worker processes", md), ("thread workers", mt)):
        print(f"ratio dask ({what}) / in-memory: {m / mm:.2f}x   (goal <= 1.3x: "
              f"{'met' if m / mm <= 1.3 else 'not met'})")
    n_tasks = 3 * part.n_blocks + 2 * len(part.pairs)
    print(f"tasks per round: {n_tasks}; a trivial distributed task costs {1e3 * per_task:.1f} "
          f"ms here, i.e. ~{n_tasks * per_task * args.rounds:.1f} s of the run if serialised")
    print(f"identical results (bit for bit, all {args.rounds} rounds): {same}")


def _inc(x):
    return x + 1


if __name__ == "__main__":
    main()
