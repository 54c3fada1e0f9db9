"""Benchmark: exact single-step reliabilities (sparse Cholesky + selected inversion) at size.

Simulates a herd-structured pedigree (default 1 000 000 animals, 20 000 genotyped, as
:mod:`bigeval.simulate` picks them) with its records, computes A22⁻¹ without A
(:func:`bigeval.genomic.relationships.a22_inverse`) and takes G⁻¹ = A22⁻¹/0.9 + 0.05 J/n_g (the
inverse
of 0.9 A22 plus a dense positive term: the genomic block of H⁻¹ is dense, as with a real G;
factor and inversion costs depend on the pattern, not the values). Setup is not timed.

Timed in the same run, each step of ``exact_reliability(..., method='sparse')`` (build of the
sparse LHS and of the dense genotyped block, sparse Cholesky of the rest, the solves for
L21, the Schur complement, its dense potrf + potri, the Takahashi sweep;
:mod:`bigeval.linalg.schur`), and the **baseline**: one dense potrf + potri of an n_g × n_g
matrix (bigeval.linalg, blocked) — the dense inverse of the genotyped block alone, which any
exact single-step PEV has to pay. Prints medians over ``--repeats``, the ratio to the
baseline, the peak memory (VmHWM) and the factor's size (non-zeros of L11 and L21).

    flock /tmp/bigeval-heavy.lock python benchmarks/bench_exact.py
    python benchmarks/bench_exact.py --animals 200000 --genotyped 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _population import renumbered_simulation, vm_hwm_gib  # noqa: E402


def population(n_animals: int, n_genotyped: int, seed: int):
    from bigeval.pedigree import inbreeding
    from bigeval.genomic.relationships import a22_inverse

    sim, sire, dam, rec_animal, rec_cg, _, g = renumbered_simulation(n_animals, n_genotyped, 0,
                                                                     seed)
    del sim
    f = inbreeding(sire, dam)
    a22inv = a22_inverse(sire, dam, g, f)
    ginv = a22inv / 0.9
    ginv += 0.05 / len(g)
    return sire, dam, rec_animal, rec_cg, g, f, ginv, a22inv


def baseline(ng: int, seed: int) -> float:
    """potrf + potri of an n_g × n_g SPD matrix, in place (bigeval.linalg, blocked)."""
    from bigeval.linalg import _inverse_lower

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ng, 64))
    a = np.asfortranarray(x @ x.T / 64)
    a[np.diag_indices(ng)] += ng ** 0.5
    t = time.perf_counter()
    _inverse_lower(a, "baseline", True, "")
    return time.perf_counter() - t


def exact_steps(pop, alpha: float) -> tuple[dict, np.ndarray]:
    """exact_reliability's sparse single-step path, step by step (the calls of _sparse_caa):
    the sparse LHS and the dense genotyped block, then the Schur-complement factorisation
    and selected inversion (bigeval.linalg.schur), which times its own steps."""
    import scipy.sparse as sp

    from bigeval.linalg.schur import schur_factor
    from bigeval.reliability.exact import _genomic_block, _sparse_parts

    sire, dam, rec_animal, rec_cg, g, f, ginv, a22inv = pop
    out = {}
    t0 = time.perf_counter()
    lhs, k, n, gg, (gi, ai) = _sparse_parts(sire, dam, rec_animal, rec_cg, alpha, tau=None,
                                            genotyped=g, ginv=ginv, a22inv=a22inv, f=f)
    e2 = k + np.asarray(gg, np.int64)
    c22 = _genomic_block(sp.csc_matrix(lhs)[e2][:, e2], gi, ai, alpha)
    del gi, ai
    out["neq"] = lhs.shape[0]
    t1 = time.perf_counter()
    fac = schur_factor(lhs, e2, c22=c22, keep_factor=False, timings=out)
    d = fac.diagonal()
    out.update(build=t1 - t0, total=time.perf_counter() - t0)
    return out, 1.0 - alpha * d[k:k + n]


STEPS = ("build", "factor", "solve", "schur", "dense", "sweep")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--genotyped", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--check", action="store_true",
                    help="also run exact_reliability(method='sparse') and compare")
    args = ap.parse_args(argv)
    import os

    t = time.perf_counter()
    pop = population(args.animals, args.genotyped, args.seed)
    print(f"population: {len(pop[0]):,} animals, {len(pop[2]):,} records, {len(pop[4]):,} "
          f"genotyped; setup {time.perf_counter() - t:.1f} s (not timed); {os.cpu_count()} "
          f"cores, load {os.getloadavg()[0]:.1f}; peak so far {vm_hwm_gib():.2f} GiB",
          flush=True)
    runs, bases = [], []
    for r in range(args.repeats):
        bases.append(baseline(len(pop[4]), args.seed + r))
        print(f"[{r + 1}] baseline potrf+potri n_g = {len(pop[4]):,}: {bases[-1]:.1f} s",
              flush=True)
        res, rel = exact_steps(pop, args.alpha)
        runs.append(res)
        print(f"[{r + 1}] exact sparse {res['total']:.1f} s = "
              + " + ".join(f"{key} {res[key]:.1f}" for key in STEPS)
              + f"; {res['neq']:,} equations, L11 {res['nnz_L11']:,} nnz, L21 "
              f"{res['nnz_L21']:,} nnz ({res['dense_rows']:,} dense rows); mean r² "
              f"{rel.mean():.4f} (genotyped {rel[pop[4]].mean():.4f}); peak "
              f"{vm_hwm_gib():.2f} GiB", flush=True)
    med = {key: statistics.median(r[key] for r in runs) for key in STEPS + ("total",)}
    base = statistics.median(bases)
    print(f"median of {args.repeats}: exact sparse {med['total']:.1f} s ("
          + ", ".join(f"{key} {med[key]:.1f}" for key in STEPS)
          + f"); baseline {base:.1f} s; ratio {med['total'] / base:.2f}")
    print(f"peak memory (VmHWM): {vm_hwm_gib():.2f} GiB")
    if args.check:
        from bigeval.reliability.exact import exact_reliability
        sire, dam, rec_animal, rec_cg, g, f, ginv, a22inv = pop
        t = time.perf_counter()
        rel2 = exact_reliability(sire, dam, rec_animal, rec_cg, args.alpha, genotyped=g,
                                 ginv=ginv, a22inv=a22inv, f=f, method="sparse")
        print(f"exact_reliability(method='sparse'): {time.perf_counter() - t:.1f} s, max "
              f"|diff| to the steps {np.abs(rel2 - rel).max():.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
