"""Shared data of the run tests (test_run, test_sample, test_report_browser).

A small simulated dairy population (bigeval.simulate, seed 7: ~1 200 animals in 10 herds and
8 years, 100 genotyped with 2 000 SNPs in a Zarr store of several chunks) and one complete reference
run of it, made once per test session under pytest's temporary folder and reused by every
module (each test copies what it changes).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings
from pathlib import Path

import numpy as np

SEED = 7

#: the run tests' population has a few inbred animals without information whose exact
#: 1 − PEV/σa² is below 0: the exact check says so in a warning (published as 0, marked)
EXACT_BELOW_ZERO = "ignore:.*reliability 1 − PEV/σa² below 0:bigeval.BigevalWarning"
CHUNKS = (32, 512)  # several chunks in both dimensions of the store and of G

CONFIG = """\
[inputs]
pedigree = "data/pedigree.txt"
records = "data/records.txt"
genotypes = "{genotypes}"
interbull = "data/interbull.txt"
birth_year_column = 4
sex_column = 5

[parameters]
h2 = 0.25
repeatability = 0.40
tau = 4.0

[genomics]
chunks = [32, 512]

[model]
trait = 3

[output]
folder = "results"

[sample]
herd_pattern = "^[^Y]+"
"""


def _write_store(ids, genotypes, snp_ids, path: Path) -> Path:
    from bigeval.io.genotypes import write_genotypes

    rows = CHUNKS[0]
    blocks = ((ids[r:r + rows].tolist(), genotypes[r:r + rows]) for r in range(0, len(ids), rows))
    return write_genotypes(blocks, path, snp_ids=snp_ids, chunks=CHUNKS)


def population(base: Path) -> Path:
    """The simulated files and ``config.toml`` in ``base/pop`` (made once); the config path."""
    from bigeval.simulate import SimulationConfig, simulate, write_population

    root = base / "pop"
    cfg = root / "config.toml"
    if cfg.exists():
        return cfg
    tmp = base / "pop.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    sim = simulate(SimulationConfig(n_animals=1_200, n_herds=10, n_genotyped=100,
                                    n_snps=2_000, n_years=8, seed=SEED))
    files = write_population(sim, tmp / "data")
    files["genotypes"].unlink()
    ids = np.asarray(sim.genotyped, dtype=str)
    _write_store(ids, sim.genotypes, sim.snp_ids, tmp / "data" / "genotypes.zarr")
    # a second store: the same animals, 10 SNPs recoded (a "new genotype file")
    g2 = sim.genotypes.copy()
    g2[:, :10] = 2 - g2[:, :10]
    g2[::7, 10] = -1
    _write_store(ids, g2, sim.snp_ids, tmp / "data" / "genotypes_v2.zarr")
    (tmp / "config.toml").write_text(CONFIG.format(genotypes="data/genotypes.zarr"))
    tmp.rename(root)
    return cfg


def reference(base: Path) -> Path:
    """A complete run of the population's config (made once): its output folder."""
    from bigeval.pipeline import load_config, run_pipeline

    cfg = population(base)
    out = base / "reference"
    if (out / "report.html").exists():
        return out
    run_pipeline(load_config(cfg, {"output.folder": str(out)}), progress=False)
    return out


def copy_run(ref: Path, dest: Path, stages=None) -> Path:
    """A copy of a run's output folder (only the checkpoints of ``stages`` if given)."""
    if stages is None:
        shutil.copytree(ref, dest)
        return dest
    (dest / "stages").mkdir(parents=True)
    shutil.copy2(ref / "stages" / "input-hashes.json", dest / "stages")
    for s in stages:
        shutil.copytree(ref / "stages" / s, dest / "stages" / s)
    return dest


FINAL = ("reliability.csv", "reliability.parquet", "exact_check.csv", "summary.txt")


def same_bytes(a: Path, b: Path, names=FINAL) -> list:
    """Names of files that differ between two output folders."""
    return [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]


def cli_in_process(argv: list[str]) -> tuple[int, str]:
    """Run ``bigeval ARGV`` in this process; return the exit code and what went to stderr
    (every bigeval warning shown, whatever the test's filters)."""
    from bigeval.cli import main
    from bigeval.errors import BigevalWarning

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
            warnings.catch_warnings():
        warnings.simplefilter("always", BigevalWarning)
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = exc.code
    return rc, err.getvalue()
