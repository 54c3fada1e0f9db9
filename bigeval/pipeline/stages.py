"""The stages of ``bigeval run``: validate → prepare → relationships → (solve) →
reliabilities → report.

Each stage is a function of a :class:`StageContext` (the configuration, the committed
folders of the stages it reads, a temporary folder for its outputs) that writes its outputs
into ``ctx.work`` and returns a small JSON-able summary. Stages are thin: the work is done by
library calls (:func:`bigeval.prepare.prepare`, :func:`bigeval.genomic.grm.grm`,
:func:`bigeval.reliability.reliability`, :func:`bigeval.models.fit_mixed`, ...). Where the
library's API is expected to change (out-of-core prepare, the distributed engine, sparse exact
reliabilities), the call goes through one small adapter function (``_prepare``,
``_reliability`` here, ``_exact`` in :mod:`bigeval.pipeline.exact_check`) so it is re-pointed in one
place.

Outputs per stage (``OUT/stages/<stage>/``)::

    validate        validation.json      counts, notes, checks passed
    prepare         animals.parquet      animal (ID), sire, dam (internal numbers, -1 unknown),
                                         generation, birth_year, sex
                    records.parquet      animal, cg (internal numbers)
                    cgs.parquet          cg (codes as given)
                    interbull.parquet    animal, value (when Interbull is given)
    relationships   Ginv.h5, A22inv.h5   G*⁻¹ and A22⁻¹ of the genotyped animals (with ids)
                    apy.h5               instead, with APY: its pieces
                    (bigeval.genomic.apy.write_apy)
                    qc.parquet           what genotype QC removed and why
                    genotypes.zarr       the imported store (when given a genotype file)
    solve           solutions.parquet    animal, ebv, pev, rel (MME)
                    fixed.parquet        effect, level, estimate, se
    reliabilities   reliability.parquet  the per-animal table of `bigeval reliability`
                    convergence.parquet  part, round, max_change
                    exact.parquet        approximate vs exact (when the check ran: every
                                         animal, or a seeded sample's, bigeval.pipeline.exact_check)
    report          reliability.csv/.parquet, report.html, summary.txt (published to OUT/)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bigeval.errors import InputError
from bigeval.io.columns import missing_mask
from bigeval.io.writers import ensure_dir
from bigeval.pipeline.config import RunConfig
from bigeval.io.csvfast import write_csv
from bigeval.io.genotypes import is_zarr_store
from bigeval.pipeline.inputs import (
    check_in_pedigree,
    genotype_ids,
    pedigree_extra,
    read_columns,
    read_parquet,
    write_json,
    write_parquet,
)
from bigeval.progress import Progress

__all__ = ["StageContext", "Stage", "STAGES", "load_population"]

APY_FILE = "apy.h5"  # the relationships stage's checkpoint with APY


@dataclass
class StageContext:
    """What a stage function gets."""

    config: RunConfig
    work: Path
    upstream: dict[str, Path]
    progress: Progress
    point: Callable[[str], None] = field(default=lambda name: None)

    def upstream_file(self, stage: str, name: str) -> Path:
        return self.upstream[stage] / name


@dataclass(frozen=True)
class Stage:
    """A stage: its function, the input files and parameters its key depends on, the stages
    whose outputs it reads, and whether the configuration asks for it."""

    name: str
    run: Callable[[StageContext], dict]
    inputs: Callable[[RunConfig], dict]
    params: Callable[[RunConfig], dict]
    upstream: Callable[[RunConfig], tuple]  # "stage" (all outputs) or "stage/file"
    enabled: Callable[[RunConfig], bool] = lambda cfg: True
    version: int = 1



# ---------------------------------------------------------------------------------------------
# Adapters over library calls that other work is changing (re-point them here)


def _prepare(cfg: RunConfig, pedigree, records=None, **files):
    """Read, validate and renumber: in memory, or in blocks through a Zarr work folder
    (:func:`bigeval.prepare.ooc.prepare_ooc`, the same numbering and errors) when
    ``[inputs] out_of_core`` says so."""
    import types

    from bigeval.prepare import prepare

    flag = cfg["inputs.out_of_core"]
    if flag is not False:
        from bigeval.pipeline.workflow import use_out_of_core
        from bigeval.prepare.ooc import prepare_ooc

        job = types.SimpleNamespace(out_of_core=None if flag == "auto" else flag,
                                    pedigree=pedigree)
        if use_out_of_core(job):
            import tempfile

            root = cfg["output.work_dir"] or (cfg.out / "stages")
            if Path(root).exists() and not Path(root).is_dir():
                raise InputError("the out-of-core work folder is a file", file=root,
                                 value=str(root), expected="a folder, or a path where one "
                                 "can be made", remedy="give another output.work_dir")
            ensure_dir(root)
            with tempfile.TemporaryDirectory(prefix=".prepare-ooc.", suffix=".tmp",
                                             dir=root) as work:
                return prepare_ooc(pedigree, records, work=Path(work) / "work.zarr",
                                   groups=cfg["inputs.pedigree_groups"],
                                   **files).to_population()
    return prepare(pedigree, records, groups=cfg["inputs.pedigree_groups"], **files)


def _record_files(cfg: RunConfig, records) -> dict:
    """The records' column map for :func:`_prepare` (nothing without records or a map)."""
    rc = cfg.record_columns() if records is not None else None
    return {} if rc is None else {"record_columns": rc}


