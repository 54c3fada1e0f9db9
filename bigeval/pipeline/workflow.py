"""Orchestration of a reliability run: read → validate → compute → write (atomically).

Stage functions elsewhere are pure; this module is where files are read and written. Every
input is read and checked before anything is written, so bad input leaves the output folder
as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval import __version__
from bigeval._resources import check_dense
from bigeval.defaults import (
    BLEND,
    EXACT_MAX_EQUATIONS,
    EXACT_MAX_GENOTYPED,
    GENOMIC_INVERSE,
    ROUNDS,
)
from bigeval.errors import BigevalWarning, InputError, opt
from bigeval.io import ooc
from bigeval.io.columns import parse_record_columns
from bigeval.io.csvfast import write_csv
from bigeval.io.publish import ABOUT, RESULTS, publishing
from bigeval.io.writers import ensure_dir, output_lock, refuse_overwriting_inputs
from bigeval.prepare import Population, prepare, single_record_groups
from bigeval.prepare.ooc import OocLog, prepare_ooc, single_record_groups_ooc
from bigeval.genomic.qc import QCOptions
from bigeval.reliability import genomic as _genomic
from bigeval.reliability.engine import (
    ReliabilityOptions,
    ReliabilityResult,
    alpha_from,
    memory_iterator,
    reliability,
    result_table,
)
from bigeval.reliability.exact import agreement_line
from bigeval.reliability.ooc import reliability_ooc, result_chunks


#: Written beside the results when some contemporary groups hold a single record.
SINGLE_RECORD_GROUPS = "single_record_groups.csv"
#: QC of ``--genotypes`` runs by default (preGSf90's thresholds).
QC_DEFAULT = QCOptions()
#: The QC report of a ``--genotypes`` run.
QC_REPORT = "qc_report.csv"
#: Every file ``bigeval reliability`` may write or remove in its output folder.
OUTPUT_NAMES = ("reliability.csv", "reliability.parquet", "summary.txt", QC_REPORT,
                SINGLE_RECORD_GROUPS, _genomic.FLAGS_FILE)


@dataclass(frozen=True)
class ReliabilityJob:
    """Everything ``bigeval reliability`` needs (CLI flags map one to one)."""

    pedigree: str | os.PathLike
    records: str | os.PathLike
    out: str | os.PathLike
    alpha: float | None = None
    h2: float | None = None
    repeatability: float | None = None
    tau: float | None = None
    sib_adjust: bool = False
    interbull: str | os.PathLike | None = None
    interbull_kind: str = "reliability"
    genotyped: str | os.PathLike | None = None
    ginv: str | os.PathLike | None = None
    a22inv: str | os.PathLike | None = None
    #: which columns of the records file hold the animal, the contemporary group(s) and the
    #: trait (bigeval.io.columns: "animal=1,cg=6+8,trait=4" or a mapping); the trait's
    #: missing-value codes (default NA and .; BLUPF90's 0 when given)
    record_columns: str | dict | None = None
    missing: tuple | None = None
    rounds: int = ROUNDS
    tol: float | None = None
    exact: bool = False
    #: Part II's method (bigeval.reliability.genomic.METHODS)
    genomic_method: str = _genomic.DEFAULT_METHOD
    #: read and prepare the files in blocks into a Zarr work folder (bigeval.prepare.ooc);
    #: None: when the pedigree file is at least OUT_OF_CORE_BYTES
    out_of_core: bool | None = False
    work_dir: str | os.PathLike | None = None
    #: parent codes that are unknown parent groups (bigeval.groups.group_mask: None for
    #: negative integers, a regular expression, a list, False for none)
    groups: object = None
    #: where the iteration runs (bigeval.reliability.distributed.cluster): auto | memory | dask
    #: (None: the Dask config
    #: bigeval.engine, else auto); a scheduler address to attach to; a cluster file
    #: (cluster/*.yaml); animals per block; workers to start
    engine: str | None = None
    scheduler: str | None = None
    cluster: str | os.PathLike | None = None
    block_size: int | None = None
    workers: int | None = None
    #: the Dask engine's blocks send every contribution (bit for bit equal to the in-memory
    #: engine) instead of sums per parent (None: the Dask config bigeval.exact-sums)
    exact_sums: bool | None = None
    #: a genotype store (`bigeval genotypes import`): G*⁻¹ and A22⁻¹ are built from it and
    #: the pedigree (bigeval.genomic.relationships.inverses_from_store) instead of read as triplets;
    #: ``genotyped`` then lists the store's animals to use (default: all). QC options
    #: (bigeval.genomic.qc.QCOptions; None: no QC), tuning, blending weight (None: none), A22⁻¹
    #: method,
    #: chunks (animals, SNPs) for G.
    genotypes: str | os.PathLike | None = None
    qc: object = QC_DEFAULT
    tune: bool = True
    blend: float | None = BLEND
    a22inv_method: str = "auto"
    grm_chunks: tuple | None = None
    #: how G*⁻¹ is held (bigeval.defaults.GENOMIC_INVERSES: full, apy, auto by size) and the
    #: number of APY core animals (None: the eigenvalue rule; drawn at random, seed 0)
    genomic_inverse: str = GENOMIC_INVERSE
    apy_core: int | None = None

    def resolved_record_columns(self):
        """:attr:`record_columns` as a :class:`bigeval.io.columns.RecordColumns` (None: the
        records file is ``animal cg``)."""
        if self.record_columns is None:
            if self.missing is not None:
                from bigeval.errors import InputError

                raise InputError("missing-value codes apply to a trait column, and no column "
                                 "map names one", value=" ".join(map(str, self.missing)),
                                 remedy="add --records-columns animal=N,cg=N,trait=N")
            return None
        return parse_record_columns(self.record_columns, missing=self.missing)

    def resolved_alpha(self) -> float:
        from bigeval.errors import InputError

        if self.alpha is not None:
            if self.h2 is not None or self.repeatability is not None:
                raise InputError("give either alpha or h2 (with repeatability), not both",
                                 remedy="drop --alpha or --h2")
            return float(self.alpha)
        if self.h2 is None:
            raise InputError("neither alpha nor h2 is given",
                             remedy="give --alpha A, or --h2 H [--repeatability R]")
        return alpha_from(self.h2, self.repeatability)


@dataclass(frozen=True)
class RunSummary:
    """What a run did, as text for people and as numbers for tests."""

    text: str
    files: dict
    rounds_part1: int
    rounds_part3: int | None


def exact_size(pop: Population, with_pe: bool) -> int:
    """Equations of the exact model's MME: groups + animals (+ pe of animals with records)."""
    n_pe = len(np.unique(pop.rec_animal)) if with_pe else 0
    return pop.n_animals + pop.n_cg + n_pe


