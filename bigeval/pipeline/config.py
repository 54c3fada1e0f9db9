"""The run configuration: one TOML file for ``bigeval run`` (schema, defaults, checks, template).

A configuration names the inputs, the parameters of the method, the genomic options, an
optional model to solve, the cluster and the output folder::

    [inputs]
    pedigree = "pedigree.txt"
    records = "records.txt"
    genotypes = "genotypes.zarr"

    [parameters]
    h2 = 0.25
    repeatability = 0.40

    [output]
    folder = "results"

Paths are relative to the configuration file. Every key, its default and the command-line
option it corresponds to are in :data:`SCHEMA` (``bigeval config init`` writes them all as a
commented template; ``bigeval config keys`` prints the table of options and keys). Errors name
the file, the line of the key, the value, what was expected and what to do.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bigeval.defaults import (
    APY_FROM,
    BLEND,
    EXACT_MAX_EQUATIONS,
    EXACT_MAX_GENOTYPED,
    GENOMIC_INVERSE,
    GENOMIC_INVERSES,
    ROUNDS,
    SAMPLE_SEED,
)
from bigeval.errors import InputError
from bigeval.io.columns import parse_record_columns
from bigeval.genomic.qc import QCOptions
from bigeval.reliability import genomic as _genomic

__all__ = ["Key", "SCHEMA", "SECTIONS", "RunConfig", "load_config", "config_from_dict",
           "template", "dump_config", "cli_table", "CLI_ONLY", "reference_markdown"]

#: Schedulers a run accepts besides a cluster address (``tcp://host:8786``).
SCHEDULERS = ("threads", "synchronous", "local-cluster")


@dataclass(frozen=True)
class Key:
    """One configuration key.

    ``kind`` is one of ``path``, ``str``, ``float``, ``int``, ``bool``, ``column`` (1-based
    column number, or a header name for ``.csv`` files), ``columns`` (a list of those),
    ``chunks`` (two positive integers), ``auto-bool`` (true, false or "auto"), ``choice``,
    ``column-map`` (a records column map, :mod:`bigeval.io.columns`), ``strings`` (a list).
    ``cli`` lists the command-line options that set the same thing (``"reliability --h2"``).
    """

    section: str
    name: str
    kind: str
    default: Any = None
    help: str = ""
    required: bool = False
    choices: tuple = ()
    example: Any = None
    cli: tuple[str, ...] = ()
    preset: bool = False  # written (not commented out) in the template

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


SECTIONS = {
    "inputs": "input files (paths relative to this file)",
    "parameters": "parameters of the method (Part I-III)",
    "genomics": "genotype QC and the genomic relationship matrix",
    "model": "optional: solve a mixed model for EBV/GEBV (no [model] section: no solve stage)",
    "exact": "the check of the approximation against exact reliabilities (MME inverse)",
    "cluster": "where Dask work runs",
    "output": "the output folder and how the run talks",
    "report": "the HTML report",
    "sample": "defaults of `bigeval sample` (a laptop-size subset of these inputs)",
}

_QC = {name: getattr(QCOptions, name) for name in (  # the defaults of genotype QC, once
    "min_call_rate_snp", "min_call_rate_animal", "min_maf", "max_concordance",
    "max_conflict_rate")}

SCHEMA: tuple[Key, ...] = (
    # [inputs]
    Key("inputs", "pedigree", "path", required=True, example="pedigree.txt",
        help="animal sire dam (unknown parent 0); extra columns ignored",
        cli=("reliability --pedigree", "grm --pedigree")),
    Key("inputs", "records", "path", required=True, example="records.txt",
        help="animal cg, one row per record (repeated records repeat)",
        cli=("reliability --records",)),
    Key("inputs", "genotypes", "path", example="genotypes.zarr",
        help="a genotype store from `bigeval genotypes import`, or a genotype file (PLINK .bed, "
             "BLUPF90 text, CSV) imported by the run; G, G⁻¹ and A22⁻¹ are built from it",
        cli=("reliability --genotypes", "grm --genotypes", "genotypes import SRC")),
    Key("inputs", "genotypes_format", "choice", choices=("plink", "blupf90", "csv"),
        example="blupf90", help="format of a genotype file (default: from its suffix)",
        cli=("genotypes import --format",)),
    Key("inputs", "grm", "path", example="G.h5",
        help="or a ready G (G.h5 / G.zarr from `bigeval grm`, before tuning and blending)"),
    Key("inputs", "genotyped", "path", example="genotyped.txt",
        help="animal: the genotyped animals (needed with ginv/a22inv; with genotypes it limits "
             "them to this list)", cli=("reliability --genotyped",)),
    Key("inputs", "ginv", "path", example="ginv.txt",
        help="or ready G⁻¹ triplets animal1 animal2 value (with a22inv and genotyped)",
        cli=("reliability --ginv",)),
    Key("inputs", "a22inv", "path", example="a22inv.txt", help="A22⁻¹ triplets (with ginv)",
        cli=("reliability --a22inv",)),
    Key("inputs", "interbull", "path", example="interbull.txt",
        help="animal value: Interbull (MACE) bulls", cli=("reliability --interbull",)),
    Key("inputs", "interbull_kind", "choice", default="reliability",
        choices=("reliability", "erc"), help="the Interbull value is a reliability or an ERC",
        cli=("reliability --interbull-kind",)),
    Key("inputs", "out_of_core", "auto-bool", default=False,
        help="read and renumber the files in blocks through a Zarr work folder (national "
             "pedigrees of 10 M animals); auto: for large pedigree files",
        cli=("reliability --out-of-core",)),
    Key("inputs", "records_columns", "column-map", example="animal=1,cg=6+8,trait=9",
        help="which columns of the records file hold the animal, the contemporary group "
             "(several joined by +) and the trait: numbers, or CSV header names; also a "
             "table {animal = 1, cg = [6, 8], trait = 9} (default: animal cg)",
        cli=("reliability --records-columns",)),
    Key("inputs", "records_missing", "strings", example=["0"],
        help="trait values that mean no observation: such a row is not a record (default "
             "NA and .; BLUPF90 data files: [\"0\"])", cli=("reliability --missing",)),
    Key("inputs", "pedigree_groups", "groups", example="^G",
        help="parent codes of the pedigree that are unknown parent groups, not animals: a "
             "regular expression, or a list of the codes (default: negative integers, "
             "BLUPF90's codes; \"\" or false: none); unknown parents for the method, "
             "Quaas-Pollak groups in the models",
        cli=("reliability --groups", "grm --groups")),
    Key("inputs", "birth_year_column", "column", example=4,
        help="column of the pedigree with the birth year (1-based number, or a CSV header "
             "name); used by the report and the output"),
    Key("inputs", "sex_column", "column", example=5,
        help="column of the pedigree with the sex (e.g. M/F)"),
    # [parameters]
    Key("parameters", "h2", "float", example=0.25, preset=True,
        help="heritability: α = (1-h2)/h2, or (1-repeatability)/h2", cli=("reliability --h2",)),
    Key("parameters", "repeatability", "float", example=0.40, preset=True,
        help="repeatability (with h2, for repeated records)",
        cli=("reliability --repeatability",)),
    Key("parameters", "alpha", "float", example=3.0, help="or α = σe²/σa² directly",
        cli=("reliability --alpha",)),
    Key("parameters", "tau", "float", example=4.0,
        help="τ = σe²/σpe²: reduce repeated records (Misztal et al. 1991)",
        cli=("reliability --tau",)),
    Key("parameters", "sib_adjust", "bool", default=False,
        help="Tier & Meyer (2004) adjustment for relatives in the same group",
        cli=("reliability --sib-adjust",)),
    Key("parameters", "rounds", "int", default=ROUNDS, help="rounds of the iteration",
        cli=("reliability --rounds",)),
    Key("parameters", "genomic_method", "choice", default=_genomic.DEFAULT_METHOD,
        choices=_genomic.METHODS,
        help="Part II: erc-gblup (GBLUP on own-data ERC, combined with Part I in ERC) or "
             "certified (the SAS Part II; stops the run on values it cannot publish)",
        cli=("reliability --genomic-method",)),
    Key("parameters", "tol", "float", example=1e-6,
        help="stop early once no reliability changes by more than this",
        cli=("reliability --tol",)),
    # [genomics]
    Key("genomics", "qc", "bool", default=True,
        help="genotype QC before G: call rates, MAF, monomorphic SNPs, duplicates",
        cli=("reliability --no-qc", "grm --no-qc")),
    Key("genomics", "min_call_rate_snp", "float", default=_QC["min_call_rate_snp"],
        help="QC: smallest SNP call rate (0 switches it off)",
        cli=("reliability --min-call-rate-snp", "grm --min-call-rate-snp")),
    Key("genomics", "min_call_rate_animal", "float", default=_QC["min_call_rate_animal"],
        help="QC: smallest animal call rate",
        cli=("reliability --min-call-rate-animal", "grm --min-call-rate-animal")),
    Key("genomics", "min_maf", "float", default=_QC["min_maf"], help="QC: smallest MAF",
        cli=("reliability --min-maf", "grm --min-maf")),
    Key("genomics", "max_concordance", "float", default=_QC["max_concordance"],
        help="QC: animals agreeing at more SNPs than this are duplicates (0: off)",
        cli=("reliability --max-concordance", "grm --max-concordance")),
    Key("genomics", "max_conflict_rate", "float", default=_QC["max_conflict_rate"],
        help="QC: a genotyped animal and genotyped parent with opposing homozygotes at more "
             "than this share of SNPs are reported as a parent-progeny conflict (0: off)",
        cli=("reliability --max-conflict-rate", "grm --max-conflict-rate")),
    Key("genomics", "tune", "bool", default=True,
        help="scale G* to A22's mean diagonal and off-diagonal, after blending",
        cli=("grm --tune", "reliability --tune")),
    Key("genomics", "blend", "float", default=BLEND,
        help="G* = (1-w) G + w A22, then tuned (0: no blending)",
        cli=("grm --blend", "reliability --blend")),
    Key("genomics", "a22inv_method", "choice", default="auto",
        choices=("auto", "sparse", "dense"),
        help="A22⁻¹ from the sparse A⁻¹ (Schur complement), from A22 by Colleau's method and "
             "a Cholesky inverse (dense), or by size (auto)",
        cli=("reliability --a22inv-method", "grm --a22inv-method")),
    Key("genomics", "inverse", "choice", default=GENOMIC_INVERSE, choices=GENOMIC_INVERSES,
        help="G*⁻¹ dense (full), by APY with A22⁻¹ as a sparse operator (apy: memory n_g x "
             f"core), or auto: full up to {APY_FROM:,} genotyped animals when it fits",
        cli=("reliability --genomic-inverse",)),
    Key("genomics", "apy_core", "int", example=10_000,
        help="APY: core animals, drawn at random (none: as many as eigenvalues of G explain "
             "98 % of its variance)",
        cli=("reliability --apy-core",)),
    Key("genomics", "chunks", "chunks", example=[4096, 8192],
        help="chunks (animals, SNPs) of an imported genotype store, and of G's blocks",
        cli=("genotypes import --chunks", "reliability --grm-chunks",
             "grm --grm-chunks")),
    # [model]
    Key("model", "trait", "column", example=3,
        help="column of the records file with the trait (number, or CSV header name)"),
    Key("model", "factors", "columns", default=["cg"],
        help="fixed class effects: \"cg\" (the contemporary group) and/or record columns"),
    Key("model", "covariates", "columns", default=[], help="linear covariates (record columns)"),
    Key("model", "pe", "auto-bool", default="auto",
        help="permanent-environment effect (auto: when repeatability or tau is given)"),
    Key("model", "relationship", "choice", default="auto", choices=("auto", "A", "H"),
        help="A (pedigree) or H (single step); auto: H when genomics is configured"),
    Key("model", "sigma_a2", "float", example=0.25,
        help="additive variance (default: h2 × the variance of the trait)"),
    Key("model", "sigma_pe2", "float", example=0.15,
        help="permanent-environment variance (default: (repeatability - h2) × var)"),
    Key("model", "sigma_e2", "float", example=0.60,
        help="residual variance (default: (1 - repeatability) × var, or (1 - h2) × var)"),
    Key("model", "pev", "auto-bool", default="auto",
        help="prediction error variances of the EBV (and their reliabilities) from the MME "
             "inverse: sparse selected inversion (the genotyped block apart); auto: when the "
             "MME has at most exact.max_equations equations and exact.max_genotyped "
             "genotyped animals", cli=("solve --se",)),
    Key("model", "solver", "choice", default="auto",
        choices=("auto", "cholmod", "dense", "splu", "pcg"), help="MME solver",
        cli=("solve --solver",)),
    # [exact]
    Key("exact", "check", "auto-bool", default="auto",
        help="compare with exact reliabilities from the MME inverse (auto: when the MME has "
             "at most max_equations equations and at most max_genotyped genotyped animals)",
        cli=("reliability --exact",)),
    Key("exact", "max_equations", "int", default=EXACT_MAX_EQUATIONS,
        help="largest MME the check inverts with check = \"auto\" (dense up to 5 000 "
             "equations, then sparse selected inversion; 1 M animals with 20 000 genotyped "
             "take about 2 minutes on two cores); larger data is checked on a seeded "
             "sample (exact.sample)"),
    Key("exact", "max_genotyped", "int", default=EXACT_MAX_GENOTYPED,
        help="with check = \"auto\", the single-step check runs only up to this many "
             "genotyped animals (its dense block: 8 n² bytes, n³ flops)"),
    Key("exact", "sample", "auto-bool", default="auto",
        help="run the check on a seeded herd sample (as `bigeval sample` draws it: all "
             "records of the drawn herds, every ancestor, the G* and A22 of the genotyped "
             "among them) sized to half the limits; auto: when check = \"auto\" and the "
             "whole population is over the limits; true: always instead of the whole; "
             "the figures are those of a sample-size population"),
    Key("exact", "sample_seed", "int", default=SAMPLE_SEED,
        help="seed of the herd draw of the sample check (the herds are sample.herd_pattern)"),
    # [cluster]
    Key("cluster", "scheduler", "str", default="threads",
        help="threads (local, default), synchronous, local-cluster, or a Dask scheduler "
             "address tcp://host:8786", example="tcp://10.0.0.1:8786",
        cli=("reliability --scheduler", "run --scheduler")),
    Key("cluster", "file", "path", example="cluster/slurm.yaml",
        help="or start a cluster from a file: SLURM, PBS, Kubernetes or local (cluster/)",
        cli=("reliability --cluster",)),
    Key("cluster", "engine", "choice", default="auto", choices=("auto", "memory", "dask"),
        help="where the iteration of Parts I and III runs: in memory, or partitioned on the "
             "Dask cluster; auto: Dask with a scheduler or cluster file, or a very large "
             "pedigree", cli=("reliability --engine",)),
    Key("cluster", "workers", "int", example=2,
        help="workers to start (local-cluster, or a cluster file)",
        cli=("reliability --workers",)),
    Key("cluster", "threads_per_worker", "int", example=1,
        help="local-cluster: threads per worker"),
    Key("cluster", "block_size", "int", example=250_000,
        help="animals per pedigree block of the Dask engine (default: one block per worker "
             "thread)", cli=("reliability --block-size",)),
    Key("cluster", "exact_sums", "bool", default=False,
        help="the Dask engine's blocks send every contribution, not sums per parent: equal to "
             "the in-memory engine bit for bit whatever the workers (else to rounding, "
             "<= 1e-12)", cli=("reliability --exact-sums",)),
    # [output]
    Key("output", "folder", "path", default="results",
        help="output folder: reliability.csv/.parquet, report.html, manifest.json, stages/",
        cli=("reliability --out", "grm --out", "run --out")),
    Key("output", "work_dir", "path", example="/scratch/bigeval-work",
        help="work folder of the out-of-core prepare (default: inside OUT/stages, removed "
             "after use)", cli=("reliability --work-dir",)),
    Key("output", "progress", "auto-bool", default="auto",
        help="progress lines (auto: when the terminal is interactive)",
        cli=("reliability --progress", "run --progress")),
    # [report]
    Key("report", "title", "str", default="bigeval evaluation",
        help="title of report.html"),
    Key("report", "young_years", "int", default=3,
        help="animals born in the last this many birth years count as young (genomic gain)"),
    # [sample]
    Key("sample", "herds", "int", example=200, help="herds to draw", cli=("sample --herds",)),
    Key("sample", "fraction", "float", default=0.05,
        help="or the fraction of herds to draw (when herds is not given)",
        cli=("sample --fraction",)),
    Key("sample", "herd_pattern", "str", example="^[^Y]+",
        help="regular expression whose match in the cg code is the herd (default: the whole "
             "cg, i.e. groups are drawn)", cli=("sample --herd-pattern",)),
    Key("sample", "seed", "int", default=SAMPLE_SEED, help="seed of the draw",
        cli=("sample --seed",)),
)

_BY_DOTTED = {k.dotted: k for k in SCHEMA}

#: Command-line options that have no config key, and why.
CLI_ONLY = {
    "run --set": "sets any key: --set parameters.h2=0.3",
    "run --until": "stop after a stage",
    "run --force": "re-run stages whose checkpoints are valid",
    "run --rehash": "hash input files again instead of trusting the size/time cache",
    "sample --out": "the folder of the sample (its config.toml points at its files)",
    "grm --triplets": "the run keeps G⁻¹ and A22⁻¹ in HDF5 (stages/relationships)",
    "genotypes import --out": "a genotype file is imported into stages/relationships",
}


def reference_markdown() -> str:
    """The configuration reference as a Markdown table (the README's, kept in sync by a test)."""
    rows = ["| key | default | what | command-line option |", "|---|---|---|---|"]
    for k in SCHEMA:
        default = ("required" if k.required else "–" if k.default is None
                   else _toml_value(k.default))
        cli = ", ".join(f"`{c}`" for c in k.cli)
        rows.append(f"| `{k.dotted}` | {default} | {k.help} | {cli} |")
    return "\n".join(rows)


def cli_table() -> list[tuple[str, str]]:
    """(command-line option, config key) pairs, in schema order.

    Examples
    --------
    >>> ("reliability --h2", "parameters.h2") in cli_table()
    True
    """
    return [(opt, k.dotted) for k in SCHEMA for opt in k.cli]


# ---------------------------------------------------------------------------------------------
# Loading and checking


def _line_of(text: str | None, section: str, name: str | None = None) -> int | None:
    """1-based line of ``[section]`` (name None) or of ``name = ...`` inside it."""
    if not text:
        return None
    current = None
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        m = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", line)
        if m:
            current = m.group(1)
            if name is None and current == section:
                return i
            continue
        if current == section and name is not None and re.match(
                rf"^\"?{re.escape(name)}\"?\s*=", line):
            return i
    return None


@dataclass(frozen=True)
class RunConfig:
    """A checked run configuration.

    ``values`` maps every dotted key of :data:`SCHEMA` to its value (defaults filled in;
    ``None`` when not given); paths are absolute. ``sections`` are the sections the file
    has (``model`` present means the solve stage runs).
    """

    values: dict
    sections: frozenset
    source: Path | None = None
    text: str | None = field(default=None, repr=False, compare=False)
    #: the ``--set KEY=VALUE`` overrides applied over the file, as given (dotted key: value)
    overrides: dict = field(default_factory=dict, compare=False)

    def __getitem__(self, dotted: str):
        return self.values[dotted]

    def get(self, dotted: str, default=None):
        v = self.values.get(dotted)
        return default if v is None else v

    @property
    def base(self) -> Path:
        return self.source.parent if self.source is not None else Path.cwd()

    @property
    def out(self) -> Path:
        return Path(self.values["output.folder"])

    @property
    def input_paths(self) -> list[Path]:
        """Every input file the configuration names (``[inputs]`` paths that are set)."""
        return [Path(self.values[k.dotted]) for k in SCHEMA
                if k.section == "inputs" and k.kind == "path" and self.values[k.dotted] is not None]

    @property
    def has_model(self) -> bool:
        return "model" in self.sections

    @property
    def has_genomics(self) -> bool:
        v = self.values
        return any(v[k] is not None for k in ("inputs.genotypes", "inputs.grm", "inputs.ginv"))

    def record_columns(self):
        """The records' column map (:class:`bigeval.io.columns.RecordColumns`; None: the
        records file is ``animal cg``)."""
        cols, missing = self["inputs.records_columns"], self["inputs.records_missing"]
        if cols is None:
            if missing is not None:
                raise InputError("inputs.records_missing applies to a trait column, and "
                                 "inputs.records_columns names none", file=self.source,
                                 value=missing, remedy="add inputs.records_columns = "
                                 "\"animal=1,cg=2,trait=3\" (your columns)")
            return None
        return parse_record_columns(cols, missing=missing, where=self.source)

    def alpha(self) -> float:
        """α = σe²/σa² from alpha, or from h2 (and repeatability)."""
        from bigeval.reliability.engine import alpha_from

        v = self.values
        if v["parameters.alpha"] is not None:
            return float(v["parameters.alpha"])
        return alpha_from(v["parameters.h2"], v["parameters.repeatability"])

    def progress(self) -> bool:
        import sys

        p = self.values["output.progress"]
        return sys.stderr.isatty() if p == "auto" else bool(p)

    def where(self, dotted: str) -> tuple[str | None, int | None]:
        """(file, line) of a key, for messages."""
        section, name = dotted.split(".", 1)
        return (None if self.source is None else str(self.source),
                _line_of(self.text, section, name))

    def replace(self, **changes) -> "RunConfig":
        """A copy with dotted keys changed (``replace(**{"parameters.h2": 0.3})``), checked."""
        raw = self.to_dict()
        for dotted, value in changes.items():
            if dotted not in _BY_DOTTED:
                raise InputError("unknown configuration key", value=dotted,
                                 expected="section.key, e.g. parameters.h2",
                                 remedy="see `bigeval config keys`")
            section, name = dotted.split(".", 1)
            raw.setdefault(section, {})[name] = value
        return config_from_dict(raw, source=self.source, text=self.text)

    def to_dict(self) -> dict:
        """The given (non-None) values as nested sections; paths as given (absolute)."""
        out: dict[str, dict] = {}
        for k in SCHEMA:
            v = self.values[k.dotted]
            if v is None or (k.section not in self.sections and v == k.default):
                continue
            out.setdefault(k.section, {})[k.name] = str(v) if isinstance(v, Path) else v
        for s in self.sections:
            out.setdefault(s, {})
        return out


def _type_error(key: Key, value, expected: str, file, line, remedy=None):
    return InputError(f"configuration key {key.dotted} has the wrong type", file=file,
                      line=line, value=value, expected=expected,
                      remedy=remedy or f"set {key.name} = <{expected}> in [{key.section}]")


def _coerce(key: Key, value, base: Path, file, line):
    """Check and convert one value; raise InputError naming the key."""
    k = key.kind
    if k == "path":
        if not isinstance(value, str) or not value.strip():
            raise _type_error(key, value, "a path in quotes", file, line)
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (base / p)
    if k in ("str", "choice"):
        if not isinstance(value, str):
            raise _type_error(key, value, "a string in quotes", file, line)
        if k == "choice" and value not in key.choices:
            raise InputError(f"configuration key {key.dotted} has an unknown value", file=file,
                             line=line, value=value, expected=" or ".join(key.choices),
                             remedy=f"set {key.name} to one of the values expected")
        return value
    if k == "bool":
        if not isinstance(value, bool):
            raise _type_error(key, value, "true or false", file, line)
        return value
    if k == "auto-bool":
        if value != "auto" and not isinstance(value, bool):
            raise _type_error(key, value, 'true, false or "auto"', file, line)
        return value
    if k == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "a whole number", file, line)
        return value
    if k == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise _type_error(key, value, "a number", file, line)
        return float(value)
    if k == "column":
        if isinstance(value, bool) or not isinstance(value, (int, str)) \
                or (isinstance(value, int) and value < 1) or value == "":
            raise _type_error(key, value, "a 1-based column number or a header name", file,
                              line)
        return value
    if k == "columns":
        if not isinstance(value, list):
            raise _type_error(key, value, "a list such as [\"cg\", 4]", file, line)
        return [_coerce(Key(key.section, key.name, "column"), v, base, file, line)
                for v in value]
    if k == "column-map":  # checked by the parser; kept as a JSON-able table
        try:
            m = parse_record_columns(value, where=file)
        except InputError as exc:
            raise InputError(f"{key.dotted}: {exc.message}", file=file, line=line,
                             value=value, expected=exc.expected, remedy=exc.remedy) from None
        return {"animal": m.animal, "cg": list(m.cg),
                **({} if m.trait is None else {"trait": m.trait})}
    if k == "strings":
        if not isinstance(value, list) or not all(
                isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise _type_error(key, value, 'a list such as ["0", "NA"]', file, line)
        return [str(v) for v in value]
    if k == "groups":  # a pattern (it must compile), a list of codes, or false for none
        if value is False or value == "":
            return False
        if isinstance(value, list) and all(
                isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value]
        if isinstance(value, str):
            try:
                re.compile(value)
            except re.error as exc:
                raise InputError(f"configuration key {key.dotted} is not a regular expression "
                                 f"({exc})", file=file, line=line, value=value,
                                 expected='a pattern such as "^G", or a list of codes',
                                 remedy="correct the pattern") from None
            return value
        raise _type_error(key, value, 'a pattern in quotes ("^G"), a list of codes ["G1", '
                          '"G2"], or false', file, line)
    if k == "chunks":
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and x > 0
                        for x in value)):
            raise _type_error(key, value, "two positive whole numbers [animals, snps]", file,
                              line)
        return list(value)
    raise AssertionError(k)  # pragma: no cover


