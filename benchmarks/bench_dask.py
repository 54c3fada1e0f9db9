"""Benchmark: the partitioned iteration on a 2-worker LocalCluster vs the in-memory engine.

Simulates a dairy population (default 1 000 000 animals), then times ``--rounds`` rounds of
Part I with the in-memory engine (numba, all cores: the baseline, measured in the same run)
and with the Dask engine on a ``distributed.LocalCluster`` of 2 worker processes × 1 thread,
planned as the engine plans it (one block per worker, sums per parent between workers,
:func:`bigeval.reliability.distributed.cluster.reliability_engine`): with worker-resident blocks
(the
default under distributed, :mod:`bigeval.reliability.distributed.resident`), the same with every
contribution sent (``--exact-sums``), and with one Dask graph per batch of rounds
(``mode="graph"``); and on a LocalCluster of 2 thread workers in this process. Prints the
medians and their ratios. Goal (issue: the pedigree partitioned): Dask ≤ 1.3 × the in-memory
time. Also prints each result's largest difference to the in-memory engine's, and the
distributed scheduler's per-task cost here.

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
    ap.add_argument("--no-graph", action="store_true", help="skip the graph mode")
    args = ap.parse_args(argv)

    from distributed import Client, LocalCluster

    from bigeval.reliability import iterate
    from bigeval.reliability.distributed.blocks import partition
    from bigeval.reliability.distributed.dask_engine import DaskIteration

    pop, alpha, d0, graph = iteration_inputs(args)

    t = time.perf_counter()
    # one block per worker, sums per parent between workers: as the engine plans it
    part = partition(pop.sire, pop.dam, groups=args.workers, presum=True)
    t_plan = time.perf_counter() - t
    print(f"partition: {part.describe()} ({t_plan:.2f} s to plan)")
    exact = partition(pop.sire, pop.dam, groups=args.workers)  # --exact-sums
    print(f"partition with exact sums: {exact.describe()}")

    def time_memory():
        return iterate(d0, graph, alpha, rounds=args.rounds, progress=False)

    rpb = args.rounds_per_batch
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client, \
            LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=False,
                         dashboard_address=":0") as tcluster, Client(tcluster) as tclient:
        variants = {
            "process workers, resident blocks": DaskIteration(part, client,
                                                              rounds_per_batch=rpb),
            "process workers, resident blocks, exact sums": DaskIteration(
                exact, client, rounds_per_batch=rpb)}
        if not args.no_graph:
            variants["process workers, graph"] = DaskIteration(part, client, mode="graph",
                                                               rounds_per_batch=rpb)
        variants["thread workers, resident blocks"] = DaskIteration(part, tclient,
                                                                    mode="resident",
                                                                    rounds_per_batch=rpb)
        if not args.no_graph:
            variants["thread workers, graph"] = DaskIteration(part, tclient, mode="graph",
                                                              rounds_per_batch=rpb)
        for name, it in variants.items():
            t = time.perf_counter()
            it(d0, alpha, rounds=2, progress=False)  # sends the plans, loads the kernels
            print(f"{name}: plans sent and kernels loaded in {time.perf_counter() - t:.1f} s "
                  "(once per run)", flush=True)
        mem = []
        times = {name: [] for name in variants}
        results = {}
        for _ in range(args.repeats):  # interleaved, so that all see the same machine load
            r_mem = time_memory()
            mem.append(r_mem.seconds)
            for name, it in variants.items():
                results[name] = it(d0, alpha, rounds=args.rounds, progress=False)
                times[name].append(results[name].seconds)
            print("  in-memory " + f"{mem[-1]:.2f} s, " + ", ".join(
                f"{name} {t[-1]:.2f} s" for name, t in times.items()), flush=True)
        # the scheduler's own cost: a chain of trivial tasks
        t = time.perf_counter()
        fut = client.submit(int, 0)
        for k in range(50):
            fut = client.submit(_inc, fut, pure=False)
        fut.result()
        per_task = (time.perf_counter() - t) / 51

    mm = statistics.median(mem)
    print(f"in-memory engine, {args.rounds} rounds: median {mm:.2f} s over {len(mem)} runs "
          f"({', '.join(f'{x:.2f}' for x in mem)}); {1e3 * mm / args.rounds:.1f} ms/round")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"dask, {args.workers}-worker LocalCluster, {name}: median {m:.2f} s "
              f"({', '.join(f'{x:.2f}' for x in t)}); {1e3 * m / args.rounds:.1f} ms/round; "
              f"ratio to in-memory {m / mm:.2f}x (goal <= 1.3x: "
              f"{'met' if m / mm <= 1.3 else 'not met'})")
    for name, r in results.items():
        diff = float(np.max(np.abs(r.d - r_mem.d)))
        rel = float(np.max(np.abs(r.d - r_mem.d) / np.maximum(np.abs(r_mem.d), 1e-300)))
        verdict = "bit for bit" if diff == 0 else (
            f"within the issue's 1e-12: {'yes' if diff <= 1e-12 else 'no'}")
        print(f"{name}: largest difference to the in-memory ERC {diff:.1e}, relative "
              f"{rel:.1e} ({verdict}; largest ERC {float(np.max(r_mem.d)):.1f})")
    print(f"a trivial distributed task costs {1e3 * per_task:.1f} ms here")


def _inc(x):
    return x + 1


if __name__ == "__main__":
    main()