def describe(pop: Population, res: ReliabilityResult, opts: ReliabilityOptions,
             seconds: float, rel_exact=None) -> str:
    """A short text summary of a run."""
    rel1, relf = res.rel_pedigree, res.rel_final
    lines = [
        f"bigeval {__version__} — approximate reliabilities (Parts I–III)",
        f"animals {pop.n_animals:,}  records {pop.n_records:,}  contemporary groups "
        f"{pop.n_cg:,}  genotyped {0 if pop.genotyped is None else len(pop.genotyped):,}  "
        f"Interbull bulls {0 if pop.interbull_animal is None else len(pop.interbull_animal):,}"
        + (f"  (rows without a trait value, not records: {pop.missing_trait:,})"
           if pop.missing_trait else ""),
        f"alpha {opts.alpha:g}  tau {opts.tau if opts.tau is not None else '-'}  sib-adjust "
        f"{'yes' if opts.sib_adjust else 'no'}  rounds {opts.rounds}"
        + (f"  tol {opts.tol:g}" if opts.tol else ""),
        f"Part I: {res.part1.rounds} rounds ({'converged' if res.part1.converged else 'all run'}"
        f", last max change {res.part1.max_change[-1] if res.part1.rounds else 0:.2e}); "
        f"mean reliability {rel1.mean():.3f}",
    ]
    if getattr(pop, "groups", None) is not None:
        lines.append(pop.groups.summary() + "; a parent that is a group is unknown here "
                     "(b = 0)")
    if res.rel_genomic is not None:
        g = pop.genotyped
        lines.append(f"Part II ({res.genomic.method}): mean genomic reliability of genotyped "
                     f"animals {res.rel_genomic.mean():.3f} (Part I: {rel1[g].mean():.3f})")
        lines.extend(f"note: {n}" for n in res.genomic.notes)
        mask = np.zeros(pop.n_animals, bool)
        mask[g] = True
        lines.append(f"Part III: {res.part3.rounds} rounds; mean reliability "
                     f"{relf.mean():.3f} (genotyped {relf[mask].mean():.3f}, "
                     f"not genotyped {relf[~mask].mean():.3f})")
    if rel_exact is not None:
        lines.append(agreement_line("approximate vs exact", relf, rel_exact))
    lines.append(f"time {seconds:.1f} s")
    return "\n".join(lines)