def _reliability(cfg: RunConfig, pop, opts, *, interbull_source, progress: bool):
    """Parts I-III: the iteration in memory or partitioned on a Dask cluster
    (:func:`bigeval.reliability.distributed.cluster.reliability_engine`, chosen by
    ``[cluster]``)."""
    from bigeval.reliability.distributed.cluster import reliability_engine
    from bigeval.reliability.engine import reliability

    sched = cfg["cluster.scheduler"]
    address = None if sched in ("threads", "synchronous", "local-cluster") else sched
    with reliability_engine(pop.sire, pop.dam, engine=cfg["cluster.engine"], scheduler=address,
                            cluster=cfg["cluster.file"], block_size=cfg["cluster.block_size"],
                            n_workers=cfg["cluster.workers"],
                            exact_sums=cfg["cluster.exact_sums"]) as engine:
        res = reliability(pop, opts, interbull_source=interbull_source, progress=progress,
                          iterator=engine.iterator)
    return res, engine.description


# ---------------------------------------------------------------------------------------------
# validate


def _input_files(cfg: RunConfig) -> dict:
    names = ("pedigree", "records", "genotypes", "grm", "genotyped", "ginv", "a22inv",
             "interbull")
    return {n: cfg[f"inputs.{n}"] for n in names if cfg[f"inputs.{n}"] is not None}


def exact_equations(pop, with_pe: bool) -> int:
    """Equations of the exact check's MME: groups + animals (+ pe of animals with records)."""
    from bigeval.pipeline.workflow import exact_size

    return exact_size(pop, with_pe)


def validate(ctx: StageContext) -> dict:
    """Read and check every input file and their agreement; nothing heavy is computed."""
    from bigeval._resources import check_dense

    cfg = ctx.config
    for name, path in _input_files(cfg).items():
        if not Path(path).exists():
            file, line = cfg.where(f"inputs.{name}")
            raise InputError(f"the {name} input does not exist", file=path,
                             value=f"[inputs] {name} in {file}" + (f", line {line}" if line
                                                                   else ""),
                             remedy="fix the path in the configuration (relative to it)")
    ctx.progress.phase("reading pedigree, records, Interbull")
    pop = _prepare(cfg, cfg["inputs.pedigree"], cfg["inputs.records"],
                   genotyped=cfg["inputs.genotyped"], interbull=cfg["inputs.interbull"],
                   ginv=cfg["inputs.ginv"], a22inv=cfg["inputs.a22inv"],
                   interbull_kind=cfg["inputs.interbull_kind"],
                   **_record_files(cfg, cfg["inputs.records"]))
    ctx.point("mid")
    index = pd.Index(pop.ids)
    notes = []
    from bigeval.prepare import single_record_groups

    lonely = single_record_groups(pop)
    if len(lonely):
        notes.append(f"{len(lonely):,} contemporary group(s) hold a single record, which "
                     f"carries no information (ERC 0), e.g. {lonely['cg'].iat[0]}")
    n_genotyped = 0 if pop.genotyped is None else len(pop.genotyped)
    n_snps = None
    for key in ("inputs.genotypes", "inputs.grm"):
        path = cfg[key]
        if path is None:
            continue
        ids = genotype_ids(path)
        store = path
        if ids is None and key == "inputs.genotypes" and _genotype_file(cfg):
            store = _import_genotypes(ctx)  # every line checked here; the relationships
            from bigeval.io.genotypes import open_genotypes  # stage uses the store

            ids = open_genotypes(store)[1]
            notes.append(f"genotypes imported from {Path(path).name} into a store")
        elif ids is None:
            from bigeval.io.genotypes import _format_of

            if cfg["inputs.genotypes_format"] is None:
                _format_of(Path(path))  # a clear error when the suffix says nothing
            notes.append(f"genotypes in {Path(path).name} are not used (inputs.grm is)")
            continue
        check_in_pedigree(ids, index, path, "genotyped")
        if key == "inputs.genotypes" and is_zarr_store(store):
            from bigeval.io.genotypes import open_genotypes

            X, _, snps = open_genotypes(store)
            n_snps = len(snps)
        if pop.genotyped is not None:
            listed = pop.ids[pop.genotyped]
            missing = np.setdiff1d(listed.astype(str), ids.astype(str))
            if len(missing):
                raise InputError(f"{len(missing):,} animal(s) of the genotyped list have no "
                                 "genotypes", file=cfg["inputs.genotyped"], value=missing[0],
                                 remedy="remove them from the list, or add their genotypes")
        else:
            n_genotyped = len(ids)
    if n_genotyped:
        check_dense(n_genotyped, copies=3, what=f"G, G⁻¹ and Part II for {n_genotyped:,} "
                                                "genotyped animals")
    extra = pedigree_extra(cfg, pop.ids)
    if cfg["inputs.birth_year_column"] is not None:
        unknown = int(extra["birth_year"].isna().sum())
        if unknown == len(extra):
            raise InputError("no birth year could be read from the pedigree",
                             file=cfg["inputs.pedigree"], value=cfg["inputs.birth_year_column"],
                             expected="a column of years such as 2019",
                             remedy="fix inputs.birth_year_column, or remove it")
        if unknown:
            notes.append(f"{unknown:,} animals have no birth year (parents without a row, or "
                         "0/NA)")
    if cfg.has_model:
        _model_records(cfg)  # trait and factor columns exist and are numbers where needed
    n_eq = exact_equations(pop, cfg["parameters.tau"] is not None)
    has_rec = np.zeros(pop.n_animals, bool)
    has_rec[pop.rec_animal] = True
    summary = {
        "animals": pop.n_animals, "records": pop.n_records, "contemporary_groups": pop.n_cg,
        "animals_with_records": int(has_rec.sum()),
        "founders": int(((pop.sire < 0) & (pop.dam < 0)).sum()),
        "generations": int(pop.generation.max()) + 1 if pop.n_animals else 0,
        "genotyped": n_genotyped, "snps": n_snps,
        "interbull": 0 if pop.interbull_animal is None else len(pop.interbull_animal),
        "exact_equations": n_eq, "notes": notes,
        "unknown_parent_groups": None if pop.groups is None else pop.groups.summary(),
    }
    write_json(summary, ctx.work / "validation.json")
    return summary