def config_from_dict(raw: dict, *, source: str | os.PathLike | None = None,
                     text: str | None = None) -> RunConfig:
    """Check a configuration given as nested dicts (as TOML reads) and fill in defaults.

    Examples
    --------
    >>> cfg = config_from_dict({"inputs": {"pedigree": "/d/p.txt", "records": "/d/r.txt"},
    ...                         "parameters": {"h2": 0.25}})
    >>> cfg["parameters.rounds"], cfg.alpha(), str(cfg["inputs.pedigree"])
    (100, 3.0, '/d/p.txt')
    """
    source = None if source is None else Path(source).resolve()
    base = source.parent if source is not None else Path.cwd()
    file = None if source is None else str(source)
    values = {k.dotted: k.default for k in SCHEMA}
    values = {d: (list(v) if isinstance(v, list) else v) for d, v in values.items()}
    for section, body in raw.items():
        if section not in SECTIONS:
            raise InputError("unknown section in the configuration", file=file,
                             line=_line_of(text, section), value=f"[{section}]",
                             expected=", ".join(f"[{s}]" for s in SECTIONS),
                             remedy="fix the section name (see `bigeval config init`)")
        if not isinstance(body, dict):
            raise InputError("a configuration section must be a table", file=file,
                             value=section, expected=f"[{section}] followed by key = value lines")
        for name, value in body.items():
            key = _BY_DOTTED.get(f"{section}.{name}")
            line = _line_of(text, section, name)
            if key is None:
                known = sorted(k.name for k in SCHEMA if k.section == section)
                close = [k for k in known if k.startswith(name[:3])]
                raise InputError(f"unknown key in [{section}]", file=file, line=line,
                                 value=name, expected=", ".join(known),
                                 remedy=f"did you mean {close[0]}?" if close
                                 else "fix the key (see `bigeval config init`)")
            values[key.dotted] = _coerce(key, value, base, file, line)
    if values["output.folder"] is not None and not Path(values["output.folder"]).is_absolute():
        values["output.folder"] = base / values["output.folder"]
    cfg = RunConfig(values=values, sections=frozenset(raw), source=source, text=text)
    _check(cfg)
    return cfg


