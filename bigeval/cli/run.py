"""Command-line hooks of the routine run: ``run``, ``config`` and ``sample``.

::

    bigeval run CONFIG.toml [--out DIR] [--set KEY=VALUE ...] [--until STAGE] [--force STAGE]
                            [--scheduler ADDRESS] [--progress/--no-progress] [--rehash]
    bigeval config init [FILE] [--force]      a commented template with every key
    bigeval config keys                       the table of command-line options and keys
    bigeval config check CONFIG.toml          check a configuration, print it resolved
    bigeval config from-blupf90 PARAMFILE --out MODEL.toml   a BLUPF90 parameter file as a
                                              model file (reml, solve)
    bigeval sample CONFIG.toml --out DIR [--herds N | --fraction F] [--seed S]
                            [--herd-pattern REGEX]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bigeval.errors import InputError

__all__ = ["register"]


def register(subparsers) -> None:
    """Add ``run``, ``config`` and ``sample`` to the main parser's subparsers."""
    from bigeval.pipeline.runner import STAGE_NAMES

    p = subparsers.add_parser(
        "run", help="the routine evaluation run from one configuration file",
        description="Run the stages validate → prepare → relationships → (solve) → "
                    "reliabilities → report of a configuration (`bigeval config init` writes "
                    "one). Stages whose inputs and parameters have not changed are reused "
                    "from their checkpoints; an interrupted run resumes.")
    p.add_argument("config", type=Path, metavar="CONFIG.toml")
    p.add_argument("--out", metavar="DIR", help="output folder (= [output] folder)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="change a key, e.g. --set parameters.h2=0.3")
    p.add_argument("--until", choices=STAGE_NAMES, metavar="STAGE",
                   help="stop after this stage (validate: check the inputs only)")
    p.add_argument("--force", action="append", default=[],
                   choices=(*STAGE_NAMES, "all"), metavar="STAGE",
                   help="run this stage even if its checkpoint is valid (repeatable; all)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler (= [cluster] scheduler): threads, local-cluster or "
                        "tcp://host:8786")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="live progress inside stages (default: when interactive)")
    p.add_argument("--rehash", action="store_true",
                   help="hash every input file again (do not trust the size/time cache)")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("config", help="write or check a run configuration",
                              description="Run configurations (TOML).")
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = sub.add_parser("init", help="write a commented template with every key")
    q.add_argument("path", nargs="?", type=Path, metavar="FILE",
                   help="where to write it (default: print it)")
    q.add_argument("--force", action="store_true", help="replace an existing file")
    q.set_defaults(func=cmd_config_init)
    q = sub.add_parser("keys", help="the command-line options and their configuration keys")
    q.set_defaults(func=cmd_config_keys)
    q = sub.add_parser("check", help="check a configuration and print it resolved")
    q.add_argument("config", type=Path, metavar="CONFIG.toml")
    q.set_defaults(func=cmd_config_check)
    q = sub.add_parser("from-blupf90", help="a model file from a BLUPF90 parameter file",
                       description="Convert a blupf90/airemlf90 or renumf90 parameter file "
                                   "into a bigeval model file for `bigeval reml` and `bigeval "
                                   "solve`: data columns, effects, weights, the animal effect "
                                   "and its pedigree, pe, variances, the missing code. What has "
                                   "no equivalent is listed, never dropped silently.")
    q.add_argument("paramfile", type=Path, metavar="PARAMFILE")
    q.add_argument("--out", type=Path, required=True, metavar="MODEL.toml")
    q.add_argument("--force", action="store_true", help="replace an existing file")
    q.set_defaults(func=cmd_config_from_blupf90)

    p = subparsers.add_parser(
        "sample", help="a laptop-size sample of a run's inputs, as a ready-to-run config",
        description="Draw herds (with all their records), every ancestor of the animals "
                    "drawn, the genotyped animals among them and their genotypes (or rows "
                    "of G), and write them with a config.toml that `bigeval run` takes as it "
                    "is. Seeded: the same seed gives the same files.")
    p.add_argument("config", type=Path, metavar="CONFIG.toml", help="the national config")
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the sample")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--herds", type=int, metavar="N", help="herds to draw (= [sample] herds)")
    g.add_argument("--fraction", type=float, metavar="F",
                   help="fraction of the herds to draw (= [sample] fraction, default 0.05)")
    p.add_argument("--seed", type=int, metavar="S", help="seed (= [sample] seed, default 1)")
    p.add_argument("--herd-pattern", metavar="REGEX",
                   help="the herd is this regular expression's match in the cg code "
                        "(= [sample] herd_pattern; default: the whole cg)")
    p.set_defaults(func=cmd_sample)


