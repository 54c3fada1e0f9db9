"""``bigeval demo``: the main job on a simulated dairy population, end to end.

1. simulate a modest population (herds, AI sires, repeated lactations, Interbull bulls,
   genotypes by gene dropping) and write its files;
2. build A22 (Colleau's indirect method, no dense A) and VanRaden G, tune G to A22 (mean
   diagonal and off-diagonal) and blend G* = 0.95 G + 0.05 A22,
   invert both by Cholesky and write them as triplets in the methodology's layout;
3. run Parts I–III on the files, exactly as ``bigeval reliability`` does;
4. check the approximation against exact reliabilities from the inverse of the MME
   (PBLUP with A⁻¹ for Part I, single-step with H⁻¹ for Part III);
5. write ``reliability.csv``, ``exact_check.csv`` and ``summary.txt``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.genomic import blend_g, tune_g, vanraden_g
from bigeval.io.writers import ensure_dir, write_csv_atomic, write_text_atomic, write_triplets
from bigeval.linalg import spd_inverse
from bigeval.pedigree import a22_dense
from bigeval.prepare import prepare
from bigeval.reliability import ReliabilityOptions, reliability
from bigeval.simulate import SimulationConfig, simulate, write_population
from bigeval.workflow import ReliabilityJob, agreement_line, run_reliability

#: Weight of A22 in the blended G* = (1 − w) G + w A22 (preGSf90's default).
BLEND = 0.05


def variance_ratios(h2: float, repeatability: float) -> tuple[float, float]:
    """α = σe²/σa² and τ = σe²/σpe² for phenotypic variance 1.

    Examples
    --------
    >>> variance_ratios(0.25, 0.40)
    (2.4, 4.0)
    """
    s_a, s_pe, s_e = h2, repeatability - h2, 1.0 - repeatability
    return round(s_e / s_a, 12), round(s_e / s_pe, 12)


def build_relationship_inverses(pedigree_file, genotyped_ids, genotypes, folder: Path):
    """A22⁻¹ and G*⁻¹ as triplet files, from the pedigree file and a genotype matrix."""
    base = prepare(pedigree_file)
    pos = pd.Index(base.ids).get_indexer(genotyped_ids)
    a22 = a22_dense(base.sire, base.dam, pos)
    g, _ = vanraden_g(genotypes)
    gstar = blend_g(tune_g(g, a22), a22, BLEND)
    ginv = spd_inverse(gstar, what="G* (G tuned to A22, blended with 5 % A22)")
    a22inv = spd_inverse(a22, what="A22")
    return (write_triplets(ginv, genotyped_ids, folder / "ginv.txt"),
            write_triplets(a22inv, genotyped_ids, folder / "a22inv.txt"))


def run_demo(out="bigeval-demo", *, n_animals: int = 6_000, n_genotyped: int = 600,
             n_snps: int = 3_000, seed: int = 2026, exact: bool = True) -> str:
    """Run the demo and return its summary (also written to ``OUT/summary.txt``)."""
    t0 = time.perf_counter()
    out = ensure_dir(out)
    data = ensure_dir(out / "data")
    cfg = SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped, n_snps=n_snps,
                           seed=seed)
    sim = simulate(cfg)
    files = write_population(sim, data)
    gids = np.asarray(sim.genotyped, dtype=object)
    ginv_file, a22inv_file = build_relationship_inverses(files["pedigree"], gids,
                                                         sim.genotypes, data)
    alpha, tau = variance_ratios(cfg.h2, cfg.repeatability)
    job = ReliabilityJob(pedigree=files["pedigree"], records=files["records"], out=out,
                         h2=cfg.h2, repeatability=cfg.repeatability, tau=tau,
                         interbull=files["interbull"], genotyped=files["genotyped"],
                         ginv=ginv_file, a22inv=a22inv_file)
    summary = run_reliability(job)
    lines = [f"simulated {len(sim.pedigree):,} animals in {cfg.n_years} years "
             f"(seed {seed}); data in {data}", summary.text]
    if exact:
        lines += exact_check(files, ginv_file, a22inv_file, alpha, tau, out)
    lines.append(f"demo finished in {time.perf_counter() - t0:.1f} s; results: "
                 f"{out / 'reliability.csv'}")
    text = "\n".join(lines)
    write_text_atomic(text + "\n", out / "summary.txt")
    return text


def exact_check(files, ginv_file, a22inv_file, alpha, tau, out: Path) -> list[str]:
    """Approximate vs exact reliabilities, Part I (PBLUP) and Part III (ssGBLUP).

    Both sides use the same information (records, pedigree, genomics; no Interbull, which
    the exact model does not have).
    """
    from bigeval.reliability.exact import exact_reliability

    pop = prepare(files["pedigree"], files["records"], genotyped=files["genotyped"],
                  ginv=ginv_file, a22inv=a22inv_file)
    res = reliability(pop, ReliabilityOptions(alpha=alpha, tau=tau), progress=False)
    ex_a = exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha, tau=tau)
    ex_h = exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha, tau=tau,
                             genotyped=pop.genotyped, ginv=pop.ginv, a22inv=pop.a22inv)
    table = pd.DataFrame({"animal": pop.ids, "rel_pedigree": res.rel_pedigree,
                          "rel_exact_pblup": ex_a, "rel_final": res.rel_final,
                          "rel_exact_ssgblup": ex_h})
    write_csv_atomic(table, out / "exact_check.csv", float_format="%.10g")
    g = np.zeros(pop.n_animals, bool)
    g[pop.genotyped] = True
    return [
        "exact check (same information on both sides, no Interbull):",
        "  " + agreement_line("Part I vs exact PBLUP", res.rel_pedigree, ex_a),
        "  " + agreement_line("Part III vs exact ssGBLUP", res.rel_final, ex_h),
        "  " + agreement_line("Part III vs exact ssGBLUP, genotyped", res.rel_final[g], ex_h[g]),
    ]
