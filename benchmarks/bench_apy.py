"""Benchmark: APY G*⁻¹, the A22⁻¹ operator, and Part II's diagonals without n_g × n_g matrices.

Three parts (each its own command), all on simulated herd-structured populations
(:mod:`bigeval.simulate`, genotypes by gene dropping):

* ``a22op``: the A22⁻¹ operator (:class:`bigeval.genomic.a22op.A22InverseOperator`) at increasing
  sizes: its set-up (pruning, A⁻¹, the Cholesky of A¹¹), the time per product (a block of
  ``--products`` vectors, and one vector at a time), and the selected inversion of
  αA⁻¹ + diag(0, W) (Part II's pedigree side); with, measured in the same run, the baseline
  at the first size: the explicit A22⁻¹ (:func:`bigeval.genomic.relationships.a22_inverse`) and one
  dense product with it.
* ``compare``: ``bigeval reliability --genotypes`` with the full G*⁻¹ and with APY on the same
  inputs (tuning off in both, as the full path still tunes before blending); the genomic
  reliabilities' correlation and regression slope (APY on full), and the time of each run.
* ``scale``: the APY path at increasing n_g, one fresh process per size (its own peak RSS):
  the pass over the genotypes (per SNP panel), the A22 core columns, the assembly of P and M,
  Part II's G side (the c × c Schur complement streamed over P) and pedigree side (selected
  inversion); the measured costs per unit (seconds per n·c·m multiply-add of the genotype
  pass, per n·c² of the assembly and of Part II's G side) and the extrapolation to
  ``--target`` genotyped animals.

    python benchmarks/bench_apy.py a22op --sizes 100000:5000,1000000:50000,2000000:200000
    python benchmarks/bench_apy.py compare --animals 60000 --genotyped 6000 --snps 10000 \
        --cores eigen,4000
    python benchmarks/bench_apy.py scale --genotyped 5000,10000,20000 --snps 10000 --core 2000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _pedigree(n_animals: int, n_genotyped: int, seed: int):
    import pandas as pd

    from bigeval.prepare import renumber_pedigree
    from bigeval.simulate import SimulationConfig, simulate

    pop = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped, n_snps=0,
                                    seed=seed), keep_genotypes=False)
    ped = pop.pedigree[["animal", "sire", "dam"]].replace("0", "")
    ped["line"] = np.arange(len(ped)) + 1
    ids, sire, dam, _ = renumber_pedigree(ped)
    return sire, dam, pd.Index(ids).get_indexer(pop.genotyped.to_numpy())


def cmd_a22op(args) -> int:
    from bigeval.genomic.a22op import A22InverseOperator
    from bigeval.pedigree import inbreeding
    from bigeval.genomic.relationships import a22_inverse

    sizes = [tuple(int(v) for v in s.split(":")) for s in args.sizes.split(",")]
    rng = np.random.default_rng(args.seed)
    A22InverseOperator([-1, -1, 0], [-1, -1, 1], [2])  # compile
    for k, (n, ng) in enumerate(sizes):
        t = time.perf_counter()
        sire, dam, g = _pedigree(n, ng, args.seed)
        f = inbreeding(sire, dam)
        print(f"pedigree {len(sire):,} animals, {len(g):,} genotyped (simulated in "
              f"{time.perf_counter() - t:.1f} s)", flush=True)
        t = time.perf_counter()
        op = A22InverseOperator(sire, dam, g, f)
        t_setup = time.perf_counter() - t
        mats = [op.ainv, op.a22] + ([op.a12, op.a21] if op.factor is not None else [])
        held = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in mats)
        if op.factor is not None:  # the factor's values and row indices
            held += 12 * op.factor.nnz
        held /= 2**30
        X = rng.normal(size=(len(g), args.products))
        t = time.perf_counter()
        Y = op.matvec(X)
        t_block = time.perf_counter() - t
        t = time.perf_counter()
        for j in range(min(10, args.products)):
            op.matvec(X[:, j])
        t_one = (time.perf_counter() - t) / min(10, args.products)
        w = rng.gamma(1.0, 2.0, len(g))
        t = time.perf_counter()
        op.gblup_inverse_diagonal(w, args.alpha)
        t_sel = time.perf_counter() - t
        print(f"  A22⁻¹ operator ({op.method}, {op.other.size:,} non-genotyped ancestors): "
              f"set-up {t_setup:.2f} s, holding {held:.2f} GiB (sparse A⁻¹ blocks and L); "
              f"{args.products} products "
              f"as one block {t_block:.2f} s "
              f"({t_block / args.products * 1e3:.2f} ms each); one vector at a time "
              f"{t_one * 1e3:.2f} ms each; selected inversion of αA⁻¹ + diag(0, W) "
              f"{t_sel:.1f} s; peak RSS so far {_peak_rss_gib():.2f} GiB", flush=True)
        if k == 0:  # the baseline, same run, same pedigree
            t = time.perf_counter()
            A = a22_inverse(sire, dam, g, f, method="sparse")
            t_exp = time.perf_counter() - t
            t = time.perf_counter()
            Yd = A @ X
            t_dense = time.perf_counter() - t
            err = float(np.abs(Yd - Y).max() / np.abs(Yd).max())
            print(f"  baseline: explicit A22⁻¹ ({len(g):,}²) built in {t_exp:.1f} s; "
                  f"{args.products} dense products {t_dense:.2f} s "
                  f"({t_dense / args.products * 1e3:.2f} ms each); operator vs explicit max "
                  f"relative difference {err:.1e}", flush=True)
            del A, Yd
        del op, X, Y
    print(f"peak memory (RSS): {_peak_rss_gib():.2f} GiB")
    return 0


def _population_files(folder: Path, n_animals: int, n_genotyped: int, n_snps: int, seed: int):
    """Pedigree, records and a genotype store of a simulated population."""
    from bigeval.io.genotypes import write_genotypes
    from bigeval.simulate import SimulationConfig, iter_genotype_chunks, simulate

    pop = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped,
                                    n_snps=n_snps, seed=seed), keep_genotypes=False)
    kw = dict(sep=" ", header=False, index=False, lineterminator="\n")
    pop.pedigree.to_csv(folder / "pedigree.txt", **kw)
    pop.records.to_csv(folder / "records.txt", float_format="%.4f", **kw)
    ids = pop.genotyped.to_numpy().astype(str)
    rows = 4096
    blocks = ((ids[r0:r0 + len(b)].tolist(), b)
              for r0, b in iter_genotype_chunks(pop, chunk_rows=rows))
    store = write_genotypes(blocks, folder / "geno.zarr", snp_ids=pop.snp_map["snp"],
                            chunks=(rows, 8192))
    return folder / "pedigree.txt", folder / "records.txt", store, len(pop.pedigree)


def cmd_compare(args) -> int:
    import pandas as pd

    from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        ped, rec, store, n = _population_files(tmp, args.animals, args.genotyped, args.snps,
                                               args.seed)
        print(f"population {n:,} animals, {args.genotyped:,} genotyped x {args.snps:,} SNPs "
              f"(simulated and written in {time.perf_counter() - t:.1f} s)", flush=True)
        full = None
        cores = [None if c == "eigen" else int(c) for c in args.cores.split(",")]
        for k, core in enumerate([None] + cores):
            choice = "full" if k == 0 else "apy"
            job = ReliabilityJob(pedigree=ped, records=rec, out=tmp / str(k), h2=args.h2,
                                 genotypes=store, tune=False, genomic_inverse=choice,
                                 apy_core=core)
            t = time.perf_counter()
            run_reliability(job, progress=False)
            print(f"{choice}: {time.perf_counter() - t:.1f} s; peak RSS so far "
                  f"{_peak_rss_gib():.2f} GiB", flush=True)
            table = pd.read_csv(tmp / str(k) / "reliability.csv").set_index("animal")
            if k == 0:
                full = table
                continue
            print("  " + [line for line in (tmp / str(k) / "summary.txt").read_text()
                          .splitlines() if "APY core" in line][0][:300])
            for col in ("rel_genomic", "rel_final"):
                a = full[col].dropna()
                b = table[col].loc[a.index]
                r = float(np.corrcoef(a, b)[0, 1])
                slope = float(np.polyfit(a, b, 1)[0])
                print(f"  {col} ({len(a):,} animals): r = {r:.4f}, slope (APY on full) = "
                      f"{slope:.4f}, mean full {a.mean():.4f}, APY {b.mean():.4f}, max |diff| "
                      f"{float((a - b).abs().max()):.4f}", flush=True)
    return 0


def _scale_one(args) -> dict:
    """One size of ``scale`` (run in its own process)."""
    import pandas as pd

    from bigeval.genomic.a22op import A22InverseOperator
    from bigeval.genomic.apy import _a22_pieces, _assemble, _g_core_pass, _star, choose_core
    from bigeval.genomic.grm import grm
    from bigeval.io.genotypes import open_genotypes
    from bigeval.prepare import renumber_pedigree
    from bigeval.reliability.genomic_apy import gblup_inverse_diagonal_apy

    res = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        t = time.perf_counter()
        ped, _, store, n_p = _population_files(Path(tmp), args.ratio * args.one,
                                               args.one, args.snps, args.seed)
        res["setup_s"] = time.perf_counter() - t
        frame = pd.read_csv(ped, sep=" ", header=None, dtype=str).iloc[:, :3]
        frame.columns = ["animal", "sire", "dam"]
        frame = frame.replace("0", "")
        frame["line"] = np.arange(len(frame)) + 1
        ids, sire, dam, _ = renumber_pedigree(frame)
        X, gids, _ = open_genotypes(store)
        pos = pd.Index(ids).get_indexer(gids)
        n, m = X.shape
        res.update(n=n, m=m, pedigree=int(n_p))
        if args.core:
            core, _ = choose_core(n, size=args.core, seed=1)
        else:
            t = time.perf_counter()
            sub = np.sort(np.random.default_rng(0).choice(n, min(n, 4000), replace=False))
            core, lines = choose_core(n, sample_g=lambda: (grm(X[sub]), sub.size), seed=1)
            res["eigen_s"] = time.perf_counter() - t
            res["eigen_line"] = lines[0]
        c = core.size
        non = np.setdiff1d(np.arange(n), core)
        order = np.r_[core, non]
        t = time.perf_counter()
        K, diag, gsum = _g_core_pass(X, order, c)
        res["g_pass_s"] = time.perf_counter() - t
        t = time.perf_counter()
        a22, a22d, a22s = _a22_pieces(sire, dam, pos, order, c)
        res["a22_cols_s"] = time.perf_counter() - t
        t = time.perf_counter()
        _star(K, diag, gsum, a22, a22d, a22s, True, 0.05)
        del a22
        apy = _assemble(K, diag[c:].copy(), core, non)
        res["assemble_s"] = time.perf_counter() - t
        w = np.random.default_rng(2).gamma(1.0, 2.0, n)
        t = time.perf_counter()
        gblup_inverse_diagonal_apy(w, apy, args.alpha)
        res["part2_g_s"] = time.perf_counter() - t
        t = time.perf_counter()
        op = A22InverseOperator(sire, dam, pos)
        op.gblup_inverse_diagonal(w, args.alpha)
        res["part2_a22_s"] = time.perf_counter() - t
        res.update(c=int(c), apy_gib=apy.nbytes / 2**30, peak_gib=_peak_rss_gib())
    return res


def cmd_scale(args) -> int:
    rows = []
    for ng in (int(v) for v in args.genotyped.split(",")):
        argv = [sys.executable, __file__, "scale-one", "--one", str(ng), "--snps",
                str(args.snps), "--ratio", str(args.ratio), "--seed", str(args.seed)]
        if args.core:
            argv += ["--core", str(args.core)]
        if args.dir:
            argv += ["--dir", args.dir]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:])
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(r)
        total = sum(r[k] for k in ("g_pass_s", "a22_cols_s", "assemble_s", "part2_g_s",
                                   "part2_a22_s"))
        print(f"n_g {r['n']:,} x {r['m']:,} SNPs, pedigree {r['pedigree']:,}, core {r['c']:,}: "
              f"genotype pass {r['g_pass_s']:.1f} s, A22 core columns {r['a22_cols_s']:.1f} s, "
              f"assembly {r['assemble_s']:.1f} s, Part II G side {r['part2_g_s']:.1f} s, "
              f"pedigree side {r['part2_a22_s']:.1f} s; total {total:.1f} s; APY pieces "
              f"{r['apy_gib']:.2f} GiB, peak RSS {r['peak_gib']:.2f} GiB"
              + (f"\n  {r['eigen_line']} ({r['eigen_s']:.1f} s)" if "eigen_line" in r else ""),
              flush=True)
    r = rows[-1]
    n, m, c = r["n"], r["m"], r["c"]
    k_pass = r["g_pass_s"] / (n * c * m)
    k_asm = r["assemble_s"] / (n * c * c)
    k_g = r["part2_g_s"] / (n * c * c)
    k_a22 = r["a22_cols_s"] / (r["pedigree"] * c)
    print(f"measured costs (largest size): genotype pass {k_pass * 1e12:.2f} s per 10¹² "
          f"n·c·m; assembly {k_asm * 1e12:.2f} s and Part II G side {k_g * 1e12:.2f} s per "
          f"10¹² n·c²; A22 core columns {k_a22 * 1e9:.2f} s per 10⁹ (pedigree · c)")
    N, M, C, NP = args.target, args.target_snps, args.target_core, args.target_pedigree
    est = {"genotype pass": k_pass * N * C * M, "A22 core columns": k_a22 * NP * C,
           "assembly": k_asm * N * C * C, "Part II G side": k_g * N * C * C}
    print(f"extrapolated to {N:,} genotyped x {M:,} SNPs, core {C:,}, pedigree {NP:,} "
          f"(linear in the measured costs): "
          + ", ".join(f"{k} {v / 60:.1f} min" for k, v in est.items())
          + f"; total {sum(est.values()) / 60:.1f} min without the pedigree side; APY pieces "
          f"{8 * (N * C + C * C) / 2**30:.1f} GiB (P in float64)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("a22op")
    a.add_argument("--sizes", default="100000:5000,400000:20000")
    a.add_argument("--products", type=int, default=100)
    c = sub.add_parser("compare")
    c.add_argument("--animals", type=int, default=60_000)
    c.add_argument("--genotyped", type=int, default=6_000)
    c.add_argument("--snps", type=int, default=10_000)
    c.add_argument("--cores", default="eigen",
                   help="APY core sizes to compare, 'eigen' for the eigenvalue rule "
                        "(default eigen)")
    c.add_argument("--h2", type=float, default=0.3)
    s = sub.add_parser("scale")
    s.add_argument("--genotyped", default="5000,10000,20000")
    s.add_argument("--target", type=int, default=200_000)
    s.add_argument("--target-snps", type=int, default=50_000)
    s.add_argument("--target-core", type=int, default=10_000)
    s.add_argument("--target-pedigree", type=int, default=2_000_000)
    o = sub.add_parser("scale-one")
    o.add_argument("--one", type=int, required=True)
    for p in (s, o):
        p.add_argument("--snps", type=int, default=10_000)
        p.add_argument("--core", type=int, default=None, help="default: the eigenvalue rule")
        p.add_argument("--ratio", type=int, default=5, help="pedigree animals per genotyped")
    for p in (a, c, s, o):
        p.add_argument("--seed", type=int, default=2026)
        p.add_argument("--alpha", type=float, default=2.0)
        p.add_argument("--dir", default=None, help="folder for temporary files")
    args = ap.parse_args(argv)
    if args.cmd == "scale-one":
        print(json.dumps(_scale_one(args)))
        return 0
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    return {"a22op": cmd_a22op, "compare": cmd_compare, "scale": cmd_scale}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
