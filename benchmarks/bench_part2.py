"""Benchmark: Part II (G⁻¹, A22⁻¹, diag of Q) for genotyped animals in a national pedigree.

Simulates a herd-structured dairy pedigree (default 1 000 000 animals, 20 000 genotyped:
young bulls, foreign bulls and young cows, as :mod:`bigeval.simulate` picks them), builds a
stand-in for G* of the genotyped animals (0.9 A22; setup, not timed as Part II), then times in
the same run:

* the **floor**: one in-place Cholesky inverse (potrf + potri) of an n_g × n_g matrix, by
  LAPACK's blocked algorithms with LAPACK on the diagonal blocks (OpenBLAS' own
  multithreaded dpotrf segfaults from n ≈ 16 300 on this CPU: see bigeval.linalg);
* **Part II** as bigeval runs it: G*⁻¹ in place (:func:`bigeval.linalg.spd_inverse`),
  A22⁻¹ without A (:func:`bigeval.genomic.relationships.a22_inverse`), and the diagonal of
  Q = [D + (I + G⁻¹ − A22⁻¹)α]⁻¹ in place (:func:`bigeval.reliability.genomic_reliability`);
* optionally (``--compare``) each A22⁻¹ route on its own: the sparse Schur complement with
  CHOLMOD and with SuperLU, and Colleau's A22 + a dense Cholesky inverse.

Prints medians, the ratio Part II / floor (goal ≤ 3.5), the A22⁻¹ routes' times, and the
peak memory (RSS). Run under the heavy lock:

    flock /tmp/bigeval-heavy.lock python benchmarks/bench_part2.py
    python benchmarks/bench_part2.py --animals 100000 --genotyped 3000 --compare
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _pedigree(n_animals: int, n_genotyped: int, seed: int):
    import pandas as pd

    from bigeval.prepare import renumber_pedigree
    from bigeval.simulate import SimulationConfig, simulate

    pop = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped, n_snps=0,
                                    seed=seed), keep_genotypes=False)
    ped = pop.pedigree[["animal", "sire", "dam"]].copy()
    for c in ("sire", "dam"):
        ped[c] = ped[c].where(ped[c] != "0", "")
    ped["line"] = np.arange(len(ped)) + 1
    ids, sire, dam, _ = renumber_pedigree(ped)
    g = pd.Index(ids).get_indexer(pop.genotyped.to_numpy())
    return sire, dam, g


def _g_star(sire, dam, g, f, seed):
    """A stand-in for G*: 0.9 A22 (dense, by Colleau's method), so Part II's matrix
    D + (I + G⁻¹ − A22⁻¹)α = D + (I + A22⁻¹/9)α is positive definite.

    Dense Cholesky costs do not depend on the values, so a stand-in serves as well as a G
    from genotypes (whose cost is benchmarks/bench_grm.py's). A random G (Z Z'/m blended
    with A22) made Part II's matrix indefinite here — A22 of a real pedigree has eigenvalues
    near 0 that G does not share — which takes the slower LDLᵀ route (bigeval.linalg).
    """
    from bigeval.genomic.relationships import blend_with_a22

    ng = len(g)
    G = np.zeros((ng, ng), order="F")
    return blend_with_a22(G, sire, dam, g, 0.9, f)


def _floor(G) -> float:
    """In-place potrf + potri (LAPACK's blocked algorithms, crash-safe tiles) of a copy of G.

    OpenBLAS' own dpotrf (and its dpotri) cannot serve: its multithreaded dsyrk segfaults on
    results spanning more than 2 GiB (n ≳ 16 300); bigeval.linalg runs the same blocked
    algorithms with LAPACK on diagonal blocks and level-3 BLAS on tiles.
    """
    from bigeval.linalg import _inverse_lower

    a = np.array(G, order="F")
    t = time.perf_counter()
    _inverse_lower(a, "G*", overwrite=True, remedy="")
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--genotyped", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--method", choices=("auto", "sparse", "dense"), default="auto",
                    help="A22⁻¹ route inside Part II (default auto)")
    ap.add_argument("--compare", action="store_true",
                    help="also time each A22⁻¹ route on its own")
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)

    from bigeval.linalg import spd_inverse
    from bigeval.linalg.cholesky import HAVE_CHOLMOD
    from bigeval.pedigree import inbreeding
    from bigeval.genomic.relationships import a22_inverse, prune_to_ancestors
    from bigeval.reliability import genomic_reliability

    t = time.perf_counter()
    sire, dam, g = _pedigree(args.animals, args.genotyped, args.seed)
    ng = len(g)
    f = inbreeding(sire, dam)
    pruned = prune_to_ancestors(sire, dam, g)
    a22_inverse(sire[:2000], dam[:2000], np.arange(1900, 1950), method="sparse")  # compile
    a22_inverse(sire[:2000], dam[:2000], np.arange(1900, 1950), method="dense")
    print(f"pedigree: {len(sire):,} animals, {ng:,} genotyped; {pruned.animals.size:,} "
          f"genotyped + ancestors; mean F {f.mean():.4f}; setup {time.perf_counter() - t:.1f} s"
          f"; CHOLMOD {'yes' if HAVE_CHOLMOD else 'no (SuperLU)'}", flush=True)
    d = np.random.default_rng(args.seed).gamma(2.0, 5.0, ng)  # Part I ERC of the genotyped

    floors, parts, pieces = [], [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        G = _g_star(sire, dam, g, f, args.seed + r)
        print(f"[{r + 1}] G* {ng:,} x {ng:,} built in {time.perf_counter() - t:.1f} s (setup)",
              flush=True)
        floors.append(_floor(G))
        print(f"[{r + 1}] floor potrf+potri: {floors[-1]:.1f} s", flush=True)
        t0 = time.perf_counter()
        ginv = spd_inverse(G, overwrite=True, what="G*")
        t1 = time.perf_counter()
        a22inv = a22_inverse(sire, dam, g, f, method=args.method)
        t2 = time.perf_counter()
        rel = genomic_reliability(d, ginv, a22inv, args.alpha, overwrite=True)
        t3 = time.perf_counter()
        del G, ginv, a22inv
        parts.append(t3 - t0)
        pieces.append((t1 - t0, t2 - t1, t3 - t2))
        print(f"[{r + 1}] Part II {parts[-1]:.1f} s = G⁻¹ {t1 - t0:.1f} + A22⁻¹ {t2 - t1:.1f} "
              f"({args.method}) + diag Q {t3 - t2:.1f}; ratio to floor "
              f"{parts[-1] / floors[-1]:.2f}; mean r²_g {rel.mean():.3f}", flush=True)

    floor, part = statistics.median(floors), statistics.median(parts)
    med = [statistics.median(p[i] for p in pieces) for i in range(3)]
    print(f"floor (potrf+potri, n = {ng:,}): median {floor:.1f} s of "
          f"{[round(x, 1) for x in floors]}")
    print(f"Part II: median {part:.1f} s of {[round(x, 1) for x in parts]} "
          f"(G⁻¹ {med[0]:.1f}, A22⁻¹ {med[1]:.1f}, diag Q {med[2]:.1f})")
    print(f"ratio Part II / floor: {part / floor:.2f} (goal <= 3.5); median of per-run ratios "
          f"{statistics.median(p / fl for p, fl in zip(parts, floors)):.2f}")
    print(f"peak memory (RSS): {_peak_rss_gib():.2f} GiB")

    if args.compare:
        routes = [("sparse", "cholmod")] if HAVE_CHOLMOD else []
        routes += [("sparse", "superlu"), ("dense", "auto")]
        for method, solver in routes:
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                a22_inverse(sire, dam, g, f, method=method, solver=solver)
                times.append(time.perf_counter() - t)
            label = f"{method}/{solver}" if method == "sparse" else "dense (Colleau + potrf/potri)"
            print(f"A22⁻¹ {label}: median {statistics.median(times):.1f} s of "
                  f"{[round(x, 1) for x in times]}", flush=True)
        print(f"peak memory (RSS): {_peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