def _check(cfg: RunConfig) -> None:
    """Rules between keys; each error names the key and its line."""
    v = cfg.values

    def err(dotted, message, *, value=None, expected=None, remedy=None):
        file, line = cfg.where(dotted)
        return InputError(message, file=file, line=line, value=value, expected=expected,
                          remedy=remedy)

    for dotted in ("inputs.pedigree", "inputs.records"):
        if v[dotted] is None:
            raise err(dotted, f"the configuration lacks {dotted}",
                      expected=f'[inputs] {dotted.split(".")[1]} = "<file>"',
                      remedy="name the file (see `bigeval config init`)")
    # the method's parameters: exactly one of alpha and h2, checked by the engine's rules
    if v["parameters.alpha"] is not None and (v["parameters.h2"] is not None
                                              or v["parameters.repeatability"] is not None):
        raise err("parameters.alpha", "give either alpha or h2 (with repeatability), not both",
                  remedy="remove alpha or h2 from [parameters]")
    if v["parameters.alpha"] is None and v["parameters.h2"] is None:
        raise err("parameters.h2", "neither h2 nor alpha is given",
                  expected="[parameters] h2 = 0.25 (and repeatability), or alpha = 3",
                  remedy="give the heritability of the trait")
    if v["parameters.repeatability"] is not None and v["parameters.h2"] is None:
        raise err("parameters.repeatability", "repeatability needs h2", remedy="give h2 too")
    from bigeval.reliability.engine import ReliabilityOptions, alpha_from

    def wrap(dotted, exc):
        file, line = cfg.where(dotted)
        return InputError(f"[parameters] {dotted.split('.')[1]}: {exc.message}", file=file,
                          line=line, value=exc.value, expected=exc.expected,
                          remedy=exc.remedy)  # options named by opt(): the run shows keys

    if v["parameters.h2"] is not None:
        try:
            alpha_from(v["parameters.h2"])
        except InputError as exc:
            raise wrap("parameters.h2", exc) from None
        try:
            alpha_from(v["parameters.h2"], v["parameters.repeatability"])
        except InputError as exc:
            raise wrap("parameters.repeatability", exc) from None
    for dotted, kw in (("parameters.alpha", {}), ("parameters.tau", {"tau": v["parameters.tau"]}),
                       ("parameters.rounds", {"rounds": v["parameters.rounds"]}),
                       ("parameters.tol", {"tol": v["parameters.tol"]})):
        try:
            ReliabilityOptions(alpha=cfg.alpha(), **kw)
        except InputError as exc:
            raise wrap(dotted, exc) from None
    # genomics: one source of G
    sources = [d for d in ("inputs.genotypes", "inputs.grm", "inputs.ginv") if v[d] is not None]
    if len(sources) > 1:
        raise err(sources[1], f"give one source of genomic relationships, not "
                              f"{' and '.join(sources)}",
                  remedy="keep genotypes (G is built), grm (a ready G) or ginv+a22inv")
    if (v["inputs.ginv"] is None) != (v["inputs.a22inv"] is None):
        d = "inputs.ginv" if v["inputs.ginv"] is not None else "inputs.a22inv"
        raise err(d, "ginv and a22inv must be given together", remedy="give both, or neither")
    if v["inputs.ginv"] is not None and v["inputs.genotyped"] is None:
        raise err("inputs.ginv", "G⁻¹ and A22⁻¹ triplets need the list of genotyped animals",
                  remedy='add [inputs] genotyped = "<file>"')
    if v["inputs.genotypes"] is None and (v["genomics.inverse"] == "apy"
                                          or v["genomics.apy_core"] is not None):
        d = "genomics.inverse" if v["genomics.apy_core"] is None else "genomics.apy_core"
        raise err(d, "APY G*⁻¹ is built from genotypes, and [inputs] has no genotypes",
                  remedy="give [inputs] genotypes, or drop the APY settings")
    if v["inputs.genotyped"] is not None and not sources:
        raise err("inputs.genotyped", "a genotyped list without genotypes, grm or ginv",
                  remedy="add the genotypes (or G⁻¹ and A22⁻¹), or remove genotyped")
    for dotted in ("genomics.min_call_rate_snp", "genomics.min_call_rate_animal",
                   "genomics.max_concordance", "genomics.max_conflict_rate", "genomics.blend"):
        if not 0.0 <= v[dotted] <= 1.0:
            raise err(dotted, f"{dotted} is outside [0, 1]", value=v[dotted],
                      expected="a fraction between 0 and 1")
    if not 0.0 <= v["genomics.min_maf"] <= 0.5:
        raise err("genomics.min_maf", "min_maf is outside [0, 0.5]", value=v["genomics.min_maf"],
                  expected="a minor allele frequency between 0 and 0.5")
    if cfg.has_model and v["model.trait"] is None:
        raise err("model.trait", "[model] needs the trait column",
                  expected="trait = 3 (column of the records file) or a CSV header name",
                  remedy="set trait, or remove the [model] section to skip the solve stage")
    if cfg.has_model and v["model.relationship"] == "H" and not cfg.has_genomics:
        raise err("model.relationship", "relationship H needs genomic data",
                  value="H", remedy="give [inputs] genotypes, or use relationship = \"A\"")
    for dotted in ("model.sigma_a2", "model.sigma_pe2", "model.sigma_e2"):
        if v[dotted] is not None and not v[dotted] > 0:
            raise err(dotted, f"{dotted} must be positive", value=v[dotted],
                      expected="a variance > 0")
    for dotted in ("exact.max_equations", "exact.sample_seed", "report.young_years"):
        if v[dotted] < 0:
            raise err(dotted, f"{dotted} must not be negative", value=v[dotted])
    for dotted in ("cluster.workers", "cluster.threads_per_worker", "cluster.block_size",
                   "sample.herds", "genomics.apy_core"):
        if v[dotted] is not None and v[dotted] < 1:
            raise err(dotted, f"{dotted} must be at least 1", value=v[dotted])
    if not 0.0 < v["sample.fraction"] <= 1.0:
        raise err("sample.fraction", "sample.fraction must lie in (0, 1]",
                  value=v["sample.fraction"], expected="e.g. 0.05 for 5 % of the herds")
    if v["sample.herd_pattern"] is not None:
        try:
            re.compile(v["sample.herd_pattern"])
        except re.error as exc:
            raise err("sample.herd_pattern", f"not a regular expression: {exc}",
                      value=v["sample.herd_pattern"]) from None
    sched = v["cluster.scheduler"]
    if sched not in SCHEDULERS and "://" not in sched and not re.match(r"^[\w.-]+:\d+$", sched):
        raise err("cluster.scheduler", "unknown scheduler", value=sched,
                  expected=", ".join(SCHEDULERS) + ", or an address tcp://host:8786",
                  remedy="use threads on one machine, or the address of a Dask scheduler")


