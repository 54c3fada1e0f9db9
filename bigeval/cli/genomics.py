"""Command-line hooks of the genomic stage: ``genotypes import`` and ``grm``.

:func:`register` adds the subcommands to the main parser's subparsers; each subcommand's
function takes the parsed arguments and returns an exit code (errors are
:class:`bigeval.errors.BigevalError`, reported by the main CLI).

::

    bigeval genotypes import SRC --out geno.zarr [--format plink|blupf90|csv] [--chunks A,S]
    bigeval grm --genotypes geno.zarr [--pedigree PED [--no-tune] [--blend W]] [--out DIR]
                [--triplets] [--no-qc | --min-maf X ...] [--a22inv-method auto|sparse|dense]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bigeval.defaults import BLEND
from bigeval.errors import InputError

#: every file ``bigeval grm`` may write in its output folder
GRM_OUTPUTS = ("qc_report.csv", "G.h5", "Ginv.h5", "Ginv.txt", "A22inv.h5", "A22inv.txt",
               "summary.txt")

__all__ = ["register", "add_g_star_options", "add_genomic_options", "cmd_genotypes_import",
           "cmd_grm", "g_star_choice", "qc_options"]


def _chunks(text: str) -> tuple[int, int]:
    try:
        a, s = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--chunks must be two integers ANIMALS,SNPS (e.g. 4096,8192), not {text!r}"
        ) from None
    return a, s


def register(subparsers) -> None:
    """Add ``genotypes`` (with ``import``) and ``grm`` to the main parser's subparsers."""
    from bigeval.io.genotypes import DEFAULT_CHUNKS, FORMATS

    p = subparsers.add_parser("genotypes", help="genotype stores (import to Zarr)",
                              description="Genotype stores: chunked, compressed int8 Zarr.")
    sub = p.add_subparsers(dest="genotypes_command", metavar="ACTION", required=True)
    q = sub.add_parser("import", help="import PLINK .bed, BLUPF90 text or CSV genotypes",
                       description="Import genotypes into a Zarr store (int8, missing -1), "
                                   "streaming one chunk of animals at a time.")
    q.add_argument("src", metavar="SRC", help="genotype file (.bed, .txt, .csv; .gz allowed)")
    q.add_argument("--out", required=True, metavar="STORE", help="the Zarr store to write")
    q.add_argument("--format", choices=FORMATS, default=None,
                   help="input format (default: from the file suffix)")
    q.add_argument("--chunks", type=_chunks, default=DEFAULT_CHUNKS, metavar="A,S",
                   help=f"chunk shape animals,SNPs (default {DEFAULT_CHUNKS[0]},"
                        f"{DEFAULT_CHUNKS[1]})")
    q.set_defaults(func=cmd_genotypes_import)

    p = subparsers.add_parser(
        "grm", help="genomic relationships G, G⁻¹ and A22⁻¹",
        description="Genotype QC (preGSf90's checks and defaults), VanRaden (2008) G from a "
                    "genotype store (blockwise, Dask); with a pedigree, G* = G blended with and "
                    "then tuned to A22 (as `reliability` and `run` do); writes G.h5 (G before "
                    "blending and tuning), Ginv.h5 (G*⁻¹) and, with a pedigree, "
                    "A22inv.h5 (datasets G, Ginv, A22inv and ids), qc_report.csv and "
                    "summary.txt. A22⁻¹ comes from the sparse A⁻¹ (no dense A).")
    p.add_argument("--genotypes", required=True, metavar="STORE",
                   help="a store from `bigeval genotypes import`")
    p.add_argument("--pedigree", metavar="FILE", help="animal sire dam (for A22)")
    add_groups_options(p, "such a parent is unknown in A22")
    add_g_star_options(p, p, with_pedigree=True)
    add_genomic_options(p)
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default .)")
    p.add_argument("--triplets", action="store_true",
                   help="also write Ginv.txt and A22inv.txt: animal1 animal2 value, "
                        "lower triangle (the layout `bigeval reliability` reads)")
    p.set_defaults(func=cmd_grm)


def add_groups_options(p, effect: str) -> None:
    """``--groups PATTERN`` / ``--no-groups``: which pedigree parent codes are unknown parent
    groups (:func:`bigeval.io.groups.group_mask`); shared by ``reliability`` and ``grm``.
    ``effect`` says what a group parent is for the command."""
    gg = p.add_mutually_exclusive_group()
    gg.add_argument("--groups", metavar="PATTERN", default=None,
                    help="parent codes that are unknown parent groups, not animals: a regular "
                         f"expression (default: negative integers, BLUPF90's codes); {effect}")
    gg.add_argument("--no-groups", dest="groups", action="store_const", const=False,
                    help="no parent code is a group (negative codes are animals)")


