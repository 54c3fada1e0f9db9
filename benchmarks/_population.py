"""The simulated populations the benchmarks share (one place, so they time the same thing)."""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numba
import numpy as np


def median_time(fn, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def vm_hwm_gib() -> float:
    """This process's peak RSS since it started its program, in GiB (VmHWM; ``ru_maxrss`` of
    a spawned Dask worker starts at its parent's peak, as Linux keeps it across exec). Run in
    the workers with ``client.run(vm_hwm_gib)``."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB
    return float("nan")


def simulated_population(n_animals: int, seed: int):
    """Simulate, write, read back and prepare a herd-structured population; print its size."""
    from bigeval.prepare import prepare
    from bigeval.simulate import SimulationConfig, simulate, write_population

    t = time.perf_counter()
    sim = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=0, n_snps=0, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        files = write_population(sim, tmp)
        pop = prepare(files["pedigree"], files["records"], interbull=files["interbull"])
    print(f"population: {pop.n_animals:,} animals, {pop.n_records:,} records, "
          f"{pop.n_cg:,} contemporary groups ({time.perf_counter() - t:.1f} s to simulate, "
          f"write, read and prepare)")
    print(f"machine: {os.cpu_count()} cores, numba threads {numba.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    return pop


def renumbered_simulation(n_animals: int, n_genotyped: int, n_snps: int, seed: int):
    """Simulate in memory and renumber (no files): ``(sim, sire, dam, rec_animal, rec_cg, y,
    genotyped)`` with the genotyped animals' numbers (None when there are none)."""
    import pandas as pd

    from bigeval.prepare import renumber_pedigree
    from bigeval.simulate import SimulationConfig, simulate

    sim = simulate(SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped,
                                    n_snps=n_snps, seed=seed), keep_genotypes=n_snps > 0)
    ped = sim.pedigree[["animal", "sire", "dam"]].replace("0", "")
    ped["line"] = np.arange(1, len(ped) + 1)
    ids, sire, dam, _ = renumber_pedigree(ped)
    index = pd.Index(ids)
    rec_animal = index.get_indexer(sim.records["animal"]).astype(np.int64)
    rec_cg = pd.factorize(sim.records["cg"])[0].astype(np.int64)
    y = sim.records["y"].to_numpy(np.float64)
    gen = index.get_indexer(sim.genotyped) if n_genotyped else None
    return sim, sire, dam, rec_animal, rec_cg, y, gen


def iteration_parser(doc: str) -> argparse.ArgumentParser:
    """The options every iteration benchmark takes (size, rounds, repeats, seed)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[1])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=2026)
    return ap


def iteration_inputs(args, alpha: float = 3.0):
    """(pop, alpha, d0, graph) for the simulated population, with the kernels compiled."""
    from bigeval.reliability import FamilyGraph, ReliabilityOptions, iterate, start_vector

    pop = simulated_population(args.animals, args.seed)
    d0 = start_vector(pop, ReliabilityOptions(alpha=alpha))
    graph = FamilyGraph.from_parents(pop.sire, pop.dam)
    iterate(d0, graph, alpha, rounds=2, progress=False)  # compile
    return pop, alpha, d0, graph
