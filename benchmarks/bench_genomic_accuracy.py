"""Part II's methods against exact single-step reliabilities on a documented set of populations.

Each population is simulated (bigeval.simulate: herds, AI and foreign bulls, repeated
lactations, genotyped bulls and young females), G is VanRaden's, tuned to A22 and blended
(5 % A22), and the exact reliabilities 1 − α C^aa_ii come from the dense inverse of the MME
(contemporary groups fixed, H⁻¹; with repeated records a permanent-environment effect).
Printed per population: Part I against exact PBLUP (also with the exact values on the
1 − PEV/((1+F)σa²) scale, which Part I's prior of variance σa² for every animal stands for),
and the final reliabilities of
``erc-gblup`` and ``certified`` against exact ssGBLUP — correlation, slope of exact on
approximate, mean bias — for genotyped and non-genotyped animals, the values outside [0, 1),
and the mean gain from genomics of record-less genotyped animals against the exact gain.

    python benchmarks/bench_genomic_accuracy.py [--animals 3000] [--genotyped 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import warnings

import numpy as np

from bigeval.genomic import vanraden_g
from bigeval.pedigree import inbreeding
from bigeval.prepare import prepare
from bigeval.genomic.relationships import genomic_inverses
from bigeval.reliability import ReliabilityOptions, alpha_from, reliability, start_vector
from bigeval.reliability.exact import exact_reliability
from bigeval.simulate import SimulationConfig, simulate, write_population

#: name: (SimulationConfig fields, what to remove, repeated records?)
POPULATIONS = {
    "base (all genotyped animals' families recorded)": (dict(seed=1), {}, False),
    "young genotyped without records (30 %)": (dict(seed=2), {"young": 0.3}, False),
    "sires of many record-less daughters (3 sires)": (dict(seed=3), {"sires": 3}, False),
    "deep pedigree, h2 0.1 (alpha 9), 25 years": (dict(seed=4, h2=0.1, n_years=25), {}, False),
    "repeated records (tau from repeatability 0.4)": (dict(seed=5), {}, True),
    "large contemporary groups (10 herds)": (dict(seed=6, n_herds=10), {}, False),
    "small contemporary groups (150 herds)": (dict(seed=7, n_herds=150), {}, False),
    "young-bull set: 50 % youngest genotyped without records": (dict(seed=8), {"young": 0.5},
                                                                 False),
    "50 000-SNP panel": (dict(seed=9, n_snps=50_000), {}, False),
}


def build(name, n, ng):
    kw, drop, repeated = POPULATIONS[name]
    kw = {"n_snps": 2_000, **kw}
    sim = simulate(SimulationConfig(n_animals=n, n_genotyped=ng, **kw))
    rec = sim.records
    g = sim.genotyped.to_numpy()
    ped = sim.pedigree.set_index("animal")
    if "young" in drop:
        by = ped.loc[g, "birth_year"].to_numpy()
        young = g[np.argsort(-by, kind="stable")[:int(drop["young"] * len(g))]]
        rec = rec[~rec.animal.isin(young)]
    if "sires" in drop:
        counts = sim.pedigree[sim.pedigree.sire.isin(set(g))].sire.value_counts()
        dau = sim.pedigree[sim.pedigree.sire.isin(counts.index[:drop["sires"]])].animal
        rec = rec[~rec.animal.isin(dau)]
    folder = tempfile.mkdtemp(prefix="bench-genomic-")
    files = write_population(dataclasses.replace(sim, records=rec), folder)
    pop = prepare(files["pedigree"], files["records"], genotyped=files["genotyped"])
    G, _ = vanraden_g(sim.genotypes)
    ginv, a22inv = genomic_inverses(G, pop.sire, pop.dam, pop.genotyped, tune=True, blend=0.05)
    pop = dataclasses.replace(pop, ginv=ginv, a22inv=a22inv)
    h2 = sim.config.h2
    if repeated:
        rep = sim.config.repeatability
        alpha, tau = alpha_from(h2, rep), (1 - rep) / (rep - h2)
    else:
        alpha, tau = (1 - h2) / h2, None
    return pop, alpha, tau


def agreement(a, e):
    c = np.cov(a, e)
    return c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]), c[0, 1] / c[0, 0], float(np.mean(a - e))


def line(label, a, e):
    r, s, b = agreement(a, e)
    out = int(np.sum((a < 0) | (a >= 1)))
    return f"  {label:34s} r {r:.4f}  slope {s:.3f}  bias {b:+.4f}  outside [0,1): {out}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, default=3_000)
    ap.add_argument("--genotyped", type=int, default=300)
    args = ap.parse_args(argv)
    summary = []
    for name in POPULATIONS:
        t0 = time.perf_counter()
        pop, alpha, tau = build(name, args.animals, args.genotyped)
        g = np.zeros(pop.n_animals, bool)
        g[pop.genotyped] = True
        kw = dict(tau=tau, method="dense")
        ex_s = exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha,
                                 genotyped=pop.genotyped, ginv=pop.ginv, a22inv=pop.a22inv, **kw)
        ex_p = exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha, **kw)
        print(f"{name}: {pop.n_animals:,} animals, {int(g.sum())} genotyped, alpha {alpha:.2f}"
              f"{'' if tau is None else f', tau {tau:.2f}'}; exact ssGBLUP below 0 "
              f"(G*_ii > 1, little information): {int(np.sum(ex_s < 0))}")
        opts = ReliabilityOptions(alpha=alpha, tau=tau)
        res = None
        for method in ("erc-gblup", "certified"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    res_m = reliability(pop, dataclasses.replace(opts, genomic_method=method),
                                        progress=False)
                except Exception as exc:  # the certified guards stop the run
                    print(f"  {method}: stopped — {str(exc).splitlines()[0][:110]}…")
                    continue
            res = res_m if method == "erc-gblup" else res
            if method == "erc-gblup":
                print(line("Part I vs exact PBLUP", res_m.rel_pedigree, ex_p))
                # the same on the 1 − PEV/((1+F)σa²) scale: Part I does not see inbreeding
                f = inbreeding(pop.sire, pop.dam)
                print(line("  ... exact on the (1+F) scale", res_m.rel_pedigree,
                           1 - (1 - ex_p) / (1 + f)))
            print(line(f"{method}, genotyped", res_m.rel_final[g], ex_s[g]))
            print(line(f"{method}, not genotyped", res_m.rel_final[~g], ex_s[~g]))
        d0 = start_vector(pop, opts)
        young = g & (d0 == 0)
        gain = float(np.mean(res.rel_final[young] - res.rel_pedigree[young]))
        exact_gain = float(np.mean(ex_s[young] - ex_p[young]))
        print(f"  record-less genotyped ({int(young.sum())}): gain from genomics erc-gblup "
              f"{gain:+.4f}, exact {exact_gain:+.4f}   [{time.perf_counter() - t0:.1f} s]")
        summary.append((agreement(res.rel_final[g], ex_s[g]),
                        agreement(res.rel_final[~g], ex_s[~g])))
    gen = np.array([s[0] for s in summary])
    non = np.array([s[1] for s in summary])
    print(f"erc-gblup over the {len(summary)} populations: genotyped r {gen[:, 0].min():.4f}–"
          f"{gen[:, 0].max():.4f}, slope {gen[:, 1].min():.3f}–{gen[:, 1].max():.3f}, bias "
          f"{gen[:, 2].min():+.4f}–{gen[:, 2].max():+.4f}; not genotyped r "
          f"{non[:, 0].min():.4f}–{non[:, 0].max():.4f}")


if __name__ == "__main__":
    main()