def add_g_star_options(p, group, *, with_pedigree: bool = False) -> None:
    """``--tune`` and ``--blend``, the G* of :func:`bigeval.genomic.relationships.g_star`, with the
    project's defaults (tuned, blended with weight ``BLEND``): shared by ``grm`` and
    ``reliability --genotypes``. ``with_pedigree``: the defaults apply when ``--pedigree``
    is given (``grm``, where the pedigree is optional); they are resolved by
    :func:`g_star_choice`."""
    when = " when --pedigree is given" if with_pedigree else ""
    group.add_argument("--tune", action=argparse.BooleanOptionalAction,
                       default=None if with_pedigree else True,
                       help=f"scale G* to A22's mean diagonal and off-diagonal, after blending "
                            f"(default: yes{when})")
    group.add_argument("--blend", type=float, default=None if with_pedigree else BLEND,
                       metavar="W", help=f"G* = (1-W) G + W A22, then tuned (default {BLEND:g}"
                                         f"{when}; 0: none)")


def g_star_choice(args) -> tuple[bool, float | None]:
    """(tune, blend) of ``grm`` from its flags: the defaults with a pedigree, G as it is
    without one (asking for either without a pedigree is an error)."""
    if not args.pedigree:
        if args.tune or args.blend:
            raise InputError("--tune and --blend need A22, hence a pedigree",
                             remedy="add --pedigree FILE")
        return False, None
    tune = True if args.tune is None else args.tune
    blend = BLEND if args.blend is None else args.blend
    return tune, blend or None


def add_genomic_options(p, group=None) -> None:
    """QC thresholds, the A22⁻¹ method and G's chunks: shared by ``grm`` and
    ``reliability --genotypes`` (the last two go into ``group`` when given)."""
    from bigeval.genomic.qc import QCOptions
    from bigeval.genomic.relationships import A22_METHODS

    d = QCOptions()
    g = p.add_argument_group("genotype QC (preGSf90's defaults; a threshold of 0 switches a "
                             "check off)")
    g.add_argument("--no-qc", dest="qc", action="store_false",
                   help="use the genotypes as they are (no QC)")
    g.add_argument("--min-call-rate-snp", type=float, default=d.min_call_rate_snp,
                   metavar="X", help=f"drop SNPs called in fewer animals (default "
                                     f"{d.min_call_rate_snp:g})")
    g.add_argument("--min-call-rate-animal", type=float, default=d.min_call_rate_animal,
                   metavar="X", help=f"drop animals with fewer SNPs called (default "
                                     f"{d.min_call_rate_animal:g})")
    g.add_argument("--min-maf", type=float, default=d.min_maf, metavar="X",
                   help=f"drop SNPs with a smaller minor allele frequency (default "
                        f"{d.min_maf:g}); monomorphic SNPs are always dropped")
    g.add_argument("--max-concordance", type=float, default=d.max_concordance, metavar="X",
                   help=f"animals whose genotypes agree at more than this share of SNPs are "
                        f"duplicates; the later one is dropped (default {d.max_concordance:g})")
    g.add_argument("--max-conflict-rate", type=float, default=d.max_conflict_rate, metavar="X",
                   help=f"report a genotyped animal and genotyped parent with opposing "
                        f"homozygotes at more than this share of SNPs (default "
                        f"{d.max_conflict_rate:g}; 0: off; needs the pedigree)")
    group = p if group is None else group
    group.add_argument("--a22inv-method", choices=A22_METHODS, default="auto",
                   help="A22⁻¹ from the sparse A⁻¹ (Schur complement; sparse), from A22 by "
                        "Colleau's method and a Cholesky inverse (dense), or by size (auto)")
    group.add_argument("--grm-chunks", type=_chunks, default=None, metavar="A,S",
                   help="chunks animals,SNPs for G (default: the store's)")


def qc_options(args):
    """The :class:`bigeval.genomic.qc.QCOptions` of the parsed arguments, or None with --no-qc."""
    from bigeval.genomic.qc import QCOptions

    if not args.qc:
        return None
    return QCOptions(min_call_rate_snp=args.min_call_rate_snp,
                     min_call_rate_animal=args.min_call_rate_animal, min_maf=args.min_maf,
                     max_concordance=args.max_concordance,
                     max_conflict_rate=args.max_conflict_rate)


def cmd_genotypes_import(args) -> int:
    """``bigeval genotypes import``: a genotype file into a Zarr store."""
    from bigeval.io.genotypes import import_genotypes, open_genotypes

    from bigeval.progress import Progress

    progress = Progress(name="genotypes import").counter(f"animals of {args.src}")
    store = import_genotypes(args.src, args.out, fmt=args.format, chunks=args.chunks,
                             progress=progress)
    X, animals, snps = open_genotypes(store)
    print(f"{store}: {len(animals):,} animals x {len(snps):,} SNPs, chunks {X.chunksize}")
    return 0