def warn_exact_over_limits(n_eq: int, n_genotyped: int) -> bool:
    """Warn when ``--exact`` asks for the whole MME inverse of a population over the limits
    of ``bigeval run``'s automatic check (:data:`bigeval.defaults.EXACT_MAX_EQUATIONS`,
    :data:`bigeval.defaults.EXACT_MAX_GENOTYPED`); True if it warned.

    ``bigeval reliability`` writes one exact value per animal of the population, so it
    computes them for the whole population as asked; ``bigeval run`` checks such a population
    on a seeded herd sample instead ([exact] sample).
    """
    if n_eq <= EXACT_MAX_EQUATIONS and n_genotyped <= EXACT_MAX_GENOTYPED:
        return False
    warnings.warn(
        f"--exact: the exact MME has {n_eq:,} equations and {n_genotyped:,} genotyped "
        f"animals, over the limits of an automatic check ({EXACT_MAX_EQUATIONS:,} equations, "
        f"{EXACT_MAX_GENOTYPED:,} genotyped): its inverse may take hours or not fit in "
        "memory. `bigeval run` with [exact] check = \"auto\" checks such a population on a "
        "seeded herd sample instead ([exact] sample, sample_seed); or draw one with "
        "`bigeval sample` and run --exact on it", BigevalWarning, stacklevel=3)
    return True


def run_reliability(job: ReliabilityJob, *, progress: bool | None = None,
                    chunk_rows: int = ooc.DEFAULT_CHUNK_ROWS, fmt: str = "csv") -> RunSummary:
    """Read, validate, compute Parts I–III (and exact values), write the outputs.

    Writes ``OUT/reliability.csv`` (one row per pedigree animal, original IDs) and
    ``OUT/summary.txt``, each atomically. Outputs that would overwrite an input are refused
    first; the output folder is created, and its lock (:func:`bigeval.io.writers.output_lock`,
    the one ``bigeval run`` holds) taken, once the inputs are read and checked.

    In memory or out of core (:func:`use_out_of_core`) the steps are the same: prepare
    (:func:`bigeval.prepare.prepare` or :func:`bigeval.prepare.ooc.prepare_ooc` into a Zarr work
    folder, ``job.work_dir`` kept or a temporary one in the output folder), Parts I–III on the
    chosen engine (:func:`bigeval.reliability.reliability` or
    :func:`bigeval.reliability.ooc.reliability_ooc`), the same files. Out of core the table is
    written in blocks of rows (``fmt``: ``csv`` or ``parquet``) and the files are read in blocks
    of ``chunk_rows`` rows; genotype stores and exact values need the in-memory path.
    """
    refuse_overwriting_inputs(
        [job.pedigree, job.records, job.interbull, job.genotyped, job.ginv, job.a22inv,
         job.genotypes], [Path(job.out) / n for n in (*OUTPUT_NAMES, RESULTS, ABOUT)])
    with contextlib.ExitStack() as held:
        return _run_reliability(job, progress, OutputClaim(job.out, held),
                                chunk_rows=chunk_rows, fmt=fmt)


class OutputClaim:
    """The output folder, created and locked on first call (held until the stack closes)."""

    def __init__(self, folder, stack: contextlib.ExitStack):
        self.folder, self.stack, self.path = folder, stack, None

    def __call__(self) -> Path:
        if self.path is None:
            path = ensure_dir(self.folder)
            self.stack.enter_context(output_lock(path))
            self.path = path
        return self.path