# ---------------------------------------------------------------------------------------------
# prepare


def prepare(ctx: StageContext) -> dict:
    """Renumber the population and keep it as Parquet tables (IDs as given)."""
    cfg = ctx.config
    pop = _prepare(cfg, cfg["inputs.pedigree"], cfg["inputs.records"],
                   interbull=cfg["inputs.interbull"],
                   interbull_kind=cfg["inputs.interbull_kind"],
                   **_record_files(cfg, cfg["inputs.records"]))
    extra = pedigree_extra(cfg, pop.ids)
    animals = pd.DataFrame({"animal": pd.array(pop.ids.astype(str), dtype="string"),
                            "sire": pop.sire.astype(np.int64), "dam": pop.dam.astype(np.int64),
                            "generation": pop.generation.astype(np.int32),
                            "birth_year": extra["birth_year"], "sex": extra["sex"]})
    write_parquet(animals, ctx.work / "animals.parquet")
    from bigeval.models import upg  # (bigeval.models imports bigeval.pipeline: not at the top)

    upg.write_groups(pop.groups, ctx.work)  # unknown parent groups, for the solve stage
    ctx.point("mid")
    write_parquet(pd.DataFrame({"animal": pop.rec_animal.astype(np.int64),
                                 "cg": pop.rec_cg.astype(np.int64)}),
                   ctx.work / "records.parquet")
    write_parquet(pd.DataFrame({"cg": pd.array(pop.cg_ids.astype(str), dtype="string")}),
                   ctx.work / "cgs.parquet")
    if pop.interbull_animal is not None:
        write_parquet(pd.DataFrame({"animal": pop.interbull_animal.astype(np.int64),
                                     "value": pop.interbull_value.astype(np.float64)}),
                       ctx.work / "interbull.parquet")
    return {"animals": pop.n_animals, "records": pop.n_records, "contemporary_groups": pop.n_cg}


def _read_animals(folder: Path) -> pd.DataFrame:
    return read_parquet(folder / "animals.parquet")


def load_population(prepare_dir: Path, relationships_dir: Path | None = None):
    """The :class:`bigeval.prepare.Population` of the checkpoints (G⁻¹, A22⁻¹ when given)."""
    from bigeval.prepare import Population

    animals = _read_animals(prepare_dir)
    ids = animals["animal"].to_numpy(dtype=object)
    rec = read_parquet(prepare_dir / "records.parquet")
    cgs = read_parquet(prepare_dir / "cgs.parquet")["cg"].to_numpy(dtype=object)
    ib_animal = ib_value = None
    if (prepare_dir / "interbull.parquet").exists():
        ib = read_parquet(prepare_dir / "interbull.parquet")
        ib_animal, ib_value = ib["animal"].to_numpy(np.int64), ib["value"].to_numpy(np.float64)
    genotyped = ginv = a22inv = None
    if relationships_dir is not None and (relationships_dir / APY_FILE).exists():
        from bigeval.genomic.a22op import A22InverseOperator
        from bigeval.genomic.apy import read_apy

        ginv, gids = read_apy(relationships_dir / APY_FILE)
        genotyped = pd.Index(ids.astype(str)).get_indexer(gids).astype(np.int64)
        a22inv = A22InverseOperator(animals["sire"].to_numpy(np.int64),
                                    animals["dam"].to_numpy(np.int64), genotyped)
    elif relationships_dir is not None and (relationships_dir / "Ginv.h5").exists():
        from bigeval.genomic.grm import read_grm

        ginv, gids = read_grm(relationships_dir / "Ginv.h5", name="Ginv")
        a22inv, aids = read_grm(relationships_dir / "A22inv.h5", name="A22inv")
        if not np.array_equal(gids, aids):  # pragma: no cover - written together
            raise InputError("G⁻¹ and A22⁻¹ checkpoints list different animals",
                             file=relationships_dir, remedy="delete the folder and re-run")
        genotyped = pd.Index(ids.astype(str)).get_indexer(gids).astype(np.int64)
    return Population(ids=ids, sire=animals["sire"].to_numpy(np.int64),
                      dam=animals["dam"].to_numpy(np.int64),
                      generation=animals["generation"].to_numpy(np.int32),
                      rec_animal=rec["animal"].to_numpy(np.int64),
                      rec_cg=rec["cg"].to_numpy(np.int64), cg_ids=cgs, genotyped=genotyped,
                      interbull_animal=ib_animal, interbull_value=ib_value, ginv=ginv,
                      a22inv=a22inv)


