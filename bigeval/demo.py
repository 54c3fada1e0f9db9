"""``bigeval demo``: the routine run (``bigeval run``) on a simulated dairy population.

1. simulate a modest population (herds, AI sires, repeated lactations, Interbull bulls,
   genotypes by gene dropping) and write its files, the genotypes into a Zarr store;
2. write ``OUT/config.toml`` naming those files, with h², the repeatability, τ, a
   repeatability animal model to solve (ssGBLUP) and the exact check;
3. run it: validate → prepare → relationships (QC, G with Dask, A22 by Colleau's method,
   tuning, blending, G*⁻¹ and A22⁻¹) → solve → reliabilities (Parts I-III and the check
   against exact reliabilities from the MME inverse) → report;
4. end with the path of the HTML report.

Running the demo again in the same folder reuses every stage (same seed, same files); the
config is the template for your own data: replace the inputs and run ``bigeval run``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bigeval.defaults import BLEND
from bigeval.io.writers import ensure_dir, write_text_atomic
from bigeval.simulate import SimulationConfig, simulate, write_population

__all__ = ["run_demo", "variance_ratios", "demo_config"]

#: Weight of A22 in the blended G* = (1 − w) G + w A22 (preGSf90's default).
#: Chunks of the demo's genotype store (animals, SNPs).
CHUNKS = (256, 1024)


def variance_ratios(h2: float, repeatability: float) -> tuple[float, float]:
    """α = σe²/σa² and τ = σe²/σpe² for phenotypic variance 1.

    Examples
    --------
    >>> variance_ratios(0.25, 0.40)
    (2.4, 4.0)
    """
    s_a, s_pe, s_e = h2, repeatability - h2, 1.0 - repeatability
    return round(s_e / s_a, 12), round(s_e / s_pe, 12)


def demo_config(files: dict, store: Path | None, folder: Path, *, h2: float,
                repeatability: float, exact: bool, seed: int) -> str:
    """The demo's run configuration (TOML text), paths relative to ``folder``."""
    _, tau = variance_ratios(h2, repeatability)

    def rel(p):
        return Path(p).resolve().relative_to(folder.resolve()).as_posix()

    lines = [
        f"# bigeval demo: a simulated dairy population (seed {seed}); `bigeval run` this file",
        "# again to reuse every stage, or copy it and point [inputs] at your own files.",
        "[inputs]",
        f'pedigree = "{rel(files["pedigree"])}"',
        f'records = "{rel(files["records"])}"',
        f'interbull = "{rel(files["interbull"])}"',
    ]
    if store is not None:
        lines.append(f'genotypes = "{rel(store)}"')
    lines += [
        "birth_year_column = 4  # pedigree.txt: animal sire dam birth_year sex herd",
        "sex_column = 5",
        "",
        "[parameters]",
        f"h2 = {h2!r}",
        f"repeatability = {repeatability!r}",
        f"tau = {tau!r}  # (1 - repeatability) / (repeatability - h2)",
        "",
        "[genomics]",
        "tune = true",
        f"blend = {BLEND!r}",
        f"chunks = [{CHUNKS[0]}, {CHUNKS[1]}]",
        "",
        "[model]  # repeatability animal model, cg fixed; variances from h2 and repeatability",
        "trait = 3  # records.txt: animal cg y",
        "",
        "[exact]",
        f"check = {'true' if exact else 'false'}",
        "",
        "[output]",
        'folder = "."',
        "",
        "[report]",
        'title = "bigeval demo: simulated dairy population"',
        "",
        "[sample]",
        'herd_pattern = "^[^Y]+"  # cg codes are herd-year-season: H0012Y2019S2',
    ]
    return "\n".join(lines) + "\n"


def run_demo(out="bigeval-demo", *, n_animals: int = 6_000, n_genotyped: int = 600,
             n_snps: int = 3_000, seed: int = 2026, exact: bool = True,
             progress: bool | None = None) -> str:
    """Simulate, write the config, run every stage; return the summary and the report path.

    The outputs are those of ``bigeval run``: ``OUT/reliability.csv`` (and ``.parquet``),
    ``OUT/summary.txt``, ``OUT/report.html``, ``OUT/manifest.json``, checkpoints under
    ``OUT/stages``; the simulated files are in ``OUT/data`` and the config in
    ``OUT/config.toml``.
    """
    from bigeval.io.genotypes import write_genotypes
    from bigeval.pipeline import load_config, run_pipeline

    t0 = time.perf_counter()
    out = ensure_dir(out)
    data = ensure_dir(out / "data")
    cfg = SimulationConfig(n_animals=n_animals, n_genotyped=n_genotyped, n_snps=n_snps,
                           seed=seed)
    sim = simulate(cfg)
    files = write_population(sim, data)
    (data / "genotypes.txt").unlink(missing_ok=True)  # the store below holds them
    files.pop("genotypes", None)
    store = None
    if sim.genotypes is not None and len(sim.genotyped):
        ids = np.asarray(sim.genotyped, dtype=str)
        rows = CHUNKS[0]
        blocks = ((ids[r:r + rows].tolist(), sim.genotypes[r:r + rows])
                  for r in range(0, len(ids), rows))
        store = write_genotypes(blocks, data / "genotypes.zarr", snp_ids=sim.snp_ids,
                                chunks=CHUNKS, attrs={"source": "bigeval demo simulation"})
    text = demo_config(files, store, out, h2=cfg.h2, repeatability=cfg.repeatability,
                       exact=exact, seed=seed)
    config = write_text_atomic(text, out / "config.toml")
    result = run_pipeline(load_config(config), progress=progress)
    summary = (out / "summary.txt").read_text().rstrip()
    return "\n".join([
        f"simulated {len(sim.pedigree):,} animals in {cfg.n_years} years (seed {seed}); "
        f"data in {data}, config {config}",
        summary,
        f"demo finished in {time.perf_counter() - t0:.1f} s (stages run: "
        f"{', '.join(result.executed) or 'none, all reused'})",
        f"report: {result.report}",
    ])
