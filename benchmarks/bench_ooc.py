"""Benchmark: out-of-core preparation and Part I for a 10-million-animal population.

Writes a herd-structured dairy pedigree (``animal sire dam birth_year``, rows shuffled, IDs
such as ``CZ418003215``) and its lactation records to disk in blocks, then runs, each in its
own process so that its peak memory (``ru_maxrss`` from ``wait4``) is its own:

* the out-of-core path (:mod:`bigeval.prepare.ooc`: chunked reading, key renumbering, Zarr
  work folder, block-wise ERC, the in-memory iteration, the table written in blocks) at the
  large size (default 10 000 000 animals, 20 rounds);
* at the small size (default 1 000 000), the in-memory path (:func:`bigeval.prepare.prepare`
  + :func:`bigeval.reliability.reliability` + one CSV) and the out-of-core path, as the
  baseline measured in the same run, and checks that their ``reliability.csv`` are
  byte-identical.

It prints the time of every stage and the peak memory of every run. Goal (issue 4, item 4):
the whole 10 M run under 8 GiB.

    flock /tmp/bigeval-heavy.lock python benchmarks/bench_ooc.py [--animals 10000000]
        [--small 1000000] [--rounds 20] [--dir DIR] [--keep]

Files go to ``--dir`` (default a temporary folder; ~3 GB at 10 M animals) and are deleted at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _population import vm_hwm_gib

GIB = 2**30


# ---------------------------------------------------------------------------------------------
# a population written in blocks (the simulator holds everything in memory)


def _ids(index: np.ndarray, offset: int):
    """``CZ`` + 9 digits, an affine bijection of the animal number (unique, unordered)."""
    import pyarrow as pa

    number = (index.astype(np.int64) * 387_420_489 + offset) % 10**9
    buf = np.empty((len(index), 11), np.uint8)
    buf[:, 0], buf[:, 1] = ord("C"), ord("Z")
    for k in range(9):
        buf[:, 10 - k] = 48 + (number // 10**k) % 10
    offsets = np.arange(0, 11 * len(index) + 1, 11, dtype=np.int32)
    return pa.StringArray.from_buffers(len(index), pa.py_buffer(offsets),
                                       pa.py_buffer(buf.ravel()))


def _write_rows(fh, columns: dict) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(columns), fh, write_options=pacsv.WriteOptions(
        include_header=False, delimiter=" ", quoting_style="none"))


def generate(out: Path, n_animals: int, seed: int, years: int = 15, block: int = 1_000_000):
    """Pedigree and records of about ``n_animals`` animals; returns counts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    y0 = 2025 - years + 1
    per_year = n_animals // (years + 2)
    n_founders = n_animals - per_year * years
    n_herds = max(1, per_year // 80)  # ~100 cows calving ~80 calves a year per herd
    sex = np.zeros(n_animals, bool)  # True: male
    herd = np.zeros(n_animals, np.int32)
    byear = np.zeros(n_animals, np.int16)
    sire = np.full(n_animals, -1, np.int64)
    dam = np.full(n_animals, -1, np.int64)
    sex[:n_founders] = rng.random(n_founders) < 0.05
    herd[:n_founders] = rng.integers(0, n_herds, n_founders)
    byear[:n_founders] = y0 - rng.integers(2, 9, n_founders)
    k = n_founders
    offset = int(rng.integers(10**9))
    n_rec = 0
    with open(out / "records.txt", "wb") as rec:
        for y in range(y0, y0 + years):
            age = y - byear[:k]
            cows = np.flatnonzero(~sex[:k] & (age >= 2) & (age <= 9))
            # lactation records of this year's cows: herd-year-season groups
            lact = cows[rng.random(len(cows)) < 0.8]
            season = rng.integers(1, 5, len(lact))
            cg = pc.binary_join_element_wise(
                pc.utf8_lpad(pa.array(herd[lact]).cast(pa.string()), 5, "0"),
                pa.array(np.char.add(f"Y{y}S", season.astype(str)).astype(object)), "")
            cg = pc.binary_join_element_wise(pa.scalar("H"), cg, "")
            _write_rows(rec, {"animal": _ids(lact, offset), "cg": cg})
            n_rec += len(lact)
            # this year's calves: dams from the cows, sires from a pool of young AI bulls
            m = min(per_year, len(cows), n_animals - k)
            dams = rng.choice(cows, m, replace=False)
            bulls = np.flatnonzero(sex[:k] & (y - byear[:k] >= 2) & (y - byear[:k] <= 7))
            pool = rng.choice(bulls, min(len(bulls), 400), replace=False)
            calves = np.arange(k, k + m)
            sire[calves] = pool[rng.integers(0, len(pool), m)] if len(pool) else -1
            dam[calves] = dams
            sire[calves[rng.random(m) < 0.05]] = -1  # unknown parents
            dam[calves[rng.random(m) < 0.03]] = -1
            sex[calves] = rng.random(m) < 0.5
            herd[calves] = herd[dams]
            byear[calves] = y
            k += m
    n = k
    perm = rng.permutation(n)  # rows in random order
    unknown = pa.scalar("0")
    with open(out / "pedigree.txt", "wb") as ped:
        for lo in range(0, n, block):
            idx = perm[lo : lo + block]
            s, d = sire[idx], dam[idx]
            _write_rows(ped, {
                "animal": _ids(idx, offset),
                "sire": pc.if_else(pa.array(s < 0), unknown, _ids(np.maximum(s, 0), offset)),
                "dam": pc.if_else(pa.array(d < 0), unknown, _ids(np.maximum(d, 0), offset)),
                "birth_year": pa.array(byear[idx]).cast(pa.string()),
            })
    return {"animals": n, "records": n_rec, "herds": n_herds}


# ---------------------------------------------------------------------------------------------
# the runs (each in a child process)


def _peak_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def run_ooc(data: Path, out: Path, rounds: int, chunk_rows: int, engine: str = "memory"
            ) -> dict:
    """The out-of-core run; with ``engine="dask"`` the iteration runs on a LocalCluster of 2
    worker processes (resident blocks), whose peaks are reported with this process's."""
    from bigeval.io import ooc
    from bigeval.prepare.ooc import prepare_ooc, reliability_ooc, result_chunks
    from bigeval.reliability.engine import ReliabilityOptions

    opts = ReliabilityOptions(alpha=3.0, rounds=rounds)
    stages = {}
    t = time.perf_counter()
    pop = prepare_ooc(data / "pedigree.txt", data / "records.txt", work=out / "work.zarr",
                      chunk_rows=chunk_rows, progress=True)
    stages["prepare (read, check, renumber, to Zarr)"] = (time.perf_counter() - t, _peak_gib())
    workers = []
    with contextlib.ExitStack() as stack:
        iterator, where = None, "in memory"
        if engine == "dask":
            from distributed import Client, LocalCluster

            from bigeval.reliability.distributed.blocks import partition
            from bigeval.reliability.distributed.dask_engine import DaskIteration

            cluster = stack.enter_context(LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
            t = time.perf_counter()
            part = partition(pop.array("sire"), pop.array("dam"), groups=2)
            stages[f"partition ({part.n_blocks} blocks)"] = (time.perf_counter() - t,
                                                             _peak_gib())
            iterator, where = DaskIteration(part, client), "on 2 worker processes"
        t = time.perf_counter()
        res = reliability_ooc(pop, opts, progress=False, iterator=iterator)
        it = res.part1.seconds
        stages["start vector" + (" + family graph" if iterator is None else "")] = (
            time.perf_counter() - t - it, None)
        stages[f"iteration {where}, {res.part1.rounds} rounds"] = (it, _peak_gib())
        if engine == "dask":
            workers = sorted(client.run(vm_hwm_gib).values())
    t = time.perf_counter()
    ooc.write_table_chunks(result_chunks(pop, res), out / "reliability.csv")
    stages["write reliability.csv in blocks"] = (time.perf_counter() - t, _peak_gib())
    return {"stages": stages, "animals": pop.n_animals, "records": pop.n_records,
            "groups": pop.n_cg, "worker_peaks": workers}


def run_memory(data: Path, out: Path, rounds: int) -> dict:
    from bigeval.io.writers import write_csv_atomic
    from bigeval.prepare import prepare
    from bigeval.reliability.engine import ReliabilityOptions, reliability, result_table

    opts = ReliabilityOptions(alpha=3.0, rounds=rounds)
    stages = {}
    t = time.perf_counter()
    pop = prepare(data / "pedigree.txt", data / "records.txt")
    stages["prepare (pandas, in memory)"] = (time.perf_counter() - t, _peak_gib())
    t = time.perf_counter()
    res = reliability(pop, opts, progress=False)
    it = res.part1.seconds
    stages["start vector + family graph"] = (time.perf_counter() - t - it, None)
    stages[f"iteration, {res.part1.rounds} rounds"] = (it, _peak_gib())
    t = time.perf_counter()
    write_csv_atomic(result_table(pop, res), out / "reliability.csv", float_format="%.10g")
    stages["write reliability.csv"] = (time.perf_counter() - t, _peak_gib())
    return {"stages": stages, "animals": pop.n_animals, "records": pop.n_records,
            "groups": pop.n_cg}


def child(argv) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("generate", "ooc", "memory"))
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--animals", type=int)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--engine", default="memory")
    a = ap.parse_args(argv)
    if a.what == "generate":
        a.data.mkdir(parents=True, exist_ok=True)
        result = generate(a.data, a.animals, a.seed)
    elif a.what == "ooc":
        a.out.mkdir(parents=True, exist_ok=True)
        result = run_ooc(a.data, a.out, a.rounds, a.chunk_rows, a.engine)
    else:
        a.out.mkdir(parents=True, exist_ok=True)
        result = run_memory(a.data, a.out, a.rounds)
    print("RESULT " + json.dumps(result))