def _pedigree(path: str, groups=None):
    """IDs, sire and dam (internal numbers) of a pedigree file; parents that are unknown
    parent groups (``groups``, :func:`bigeval.io.groups.group_mask`) are unknown."""
    from bigeval.io import read_pedigree
    from bigeval.prepare import renumber_pedigree

    ped_ids, sire, dam, _ = renumber_pedigree(read_pedigree(path, groups=groups), path=path)
    return np.asarray(ped_ids).astype(str), sire, dam


def cmd_grm(args) -> int:
    """``bigeval grm``: G (and G⁻¹, A22⁻¹) from a genotype store; files in ``args.out``."""
    import time

    from bigeval._resources import check_dense
    from bigeval.genomic.grm import write_grm
    from bigeval.io.genotypes import open_genotypes
    from bigeval.io.writers import (
        claim_output,
        refuse_overwriting_inputs,
        write_csv_atomic,
        write_text_atomic,
        write_triplets,
    )
    from bigeval.linalg import spd_inverse
    from bigeval.genomic.qc import describe
    from bigeval.genomic.relationships import (
        a22_inverse,
        g_from_store,
        g_star,
        parent_ids,
        positions_in_pedigree,
    )

    t0 = time.perf_counter()
    tune, blend = g_star_choice(args)
    qc = qc_options(args)
    refuse_overwriting_inputs([args.genotypes, args.pedigree],
                              [Path(args.out) / n for n in GRM_OUTPUTS])
    out = claim_output(args.out)
    _, ids, snps = open_genotypes(args.genotypes)
    n = len(ids)
    # G, turned into G⁻¹ in place, then A22⁻¹: check before the long work starts
    check_dense(n, copies=1.6, what="G and its inverse")
    ped = None
    if args.pedigree:  # every genotyped animal in the pedigree, before G is computed
        ped = _pedigree(args.pedigree, args.groups)
        positions_in_pedigree(ids, ped[0], file=args.genotypes)
    G, ids, report = g_from_store(args.genotypes, qc=qc, chunks=args.grm_chunks,
                                  parents=None if ped is None else parent_ids(*ped))
    written = []
    if qc is not None:
        written.append(write_csv_atomic(report, out / "qc_report.csv"))
    lines = [f"bigeval grm: {n:,} animals x {len(snps):,} SNPs in {args.genotypes}",
             "QC: " + ("off" if qc is None else
                       f"SNP call rate >= {qc.min_call_rate_snp:g}, animal call rate >= "
                       f"{qc.min_call_rate_animal:g}, MAF >= {qc.min_maf:g}, duplicates "
                       f"above {qc.max_concordance:g} concordance, parent-progeny "
                       f"conflicts above {qc.max_conflict_rate:g}"
                       + ("" if ped is not None else " (not checked: no --pedigree)")
                       + "; " + describe(report)),
             f"G (VanRaden 2008, method 1) of {len(ids):,} animals: mean diagonal "
             f"{np.trace(G) / len(ids):.4f}"]
    pos = None
    if ped is not None:
        pos = positions_in_pedigree(ids, ped[0], file=args.genotypes)
    # G.h5 is G before blending and tuning (what `inputs.grm` of a run expects); Ginv.h5 is
    # the inverse of G* = tune(blend(G, A22))
    written.append(write_grm(G, ids, out / "G.h5", name="G"))
    if ped is not None:
        done = g_star(G, ped[1], ped[2], pos, blend=blend, tune=tune)
        lines += done or ["G* = G (no blending, no tuning)"]
    else:
        lines.append("G* = G (no --pedigree: no blending with A22, no tuning)")
    remedy = (f"blend G with A22: --pedigree FILE --blend {BLEND:g}" if not blend
              else "blend more A22 into G (a larger --blend), or check the genotypes (QC)")
    what = "G" if not (tune or blend) else "G*"
    Ginv = spd_inverse(G, overwrite=True, what=what, remedy=remedy, file=args.genotypes,
                       ids=ids)
    del G
    written.append(write_grm(Ginv, ids, out / "Ginv.h5", name="Ginv"))
    if args.triplets:
        written.append(write_triplets(Ginv, ids, out / "Ginv.txt"))
    del Ginv
    if ped is not None:
        A22inv = a22_inverse(ped[1], ped[2], pos, method=args.a22inv_method)
        lines.append(f"A22⁻¹ from {args.pedigree} ({args.a22inv_method})")
        written.append(write_grm(A22inv, ids, out / "A22inv.h5", name="A22inv"))
        if args.triplets:
            written.append(write_triplets(A22inv, ids, out / "A22inv.txt"))
        del A22inv
    lines.append(f"time {time.perf_counter() - t0:.1f} s; files: "
                 + ", ".join(Path(p).name for p in written))
    written.append(write_text_atomic("\n".join(lines) + "\n", out / "summary.txt"))
    print("\n".join(lines))
    print(f"G of {len(ids):,} genotyped animals: wrote "
          + ", ".join(str(Path(p)) for p in written))
    return 0