def load_config(path: str | os.PathLike, overrides: dict | None = None) -> RunConfig:
    """Read and check a configuration file; ``overrides`` maps dotted keys to values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("configuration file not found", file=path,
                         remedy="check the path, or write one with `bigeval config init`"
                         ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the configuration: {exc}", file=path) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise InputError(f"not valid TOML: {exc}", file=path,
                         line=int(m.group(1)) if m else None,
                         remedy='fix the syntax: key = value, strings in "quotes"') from None
    for dotted, value in (overrides or {}).items():
        if "." not in dotted:
            raise InputError("an override must name section.key", value=dotted,
                             expected="e.g. parameters.h2=0.3")
        section, name = dotted.split(".", 1)
        if section in raw and not isinstance(raw[section], dict):
            continue
        raw.setdefault(section, {})[name] = value
    cfg = config_from_dict(raw, source=path, text=text)
    cfg.overrides.update(overrides or {})
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"parameters.h2=0.3"`` -> ``("parameters.h2", 0.3)``; the value is read as TOML,
    or taken as a string when it is not valid TOML.

    Examples
    --------
    >>> parse_override("parameters.h2=0.3"), parse_override("output.folder=out2")
    (('parameters.h2', 0.3), ('output.folder', 'out2'))
    """
    if "=" not in text:
        raise InputError("an override must be KEY=VALUE", value=text,
                         expected="e.g. --set parameters.h2=0.3")
    key, value = (s.strip() for s in text.split("=", 1))
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key, parsed


