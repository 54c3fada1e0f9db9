"""The ``bigeval`` command line.

Subcommands
-----------
reliability   Parts I–III of the approximate-reliability method on your files.
simulate      Write a simulated dairy population (pedigree, records, genotypes, Interbull).
demo          Simulate a modest population and run the routine evaluation (`run`) on it.
genotypes     Import genotypes (PLINK, BLUPF90 text, CSV) into a chunked Zarr store.
grm           G (blockwise with Dask), G⁻¹ and A22⁻¹ from a genotype store and a pedigree.
anova, ols, solve, reml, cv
              The mixed models on a TOML model file: ANOVA, BLUE/OLS, PBLUP/GBLUP/ssGBLUP,
              REML (EM, AI), cross-validation.
run, config, sample
              The routine run from one TOML configuration (stages, checkpoints, resume,
              report), its template and checks, and laptop-size samples of its inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from bigeval import __version__
from bigeval.defaults import ROUNDS
from bigeval.errors import BigevalError, InputError, option_style
from bigeval.io.writers import command_outputs


def _add_reliability(sub):
    p = sub.add_parser(
        "reliability",
        help="approximate reliabilities (Parts I-III) for every pedigree animal",
        description="Approximate reliabilities of (single-step genomic) breeding values: "
                    "Part I from records and pedigree, Part II for genotyped animals from G⁻¹ "
                    "and A22⁻¹, Part III for the whole population. Writes DIR/reliability.csv.",
    )
    p.add_argument("--pedigree", required=True, metavar="FILE", help="animal sire dam")
    from bigeval.cli.genomics import add_groups_options

    add_groups_options(p, "such a parent is unknown for the method (b = 0)")
    p.add_argument("--records", required=True, metavar="FILE",
                   help="animal cg, one row per record (other layouts: --records-columns)")
    p.add_argument("--records-columns", metavar="MAP", default=None,
                   help="which columns of the records file hold the animal, the contemporary "
                        "group (several joined by +) and the trait: numbers in a whitespace "
                        "file, header names in a .csv, e.g. animal=1,cg=6+8,trait=9 (a row "
                        "whose trait is a missing code is not a record)")
    p.add_argument("--missing", action="append", metavar="CODE", default=None,
                   help="a trait value that means no observation (repeatable; default NA "
                        "and .; BLUPF90 data files: --missing 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--alpha", type=float, metavar="A", help="α = σe²/σa²")
    g.add_argument("--h2", type=float, metavar="H",
                   help="heritability: α = (1-h2)/h2, or (1-R)/h2 with --repeatability")
    p.add_argument("--repeatability", type=float, metavar="R",
                   help="repeatability R (with --h2)")
    p.add_argument("--tau", type=float, metavar="T",
                   help="τ = σe²/σpe²: reduce repeated records (Misztal et al. 1991)")
    p.add_argument("--sib-adjust", action="store_true",
                   help="Tier & Meyer (2004) adjustment for relatives in the same group")
    p.add_argument("--interbull", metavar="FILE", help="animal value (Interbull bulls)")
    p.add_argument("--interbull-kind", choices=("reliability", "erc"), default="reliability",
                   help="the Interbull value is a reliability (default) or a ready ERC")
    p.add_argument("--genotyped", metavar="FILE", help="animal (genotyped animals)")
    p.add_argument("--ginv", metavar="FILE", help="G⁻¹ triplets animal1 animal2 value")
    p.add_argument("--a22inv", metavar="FILE", help="A22⁻¹ triplets animal1 animal2 value")
    gs = p.add_argument_group("genomics from genotypes (instead of --ginv/--a22inv)")
    gs.add_argument("--genotypes", metavar="STORE",
                    help="a genotype store (`bigeval genotypes import`): QC, G, G*⁻¹ and A22⁻¹ "
                         "are built from it and the pedigree; --genotyped then lists the "
                         "animals of the store to use (default: all)")
    from bigeval.cli.genomics import add_g_star_options, add_genomic_options
    from bigeval.defaults import APY_FROM, GENOMIC_INVERSE, GENOMIC_INVERSES

    add_g_star_options(p, gs)
    add_genomic_options(p, gs)
    gs.add_argument("--genomic-inverse", choices=GENOMIC_INVERSES, default=GENOMIC_INVERSE,
                    help="with --genotypes: G*⁻¹ dense (full), by APY with A22⁻¹ as a sparse "
                         "operator (apy: memory n_g x core), or auto (full up to "
                         f"{APY_FROM:,} genotyped animals when it fits); the memory of each "
                         "is printed")
    gs.add_argument("--apy-core", type=int, default=None, metavar="N",
                    help="with APY: N core animals drawn at random (default: as many as "
                         "eigenvalues of G explain 98%% of its variance)")
    p.add_argument("--rounds", type=int, default=ROUNDS, metavar="N",
                   help="rounds of the iteration (default 100, as in the methodology)")
    p.add_argument("--tol", type=float, metavar="X",
                   help="stop early when no reliability changes by more than X in a round")
    from bigeval.reliability.genomic import DEFAULT_METHOD, METHODS

    p.add_argument("--genomic-method", choices=METHODS, default=DEFAULT_METHOD,
                   help="Part II: erc-gblup (default: GBLUP on own-data ERC, combined with "
                        "Part I in ERC; agrees with exact single-step reliabilities) or "
                        "certified (the SAS Part II; stops on values it cannot publish)")
    p.add_argument("--exact", action="store_true",
                   help="also compute exact reliabilities from the inverse of the MME (dense "
                        "up to 5 000 equations, else sparse Cholesky + selected inversion)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress (default: when the terminal is interactive)")
    p.add_argument("--out-of-core", action=argparse.BooleanOptionalAction, default=None,
                   help="read and prepare the files in blocks into a Zarr work folder "
                        "(bounded memory: 10 million animals in a few GiB); default: when the "
                        "pedigree file is 128 MiB or more")
    p.add_argument("--work-dir", metavar="DIR",
                   help="out-of-core work folder, kept (default: a temporary folder in --out, "
                        "deleted at the end)")
    d = p.add_argument_group("where the iteration runs (see cluster/README.md)")
    d.add_argument("--engine", choices=("auto", "memory", "dask"), default=None,
                   help="in memory, or partitioned on a Dask cluster; auto (default): Dask when "
                        "a scheduler or cluster file is given or the pedigree is very large")
    d.add_argument("--scheduler", metavar="ADDRESS",
                   help="attach to a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (Dask "
                        "config: bigeval.scheduler)")
    d.add_argument("--cluster", metavar="FILE",
                   help="start a cluster from a file: SLURM, PBS, Kubernetes or local (examples "
                        "in cluster/)")
    d.add_argument("--workers", type=int, metavar="N",
                   help="workers to start (default: the cluster file's, or one per core)")
    d.add_argument("--block-size", type=int, metavar="N",
                   help="animals per pedigree block (default: one block per worker thread)")
    d.add_argument("--exact-sums", action="store_true", default=None,
                   help="blocks send every contribution, not sums per parent: the Dask engine "
                        "then equals the in-memory engine bit for bit (Dask config: "
                        "bigeval.exact-sums)")
    p.set_defaults(func=_cmd_reliability)


def _cmd_reliability(args) -> int:
    from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

    job = ReliabilityJob(
        pedigree=args.pedigree, records=args.records, out=args.out, alpha=args.alpha,
        h2=args.h2, repeatability=args.repeatability, tau=args.tau, sib_adjust=args.sib_adjust,
        record_columns=args.records_columns,
        missing=None if args.missing is None else tuple(args.missing),
        interbull=args.interbull, interbull_kind=args.interbull_kind, genotyped=args.genotyped,
        ginv=args.ginv, a22inv=args.a22inv, rounds=args.rounds, tol=args.tol, exact=args.exact,
        genomic_method=args.genomic_method,
        out_of_core=args.out_of_core if args.work_dir is None else True,
        work_dir=args.work_dir, engine=args.engine, scheduler=args.scheduler,
        cluster=args.cluster, block_size=args.block_size, workers=args.workers,
        exact_sums=args.exact_sums, groups=args.groups, **_genomic_job_options(args))
    summary = run_reliability(job, progress=args.progress)
    print(summary.text)
    return 0


def _genomic_job_options(args) -> dict:
    """ReliabilityJob fields of ``--genotypes`` (G*⁻¹ and A22⁻¹ built from a store)."""
    if args.genotypes is None:
        if args.genomic_inverse == "apy" or args.apy_core is not None:
            raise InputError("APY G*⁻¹ is built from a genotype store, and none is given",
                             value="--genomic-inverse apy" if args.apy_core is None
                             else f"--apy-core {args.apy_core}",
                             remedy="add --genotypes STORE, or drop the APY options")
        return {}
    from bigeval.cli.genomics import qc_options

    return {"genotypes": args.genotypes, "qc": qc_options(args), "tune": args.tune,
            "blend": args.blend or None, "a22inv_method": args.a22inv_method,
            "grm_chunks": args.grm_chunks, "genomic_inverse": args.genomic_inverse,
            "apy_core": args.apy_core}


def _add_simulate(sub):
    p = sub.add_parser("simulate", help="write a simulated dairy population",
                       description="Simulate a dairy-like population (herds, AI sires, "
                                   "repeated lactations, Interbull bulls, genotypes by gene "
                                   "dropping) and write its files. Seeded and deterministic.")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--animals", type=int, default=20_000, metavar="N",
                   help="approximate number of pedigree animals (default 20000)")
    p.add_argument("--genotyped", type=int, default=1_000, metavar="N")
    p.add_argument("--snps", type=int, default=2_000, metavar="N")
    p.add_argument("--h2", type=float, default=0.25)
    p.add_argument("--repeatability", type=float, default=0.40)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--format", choices=("txt", "csv"), default="txt")
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args) -> int:
    from bigeval.simulate import SimulationConfig, simulate, write_population

    cfg = SimulationConfig(n_animals=args.animals, n_genotyped=args.genotyped,
                           n_snps=args.snps, h2=args.h2, repeatability=args.repeatability,
                           seed=args.seed)
    t0 = time.perf_counter()
    pop = simulate(cfg)
    paths = write_population(pop, args.out, fmt=args.format)
    print(f"simulated {len(pop.pedigree):,} animals, {len(pop.records):,} records, "
          f"{pop.records['cg'].nunique():,} contemporary groups, {len(pop.genotyped):,} "
          f"genotyped, {len(pop.interbull):,} Interbull bulls in "
          f"{time.perf_counter() - t0:.1f} s")
    for name, path in paths.items():
        print(f"  {name:10s} {path}")
    return 0


def _add_demo(sub):
    p = sub.add_parser("demo", help="the main job on a simulated population",
                       description="Simulate a modest dairy population, build G⁻¹ and A22⁻¹, "
                                   "run Parts I-III, check them against exact reliabilities "
                                   "and write the outputs and a short summary.")
    p.add_argument("--out", default="bigeval-demo", metavar="DIR",
                   help="output folder (default ./bigeval-demo)")
    p.add_argument("--animals", type=int, default=6_000, metavar="N")
    p.add_argument("--genotyped", type=int, default=600, metavar="N")
    p.add_argument("--snps", type=int, default=3_000, metavar="N")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--no-exact", dest="exact", action="store_false",
                   help="skip the exact check (it inverts the MME densely)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from bigeval.demo import run_demo

    report = run_demo(args.out, n_animals=args.animals, n_genotyped=args.genotyped,
                      n_snps=args.snps, seed=args.seed, exact=args.exact)
    print(report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bigeval",
        description="National genetic evaluations: relationships, mixed-model equations and "
                    "approximate reliabilities.")
    parser.add_argument("--version", action="version", version=f"bigeval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_reliability(sub)
    _add_simulate(sub)
    _add_demo(sub)
    from bigeval.cli import genomics as cli_genomics
    from bigeval.cli import models as cli_models

    cli_genomics.register(sub)
    cli_models.register(sub)
    from bigeval.cli import run as cli_run

    cli_run.register(sub)  # run, config, sample
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"bigeval: warning: {message}", file=sys.stderr if file is None else file)


def option_namer(command: str):
    """How the errors of ``command`` name an option (:func:`bigeval.errors.opt`): ``bigeval
    run`` reads a config file, so by its key (``[parameters] h2``); the other commands by the
    flag of the schema (:data:`bigeval.pipeline.config.SCHEMA`) that sets it for this command
    (or for ``reliability``), else by the key."""
    from bigeval.pipeline.config import SCHEMA

    flags = {}
    for key in SCHEMA:
        found = {c.rsplit(" ", 1)[0]: c.rsplit(" ", 1)[1] for c in key.cli
                 if c.rsplit(" ", 1)[1].startswith("--")}
        if found:
            flags[key.dotted] = found.get(command) or found.get("reliability") \
                or next(iter(found.values()))

    def name(dotted: str) -> str:
        if command != "run" and dotted in flags:
            return flags[dotted]
        section, _, key = dotted.partition(".")
        return f"[{section}] {key}"
    return name


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shown, warnings.showwarning = warnings.showwarning, _show_warning
    names = option_namer(args.command)
    try:
        with option_style(names), command_outputs():
            # (output folders claimed by the command stay locked until it ends)
            return args.func(args)
    except BigevalError as exc:
        with option_style(names):
            print(f"bigeval {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print("interrupted; nothing was written for the unfinished step", file=sys.stderr)
        return 130
    finally:  # one line per warning for this command only, not for the rest of the process
        warnings.showwarning = shown