# ---------------------------------------------------------------------------------------------
# relationships


def _qc_options(cfg: RunConfig):
    from bigeval.genomic.qc import QCOptions

    return QCOptions(min_call_rate_snp=cfg["genomics.min_call_rate_snp"],
                     min_call_rate_animal=cfg["genomics.min_call_rate_animal"],
                     min_maf=cfg["genomics.min_maf"],
                     max_concordance=cfg["genomics.max_concordance"],
                     max_conflict_rate=cfg["genomics.max_conflict_rate"])


def relationships(ctx: StageContext) -> dict:
    """G*⁻¹ and A22⁻¹ of the genotyped animals (:mod:`bigeval.genomic.relationships`): from a
    genotype
    store (QC, G with Dask, tuning to and blending with A22, the inverses), from a ready G,
    or read from G⁻¹/A22⁻¹ triplets. A genotype file is imported into a store first."""
    from bigeval.genomic.grm import write_grm
    from bigeval.genomic.relationships import genomic_inverses, inverses_from_store, \
        positions_in_pedigree

    cfg = ctx.config
    summary: dict = {}
    blend = cfg["genomics.blend"] or None
    if cfg["inputs.ginv"] is not None:
        pop = _prepare(cfg, cfg["inputs.pedigree"], genotyped=cfg["inputs.genotyped"],
                       ginv=cfg["inputs.ginv"], a22inv=cfg["inputs.a22inv"])
        ids = pop.ids[pop.genotyped].astype(str)
        ginv, a22inv = pop.ginv, pop.a22inv
        summary["source"] = "triplets"
    else:
        animals = _read_animals(ctx.upstream["prepare"])
        ped_ids = animals["animal"].to_numpy(dtype=object).astype(str)
        sire, dam = animals["sire"].to_numpy(np.int64), animals["dam"].to_numpy(np.int64)
        keep = None
        if cfg["inputs.genotyped"] is not None:
            from bigeval.io.readers import read_genotyped

            keep = read_genotyped(cfg["inputs.genotyped"])["animal"].to_numpy(str)
        if cfg["inputs.grm"] is not None:
            from bigeval.genomic.grm import read_grm

            G, ids = read_grm(cfg["inputs.grm"])
            if keep is not None:
                rows = np.flatnonzero(np.isin(ids, keep))
                G, ids = G[np.ix_(rows, rows)], ids[rows]
            pos = positions_in_pedigree(ids, ped_ids, file=cfg["inputs.grm"])
            ctx.point("mid")
            ginv, a22inv = genomic_inverses(
                G, sire, dam, pos, tune=cfg["genomics.tune"], blend=blend,
                method=cfg["genomics.a22inv_method"], overwrite=True, ids=ids,
                file=cfg["inputs.grm"], progress=ctx.progress.enabled)
            summary["source"] = "grm"
        else:
            store = _genotype_store(ctx)
            ctx.point("mid")
            common = dict(keep=keep, source=cfg["inputs.genotypes"],
                          qc=_qc_options(cfg) if cfg["genomics.qc"] else None,
                          tune=cfg["genomics.tune"], blend=blend,
                          chunks=tuple(cfg["genomics.chunks"]) if cfg["genomics.chunks"]
                          else None)
            if _genomic_inverse(ctx, store, keep) == "apy":
                from bigeval.genomic.apy import apy_inverses_from_store

                with ctx.progress.dask("genotype QC and APY G"):
                    res = apy_inverses_from_store(store, ped_ids, sire, dam, **common,
                                                  core_size=cfg["genomics.apy_core"],
                                                  log=ctx.progress.line)
            else:
                with ctx.progress.dask("genotype QC and G"):
                    res = inverses_from_store(store, ped_ids, sire, dam, **common,
                                              method=cfg["genomics.a22inv_method"],
                                              progress=ctx.progress.enabled)
            ids, ginv, a22inv = res.ids, res.ginv, res.a22inv
            report = res.report.astype({"kind": str, "id": str, "reason": str,
                                        "threshold": str})
            report["value"] = report["value"].astype(np.float64)
            write_parquet(report, ctx.work / "qc.parquet")
            from bigeval.io.genotypes import open_genotypes

            X, _, snps = open_genotypes(store)
            summary.update(source="genotypes", animals_in_store=int(X.shape[0]),
                           snps_in_store=int(len(snps)), animals_used=len(ids),
                           snps_used=int(len(snps)) - int(((report["kind"] == "snp")).sum()),
                           lines=res.lines)
    if isinstance(a22inv, np.ndarray):
        write_grm(ginv, ids, ctx.work / "Ginv.h5", name="Ginv")
        write_grm(a22inv, ids, ctx.work / "A22inv.h5", name="A22inv")
        summary["inverse"] = "full"
    else:  # APY: its pieces; the A22⁻¹ operator is rebuilt from the pedigree
        from bigeval.genomic.apy import write_apy

        write_apy(ginv, ids, ctx.work / APY_FILE)
        summary.update(inverse="apy", apy_core=int(ginv.core.size))
    summary["genotyped"] = len(ids)
    return summary