def _options(job: ReliabilityJob) -> ReliabilityOptions:
    return ReliabilityOptions(alpha=job.resolved_alpha(), tau=job.tau, sib_adjust=job.sib_adjust,
                              interbull_kind=job.interbull_kind, rounds=job.rounds, tol=job.tol,
                              genomic_method=job.genomic_method)


def _work_folder(job: ReliabilityJob, out: Path, stack: contextlib.ExitStack) -> tuple[Path, bool]:
    """The out-of-core work folder: ``job.work_dir``, or a temporary one in ``out`` removed
    when ``stack`` closes (the second value says which)."""
    work_dir = getattr(job, "work_dir", None)
    if work_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix=".bigeval-work.", dir=out))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        return tmp / "work.zarr", True
    work = Path(work_dir)
    if work.exists() and not work.is_dir():
        raise InputError("the out-of-core work folder is a file", file=work,
                         value=str(work), expected="a folder, or a path where one can "
                         "be made", remedy=f"give another {opt('output.work_dir')}")
    return work, False


def _run_reliability(job: ReliabilityJob, progress, claim: OutputClaim, *,
                     chunk_rows: int = ooc.DEFAULT_CHUNK_ROWS, fmt: str = "csv") -> RunSummary:
    if job.genotypes is not None:
        _check_genotypes_job(job)
    out_of_core = use_out_of_core(job)
    if out_of_core and job.exact:
        raise InputError("exact reliabilities (--exact) need the whole MME in memory and do "
                         "not run out of core",
                         remedy="drop --exact, or run without --out-of-core on small data")
    t0 = time.perf_counter()
    opts = _options(job)
    log = OocLog(progress if out_of_core else False)
    with contextlib.ExitStack() as stack:
        genomic = None
        if out_of_core:
            work, temporary = _work_folder(job, claim(), stack)
            pop = prepare_ooc(job.pedigree, job.records, work=work, genotyped=job.genotyped,
                              interbull=job.interbull, ginv=job.ginv, a22inv=job.a22inv,
                              interbull_kind=job.interbull_kind, chunk_rows=chunk_rows,
                              record_columns=job.resolved_record_columns(), groups=job.groups,
                              progress=progress)
            lonely = single_record_groups_ooc(pop)
            sire, dam = pop.array("sire"), pop.array("dam")  # read once, for either engine
            genotyped_ids = None if pop.genotyped is None else pop.ids_of(pop.genotyped)
        else:
            pop = prepare(job.pedigree, job.records, genotyped=job.genotyped,
                          interbull=job.interbull, ginv=job.ginv, a22inv=job.a22inv,
                          interbull_kind=job.interbull_kind,
                          record_columns=job.resolved_record_columns(), groups=job.groups)
            if job.genotypes is not None:  # G*⁻¹ and A22⁻¹ from the genotype store
                claim()  # fail on an unwritable or busy folder before the long work
                pop, genomic = _inverses_from_store(job, pop, progress)
            lonely = single_record_groups(pop)
            sire, dam = pop.sire, pop.dam
            genotyped_ids = None if pop.genotyped is None else pop.ids[pop.genotyped]
        warn_single_record_groups(lonely, job, stacklevel=3)
        if job.exact:
            n_eq = exact_size(pop, job.tau is not None)
            warn_exact_over_limits(n_eq, 0 if pop.genotyped is None else len(pop.genotyped))
            from bigeval.reliability.exact import exact_method

            if exact_method(n_eq) == "dense":  # larger systems: sparse selected inversion
                check_dense(n_eq, copies=2, what=f"the exact MME inverse ({n_eq:,} equations)")
        out = claim()  # fail on an unwritable or busy folder before the long work
        from bigeval.reliability.distributed.cluster import reliability_engine

        with reliability_engine(sire, dam, engine=job.engine, scheduler=job.scheduler,
                                cluster=job.cluster, block_size=job.block_size,
                                n_workers=job.workers, exact_sums=job.exact_sums) as engine:
            try:
                if out_of_core:
                    res = reliability_ooc(pop, opts, interbull_source=job.interbull,
                                          progress=progress,
                                          iterator=engine.iterator or memory_iterator(sire, dam))
                else:
                    res = reliability(pop, opts, interbull_source=job.interbull,
                                      progress=progress, iterator=engine.iterator)
            except _genomic.GenomicReliabilityError as exc:
                raise _genomic.stopped(exc, genotyped_ids, out) from None
        rel_exact = use_h = None
        if job.exact:
            from bigeval.reliability.exact import exact_reliability

            use_h = pop.genotyped is not None and pop.ginv is not None
            rel_exact = exact_reliability(
                pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, opts.alpha, tau=opts.tau,
                genotyped=pop.genotyped if use_h else None, ginv=pop.ginv if use_h else None,
                a22inv=pop.a22inv if use_h else None)
        text = describe(pop, res, opts, time.perf_counter() - t0, rel_exact)
        text += "\n" + engine.description
        if out_of_core:
            text += ("\nout of core: files read in blocks of "
                     f"{chunk_rows:,} rows, work folder {'(temporary)' if temporary else work}")
        if genomic is not None:
            text += "\n" + "\n".join(genomic.lines)
        if job.exact and pop.interbull_animal is not None:
            text += "\nnote: the exact model has no Interbull information; the approximation has."
        writers = {"reliability": _table_writer(out, pop, res, rel_exact, use_h, out_of_core,
                                                fmt)}
        if res.genomic is not None and len(res.genomic.flags):
            flags = _genomic.flags_frame(res.genomic.flags, genotyped_ids)
            writers["genomic_flags"] = (out / _genomic.FLAGS_FILE,
                                        lambda f: write_csv(flags, f))
        if genomic is not None and job.qc is not None:
            writers["qc_report"] = (out / QC_REPORT,
                                    lambda f: genomic.report.to_csv(f, index=False))
        log(f"writing {writers['reliability'][0].name}")
        files = write_outputs(out, writers, text, lonely, about=job_about(job))
    return RunSummary(text=text, files=files, rounds_part1=res.part1.rounds,
                      rounds_part3=None if res.part3 is None else res.part3.rounds)