def spawn(*args) -> tuple[dict, float, float]:
    """Run this script as a child; its result, wall time and peak RSS (GiB, from wait4)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", *map(str, args)],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed with exit code {proc.returncode}")
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[7:]), wall, usage.ru_maxrss * 1024 / GIB


def _report(label: str, result: dict, wall: float, peak: float) -> None:
    print(f"\n{label}: {result['animals']:,} animals, {result['records']:,} records, "
          f"{result['groups']:,} contemporary groups")
    for name, (sec, rss) in result["stages"].items():
        print(f"  {name:45s} {sec:8.1f} s" + (f"   peak so far {rss:5.2f} GiB" if rss else ""))
    print(f"  {'whole run (process wall time)':45s} {wall:8.1f} s   peak RSS {peak:5.2f} GiB")
    if result.get("worker_peaks"):
        w = result["worker_peaks"]
        print(f"  {'Dask worker processes, peak RSS each':45s} "
              + ", ".join(f"{x:.2f}" for x in w) + f" GiB; with this process at most "
              f"{peak + sum(w):.2f} GiB together")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--animals", type=int, default=10_000_000)
    ap.add_argument("--small", type=int, default=1_000_000,
                    help="size of the in-memory vs out-of-core comparison (0: skip)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--dir", type=Path, help="folder for the files (default: temporary)")
    ap.add_argument("--keep", action="store_true", help="keep the files")
    ap.add_argument("--engine", choices=("memory", "dask"), default="memory",
                    help="where the large run's iteration runs: in this process, or on a "
                         "LocalCluster of 2 worker processes (resident blocks)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-ooc-", dir=args.dir))
    free = shutil.disk_usage(root).free / GIB
    need = args.animals * 300 / GIB
    print(f"work folder {root}: {free:.0f} GiB free, about {need:.1f} GiB needed")
    if free < need:
        raise SystemExit("not enough disk; give --dir on a larger file system")
    try:
        peaks = {}
        if args.small:
            small = root / "small"
            info, wall, peak = spawn("generate", small, "--animals", args.small,
                                     "--seed", args.seed)
            print(f"\ngenerated {info['animals']:,} animals, {info['records']:,} records in "
                  f"{wall:.1f} s (peak {peak:.2f} GiB)")
            mem = spawn("memory", small, "--out", small / "mem", "--rounds", args.rounds)
            _report("in memory (baseline)", *mem)
            got = spawn("ooc", small, "--out", small / "ooc", "--rounds", args.rounds,
                        "--chunk-rows", args.chunk_rows)
            _report("out of core", *got)
            same = filecmp.cmp(small / "mem" / "reliability.csv",
                               small / "ooc" / "reliability.csv", shallow=False)
            print(f"  reliability.csv byte-identical to the in-memory run: {same}")
            print(f"  ratios out-of-core / in-memory: time {got[1] / mem[1]:.2f}, "
                  f"peak memory {got[2] / mem[2]:.2f}")
            peaks["small"] = (mem[2], got[2])
            shutil.rmtree(small, ignore_errors=True)
        large = root / "large"
        info, wall, peak = spawn("generate", large, "--animals", args.animals,
                                 "--seed", args.seed)
        size = sum(f.stat().st_size for f in large.glob("*.txt")) / GIB
        print(f"\ngenerated {info['animals']:,} animals, {info['records']:,} records "
              f"({size:.2f} GiB of text) in {wall:.1f} s (peak {peak:.2f} GiB)")
        res, wall, peak = spawn("ooc", large, "--out", large / "ooc", "--rounds", args.rounds,
                                "--chunk-rows", args.chunk_rows, "--engine", args.engine)
        where = "on Dask" if args.engine == "dask" else "in memory"
        _report(f"out of core, large, iteration {where}", res, wall, peak)
        peak += sum(res.get("worker_peaks", []))
        print(f"\ngoal: whole {info['animals'] / 1e6:.0f} M-animal run under 8 GiB: "
              f"{'met' if peak < 8 else 'NOT met'} (peak {peak:.2f} GiB"
              + (", this process and the workers together)" if args.engine == "dask" else ")"))
        if "small" in peaks:
            m, o = peaks["small"]
            print(f"peak per animal: in memory {m * GIB / args.small:.0f} B at "
                  f"{args.small / 1e6:g} M, out of core {o * GIB / args.small:.0f} B at "
                  f"{args.small / 1e6:g} M and {peak * GIB / info['animals']:.0f} B at "
                  f"{info['animals'] / 1e6:g} M")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
