"""Command-line hooks of the genomic stage: ``genotypes import`` and ``grm``.

:func:`register` adds the subcommands to the main parser's subparsers; each subcommand's
function takes the parsed arguments and returns an exit code (errors are
:class:`bigeval.errors.BigevalError`, reported by the main CLI).

::

    bigeval genotypes import SRC --out geno.zarr [--format plink|blupf90|csv] [--chunks A,S]
    bigeval grm --genotypes geno.zarr [--pedigree PED] [--tune] [--blend W] [--out DIR]
                [--triplets]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError

__all__ = ["register", "cmd_genotypes_import", "cmd_grm"]


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
        description="VanRaden (2008) G from a genotype store (blockwise, Dask), optionally "
                    "tuned to and blended with A22 from a pedigree; writes G.h5, Ginv.h5 and, "
                    "with a pedigree, A22inv.h5 (datasets G, Ginv, A22inv and ids).")
    p.add_argument("--genotypes", required=True, metavar="STORE",
                   help="a store from `bigeval genotypes import`")
    p.add_argument("--pedigree", metavar="FILE", help="animal sire dam (for A22)")
    p.add_argument("--tune", action="store_true",
                   help="scale G to A22 (same mean diagonal and off-diagonal); needs --pedigree")
    p.add_argument("--blend", type=float, metavar="W",
                   help="G = (1-W) G + W A22 after tuning (e.g. 0.05); needs --pedigree")
    p.add_argument("--out", default=".", metavar="DIR", help="output folder (default .)")
    p.add_argument("--triplets", action="store_true",
                   help="also write Ginv.txt and A22inv.txt: animal1 animal2 value, "
                        "lower triangle")
    p.set_defaults(func=cmd_grm)


def cmd_genotypes_import(args) -> int:
    """``bigeval genotypes import``: a genotype file into a Zarr store."""
    from bigeval.io.genotypes import import_genotypes, open_genotypes

    def progress(done, total):
        if sys.stderr.isatty():
            print(f"\r{done:,}{'' if total is None else f' / {total:,}'} animals", end="",
                  file=sys.stderr)

    store = import_genotypes(args.src, args.out, fmt=args.format, chunks=args.chunks,
                             progress=progress)
    X, animals, snps = open_genotypes(store)
    print(f"{store}: {len(animals):,} animals x {len(snps):,} SNPs, chunks {X.chunksize}")
    return 0


def _a22(pedigree: str, ids: np.ndarray) -> np.ndarray:
    """A22 of the genotyped animals ``ids`` (in that order) from a pedigree file."""
    from bigeval.io import read_pedigree
    from bigeval.pedigree import a22_dense
    from bigeval.prepare import renumber_pedigree

    ped_ids, sire, dam, _ = renumber_pedigree(read_pedigree(pedigree), path=pedigree)
    pos = pd.Index(np.asarray(ped_ids).astype(str)).get_indexer(ids)
    if (pos < 0).any():
        missing = ids[pos < 0]
        raise InputError(f"{len(missing):,} genotyped animal(s) are not in the pedigree",
                         file=pedigree, value=missing[0],
                         expected="every genotyped animal in the pedigree",
                         remedy="add the genotyped animals to the pedigree (unknown parents "
                                "as 0), or remove them from the genotypes")
    return a22_dense(sire, dam, pos)


def cmd_grm(args) -> int:
    """``bigeval grm``: G (and G⁻¹, A22⁻¹) from a genotype store; files in ``args.out``."""
    from bigeval._resources import check_dense
    from bigeval.genomic import blend_g, tune_g
    from bigeval.grm import grm, write_grm
    from bigeval.io.genotypes import open_genotypes
    from bigeval.io.writers import ensure_dir, write_triplets
    from bigeval.linalg import spd_inverse

    if (args.tune or args.blend is not None) and not args.pedigree:
        raise InputError("--tune and --blend need A22, hence a pedigree",
                         remedy="add --pedigree FILE")
    out = ensure_dir(args.out)
    _, ids, _ = open_genotypes(args.genotypes)
    n = len(ids)
    # G, A22 and one inverse at a time, float64: check before the long work starts
    check_dense(n, copies=3.0 if args.pedigree else 2.0, what="G and its inverse")
    A22 = _a22(args.pedigree, ids) if args.pedigree else None
    G = grm(args.genotypes)
    if args.tune:
        G = tune_g(G, A22)
    if args.blend is not None:
        G = blend_g(G, A22, args.blend)
    written = [write_grm(G, ids, out / "G.h5", name="G")]
    remedy = ("blend G with A22: --pedigree FILE --blend 0.05" if args.blend is None
              else "blend more A22 into G (a larger --blend), or check the genotypes (QC)")
    Ginv = spd_inverse(G, what="G", remedy=remedy, file=args.genotypes, ids=ids)
    del G
    written.append(write_grm(Ginv, ids, out / "Ginv.h5", name="Ginv"))
    if args.triplets:
        written.append(write_triplets(Ginv, ids, out / "Ginv.txt"))
    del Ginv
    if A22 is not None:
        A22inv = spd_inverse(A22, overwrite=True, what="A22",
                             remedy="check the pedigree for duplicated animals")
        written.append(write_grm(A22inv, ids, out / "A22inv.h5", name="A22inv"))
        if args.triplets:
            written.append(write_triplets(A22inv, ids, out / "A22inv.txt"))
    print(f"G of {n:,} genotyped animals: wrote " + ", ".join(str(Path(p)) for p in written))
    return 0