def _genomic_inverse(ctx: StageContext, store, keep) -> str:
    """``full`` or ``apy`` (``genomics.inverse``, :func:`bigeval.genomic.apy.choose_inverse`) for
    the
    animals of the store to use, the memory of each printed first; not APY where a later
    stage needs the dense G*⁻¹."""
    from bigeval.genomic.apy import choose_inverse
    from bigeval.io.genotypes import open_genotypes

    cfg = ctx.config
    need = [what for what, yes in (
        ("the ssGBLUP solve ([model] relationship H)",
         cfg.has_model and _model_relationship(cfg) == "H"),
        ("the exact check (exact.check = true)", cfg["exact.check"] is True)) if yes]
    n = len(open_genotypes(store)[1]) if keep is None else len(keep)
    return choose_inverse(cfg["genomics.inverse"], n, needs_full=need,
                          apy_core=cfg["genomics.apy_core"], log=ctx.progress.line)


def _genotype_file(cfg: RunConfig) -> bool:
    """The run's genotypes are a file to import (PLINK, BLUPF90 text, CSV), not a store."""
    path = cfg["inputs.genotypes"]
    return path is not None and cfg["inputs.grm"] is None and not is_zarr_store(Path(path))


def _genotype_store(ctx: StageContext) -> Path:
    """The genotype store of the run: the input, or the store the validate stage imported
    the genotype file into."""
    path = Path(ctx.config["inputs.genotypes"])
    if is_zarr_store(path):
        return path
    return ctx.upstream["validate"] / "genotypes.zarr"


def _import_genotypes(ctx: StageContext) -> Path:
    """Import the run's genotype file into the (validate) stage's folder: every line is read
    and checked, errors name the file and line."""
    from bigeval.io.genotypes import DEFAULT_CHUNKS, import_genotypes

    cfg = ctx.config
    path = Path(cfg["inputs.genotypes"])
    ctx.progress.phase(f"importing {path.name} into a genotype store")

    def imported(done, total):
        ctx.progress.update(f"import: {done:,}{'' if total is None else f' / {total:,}'} "
                            "animals")

    chunks = tuple(cfg["genomics.chunks"]) if cfg["genomics.chunks"] else DEFAULT_CHUNKS
    return import_genotypes(path, ctx.work / "genotypes.zarr", fmt=cfg["inputs.genotypes_format"],
                            chunks=chunks, progress=imported)


# ---------------------------------------------------------------------------------------------
# solve


def _model_records(cfg: RunConfig) -> pd.DataFrame:
    """The records with the model's columns: animal, cg, trait (float), factors, covariates."""
    path = cfg["inputs.records"]
    csv = str(path).lower().endswith((".csv", ".csv.gz"))
    rc = cfg.record_columns()  # the records' column map, if any (bigeval.io.columns)
    if rc is None:
        cols = {"animal": "animal" if csv else 1, "cg": "cg" if csv else 2}
    else:
        cols = {"animal": rc.animal, **{f"cg_{k}": c for k, c in enumerate(rc.cg)}}
    cols["trait"] = cfg["model.trait"]
    names = {}
    for spec in list(cfg["model.factors"]) + list(cfg["model.covariates"]):
        if spec == "cg":
            continue
        names[spec] = f"col_{spec}"
        cols[f"col_{spec}"] = spec
    df = read_columns(path, cols, kind="records")
    if rc is not None:  # the group: its columns' values joined, as the reliability run has it
        parts = [f"cg_{k}" for k in range(len(rc.cg))]
        df["cg"] = df[parts].astype(str).agg(":".join, axis=1) if len(df) else ""
        df = df.drop(columns=parts)
    missing = missing_mask(df["trait"], ["", "NA", "na", "."] + (
        [] if rc is None else list(rc.missing)))
    df = df.loc[~missing].reset_index(drop=True)
    if not len(df):
        raise InputError("no record has a trait value", file=path, value=cfg["model.trait"],
                         remedy="check [model] trait (the column of the trait)")
    numeric = ["trait"] + [names[c] for c in cfg["model.covariates"] if c != "cg"]
    for col in numeric:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError("record value is not a number", file=path,
                             line=int(df.at[i, "line"]), value=df.at[i, col],
                             expected="a decimal number (missing: NA or .)",
                             remedy="fix the value or the [model] column")
        df[col] = v
    return df


def _variances(cfg: RunConfig, y: np.ndarray, pe: bool) -> dict:
    """σa², σpe², σe²: as given, else from h2 (and repeatability) × the variance of y.

    Only the ratios matter for the EBV; the scale makes PEV readable in units of the trait.
    """
    var = float(np.var(y, ddof=1)) if len(y) > 1 else 1.0
    var = var if var > 0 else 1.0
    h2 = cfg["parameters.h2"]
    r = cfg["parameters.repeatability"]
    if h2 is None:  # alpha given: σa² = var/(1 + α) keeps σe²/σa² = α
        alpha = cfg.alpha()
        default = {"sigma_a2": var / (1 + alpha), "sigma_e2": var * alpha / (1 + alpha)}
        tau = cfg["parameters.tau"]
        default["sigma_pe2"] = default["sigma_e2"] / tau if tau else None
    else:
        r_ = r if r is not None else h2
        default = {"sigma_a2": h2 * var, "sigma_pe2": (r_ - h2) * var or None,
                   "sigma_e2": (1 - r_) * var}
    out = {k: (cfg[f"model.{k}"] if cfg[f"model.{k}"] is not None else default[k])
           for k in ("sigma_a2", "sigma_pe2", "sigma_e2")}
    if not pe:
        out["sigma_pe2"] = None
    elif not out["sigma_pe2"]:
        file, line = cfg.where("model.pe")
        raise InputError("a permanent-environment effect needs its variance", file=file,
                         line=line, remedy="give [model] sigma_pe2, or repeatability > h2")
    return out


