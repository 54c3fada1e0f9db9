"""What checkpoints cost and save: a full `bigeval run` against reruns that reuse its stages.

Simulates a population, writes its genotypes to a Zarr store and a config, then measures in
the same process:

* the full run (every stage executed), once;
* a rerun with nothing changed (every stage verified by hashing its outputs, then reused),
  ``--repeats`` times: the overhead of checkpointing, as a ratio of the full run;
* a rerun after an h² change (solve, reliabilities, report re-run), the saving of reuse;
* hashing throughput of the inputs, cold (no cache) and with the size/time cache.

    flock /tmp/bigeval-heavy.lock python3 benchmarks/bench_run.py --animals 200000 \\
        --genotyped 2000 --snps 10000

Prints medians and ratios against the full run measured in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--animals", type=int, default=100_000)
    p.add_argument("--genotyped", type=int, default=1_000)
    p.add_argument("--snps", type=int, default=5_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dir", type=Path, default=None, help="work folder (default: temporary)")
    args = p.parse_args(argv)

    from bigeval.io.genotypes import write_genotypes
    from bigeval.pipeline import load_config, run_pipeline
    from bigeval.pipeline.checkpoint import InputHasher
    from bigeval.simulate import SimulationConfig, simulate, write_population

    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_run."))
    t0 = time.perf_counter()
    sim = simulate(SimulationConfig(n_animals=args.animals, n_genotyped=args.genotyped,
                                    n_snps=args.snps, seed=2026))
    files = write_population(sim, root / "data")
    files.pop("genotypes").unlink()
    ids = np.asarray(sim.genotyped, dtype=str)
    rows = 1024
    write_genotypes(((ids[r:r + rows].tolist(), sim.genotypes[r:r + rows])
                     for r in range(0, len(ids), rows)), root / "data" / "genotypes.zarr",
                    snp_ids=sim.snp_ids, chunks=(rows, 4096))
    (root / "config.toml").write_text(
        '[inputs]\npedigree = "data/pedigree.txt"\nrecords = "data/records.txt"\n'
        'genotypes = "data/genotypes.zarr"\ninterbull = "data/interbull.txt"\n'
        "birth_year_column = 4\nsex_column = 5\n[parameters]\nh2 = 0.25\n"
        "repeatability = 0.40\ntau = 4.0\n[model]\ntrait = 3\n[exact]\ncheck = false\n"
        '[output]\nfolder = "results"\n')
    print(f"population: {len(sim.pedigree):,} animals, {len(sim.records):,} records, "
          f"{len(ids):,} genotyped x {args.snps:,} SNPs; simulated in "
          f"{time.perf_counter() - t0:.1f} s; folder {root}")
    cfg = load_config(root / "config.toml")

    def timed(c, **kw):
        t = time.perf_counter()
        r = run_pipeline(c, progress=False, **kw)
        return time.perf_counter() - t, r

    full, res = timed(cfg)
    stages = {s["name"]: s["seconds"] for s in res.manifest["stages"]}
    print(f"full run: {full:.2f} s  (" + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
          + ")")
    reruns = [timed(cfg)[0] for _ in range(args.repeats)]
    med = statistics.median(reruns)
    print(f"rerun, nothing changed (all stages verified and reused): median {med:.3f} s of "
          f"{args.repeats} (min {min(reruns):.3f}, max {max(reruns):.3f}); "
          f"ratio to the full run {med / full:.4f}")
    h2 = [timed(cfg.replace(**{"parameters.h2": 0.25 + 0.01 * (k + 1)}))
          for k in range(max(1, args.repeats // 2))]
    med_h2 = statistics.median(t for t, _ in h2)
    print(f"rerun after an h2 change (executed {', '.join(h2[0][1].executed)}): median "
          f"{med_h2:.2f} s; ratio to the full run {med_h2 / full:.3f}")
    inputs = [root / "data" / n for n in ("pedigree.txt", "records.txt", "interbull.txt",
                                         "genotypes.zarr")]
    size = sum(p.stat().st_size if p.is_file() else
               sum(q.stat().st_size for q in p.rglob("*") if q.is_file()) for p in inputs)
    def hash_inputs(cache):
        """Seconds to hash every input with a fresh hasher (``cache``: its size/time file)."""
        h = InputHasher(cache)
        t = time.perf_counter()
        for p in inputs:
            h(p)
        return time.perf_counter() - t, h

    cold = [hash_inputs(None)[0] for _ in range(3)]
    cache = root / "hash-cache.json"
    hash_inputs(cache)[1].save()
    warm = [hash_inputs(cache)[0] for _ in range(3)]
    c, w = statistics.median(cold), statistics.median(warm)
    print(f"hashing the inputs ({size / 1e6:,.1f} MB): no cache median {c:.3f} s "
          f"({size / 1e6 / c:,.0f} MB/s); with the size/time cache {w:.4f} s "
          f"(ratio {w / c:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
