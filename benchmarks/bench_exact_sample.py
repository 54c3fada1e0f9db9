"""Benchmark: the exact check on a seeded herd sample (bigeval.reliability.sample_check).

Simulates a herd-structured population (default 200 000 animals, 5 000 genotyped, as
:mod:`bigeval.simulate` picks them) with its records, computes A22⁻¹ without A and takes
G*⁻¹ = A22⁻¹/0.9 + 0.05/n_g (the inverse of 0.9 A22 plus a dense positive term, as
benchmarks/bench_exact.py: costs depend on the pattern, not the values). Setup is not timed.

Timed: the draw (bisection over the number of herds), the sample's population (renumbering,
G*⁻¹ of the sample by the Schur complement of the other genotyped, A22⁻¹ of the sample's
pedigree), and the whole :func:`exact_sample_check` (the draw again, Parts I-III and the
exact PBLUP and ssGBLUP on the sample). Prints the sample's size and the peak memory.

    python benchmarks/bench_exact_sample.py --animals 200000 --genotyped 5000 \\
        --max-equations 50000 --max-genotyped 2000
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _population import renumbered_simulation, vm_hwm_gib  # noqa: E402


def population(n_animals: int, n_genotyped: int, seed: int):
    import pandas as pd

    from bigeval.pedigree import generations
    from bigeval.prepare import Population
    from bigeval.genomic.relationships import a22_inverse

    sim, sire, dam, rec_animal, _, _, g = renumbered_simulation(n_animals, n_genotyped, 0,
                                                                seed)
    cg_codes, cg_ids = pd.factorize(sim.records["cg"], sort=True)
    a22inv = a22_inverse(sire, dam, g)
    ginv = a22inv / 0.9
    ginv += 0.05 / len(g)
    ids = np.arange(len(sire)).astype(str).astype(object)
    return Population(ids=ids, sire=sire, dam=dam, generation=generations(sire, dam),
                      rec_animal=rec_animal, rec_cg=cg_codes.astype(np.int64),
                      cg_ids=np.asarray(cg_ids, dtype=object), genotyped=g.astype(np.int64),
                      ginv=ginv, a22inv=a22inv)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, default=200_000)
    ap.add_argument("--genotyped", type=int, default=5_000)
    ap.add_argument("--max-equations", type=int, default=50_000)
    ap.add_argument("--max-genotyped", type=int, default=2_000)
    ap.add_argument("--herd-pattern", default="^[^Y]+")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)

    from bigeval.reliability import ReliabilityOptions
    from bigeval.reliability.sample_check import (
        draw_exact_sample,
        exact_sample_check,
        sub_population,
    )
    from bigeval.pipeline.workflow import exact_size

    t = time.perf_counter()
    pop = population(args.animals, args.genotyped, args.seed)
    print(f"population: {pop.n_animals:,} animals, {pop.n_records:,} records, {pop.n_cg:,} "
          f"groups, {len(pop.genotyped):,} genotyped, {exact_size(pop, True):,} equations "
          f"(setup {time.perf_counter() - t:.1f} s)")
    kw = dict(max_equations=args.max_equations, max_genotyped=args.max_genotyped,
              herd_pattern=args.herd_pattern)
    t = time.perf_counter()
    s = draw_exact_sample(pop, with_pe=True, **kw)
    t_draw = time.perf_counter() - t
    t = time.perf_counter()
    sub_population(pop, s.records, s.animals)
    t_sub = time.perf_counter() - t
    opts = ReliabilityOptions(alpha=3.0, tau=4.0)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = exact_sample_check(pop, opts, **kw)
    t_all = time.perf_counter() - t
    print(res.text)
    print(f"draw {t_draw:.1f} s; sample population (G*⁻¹ by Schur, A22⁻¹) {t_sub:.1f} s; "
          f"whole sample check {t_all:.1f} s; peak memory {vm_hwm_gib():.2f} GiB")
    ag = res.agreement["part3_vs_ssgblup"]["all"]
    print(f"Part III vs exact ssGBLUP on the sample: r {ag['corr']:.4f}, slope "
          f"{ag['slope']:.3f}, bias {ag['bias']:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