def _model_pe(cfg: RunConfig) -> bool:
    pe = cfg["model.pe"]
    if pe == "auto":
        return cfg["parameters.repeatability"] is not None or cfg["parameters.tau"] is not None
    return bool(pe)


def _model_relationship(cfg: RunConfig) -> str:
    rel = cfg["model.relationship"]
    return ("H" if cfg.has_genomics else "A") if rel == "auto" else rel


def _model_data(spec, df: pd.DataFrame, rel):
    """:func:`bigeval.models.mme.model_data`; the routine model (contemporary groups the only
    fixed effect) without an intercept: the group incidence alone, whose columns
    :func:`bigeval.models.anova.design_matrix` keeps without a dense rank check."""
    import dataclasses

    from bigeval.models.mme import model_data

    if spec.factors == ("cg",) and not spec.covariates:
        spec = dataclasses.replace(spec, intercept=False)
    return model_data(spec, df, rel)


def _diag_of_inverse(m: np.ndarray) -> np.ndarray:
    """diag(M⁻¹) of an SPD matrix (diag(G*) from G*⁻¹), by Cholesky."""
    from bigeval.linalg import spd_inverse_diag

    return spd_inverse_diag(m, what="G*⁻¹")


def solve(ctx: StageContext) -> dict:
    """EBV (GEBV with H) of every pedigree animal by the mixed-model equations."""
    import scipy.sparse as sp

    from bigeval.models import upg
    from bigeval.models.relationship import Relationship, relationship_a
    from bigeval.models.solve import fit_mixed
    from bigeval.models.spec import ModelSpec

    cfg = ctx.config
    animals = _read_animals(ctx.upstream["prepare"])
    ids = animals["animal"].to_numpy(dtype=object).astype(str)
    sire, dam = animals["sire"].to_numpy(np.int64), animals["dam"].to_numpy(np.int64)
    ctx.progress.phase("A⁻¹ (Henderson's rules with inbreeding)")
    rel = relationship_a(ids, sire, dam)
    kind = _model_relationship(cfg)
    if kind == "H":
        from bigeval.genomic.grm import read_grm

        folder = ctx.upstream["relationships"]
        ginv, gids = read_grm(folder / "Ginv.h5", name="Ginv")
        a22inv, _ = read_grm(folder / "A22inv.h5", name="A22inv")
        ctx.progress.phase(f"diag(G*) from G*⁻¹ ({len(gids):,} genotyped), for the PEV's "
                           "reliabilities")
        gdiag = _diag_of_inverse(ginv)
        pos = pd.Index(ids).get_indexer(gids)
        r, c = np.meshgrid(pos, pos, indexing="ij")
        delta = ginv - a22inv  # H⁻¹ = A⁻¹ + [[0, 0], [0, G⁻¹ − A22⁻¹]] (Aguilar et al. 2010)
        add = sp.csr_matrix((delta.ravel(), (r.ravel(), c.ravel())), shape=(len(ids),) * 2)
        diag = rel.diag.copy()
        diag[pos] = gdiag
        rel = Relationship("H", rel.ids, (rel.kinv + add).tocsr(), float("nan"), diag,
                           pos.astype(np.int64))
    rel = upg.with_groups(rel, sire, dam, upg.read_groups(ctx.upstream["prepare"]))
    df = _model_records(cfg)
    pe = _model_pe(cfg)
    factors = tuple("cg" if f == "cg" else f"col_{f}" for f in cfg["model.factors"])
    covariates = tuple(f"col_{c}" for c in cfg["model.covariates"])
    # the spec only carries the model's columns here: the relationship is built above
    spec = ModelSpec(data=cfg["inputs.records"], trait="trait", factors=factors,
                     covariates=covariates, animal="animal", relationship="A",
                     pedigree=cfg["inputs.pedigree"], pe=pe)
    md = _model_data(spec, df, rel)
    var = _variances(cfg, md.y, pe)
    ctx.point("mid")
    n_eq = md.design.Xk.shape[1] + len(ids) + (0 if md.pe_ids is None else len(md.pe_ids))
    pev = cfg["model.pev"]
    n_dense = 0 if md.rel is None or md.rel.dense is None else len(md.rel.dense)
    se = (n_eq <= cfg["exact.max_equations"] and n_dense <= cfg["exact.max_genotyped"]
          if pev == "auto" else bool(pev))
    if cfg["model.solver"] == "pcg" or rel.n_groups:
        se = False  # iterative solutions: no factor to invert; groups: no PEV (models.upg)
    ctx.progress.phase(f"solving the MME ({n_eq:,} equations, {cfg['model.solver']} solver"
                       + (", PEV by selected inversion)" if se else ")"))
    res = fit_mixed(md, sigma_a2=var["sigma_a2"], sigma_e2=var["sigma_e2"],
                    sigma_pe2=var["sigma_pe2"], method=cfg["model.solver"], se=se)
    sol = res.animals.copy()
    sol["animal"] = pd.array(sol["animal"].astype(str), dtype="string")
    write_parquet(sol, ctx.work / "solutions.parquet")
    fixed = res.fixed.copy()
    fixed["effect"] = fixed["effect"].astype(str)
    fixed["level"] = fixed["level"].astype(str)
    write_parquet(fixed, ctx.work / "fixed.parquet")
    if res.groups is not None:
        write_parquet(res.groups.astype({"group": str}), ctx.work / "groups.parquet")
    return {"relationship": kind, "groups": 0 if res.groups is None else len(res.groups),
            "pe": pe, "records": len(md.y), "equations": len(res.mme.rhs),
            "solver": res.solution.method, **{k: v for k, v in var.items()}}