# ---------------------------------------------------------------------------------------------
# Writing: a TOML dump (round trip) and the commented template


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v))  # pragma: no cover


def dump_config(raw: dict, *, header: str = "") -> str:
    """TOML text of a nested dict of sections (as :meth:`RunConfig.to_dict` gives)."""
    lines = [header.rstrip()] if header else []
    for section in SECTIONS:
        if section not in raw:
            continue
        lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
        for name, value in raw[section].items():
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def template() -> str:
    """A commented configuration with every key: required ones set, the rest commented out."""
    from bigeval import __version__

    lines = [f"# bigeval {__version__} run configuration: `bigeval run THIS_FILE`",
             "# Paths are relative to this file. Keys commented out take the default shown",
             "# (or are off). Command-line options that set the same thing are named in [].",
             ""]
    for section, title in SECTIONS.items():
        keys = [k for k in SCHEMA if k.section == section]
        optional_section = section in ("model", "sample")
        lines.append(f"# --- {title}")
        lines.append(("# " if optional_section else "") + f"[{section}]")
        for k in keys:
            cli = f" [{', '.join(k.cli)}]" if k.cli else ""
            lines += textwrap.wrap(k.help + cli, width=94, initial_indent="# ",
                                   subsequent_indent="#   ")
            if k.required or k.preset:
                lines.append(f"{k.name} = {_toml_value(k.example)}")
            else:
                shown = k.default if k.default is not None else k.example
                lines.append(f"# {k.name} = {_toml_value(shown)}")
        lines.append("")
    return "\n".join(lines)
