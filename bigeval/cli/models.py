"""Command-line hooks of the models: ``anova | ols | solve | reml | cv CONFIG.toml --out DIR``.

``register(subparsers)`` adds the commands; each handler returns an exit code.
Outputs (CSV, written atomically): ``anova.csv``; ``solutions.csv`` (effect, level,
estimate, se); ``animals.csv`` (animal, ebv, pev, rel); ``variances.csv``; ``cv.csv``.
Rows of animals (and levels of factors) are sorted by ID: as numbers when every ID is a
number (1, 2, 10, 100, not 1, 10, 100, 2), else as text.

CONFIG is a model file (:mod:`bigeval.models.spec`) or the configuration of ``bigeval run``
(a file with ``[inputs]``): then the model is the run's ``[model]`` (records, pedigree,
genotypes of ``[inputs]``; the variances of ``[model]``, else from ``[parameters] h2``), as
the run's solve stage fits it.

What each command did is printed: on stdout, always, the model (effects, levels, equations),
the variances used or estimated (with SEs and h²), convergence and the files written; on
stderr, unless ``--no-progress``, what is being done (reading, building the relationship,
each REML round with its log-likelihood, each fold), as lines through
:class:`bigeval.pipeline.progress.Progress`; on a terminal long phases are also shown live.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import BigevalError, InputError
from bigeval.io.writers import claim_output, refuse_overwriting_inputs, write_csv_atomic
from bigeval.pipeline.progress import Progress

#: every file the model commands may write in their output folder
OUTPUTS = ("anova.csv", "solutions.csv", "variances.csv", "animals.csv", "reml_log.csv",
           "cv.csv")

#: how the variances are named in what the commands print
SYMBOLS = {"sigma_a2": "σa²", "sigma_pe2": "σpe²", "sigma_e2": "σe²"}


class Printer:
    """What a model command says.

    ``say``: a summary line on stdout, always. ``step``: a progress line on stderr, unless
    progress is off (``--no-progress``). ``phase``: a live line on a terminal only.
    """

    def __init__(self, command: str, progress: bool | None = None):
        self.on = progress is not False
        self.summary = Progress(False, sys.stdout, name=command)
        self.progress = Progress(self.on and sys.stderr.isatty(), sys.stderr, name=command)

    def say(self, text: str) -> None:
        self.summary.line(text)

    def step(self, text: str) -> None:
        if self.on:
            self.progress.line(text)

    def phase(self, text: str) -> None:
        self.progress.phase(text)


@dataclass
class Loaded:
    """A model read for a command: its spec, records, output folder and where it came from."""

    spec: object
    df: pd.DataFrame
    out: Path
    source: str  # "model file" or "run configuration"
    labels: dict = field(default_factory=dict)  # column in df -> the name to print
    variances_from: str = "[variance] of the model file"

    def label(self, col: str) -> str:
        return self.labels.get(col, col)


def _is_run_config(path: Path) -> bool:
    """A ``bigeval run`` configuration (sections of :data:`bigeval.pipeline.config.SECTIONS`, no
    ``[data]``) rather than a model file."""
    from bigeval.pipeline.config import SECTIONS

    try:
        with open(path, "rb") as fh:
            cfg = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return False  # the model-file reader says what is wrong
    return "data" not in cfg and any(sec in SECTIONS for sec in cfg)


def _from_run_config(path: Path, show: Printer):
    """The model of a run configuration: spec and records, as the run's solve stage has them
    (:func:`bigeval.pipeline.stages.solve`)."""
    from bigeval.models.spec import ModelSpec, refuse_unsupported
    from bigeval.pipeline import stages
    from bigeval.pipeline.config import load_config

    with open(path, "rb") as fh:
        refuse_unsupported(tomllib.load(fh), path, "model")
    cfg = load_config(path)
    if not cfg.has_model:
        raise InputError("the run configuration has no [model] section", file=path,
                         expected="[model] trait = <column of the records file>",
                         remedy="add a [model] section (the model `bigeval run` solves), or "
                                "give a model file")
    kind = stages._model_relationship(cfg)
    genotypes = cfg["inputs.genotypes"]
    if kind == "H" and genotypes is None:
        raise InputError("relationship H needs [inputs] genotypes for the model commands",
                         file=path, value="grm / ginv / a22inv",
                         expected="[inputs] genotypes: a store or a genotype file",
                         remedy="give the genotypes, or set [model] relationship = \"A\"")
    show.step(f"reading the records {cfg['inputs.records']}")
    df = stages._model_records(cfg)
    pe = stages._model_pe(cfg)
    factors = tuple("cg" if f == "cg" else f"col_{f}" for f in cfg["model.factors"])
    covariates = tuple(f"col_{c}" for c in cfg["model.covariates"])
    labels = {"trait": f"trait (column {cfg['model.trait']})", "animal": "animal",
              **{f"col_{c}": f"column {c}" for c in (*cfg["model.factors"],
                                                     *cfg["model.covariates"])}}
    # the run's routine model: contemporary groups without an intercept (stages._model_data)
    intercept = not (factors == ("cg",) and not covariates)
    var = stages._variances(cfg, df["trait"].to_numpy(np.float64), pe)
    given = [k for k in ("sigma_a2", "sigma_pe2", "sigma_e2") if cfg[f"model.{k}"] is not None]
    if len(given) == sum(v is not None for v in var.values()):
        where = "[model] of the run configuration"
    else:
        h2 = cfg["parameters.h2"]
        where = (f"[parameters] h2 = {h2} × the variance of the trait" if h2 is not None
                 else "[parameters] alpha and the variance of the trait") \
            + (f" ([model] {', '.join(given)} as given)" if given else "")
    spec = ModelSpec(data=cfg["inputs.records"], trait="trait", factors=factors,
                     covariates=covariates, intercept=intercept, animal="animal",
                     relationship=kind, pedigree=cfg["inputs.pedigree"],
                     genotypes=genotypes if kind == "H" else None,
                     genotypes_format=cfg["inputs.genotypes_format"], pe=pe, source=path,
                     **var)
    return spec, df, labels, where


def _load(args, show: Printer) -> Loaded:
    from bigeval.models.spec import ModelSpec, read_data

    config = Path(args.config)
    if _is_run_config(config):
        spec, df, labels, where = _from_run_config(config, show)
        source = "run configuration"
    else:
        spec = ModelSpec.from_toml(config)
        show.step(f"reading the records {spec.data}")
        df, labels, where, source = read_data(spec), {}, "[variance] of the model file", \
            "model file"
    refuse_overwriting_inputs(
        [args.config, spec.data, spec.pedigree, spec.genotypes, spec.g_matrix],
        [Path(args.out) / n for n in OUTPUTS])
    show.say(f"{source} {config}: {len(df):,} records of {labels.get(spec.trait, spec.trait)} "
             f"from {spec.data}")
    return Loaded(spec, df, claim_output(args.out), source, labels, where)


def _n(x) -> str:
    return f"{x:,}"


def _num(v: float) -> str:
    """A number for the summary: 5 significant digits."""
    return "nan" if v is None or not np.isfinite(v) else f"{v:.5g}"


def describe_model(m: Loaded, md) -> list[str]:
    """Lines saying the model: its equation, the levels of each effect and the equations."""
    spec, design = m.spec, md.design
    eff = pd.Series(design.effect)
    kept = pd.Series(design.keep)
    terms, counts = [], []
    if spec.intercept:
        terms.append("mean")
    for f in spec.factors:
        n = int((eff == f).sum())
        terms.append(f"{m.label(f)} ({_n(n)} levels)")
    for c in spec.covariates:
        terms.append(f"{m.label(c)} (covariate)")
    p = int(kept.sum())
    neq = p
    counts.append(f"{_n(p)} fixed")
    if md.rel is not None:
        q = md.rel.kinv.shape[0]
        what = {"A": "pedigree A", "G": "genomic G", "H": "single-step H"}[md.rel.kind]
        inb = "" if md.rel.kind == "G" else (", with inbreeding" if spec.inbreeding
                                              else ", without inbreeding")
        terms.append(f"animal ({what}{inb}: {_n(q)} animals, "
                     f"{_n(len(np.unique(md.animal_index)))} with records)")
        counts.append(f"{_n(q)} animal")
        neq += q
    if md.pe_ids is not None:
        terms.append(f"pe ({_n(len(md.pe_ids))} animals)")
        counts.append(f"{_n(len(md.pe_ids))} pe")
        neq += len(md.pe_ids)
    terms.append("e")
    dropped = len(design.keep) - p
    lines = [f"model: {m.label(spec.trait)} = " + " + ".join(terms)
             + (f"; residual weights {m.label(spec.weights)}" if spec.weights else "")]
    lines.append(f"{_n(len(md.y))} records, {_n(neq)} equations ({', '.join(counts)})"
                 + (f"; {_n(dropped)} fixed level(s) set to zero (dependent on the columns "
                    "before them)" if dropped else ""))
    return lines


def _variances_text(values: dict, se: dict | None = None) -> str:
    parts = []
    for k, v in values.items():
        if v is None:
            continue
        s = "" if se is None or not np.isfinite(se.get(k, np.nan)) else \
            f" (SE {_num(se[k])})"
        parts.append(f"{SYMBOLS.get(k, k)} {_num(v)}{s}")
    return ", ".join(parts)


def _h2(values: dict) -> float:
    total = sum(v for v in values.values() if v is not None)
    return values["sigma_a2"] / total if values.get("sigma_a2") else float("nan")


def _wrote(show: Printer, out: Path, frames: dict) -> None:
    show.say("wrote " + ", ".join(f"{out / name} ({_n(len(t))} rows)"
                                  for name, t in frames.items()))


def _write(out: Path, frames: dict) -> None:
    for name, t in frames.items():
        write_csv_atomic(t, out / name)


def _anova(args) -> int:
    from bigeval.models.anova import anova
    show = Printer("anova", args.progress)
    m = _load(args, show)
    spec, df = m.spec, m.df
    w = df[spec.weights] if spec.weights else None
    t = anova(df[spec.trait], df, spec.factors, spec.covariates, spec.intercept, w)
    show.say(f"model: {m.label(spec.trait)} = "
             + " + ".join((["mean"] if spec.intercept else [])
                          + [m.label(c) for c in (*spec.factors, *spec.covariates)]) + " + e")
    show.say("sequential (type I) ANOVA:")
    for line in t.to_string(index=False, float_format=lambda v: f"{v:.5g}").splitlines():
        show.say("  " + line)
    _write(m.out, {"anova.csv": t})
    _wrote(show, m.out, {"anova.csv": t})
    return 0


def _ols(args, show: Printer | None = None, m: Loaded | None = None) -> int:
    from bigeval.models.anova import design_matrix, ols
    show = show or Printer("ols", args.progress)
    m = m or _load(args, show)
    spec, df = m.spec, m.df
    w = df[spec.weights] if spec.weights else None
    design = design_matrix(df, spec.factors, spec.covariates, spec.intercept)
    r = ols(df[spec.trait], design, w)
    p = int(design.keep.sum())
    show.say(f"fixed-effects model (no animal effect): {len(design.keep):,} columns, {p:,} "
             f"estimable, {len(df) - p:,} residual degrees of freedom")
    show.say(f"OLS/BLUE: {_variances_text({'sigma_e2': r.sigma2})} (residual mean square)")
    frames = {"solutions.csv": r.table(),
              "variances.csv": pd.DataFrame({"component": ["sigma_e2"],
                                             "estimate": [r.sigma2]})}
    _write(m.out, frames)
    _wrote(show, m.out, frames)
    return 0


def _model(m: Loaded, show: Printer):
    from bigeval.models.mme import load_relationship, model_data
    spec = m.spec
    rel = None
    if spec.has_animal:
        t0 = time.perf_counter()
        what = {"A": "A⁻¹ from the pedigree", "G": "G⁻¹ from the genotypes",
                "H": "H⁻¹ from the pedigree and the genotypes"}[spec.relationship]
        show.step(f"building {what}")
        show.phase(f"building {what}")
        rel = load_relationship(spec)
        show.step(f"{what}: {rel.kinv.shape[0]:,} animals in {time.perf_counter() - t0:.1f} s")
    md = model_data(spec, m.df, rel)
    for line in describe_model(m, md):
        show.say(line)
    return rel, md


def in_id_order(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    """Rows sorted by the IDs in ``col``: as numbers when every ID is a number (1, 2, 10,
    100), else as text (:func:`bigeval.models.anova.factor_levels`)."""
    from bigeval.models.anova import factor_levels
    codes, _ = factor_levels(frame[col])
    return frame.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)


def _solutions(r) -> pd.DataFrame:
    """Fixed effects (levels in the order of the design), then pe and animal solutions in
    ID order (:func:`in_id_order`)."""
    parts = [r.fixed]
    if r.pe is not None:
        parts.append(in_id_order(pd.DataFrame({"effect": "pe", "level": r.pe["animal"],
                                               "estimate": r.pe["estimate"],
                                               "se": r.pe["se"]}), "level"))
    if r.animals is not None:
        parts.append(in_id_order(pd.DataFrame({"effect": "animal",
                                               "level": r.animals["animal"],
                                               "estimate": r.animals["ebv"],
                                               "se": np.sqrt(r.animals["pev"])}), "level"))
    return pd.concat(parts, ignore_index=True)


def _solve(args) -> int:
    from bigeval.models.solve import fit_mixed
    show = Printer("solve", args.progress)
    m = _load(args, show)
    spec = m.spec
    if not spec.has_animal:
        return _ols(args, show, m)
    spec.require_variances()
    _, md = _model(m, show)
    values = {k: getattr(spec, k) for k in ("sigma_a2", "sigma_pe2", "sigma_e2")}
    show.say(f"variances used: {_variances_text(values)} (h² {_num(_h2(values))}; from "
             f"{m.variances_from})")
    t0 = time.perf_counter()
    show.step(f"solving the MME (solver {args.solver})")
    show.phase(f"solving the MME (solver {args.solver})")
    r = fit_mixed(md, sigma_a2=spec.sigma_a2, sigma_e2=spec.sigma_e2,
                  sigma_pe2=spec.sigma_pe2, method=args.solver, se=args.se)
    sol = r.solution
    how = f"solved by {sol.method}" + (f" in {sol.iterations:,} PCG iterations (relative "
                                       f"residual {sol.residual:.2g})" if sol.method == "pcg"
                                       else "")
    a = in_id_order(r.animals, "animal")
    with_se = bool(np.isfinite(a["pev"]).any())
    show.say(f"{how}, {time.perf_counter() - t0:.1f} s; standard errors and reliabilities: "
             f"{'yes' if with_se else 'no'}")
    ebv = a["ebv"].to_numpy()
    show.say(f"EBV of {len(a):,} animals: mean {_num(ebv.mean())}, SD "
             f"{_num(ebv.std(ddof=1) if len(ebv) > 1 else 0.0)}, from {_num(ebv.min())} to "
             f"{_num(ebv.max())}" + (f"; mean reliability {a['rel'].mean():.3f}"
                                      if with_se else ""))
    frames = {"solutions.csv": _solutions(r), "animals.csv": a}
    _write(m.out, frames)
    _wrote(show, m.out, frames)
    return 0


def _animal_model(args, command: str, what: str, remedy: str):
    """The printer, the loaded model and its spec of a command that needs the animal effect."""
    show = Printer(command, args.progress)
    m = _load(args, show)
    if not m.spec.has_animal:
        raise InputError(f"{what} needs the animal effect", file=m.spec.source, remedy=remedy)
    return show, m, m.spec


def _reml(args) -> int:
    from bigeval.models.reml import AI_TOL, EM_TOL, reml
    show, m, spec = _animal_model(
        args, "reml", "REML", "add an [animal] section (a fixed-effects model: `bigeval ols`)")
    _, md = _model(m, show)
    start = {k: getattr(spec, k) for k in ("sigma_a2", "sigma_pe2", "sigma_e2")}
    tol = args.tol if args.tol is not None else (EM_TOL if args.method == "em" else AI_TOL)
    show.say(f"{args.method.upper()}-REML from {_variances_text(start)} ({m.variances_from}); "
             f"stops when the relative change < {tol:g}, at most {args.maxiter} rounds")
    t0 = time.perf_counter()

    def round_done(it, kind, ll, theta, change):
        show.step(f"round {it} ({kind.upper()}): log L {ll:.4f} at the values before it; "
                  f"now {_variances_text(theta)}; change {change:.3g} "
                  f"({time.perf_counter() - t0:.1f} s)")
        show.phase(f"REML round {it}: log L {ll:.4f}, change {change:.3g}")

    r = reml(md, start, method=args.method, tol=args.tol, maxiter=args.maxiter,
             progress=round_done)
    names = list(r.names)
    est, se = dict(zip(names, r.theta)), dict(zip(names, r.se))
    if r.converged:
        show.say(f"{r.method.upper()}-REML converged in {r.iterations} rounds "
                 f"({time.perf_counter() - t0:.1f} s): log L {r.loglik:.4f}")
    else:
        show.say(f"{r.method.upper()}-REML did NOT converge in {r.iterations} rounds (last "
                 f"change {r.log[-1][-1]:.3g} ≥ {tol:g}); the estimates below are the last "
                 "round's: raise --maxiter or try other starting values")
    show.say(f"estimates: {_variances_text(est, se)}; h² {_num(r.h2)}"
             + (f" (SE {_num(r.h2_se)})" if np.isfinite(r.h2_se) else "")
             + "; SEs from the inverse average-information matrix")
    t = pd.DataFrame({"component": names + ["h2", "loglik"],
                      "estimate": list(r.theta) + [r.h2, r.loglik],
                      "se": list(r.se) + [r.h2_se, float("nan")]})
    cols = ["iteration", "loglik", *names, "change"]
    frames = {"variances.csv": t, "reml_log.csv": pd.DataFrame(r.log, columns=cols)}
    _write(m.out, frames)
    _wrote(show, m.out, frames)
    return 0 if r.converged else 2


def _cv(args) -> int:
    from bigeval.models.evaluate import kfold_cv
    show, m, spec = _animal_model(args, "cv", "cross-validation", "add an [animal] section")
    spec.require_variances()
    rel, _ = _model(m, show)
    values = {k: getattr(spec, k) for k in ("sigma_a2", "sigma_pe2", "sigma_e2")}
    show.say(f"{args.folds}-fold cross-validation by animal (seed {args.seed}) at "
             f"{_variances_text(values)} ({m.variances_from})")

    def fold_done(j, n, cor, mse):
        show.step(f"fold {j + 1}/{args.folds}: {n:,} records masked; cor(EBV, y) "
                  f"{_num(cor)}, MSE {_num(mse)}")

    t = kfold_cv(spec, m.df, rel, k=args.folds, seed=args.seed, progress=fold_done)
    show.say(f"mean over folds: cor(EBV, y) {_num(t['cor'].mean())}, MSE "
             f"{_num(t['mse'].mean())}")
    _write(m.out, {"cv.csv": t})
    _wrote(show, m.out, {"cv.csv": t})
    return 0


def _wrap(fn):
    def run(args) -> int:
        try:
            return fn(args)
        except BigevalError as exc:
            print(f"bigeval: {exc}", file=sys.stderr)
            return 1
    return run


def register(subparsers) -> None:
    """Add the model commands to an ``argparse`` subparsers object (sets ``func``)."""
    for name, fn, helptext in (
            ("anova", _anova, "sequential ANOVA table of the fixed effects"),
            ("ols", _ols, "OLS/BLUE of the fixed effects"),
            ("solve", _solve, "BLUP/BLUE by the mixed-model equations"),
            ("reml", _reml, "REML variance components"),
            ("cv", _cv, "k-fold cross-validation")):
        p = subparsers.add_parser(name, help=helptext)
        p.add_argument("config", type=Path,
                       help="model file (TOML), or the configuration of `bigeval run` (its "
                            "[model] on its [inputs])")
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress lines on stderr (default: yes; --no-progress: only the "
                            "summary, on stdout)")
        if name == "solve":
            p.add_argument("--solver", default="auto",
                           choices=["auto", "cholmod", "superlu", "dense", "splu", "pcg"],
                           help="auto: CHOLMOD when installed (else dense LAPACK up to 5 000 "
                                "equations, SuperLU above); pcg: iterative, for systems too "
                                "large to factor")
            p.add_argument("--se", action=argparse.BooleanOptionalAction, default=None,
                           help="standard errors, PEV and reliabilities (default: yes, except "
                                "with --solver pcg); large systems use selected inversion")
        if name == "reml":
            p.add_argument("--method", default="ai", choices=["ai", "em"],
                           help="ai: average-information REML (default; one EM round first, "
                                "EM steps where an AI step would leave the parameter space; "
                                "SEs from the inverse AI matrix); em: EM-REML (monotone, "
                                "slower, stops short of the maximum unless --tol is small)")
            p.add_argument("--tol", type=float, default=None,
                           help="stop when sum((new - old)^2) / sum(new^2) < TOL (default "
                                "1e-8 for AI, 1e-6 for EM, whose small steps stop it short "
                                "of the maximum: use 1e-10 for precise EM estimates)")
            p.add_argument("--maxiter", type=int, default=500, help="most rounds (default 500)")
        if name == "cv":
            p.add_argument("--folds", type=int, default=5, help="folds (default 5)")
            p.add_argument("--seed", type=int, default=1,
                           help="seed of the random split of animals into folds")
        p.set_defaults(func=_wrap(fn))