# ---------------------------------------------------------------------------------------------
# reliabilities


def _options(cfg: RunConfig):
    from bigeval.reliability.engine import ReliabilityOptions

    return ReliabilityOptions(alpha=cfg.alpha(), tau=cfg["parameters.tau"],
                              sib_adjust=cfg["parameters.sib_adjust"],
                              interbull_kind=cfg["inputs.interbull_kind"],
                              rounds=cfg["parameters.rounds"], tol=cfg["parameters.tol"],
                              genomic_method=cfg["parameters.genomic_method"])


def reliabilities(ctx: StageContext) -> dict:
    """Parts I-III, the convergence record, and the check against exact values."""
    from bigeval.reliability.engine import result_table
    from bigeval.pipeline.exact_check import exact_check

    cfg = ctx.config
    pop = load_population(ctx.upstream["prepare"], ctx.upstream.get("relationships"))
    opts = _options(cfg)
    ctx.progress.phase("Parts I-III")
    res, engine = _reliability(cfg, pop, opts, interbull_source=cfg["inputs.interbull"],
                               progress=ctx.progress.enabled)
    ctx.point("mid")
    conv = [pd.DataFrame({"part": "I", "round": np.arange(1, res.part1.rounds + 1),
                          "max_change": res.part1.max_change})]
    if res.part3 is not None:
        conv.append(pd.DataFrame({"part": "III", "round": np.arange(1, res.part3.rounds + 1),
                                  "max_change": res.part3.max_change}))
    write_parquet(pd.concat(conv, ignore_index=True), ctx.work / "convergence.parquet")
    summary = {"alpha": opts.alpha, "engine": engine, "rounds_part1": res.part1.rounds,
               "converged_part1": res.part1.converged,
               "rounds_part3": None if res.part3 is None else res.part3.rounds,
               "mean_rel_pedigree": float(res.rel_pedigree.mean()),
               "mean_rel_final": float(res.rel_final.mean())}
    if res.genomic is not None:
        from bigeval.reliability.genomic import flags_frame

        summary["genomic"] = {"method": res.genomic.method, "notes": list(res.genomic.notes),
                              "flagged": len(res.genomic.flags)}
        if len(res.genomic.flags):
            write_parquet(flags_frame(res.genomic.flags, pop.ids[pop.genotyped]),
                          ctx.work / "genomic_flags.parquet")
    summary["exact"], rel_exact = exact_check(
        ctx, pop, res, opts, rerun=lambda base: _reliability(cfg, base, opts,
                                                            interbull_source=None,
                                                            progress=False)[0])
    table = result_table(pop, res, rel_exact)
    table["animal"] = pd.array(table["animal"].astype(str), dtype="string")
    write_parquet(table, ctx.work / "reliability.parquet")
    return summary


# ---------------------------------------------------------------------------------------------
# report


PUBLISHED = ("reliability.csv", "reliability.parquet", "report.html", "summary.txt",
             "exact_check.csv", "genomic_flags.csv")


def final_table(upstream: dict) -> pd.DataFrame:
    """The per-animal output: IDs as given, birth year, sex, genotyped, every part's ERC and
    reliability (+ exact, + EBV when solved)."""
    rel = read_parquet(upstream["reliabilities"] / "reliability.parquet")
    animals = _read_animals(upstream["prepare"])
    out = pd.DataFrame({"animal": rel["animal"]})
    out["birth_year"] = animals["birth_year"].to_numpy()
    out["sex"] = animals["sex"].to_numpy()
    out["genotyped"] = rel["rel_genomic"].notna().to_numpy()
    for c in rel.columns:
        if c != "animal":
            out[c] = rel[c].array  # keeps missing values missing (rel_genomic)
    if "solve" in upstream:
        sol = read_parquet(upstream["solve"] / "solutions.parquet").set_index("animal")
        sol = sol.reindex(out["animal"].astype(str))
        out["ebv"] = sol["ebv"].to_numpy()
        if np.isfinite(sol["pev"].to_numpy(np.float64)).any():
            out["pev"] = sol["pev"].to_numpy()
    return out