def _inverses_from_store(job: ReliabilityJob, pop: Population, progress):
    """``pop`` with G*⁻¹ and A22⁻¹ from the job's genotype store (full or APY), and what was
    built (its summary lines and QC report)."""
    import dataclasses

    from bigeval.genomic.relationships import inverses_from_store

    keep = None if pop.genotyped is None else pop.ids[pop.genotyped]
    if _genomic_inverse(job, keep) == "apy":
        from bigeval.genomic.apy import apy_inverses_from_store

        genomic = apy_inverses_from_store(
            job.genotypes, pop.ids, pop.sire, pop.dam, keep=keep, qc=job.qc,
            tune=job.tune, blend=job.blend, core_size=job.apy_core, chunks=job.grm_chunks,
            log=_say)
    else:
        genomic = inverses_from_store(
            job.genotypes, pop.ids, pop.sire, pop.dam, keep=keep, qc=job.qc,
            tune=job.tune, blend=job.blend, method=job.a22inv_method,
            chunks=job.grm_chunks, progress=progress)
    return dataclasses.replace(pop, genotyped=genomic.genotyped, ginv=genomic.ginv,
                               a22inv=genomic.a22inv), genomic


def _table_writer(out: Path, pop, res, rel_exact, use_h, out_of_core: bool, fmt: str):
    """(path, write(file)) of the per-animal table: whole in memory, in blocks out of core."""
    if out_of_core:
        path = out / ("reliability.csv" if fmt == "csv" else "reliability.parquet")
        return path, lambda f: ooc.write_table_chunks(result_chunks(pop, res), f, fmt=fmt,
                                                      atomic=False)
    table = result_table(pop, res, rel_exact)
    if rel_exact is not None:
        from bigeval.reliability.exact import publishable

        table["rel_exact"], table["exact_below_zero"] = publishable(
            rel_exact, "exact ssGBLUP" if use_h else "exact PBLUP")
    return out / "reliability.csv", lambda f: write_csv(table, f)


def job_about(job: ReliabilityJob) -> dict:
    """What ``published.json`` says of a ``bigeval reliability`` run: the command, the
    version and every setting of the job (input paths as given)."""
    settings = {k: (None if v is None else v if isinstance(v, (bool, int, float, str))
                    else str(v)) for k, v in asdict(job).items()}
    return {"command": "bigeval reliability", "bigeval": __version__, "job": settings}


