"""Command-line hooks of the models: ``anova | ols | solve | reml | cv CONFIG.toml --out DIR``.

``register(subparsers)`` adds the commands; each handler returns an exit code.
Outputs (CSV, written atomically): ``anova.csv``; ``solutions.csv`` (effect, level,
estimate, se); ``animals.csv`` (animal, ebv, pev, rel); ``variances.csv``; ``cv.csv``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from bigeval.errors import BigevalError
from bigeval.io.writers import claim_output, refuse_overwriting_inputs, write_csv_atomic

#: every file the model commands may write in their output folder
OUTPUTS = ("anova.csv", "solutions.csv", "variances.csv", "animals.csv", "reml_log.csv",
           "cv.csv")


def _load(args):
    from bigeval.models.spec import ModelSpec, read_data
    spec = ModelSpec.from_toml(args.config)
    refuse_overwriting_inputs(
        [args.config, spec.data, spec.pedigree, spec.genotypes, spec.g_matrix],
        [Path(args.out) / n for n in OUTPUTS])
    return spec, read_data(spec), claim_output(args.out)


def _anova(args) -> int:
    from bigeval.models.anova import anova
    spec, df, out = _load(args)
    w = df[spec.weights] if spec.weights else None
    t = anova(df[spec.trait], df, spec.factors, spec.covariates, spec.intercept, w)
    write_csv_atomic(t, out / "anova.csv")
    return 0


def _ols(args) -> int:
    from bigeval.models.anova import design_matrix, ols
    spec, df, out = _load(args)
    w = df[spec.weights] if spec.weights else None
    r = ols(df[spec.trait], design_matrix(df, spec.factors, spec.covariates, spec.intercept), w)
    write_csv_atomic(r.table(), out / "solutions.csv")
    write_csv_atomic(pd.DataFrame({"component": ["sigma_e2"], "estimate": [r.sigma2]}),
                     out / "variances.csv")
    return 0


def _model(spec, df):
    from bigeval.models.mme import load_relationship, model_data
    rel = load_relationship(spec) if spec.has_animal else None
    return rel, model_data(spec, df, rel)


def _solutions(r) -> pd.DataFrame:
    parts = [r.fixed]
    if r.pe is not None:
        parts.append(pd.DataFrame({"effect": "pe", "level": r.pe["animal"],
                                   "estimate": r.pe["estimate"], "se": r.pe["se"]}))
    if r.animals is not None:
        import numpy as np
        parts.append(pd.DataFrame({"effect": "animal", "level": r.animals["animal"],
                                   "estimate": r.animals["ebv"],
                                   "se": np.sqrt(r.animals["pev"])}))
    return pd.concat(parts, ignore_index=True)


def _solve(args) -> int:
    from bigeval.models.solve import fit_mixed
    spec, df, out = _load(args)
    if not spec.has_animal:
        return _ols(args)
    spec.require_variances()
    _, md = _model(spec, df)
    r = fit_mixed(md, sigma_a2=spec.sigma_a2, sigma_e2=spec.sigma_e2,
                  sigma_pe2=spec.sigma_pe2, method=args.solver, se=getattr(args, "se", None))
    write_csv_atomic(_solutions(r), out / "solutions.csv")
    write_csv_atomic(r.animals, out / "animals.csv")
    return 0


def _reml(args) -> int:
    from bigeval.models.reml import reml
    spec, df, out = _load(args)
    _, md = _model(spec, df)
    start = {k: getattr(spec, k) for k in ("sigma_a2", "sigma_pe2", "sigma_e2")}
    r = reml(md, start, method=args.method, tol=args.tol, maxiter=args.maxiter)
    t = pd.DataFrame({"component": list(r.names) + ["h2", "loglik"],
                      "estimate": list(r.theta) + [r.h2, r.loglik],
                      "se": list(r.se) + [r.h2_se, float("nan")]})
    write_csv_atomic(t, out / "variances.csv")
    cols = ["iteration", "loglik", *r.names, "change"]
    write_csv_atomic(pd.DataFrame(r.log, columns=cols), out / "reml_log.csv")
    return 0 if r.converged else 2


def _cv(args) -> int:
    from bigeval.models.evaluate import kfold_cv
    spec, df, out = _load(args)
    rel, _ = _model(spec, df)
    write_csv_atomic(kfold_cv(spec, df, rel, k=args.folds, seed=args.seed), out / "cv.csv")
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
        p.add_argument("config", type=Path, help="model configuration (TOML)")
        p.add_argument("--out", type=Path, required=True, help="output folder")
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
            p.add_argument("--method", default="ai", choices=["ai", "em"])
            p.add_argument("--tol", type=float, default=None,
                           help="stop when sum((new - old)^2) / sum(new^2) < TOL (default "
                                "1e-8 for AI, 1e-6 for EM, whose small steps stop it short "
                                "of the maximum: use 1e-10 for precise EM estimates)")
            p.add_argument("--maxiter", type=int, default=500)
        if name == "cv":
            p.add_argument("--folds", type=int, default=5)
            p.add_argument("--seed", type=int, default=1)
        p.set_defaults(func=_wrap(fn))