def _overrides(args) -> dict:
    from bigeval.pipeline.config import parse_override

    out = dict(parse_override(s) for s in args.overrides)
    if getattr(args, "out", None):
        out["output.folder"] = str(Path(args.out).resolve())
    if getattr(args, "scheduler", None):
        out["cluster.scheduler"] = args.scheduler
    return out


def cmd_run(args) -> int:
    """``bigeval run``."""
    from bigeval.pipeline import load_config, run_pipeline

    cfg = load_config(args.config, _overrides(args))
    res = run_pipeline(cfg, until=args.until, force=args.force, progress=args.progress,
                       rehash=args.rehash)
    if res.report is not None:
        summary = res.out / "summary.txt"
        if summary.exists():
            print(summary.read_text().rstrip())
        print(f"report: {res.report}")
    return 0


def cmd_config_init(args) -> int:
    """``bigeval config init``."""
    from bigeval.io.writers import write_text_atomic
    from bigeval.pipeline.config import template

    text = template()
    if args.path is None:
        sys.stdout.write(text)
        return 0
    if args.path.exists() and not args.force:
        raise InputError("the file exists", file=args.path,
                         remedy="choose another name, or add --force to replace it")
    write_text_atomic(text, args.path)
    print(f"wrote {args.path}: set the inputs and parameters, then `bigeval run {args.path}`")
    return 0


def cmd_config_keys(args) -> int:
    """``bigeval config keys``: the option ↔ key table."""
    from bigeval.pipeline.config import CLI_ONLY, cli_table

    rows = cli_table()
    width = max(len(o) for o, _ in rows)
    for opt, key in rows:
        print(f"{opt:<{width}}  {key}")
    for opt, why in CLI_ONLY.items():
        print(f"{opt:<{width}}  ({why})")
    return 0


def cmd_config_from_blupf90(args) -> int:
    """``bigeval config from-blupf90 PARAMFILE --out MODEL.toml``."""
    from bigeval.io.writers import refuse_overwriting_inputs, write_text_atomic
    from bigeval.models.blupf90 import model_toml, read_parameter_file

    m = read_parameter_file(args.paramfile)
    refuse_overwriting_inputs([args.paramfile, m.datafile, m.pedigree, m.genotypes],
                              [args.out])
    if args.out.exists() and not args.force:
        raise InputError("the model file exists", file=args.out,
                         remedy="choose another --out, or add --force to replace it")
    text = model_toml(m, args.out.resolve())
    path = write_text_atomic(text, args.out)
    print(f"bigeval config from-blupf90: wrote {path} from {args.paramfile}")
    print(f"  trait column {m.trait}; fixed {m.factors or 'none'}"
          + (f", covariates {m.covariates}" if m.covariates else "")
          + (f"; animal column {m.animal}" + (" + pe" if m.pe else "") if m.animal else "")
          + (f"; weights column {m.weights}" if m.weights else "")
          + f"; missing observation {m.missing}")
    for n in m.notes:
        print(f"  {n}")
    for u in m.unsupported:
        print(f"  not converted (no equivalent): {u}")
    return 0


def cmd_config_check(args) -> int:
    """``bigeval config check``."""
    from bigeval.pipeline.config import dump_config, load_config

    cfg = load_config(args.config)
    print(dump_config(cfg.to_dict(), header=f"# {args.config}: valid; resolved:").rstrip())
    return 0


def cmd_sample(args) -> int:
    """``bigeval sample``."""
    from bigeval.pipeline import load_config
    from bigeval.sample import draw_sample

    cfg = load_config(args.config)
    res = draw_sample(cfg, args.out, herds=args.herds, fraction=args.fraction, seed=args.seed,
                      herd_pattern=args.herd_pattern)
    print(res.text)
    return 0