def warn_single_record_groups(lonely: pd.DataFrame, job: ReliabilityJob, *,
                              stacklevel: int = 2) -> None:
    """The warning for groups with one record (their list is written by :func:`write_outputs`)."""
    if len(lonely):
        warnings.warn(
            f"{len(lonely):,} contemporary group(s) of {job.records} hold a single record, "
            f"which carries no information (ERC 0); they are listed with their animals in "
            f"{os.path.join(job.out, SINGLE_RECORD_GROUPS)}", BigevalWarning,
            stacklevel=stacklevel + 1)


def write_outputs(out: Path, writers: dict, text: str, lonely: pd.DataFrame, *,
                  about: dict | None = None) -> dict:
    """Publish a run's files together (:func:`bigeval.io.publish.publishing`): ``writers``
    maps a name to ``(path, write(tmp_path))``; the summary ``text`` and the
    single-record-group list (when any) join them. Until all are written none is visible;
    then they replace the previous run's files at once (a file the previous run published
    and this one does not, such as its list of single-record groups, goes at the same
    moment). ``about`` is what ``published.json`` records of the run. Returns name -> path."""
    writers = dict(writers)
    writers["summary"] = (out / "summary.txt", lambda f: Path(f).write_text(text + "\n"))
    if len(lonely):
        writers["single_record_groups"] = (out / SINGLE_RECORD_GROUPS,
                                           lambda f: lonely.to_csv(f, index=False))
    files = {name: path for name, (path, _) in writers.items()}
    with publishing(out, [Path(p).name for p in files.values()], about=about,
                    known=OUTPUT_NAMES) as gen:
        for path, write in writers.values():
            write(gen / Path(path).name)
    (out / _genomic.STOPPED_FLAGS_FILE).unlink(missing_ok=True)  # of a run stopped before
    return files


def _say(line: str) -> None:
    """A line on what is being done (the memory a genomic inverse needs), on stderr."""
    print(line, file=sys.stderr, flush=True)


def _genomic_inverse(job: ReliabilityJob, keep) -> str:
    """``full`` or ``apy`` for the job (:func:`bigeval.genomic.apy.choose_inverse`), by the animals
    of the store to use (before QC), the memory of each choice printed first."""
    from bigeval.genomic.apy import choose_inverse
    from bigeval.io.genotypes import open_genotypes

    n = len(open_genotypes(job.genotypes)[1]) if keep is None else len(keep)
    return choose_inverse(job.genomic_inverse, n, apy_core=job.apy_core, log=_say,
                          needs_full=["--exact (exact reliabilities)"] if job.exact else [])


def _check_genotypes_job(job: ReliabilityJob) -> None:
    """``--genotypes`` builds G⁻¹ and A22⁻¹: refuse combinations that cannot work."""
    from bigeval.errors import InputError

    if job.ginv is not None or job.a22inv is not None:
        raise InputError("give either a genotype store (--genotypes) or the G⁻¹ and A22⁻¹ "
                         "triplets (--ginv, --a22inv), not both", file=job.genotypes,
                         remedy="drop --genotypes, or drop --ginv and --a22inv")
    if use_out_of_core(job):
        raise InputError("--genotypes does not work with --out-of-core yet (the pedigree is "
                         "read out of core from 128 MiB, or with --out-of-core)",
                         file=job.genotypes,
                         remedy="build the triplets with `bigeval grm --genotypes STORE "
                                "--pedigree PED --tune --blend 0.05 --triplets` and pass "
                                "--genotyped, --ginv and --a22inv")


# ---------------------------------------------------------------------------------------------
# out of core

#: ``out_of_core=None`` (the CLI's default) reads pedigrees from this size on out of core:
#: about 4 million animals, where the in-memory path needs several GiB.
OUT_OF_CORE_BYTES = 128 * 2**20


def use_out_of_core(job) -> bool:
    """Whether a :class:`ReliabilityJob` runs out of core."""
    flag = getattr(job, "out_of_core", False)
    if flag is None:
        path = Path(job.pedigree)
        return path.exists() and path.stat().st_size >= OUT_OF_CORE_BYTES
    return bool(flag)