def report(ctx: StageContext) -> dict:
    """The per-animal CSV and Parquet, summary.txt and the HTML report."""
    from bigeval.pipeline.report import write_report, summary_text

    up = ctx.upstream
    table = final_table(up)
    write_parquet(table, ctx.work / "reliability.parquet")
    ctx.point("mid")
    write_csv(table, ctx.work / "reliability.csv")
    info = {name: json.loads((folder / "stage.json").read_text()) for name, folder in up.items()}
    if "reliabilities" in up and (up["reliabilities"] / "exact.parquet").exists():
        exact = read_parquet(up["reliabilities"] / "exact.parquet")
        write_csv(exact, ctx.work / "exact_check.csv")
    if "reliabilities" in up and (up["reliabilities"] / "genomic_flags.parquet").exists():
        flags = read_parquet(up["reliabilities"] / "genomic_flags.parquet")
        write_csv(flags, ctx.work / "genomic_flags.csv")
    text = summary_text(ctx.config, table, up, info)
    (ctx.work / "summary.txt").write_text(text + "\n")
    write_report(ctx.config, table, up, info, ctx.work / "report.html")
    return {"animals": len(table)}


# ---------------------------------------------------------------------------------------------
# The stage table


def _rel_params(cfg: RunConfig) -> dict:
    keys = ("inputs.genotypes_format", "genomics.qc", "genomics.min_call_rate_snp",
            "genomics.min_call_rate_animal", "genomics.min_maf", "genomics.max_concordance",
            "genomics.tune", "genomics.blend", "genomics.chunks", "genomics.a22inv_method",
            "genomics.inverse", "genomics.apy_core")
    return {k: cfg[k] for k in keys}


#: the keys that say how the records file is read (each stage reading it depends on them)
RECORD_MAP_KEYS = ("inputs.records_columns", "inputs.records_missing")


def _solve_params(cfg: RunConfig) -> dict:
    keys = ("model.trait", "model.factors", "model.covariates", "model.solver",
            "model.sigma_a2", "model.sigma_pe2", "model.sigma_e2", "model.pev",
            "exact.max_equations", "exact.max_genotyped", *RECORD_MAP_KEYS)
    return {**{k: cfg[k] for k in keys}, "relationship": _model_relationship(cfg),
            "pe": _model_pe(cfg), "h2": cfg["parameters.h2"],
            "repeatability": cfg["parameters.repeatability"],
            "alpha": cfg.alpha() if cfg["parameters.h2"] is None else None,
            "tau": cfg["parameters.tau"] if cfg["parameters.h2"] is None else None}


def _reliability_params(cfg: RunConfig) -> dict:
    o = _options(cfg)
    return {"alpha": o.alpha, "tau": o.tau, "sib_adjust": o.sib_adjust,
            "interbull_kind": o.interbull_kind if cfg["inputs.interbull"] else None,
            "rounds": o.rounds, "tol": o.tol, "genomic_method": o.genomic_method,
            "exact.check": cfg["exact.check"],
            "exact.max_equations": cfg["exact.max_equations"],
            "exact.max_genotyped": cfg["exact.max_genotyped"],
            "exact.sample": cfg["exact.sample"], "exact.sample_seed": cfg["exact.sample_seed"],
            "sample.herd_pattern": cfg["sample.herd_pattern"],
            "genomics.a22inv_method": cfg["genomics.a22inv_method"]}


def _files(*names):
    def inputs(cfg: RunConfig) -> dict:
        return {n: cfg[f"inputs.{n}"] for n in names if cfg[f"inputs.{n}"] is not None}
    return inputs


STAGES: tuple[Stage, ...] = (
    Stage("validate", validate, inputs=_input_files,
          params=lambda c: {k: c[k] for k in ("inputs.interbull_kind", "inputs.birth_year_column",
                                              "inputs.sex_column", "inputs.genotypes_format",
                                              "genomics.chunks", *RECORD_MAP_KEYS)}
          | ({k: c[k] for k in ("model.trait", "model.factors", "model.covariates")}
             if c.has_model else {}),
          upstream=lambda c: ()),
    Stage("prepare", prepare, inputs=_files("pedigree", "records", "interbull"),
          params=lambda c: {k: c[k] for k in ("inputs.birth_year_column", "inputs.sex_column",
                                              *RECORD_MAP_KEYS)},
          upstream=lambda c: ()),
    Stage("relationships", relationships,
          inputs=_files("genotypes", "grm", "genotyped", "ginv", "a22inv"),
          params=_rel_params, upstream=lambda c: ("prepare/animals.parquet",)
          + (("validate/genotypes.zarr",) if _genotype_file(c) else ()),
          enabled=lambda c: c.has_genomics),
    Stage("solve", solve, inputs=_files("records"), params=_solve_params,
          upstream=lambda c: ("prepare/animals.parquet",)
          + (("relationships",) if _model_relationship(c) == "H" else ()),
          enabled=lambda c: c.has_model),
    Stage("reliabilities", reliabilities, inputs=_files("interbull"),
          params=_reliability_params,
          upstream=lambda c: ("prepare",) + (("relationships",) if c.has_genomics else ())),
    Stage("report", report, inputs=_files(),
          params=lambda c: {k: c[k] for k in ("report.title", "report.young_years")},
          upstream=lambda c: ("validate", "prepare") + (("relationships",) if c.has_genomics
                                                        else ())
          + (("solve",) if c.has_model else ()) + ("reliabilities",)),
)
