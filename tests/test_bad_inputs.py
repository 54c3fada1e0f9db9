"""The catalogue of bad inputs: every way real data goes wrong, each with a clear answer.

Each case is a tiny set of files run through the command line in a fresh folder (paths are
relative, as a user types them). An error must stop the run with exit code 2 before anything
is written, and its message must name the file, the line and the value at fault, what was
expected and what to do (where a line or file does not apply, e.g. a command-line parameter,
the case says so with ``line=None``). Some inputs are accepted (a byte-order mark, Windows line
endings, identical repeated pedigree rows, extra columns) and must give the same results as the
clean file; a contemporary group with a single record is a warning with the count, and its
groups and animals go to a file in the output folder.

``docs/make_bad_inputs_table.py`` runs the same cases to write ``docs/bad-inputs.md``;
:func:`test_docs_table_is_current` checks the table in the repository is what the cases give.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import _runkit
from bigeval.errors import BigevalWarning

ROOT = Path(__file__).resolve().parent.parent

# A hand-checkable family: two founders with a son and a daughter; four records in two groups.
PED = "s1 0 0\nd1 0 0\nk1 s1 d1\nk2 s1 d1\n"
REC = "k1 g1\nk2 g1\nd1 g2\nk1 g2\n"
# G⁻¹ and A22⁻¹ triplets for the genotyped k1, k2 (lower triangle; values need not be real)
GT = "k1\nk2\n"
GINV = "k1 k1 2.0\nk2 k1 -0.5\nk2 k2 2.0\n"
A22 = "k1 k1 1.5\nk2 k1 -0.5\nk2 k2 1.5\n"


def rel(*extra: str, ped: str = "ped.txt", rec: str = "rec.txt",
        params: tuple[str, ...] = ("--h2", "0.3")) -> list[str]:
    """argv of ``bigeval reliability`` on the case's files, output to ``out``."""
    return ["reliability", "--pedigree", ped, "--records", rec, *params, "--out", "out",
            "--no-progress", *extra]


@dataclass
class Case:
    """One bad (or awkward) input and what bigeval must answer.

    Attributes
    ----------
    id, what
        A short name (the test id) and a description for the docs table.
    files
        File name -> content (str, or bytes written as they are; None: an empty folder).
    argv
        The ``bigeval`` command line, run in the folder holding ``files``.
    outcome
        ``"error"`` (exit code 2, nothing written), ``"warning"`` (exit 0, a warning) or
        ``"accepted"`` (exit 0; same results as the clean files when ``same_as`` is given).
    file, line, value
        What the message must name: the file (as given on the command line), ``"line N"``,
        and a fragment of the value. ``None``: does not apply (the reason is in ``what``).
    says
        Further fragments the message must hold.
    setup
        Command lines run first (e.g. importing genotypes), which must succeed.
    memory
        Bytes of memory to pretend are available (for the refused-dense-block cases).
    fsize
        Run in a subprocess whose file-size limit (RLIMIT_FSIZE) is this many bytes, with
        SIGXFSZ ignored, so writes fail as on a full disk.
    same_as
        For accepted inputs: the files of the clean case to compare the results with.
    """

    id: str
    what: str
    files: dict
    argv: list
    outcome: str = "error"
    file: str | None = None
    line: int | None = None
    value: str | None = None
    says: tuple = ()
    setup: list = field(default_factory=list)
    memory: int | None = None
    fsize: int | None = None
    same_as: dict | None = None


CLEAN = {"ped.txt": PED, "rec.txt": REC}


def _h5_without_ids() -> bytes:
    """An HDF5 file holding a 2 x 2 G and no ids."""
    import tempfile

    import h5py
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        with h5py.File(Path(tmp) / "G.h5", "w") as f:
            f["G"] = np.eye(2)
        return (Path(tmp) / "G.h5").read_bytes()


H5_WITHOUT_IDS = _h5_without_ids()

# Three genotyped animals of a hand-made pedigree, G positive definite once blended with A22
GENO = "a1 01202110\na2 21011202\na3 01220011\n"
GPED = "a1 0 0\na2 0 0\na3 a1 a2\n"
# (to grm/, as the g-not-pd case: grm makes its output folder before it reads the store)
GRM = ("grm", "--genotypes", "g.zarr", "--pedigree", "ped.txt", "--blend", "0.05", "--no-qc",
       "--out", "grm")


def run_config(inputs: str = "", output: str = "") -> str:
    """A ``bigeval run`` configuration on ped.txt and rec.txt (h2 0.3) with further
    ``[inputs]`` and ``[output]`` lines; results to ``res`` (the run makes its output folder
    before it checks the inputs)."""
    return (f'[inputs]\npedigree = "ped.txt"\nrecords = "rec.txt"\n{inputs}\n'
            f'[parameters]\nh2 = 0.3\n[output]\nfolder = "res"\n{output}\n')


RUN = ("run", "cfg.toml", "--no-progress")


def store_files(codes: list[list[int]], damage: str | None = None) -> dict:
    """The files of a genotype store (path in ``g.zarr`` -> bytes) of animals a1, a2, ...
    holding ``codes`` as they are (no import check); ``damage``: ``"truncate"`` the first
    chunk of genotypes or ``"remove"`` it."""
    import tempfile

    import numpy as np

    from bigeval.io.genotypes import write_genotypes

    with tempfile.TemporaryDirectory() as tmp:
        ids = [f"a{k + 1}" for k in range(len(codes))]
        store = write_genotypes([(ids, np.array(codes, np.int8))], Path(tmp) / "g.zarr",
                                snp_ids=[f"s{j + 1}" for j in range(len(codes[0]))],
                                chunks=(len(codes), len(codes[0])))
        files = {str(f.relative_to(store.parent)): f.read_bytes()
                 for f in sorted(store.rglob("*")) if f.is_file()}
    chunk = next(k for k in files if k.startswith("g.zarr/genotypes/c"))
    if damage == "truncate":
        files[chunk] = files[chunk][:10]
    elif damage == "remove":
        del files[chunk]
    return files


IMPORT_BED = ("genotypes", "import", "g.bed", "--out", "g.zarr")


def plink_files(n_fam: int = 3, bed: bytes | None = None, bim: str | None = None) -> dict:
    """A PLINK fileset g.bed/.bim/.fam of 3 animals x 4 SNPs (all heterozygous), or with
    ``n_fam`` animals in the .fam, another ``bed`` or ``bim``."""
    fam = "".join(f"a{k} a{k} 0 0 0 -9\n" for k in range(1, n_fam + 1))
    return {"g.bed": bytes([0x6C, 0x1B, 0x01]) + bytes([0b00101010]) * 4 if bed is None
            else bed, "g.fam": fam,
            "g.bim": "".join(f"1\ts{j}\t0\t{j}\tA\tC\n" for j in range(1, 5))
            if bim is None else bim}

CASES = [
    # --- files and layout ------------------------------------------------------------------
    Case("empty-file", "empty pedigree file (no line to point at)",
         {"ped.txt": "", "rec.txt": REC}, rel(), file="ped.txt", says=("is empty",)),
    Case("blank-file", "pedigree file of blank lines only",
         {"ped.txt": "\n  \n\n", "rec.txt": REC}, rel(), file="ped.txt",
         says=("no data",)),
    Case("missing-file", "input file that does not exist",
         {"ped.txt": PED}, rel(), file="rec.txt", says=("not found",)),
    Case("missing-column", "CSV header without a required column (sire spelled papa; father "
         "is a synonym)",
         {"ped.csv": "animal,papa,dam\ns1,0,0\n", "rec.txt": REC}, rel(ped="ped.csv"),
         file="ped.csv", line=1, value="animal,papa,dam", says=("lacks column(s) sire",)),
    Case("short-row", "whitespace row with too few columns",
         {"ped.txt": "s1 0 0\nk1 s1\n", "rec.txt": "k1 g\n"}, rel(), file="ped.txt", line=2,
         value="k1 s1", says=("2 column(s), expected 3",)),
    Case("records-one-column", "records file with one column (no contemporary group)",
         {"ped.txt": PED, "rec.txt": "k1\nk2\n"}, rel(), file="rec.txt", line=1, value="k1",
         says=("1 column(s), expected 2",)),
    Case("extra-columns-accepted", "extra columns after the named ones (ignored)",
         {"ped.txt": "s1 0 0 M H1 x\nd1 0 0 F H1\nk1 s1 d1 M H2 y z\nk2 s1 d1 F H2\n",
          "rec.txt": "k1 g1 305.2\nk2 g1 299\nd1 g2 1\nk1 g2 0\n"}, rel(),
         outcome="accepted", same_as=CLEAN),
    Case("csv-extra-fields", "CSV row with more fields than the header",
         {"ped.csv": "animal,sire,dam\ns1,0,0\nd1,0,0,junk,more\n", "rec.txt": REC},
         rel(ped="ped.csv"), file="ped.csv", line=3, value="5 fields",
         says=("3 fields in the header",)),
    Case("unparsable-number", "Interbull reliability with a decimal comma",
         {**CLEAN, "ib.txt": "s1 0.9\nd1 0,85\n"}, rel("--interbull", "ib.txt"),
         file="ib.txt", line=2, value="0,85", says=("not a finite number",)),
    Case("comma-in-txt", "comma-separated file without the .csv suffix (wrong delimiter)",
         {"ped.txt": "s1,0,0\nk1,s1,0\n", "rec.txt": REC}, rel(), file="ped.txt", line=1,
         value="s1,0,0", says=("1 column(s)", "delimiter")),
    Case("semicolon-csv", "semicolon-separated .csv (wrong delimiter)",
         {"ped.csv": "animal;sire;dam\ns1;0;0\n", "rec.txt": REC}, rel(ped="ped.csv"),
         file="ped.csv", line=1, value="animal;sire;dam", says=("not comma-separated",)),
    Case("bom-crlf-accepted", "UTF-8 byte-order mark and Windows line endings (accepted)",
         {"ped.txt": ("\ufeff" + PED.replace("\n", "\r\n")).encode("utf-8"),
          "rec.txt": REC.replace("\n", "\r\n").encode("utf-8")}, rel(),
         outcome="accepted", same_as=CLEAN),
    Case("bom-crlf-csv-accepted", "CSV with a byte-order mark and Windows line endings",
         {"ped.csv": ("\ufeffanimal,sire,dam\r\n" + PED.replace(" ", ",").replace("\n", "\r\n")
                      ).encode("utf-8"), "rec.txt": REC}, rel(ped="ped.csv"),
         outcome="accepted", same_as=CLEAN),
    Case("header-in-txt", "a header line in a whitespace file (read as an animal otherwise)",
         {"ped.txt": "animal sire dam\n" + PED, "rec.txt": REC}, rel(), file="ped.txt",
         line=1, value="animal sire dam", says=("looks like a header", ".csv")),
    Case("comment-line", "a '#' comment line (read as an animal otherwise)",
         {"ped.txt": PED, "rec.txt": "# herd 12\n" + REC}, rel(), file="rec.txt", line=1,
         value="#", says=("comment lines are not allowed",)),
    Case("quoted-id", "a double-quoted ID in a whitespace file (the quotes would become part "
         "of the ID; CSV quoting is read as CSV)",
         {"ped.txt": PED, "rec.txt": 'k1 g1\n"k2" g1\n'}, rel(), file="rec.txt", line=2,
         value='"k2"', says=("double quote",)),
    Case("input-is-folder", "an input path that is a folder",
         {"ped.txt": None, "rec.txt": REC}, rel(), file="ped.txt", says=("is a folder",)),
    Case("csv-trailing-comma-accepted", "CSV rows ending in a comma (the empty last field is "
         "ignored)", {"ped.csv": "animal,sire,dam\n" + PED.replace(" ", ",").replace("\n", ",\n"),
                     "rec.txt": REC}, rel(ped="ped.csv"), outcome="accepted", same_as=CLEAN),
    Case("csv-missing-field", "a CSV row missing its dam field (not read as dam unknown)",
         {"ped.csv": "animal,sire,dam\ns1,0,0\nd1,0,0\nk1,s1\nk2,s1,d1\n", "rec.txt": REC},
         rel(ped="ped.csv"), file="ped.csv", line=4, value="k1,s1",
         says=("fewer fields than the header",)),
    Case("truncated-gz", "a truncated .gz file",
         {"ped.txt.gz": gzip.compress(PED.encode() * 50)[:40], "rec.txt": REC},
         rel(ped="ped.txt.gz"), file="ped.txt.gz", says=("truncated gzip",)),
    Case("not-utf8", "file in another encoding (Latin-1 bytes)",
         {"ped.txt": "s1 0 0\nk\xf6 s1 0\n".encode("latin-1"), "rec.txt": "s1 g\n"}, rel(),
         file="ped.txt", line=2, says=("not UTF-8",)),
    # --- pedigree -------------------------------------------------------------------------
    Case("own-sire", "an animal that is its own sire",
         {"ped.txt": "s1 0 0\nk1 k1 0\n", "rec.txt": "s1 g\n"}, rel(), file="ped.txt", line=2,
         value="k1", says=("its own sire",)),
    Case("own-dam", "an animal that is its own dam",
         {"ped.txt": "s1 0 0\nk1 0 k1\n", "rec.txt": "s1 g\n"}, rel(), file="ped.txt", line=2,
         value="k1", says=("its own dam",)),
    Case("loop", "a pedigree loop across generations (a is b's grandparent and its progeny)",
         {"ped.txt": "x 0 0\na c 0\nb a 0\nc b 0\nd b 0\n", "rec.txt": "x g\n"}, rel(),
         file="ped.txt", line=2, value="a (line 2: sire c", says=("loop", "3 animal(s)")),
    Case("parent-born-after", "a sire born after its progeny (birth years, 4th column)",
         {"ped.txt": "s1 0 0 2010\nd1 0 0 2009\nk1 s1 d1 2008\n", "rec.txt": "k1 g\n"},
         rel(), file="ped.txt", line=3, value="its sire s1 born 2010 (line 1)",
         says=("born after its progeny",)),
    Case("dam-born-after-csv", "a dam born after her progeny (birth dates, CSV birth column)",
         {"ped.csv": "animal,sire,dam,birth\nd1,0,0,2019-06-01\nk1,0,d1,2019-05-02\n",
          "rec.txt": "k1 g\n"}, rel(ped="ped.csv"), file="ped.csv", line=3,
         value="its dam d1 born 2019-06-01 (line 2)", says=("born after its progeny",)),
    Case("bad-birth-date", "a birth date that is not a date (in a column of dates)",
         {"ped.txt": "s1 0 0 2010\nd1 0 0 2009\nk1 s1 d1 2O14\n", "rec.txt": "k1 g\n"},
         rel(), file="ped.txt", line=3, value="2O14", says=("not a date",)),
    Case("sire-and-dam", "the same animal as sire and as dam of one animal",
         {"ped.txt": "s1 0 0\nk1 s1 s1\n", "rec.txt": "k1 g\n"}, rel(), file="ped.txt",
         line=2, value="k1 s1 s1", says=("as sire and as dam",)),
    Case("sire-elsewhere-dam", "an animal used as a sire on one row and a dam on another",
         {"ped.txt": "p 0 0\nk1 p 0\nk2 0 p\n", "rec.txt": "k1 g\n"}, rel(),
         file="ped.txt", line=3, value="p (sire on line 2, dam on line 3)",
         says=("both as a sire and as a dam",)),
    Case("duplicate-identical-accepted", "identical repeated pedigree rows (accepted)",
         {"ped.txt": PED + "k1 s1 d1\ns1 0 0\n", "rec.txt": REC}, rel(),
         outcome="accepted", same_as=CLEAN),
    Case("duplicate-conflicting", "one animal on two pedigree rows with different parents",
         {"ped.txt": "s1 0 0\nd1 0 0\nk1 s1 0\nk1 s1 d1\n", "rec.txt": "k1 g\n"}, rel(),
         file="ped.txt", line=4, value="line 3: k1 s1 0; line 4: k1 s1 d1",
         says=("conflicting pedigree rows",)),
    Case("unknown-code-as-id", "an animal ID that is an unknown-parent code",
         {"ped.txt": "s1 0 0\n0 s1 0\n", "rec.txt": "s1 g\n"}, rel(), file="ped.txt", line=2,
         value="0", says=("unknown-parent code",)),
    # --- IDs across files -----------------------------------------------------------------
    Case("record-not-in-pedigree", "a record of an animal missing from the pedigree",
         {"ped.txt": PED, "rec.txt": "k1 g1\nk9 g1\n"}, rel(), file="rec.txt", line=2,
         value="k9", says=("not in the pedigree",)),
    Case("genotyped-not-in-pedigree", "a genotyped animal missing from the pedigree",
         {**CLEAN, "gt.txt": "k1\nk9\n", "ginv.txt": GINV, "a22.txt": A22},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt", "--a22inv", "a22.txt"),
         file="gt.txt", line=2, value="k9", says=("not in the pedigree",)),
    Case("interbull-not-in-pedigree", "an Interbull bull missing from the pedigree",
         {**CLEAN, "ib.txt": "s1 0.9\nBULL9 0.8\n"}, rel("--interbull", "ib.txt"),
         file="ib.txt", line=2, value="BULL9", says=("not in the pedigree",)),
    # --- records --------------------------------------------------------------------------
    Case("empty-group", "a record with an empty contemporary group (CSV)",
         {"ped.txt": PED, "rec.csv": "animal,cg\nk1,g1\nk2,\n"}, rel(rec="rec.csv"),
         file="rec.csv", line=3, value="k2", says=("empty or missing contemporary group",)),
    Case("missing-code-group", "a record whose contemporary group is a missing code (0)",
         {"ped.txt": PED, "rec.txt": "k1 g1\nk2 0\n"}, rel(), file="rec.txt", line=2,
         value="k2 0", says=("empty or missing contemporary group",)),
    Case("single-record-group", "a contemporary group with a single record (warning; the "
         "groups and animals go to out/single_record_groups.csv)",
         {"ped.txt": PED, "rec.txt": REC + "k2 g3\nd1 g4\n"}, rel(), outcome="warning",
         file="rec.txt", says=("2 contemporary group(s)", "single record",
                               "single_record_groups.csv")),
    # --- parameters (no file or line: the value is the option's) ---------------------------
    Case("alpha-zero", "α ≤ 0 (--alpha 0)", CLEAN, rel(params=("--alpha", "0")), value="0",
         says=("alpha must be positive", "--alpha")),
    Case("h2-outside", "h² outside (0, 1) (--h2 1.2)", CLEAN, rel(params=("--h2", "1.2")),
         value="1.2", says=("heritability", "--h2")),
    Case("repeatability-below-h2", "repeatability < h² (--h2 0.3 --repeatability 0.2)", CLEAN,
         rel(params=("--h2", "0.3", "--repeatability", "0.2")), value="0.2",
         says=("repeatability",)),
    Case("h2-tiny", "h² so close to 0 that α overflows (--h2 1e-300; it wrote NaN)", CLEAN,
         rel(params=("--h2", "1e-300")), value="1e-300", says=("too close to 0 or 1",)),
    Case("alpha-huge", "α beyond any trait's (--alpha 1e300)", CLEAN,
         rel(params=("--alpha", "1e300")), value="1e+300", says=("too small or too large",)),
    Case("tau-zero", "τ ≤ 0 (--tau 0)", CLEAN, rel("--tau", "0"), value="0",
         says=("tau must be positive", "--tau")),
    # --- Interbull ------------------------------------------------------------------------
    Case("interbull-rel-1", "Interbull reliability ≥ 1", {**CLEAN, "ib.txt": "s1 0.9\nd1 1\n"},
         rel("--interbull", "ib.txt"), file="ib.txt", line=2, value="d1 1",
         says=("outside [0, 1)",)),
    Case("interbull-rel-percent", "Interbull reliability in percent (85)",
         {**CLEAN, "ib.txt": "s1 85\n"}, rel("--interbull", "ib.txt"), file="ib.txt", line=1,
         value="s1 85", says=("outside [0, 1)", "0.85, not 85")),
    Case("interbull-rel-negative", "Interbull reliability < 0",
         {**CLEAN, "ib.txt": "s1 -0.1\n"}, rel("--interbull", "ib.txt"), file="ib.txt",
         line=1, value="s1 -0.1", says=("outside [0, 1)",)),
    Case("interbull-erc-huge", "an Interbull ERC of 1e308 (it wrote a reliability of 1)",
         {**CLEAN, "ib.txt": "s1 1e308\n"}, rel("--interbull", "ib.txt", "--interbull-kind",
                                                "erc"), file="ib.txt", line=1,
         value="s1 1e+308", says=("beyond any bull's",)),
    Case("interbull-lone-bull", "a single Interbull bull: the methodology's formula gives it "
         "ERC 0 (warning, with the count)", {**CLEAN, "ib.txt": "s1 0.9\n"},
         rel("--interbull", "ib.txt"), outcome="warning", file="ib.txt",
         says=("1 Interbull bull(s)", "get ERC 0")),
    Case("interbull-twice", "an Interbull bull listed twice",
         {**CLEAN, "ib.txt": "s1 0.9\ns1 0.8\n"}, rel("--interbull", "ib.txt"), file="ib.txt",
         line=2, value="s1", says=("listed twice",)),
    # --- genotypes ------------------------------------------------------------------------
    Case("genotype-code", "genotype code outside {0, 1, 2, missing} (BLUPF90 text)",
         {"g.txt": "a1 0120\na2 0132\n"}, ["genotypes", "import", "g.txt", "--out", "g.zarr"],
         file="g.txt", line=2, value="3", says=("SNP column 3",)),
    Case("genotype-code-csv", "genotype code outside {0, 1, 2, missing} (CSV)",
         {"g.csv": "animal,s1,s2\na1,0,1\na2,AB,2\n"},
         ["genotypes", "import", "g.csv", "--out", "g.zarr"], file="g.csv", line=3,
         value="AB", says=("SNP column 1",)),
    Case("genotype-row-length", "genotype rows of unequal length",
         {"g.txt": "a1 0120\na2 01201\n"}, ["genotypes", "import", "g.txt", "--out", "g.zarr"],
         file="g.txt", line=2, value="5 codes", says=("unequal length", "4 codes")),
    Case("genotype-duplicate-id", "the same animal genotyped twice",
         {"g.txt": "a1 0120\na2 0121\na1 0120\n"},
         ["genotypes", "import", "g.txt", "--out", "g.zarr"], file="g.txt", line=3,
         value="a1", says=("genotyped twice", "first at 1")),
    Case("genotype-latin1-id", "a Latin-1 ID in a genotype file",
         {"g.txt": "a1 0120\nk\xf6 0121\n".encode("latin-1")},
         ["genotypes", "import", "g.txt", "--out", "g.zarr"], file="g.txt", line=2,
         value="kö 0121", says=("not UTF-8",)),
    Case("genotype-empty-id", "an empty animal ID in a genotype CSV",
         {"g.csv": "animal,s1,s2\na1,0,1\n,1,2\n"},
         ["genotypes", "import", "g.csv", "--out", "g.zarr"], file="g.csv", line=3, value="",
         says=("empty ID",)),
    Case("genotype-truncated-gz", "a truncated gzipped genotype file",
         {"g.txt.gz": gzip.compress("".join(f"a{k} 0120\n" for k in range(200)).encode())
          [:60]}, ["genotypes", "import", "g.txt.gz", "--out", "g.zarr"], file="g.txt.gz",
         says=("truncated gzip",)),
    Case("plink-not-bed", "a .bed that is not a PLINK .bed (wrong magic bytes)",
         plink_files(bed=b"xyz" + bytes(4)), list(IMPORT_BED), file="g.bed",
         says=("not a PLINK .bed",)),
    Case("plink-truncated", "a truncated PLINK .bed",
         plink_files(bed=bytes([0x6C, 0x1B, 0x01, 0])), list(IMPORT_BED), file="g.bed",
         value="4 bytes", says=("does not match", "7 bytes")),
    Case("plink-mismatched", "a .fam of another fileset (5 animals for a .bed of 3)",
         plink_files(n_fam=5), list(IMPORT_BED), file="g.bed", value="7 bytes",
         says=("does not match", "11 bytes", "5 animals")),
    Case("plink-bad-bim", "a .bim that is not one (one column)", plink_files(bim="junk\n"),
         list(IMPORT_BED), file="g.bim", says=("not a PLINK .bim",)),
    Case("store-damaged-chunk", "a damaged chunk in a genotype store",
         {**store_files([[0, 1, 2, 1], [2, 1, 0, 1], [1, 1, 2, 0]], "truncate"),
          "ped.txt": GPED}, list(GRM), file="g.zarr", value="0:3, 0:4",
         says=("cannot be read",)),
    Case("store-missing-chunk", "a chunk file lost from a genotype store",
         {**store_files([[0, 1, 2, 1], [2, 1, 0, 1], [1, 1, 2, 0]], "remove"),
          "ped.txt": GPED}, list(GRM), file="g.zarr", value="1",
         says=("chunks of genotypes are missing",)),
    Case("store-code-7", "a genotype store holding code 7 (not an allele count)",
         {**store_files([[0, 1, 2, 1], [2, 7, 0, 1], [1, 1, 2, 0]]), "ped.txt": GPED,
          "rec.txt": "a1 g\na2 g\na3 g\n"},
         ["reliability", "--pedigree", "ped.txt", "--records", "rec.txt", "--h2", "0.3",
          "--genotypes", "g.zarr", "--out", "res", "--no-progress"], file="g.zarr", value="2",
         says=("SNP column 2", "not 0/1/2 counts")),
    Case("genotyped-list-duplicate", "the list of genotyped animals names one twice",
         {**CLEAN, "gt.txt": "k1\nk2\nk1\n", "ginv.txt": GINV, "a22.txt": A22},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt", "--a22inv", "a22.txt"),
         file="gt.txt", line=3, value="k1", says=("listed twice",)),
    Case("triplet-outside", "G⁻¹ triplet naming an animal outside the genotyped set",
         {**CLEAN, "gt.txt": GT, "ginv.txt": GINV + "s1 s1 1.0\n", "a22.txt": A22},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt", "--a22inv", "a22.txt"),
         file="ginv.txt", line=4, value="s1", says=("not in the genotyped list",)),
    Case("triplet-asymmetric", "G⁻¹ given twice for one pair with different values",
         {**CLEAN, "gt.txt": GT, "ginv.txt": GINV + "k1 k2 -0.4\n", "a22.txt": A22},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt", "--a22inv", "a22.txt"),
         file="ginv.txt", line=4, value="k1 k2: -0.4 vs -0.5 (line 2)",
         says=("two different values",)),
    Case("triplet-huge", "a G⁻¹ element of 1e308 (it overflowed the equations)",
         {**CLEAN, "gt.txt": GT, "ginv.txt": "k1 k1 1e308\nk2 k1 -0.5\nk2 k2 2.0\n",
          "a22.txt": A22},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt", "--a22inv", "a22.txt"),
         file="ginv.txt", line=1, value="1e+308", says=("too large",)),
    Case("run-validate-genotype-code", "a genotype text file with a code 3, found by "
         "`bigeval run --until validate` (the file is imported there)",
         {**CLEAN, "g.txt": "k1 0120\nk2 0130\n", "cfg.toml": run_config('genotypes = "g.txt"')},
         [*RUN, "--until", "validate"], file="g.txt", line=2, value="3",
         says=("0, 1, 2",)),
    Case("run-validate-genotyped-not-in-pedigree", "a genotype text file with an animal the "
         "pedigree lacks, found by `bigeval run --until validate`, naming the file",
         {**CLEAN, "g.txt": "k1 0120\nzz 0110\n", "cfg.toml": run_config('genotypes = "g.txt"')},
         [*RUN, "--until", "validate"], file="g.txt", value="zz",
         says=("not in the pedigree",)),
    Case("grm-not-hdf5", "inputs.grm that is not an HDF5 file (bigeval run)",
         {**CLEAN, "G.h5": "not HDF5\n", "cfg.toml": run_config('grm = "G.h5"')}, list(RUN),
         file="G.h5", says=("not an HDF5 file",)),
    Case("grm-without-ids", "inputs.grm without its ids dataset (bigeval run)",
         {**CLEAN, "G.h5": H5_WITHOUT_IDS, "cfg.toml": run_config('grm = "G.h5"')},
         list(RUN), file="G.h5", says=("'ids' doesn't exist",)),
    Case("ginv-without-a22inv", "G⁻¹ without A22⁻¹",
         {**CLEAN, "gt.txt": GT, "ginv.txt": GINV},
         rel("--genotyped", "gt.txt", "--ginv", "ginv.txt"), file="ginv.txt",
         says=("given together", "--a22inv")),
    Case("g-not-pd", "G not positive definite (3 animals, 2 of them with identical genotypes)",
         {"g.txt": "a1 0120\na2 2101\na3 0120\n"},
         ["grm", "--genotypes", "g.zarr", "--out", "grm"], file="g.zarr", value="row 2 of 3",
         says=("not positive definite", "--blend"),
         setup=[["genotypes", "import", "g.txt", "--out", "g.zarr"]]),
    # --- resources and output ---------------------------------------------------------------
    Case("dense-too-large", "a dense block too large for memory (refused before starting, "
         "with the numbers; 64 bytes pretended available)", CLEAN, rel("--exact"),
         memory=64, says=("exact MME inverse", "576 B", "what to do")),
    Case("dense-g-too-large", "G too large for memory (refused before computing it)",
         {"g.txt": "a1 0120\na2 2101\na3 0121\n"},
         ["grm", "--genotypes", "g.zarr", "--out", "grm"], memory=64,
         setup=[["genotypes", "import", "g.txt", "--out", "g.zarr"]],
         says=("G and its inverse", "3 x 3", "only 64 B", "what to do")),
    Case("out-not-writable", "output folder that cannot be created (under a regular file)",
         {**CLEAN, "results": "a file, not a folder\n"},
         ["reliability", "--pedigree", "ped.txt", "--records", "rec.txt", "--h2", "0.3",
          "--out", "results/run1"], file="results/run1",
         value="results/run1", says=("cannot create the output folder", "is a file")),
    Case("work-dir-is-file", "--work-dir that is a file (out-of-core work folder)",
         {**CLEAN, "wd": "a file\n"}, ["reliability", "--pedigree", "ped.txt", "--records",
                                      "rec.txt", "--h2", "0.3", "--work-dir", "wd", "--out",
                                      "res"], file="wd", value="wd", says=("is a file",)),
    Case("run-work-dir-is-file", "output.work_dir that is a file (bigeval run, out of core)",
         {**CLEAN, "wd": "a file\n",
          "cfg.toml": run_config("out_of_core = true", 'work_dir = "wd"')}, list(RUN),
         file="wd", value="wd", says=("is a file",)),
    Case("disk-full", "disk full while writing (file-size limit of 100 bytes; nothing "
         "half-written is left)", CLEAN, rel(), fsize=100, file="out/reliability.csv",
         says=("not enough space", "File too large", "unchanged")),
    Case("disk-full-hdf5", "disk full while writing HDF5 (G.h5; 4 KiB file-size limit): the "
         "error, no crash of the HDF5 library on closing the file",
         {"g.txt": "a1 01202110\na2 21011202\na3 01220011\n", "ped.txt": "a1 0 0\na2 0 0\n"
          "a3 a1 a2\n"}, ["grm", "--genotypes", "g.zarr", "--pedigree", "ped.txt", "--blend",
                          "0.05", "--no-qc", "--out", "out"], fsize=4096, file="out/G.h5",
         says=("not enough space", "File too large", "unchanged"),
         setup=[["genotypes", "import", "g.txt", "--out", "g.zarr"],  # and compiled kernels
                ["grm", "--genotypes", "g.zarr", "--pedigree", "ped.txt", "--blend", "0.05",
                 "--no-qc", "--out", "warm"]]),
]


# ---------------------------------------------------------------------------------------------
# Running a case


@contextlib.contextmanager
def _cwd(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _memory(nbytes: int | None):
    """Pretend ``nbytes`` of memory are available (resource checks read it at call time)."""
    if nbytes is None:
        yield
        return
    from bigeval import _resources

    real = _resources.available_memory
    _resources.available_memory = lambda: nbytes
    try:
        yield
    finally:
        _resources.available_memory = real


_FSIZE_PRELUDE = """\
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({n}, {n}))
from bigeval.cli import main
sys.exit(main(sys.argv[1:]))
"""


#: Outcomes of the cases run so far in this session (they do not depend on the folder).
_OUTCOMES: dict[str, tuple[int, str]] = {}


def run_case(case: Case, folder: Path) -> tuple[int, str]:
    """Write the case's files into ``folder`` and run it there; (exit code, stderr), with
    ``folder`` dropped from the paths (``bigeval run`` names files by absolute paths)."""
    rc, err = _run_case(case, folder)
    for prefix in {str(folder.resolve()), str(folder)}:
        err = err.replace(prefix + os.sep, "")
    _OUTCOMES[case.id] = outcome = (rc, err)
    return outcome


def _cached(case: Case, folder: Path) -> tuple[int, str]:
    """The outcome of ``case`` from an earlier test of this session, or a new run."""
    return _OUTCOMES[case.id] if case.id in _OUTCOMES else run_case(case, folder)


def _run_case(case: Case, folder: Path) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in case.files.items():
        if content is None:  # a folder
            (folder / name).mkdir()
            continue
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    with _cwd(folder):
        for argv in case.setup:
            rc, err = _runkit.cli_in_process(argv)
            assert rc == 0, err
        if case.fsize is not None:
            env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep
                       + os.environ.get("PYTHONPATH", ""))
            proc = subprocess.run(
                [sys.executable, "-c", _FSIZE_PRELUDE.format(n=case.fsize), *case.argv],
                capture_output=True, text=True, env=env, timeout=300)
            return proc.returncode, proc.stderr
        with _memory(case.memory):
            return _runkit.cli_in_process(case.argv)


def message_of(stderr: str) -> str:
    """The error or warning line(s) bigeval printed, without the ``bigeval CMD: `` prefix."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("bigeval")]
    return "\n".join(ln.split(": ", 1)[1] if ": " in ln else ln for ln in lines)


# ---------------------------------------------------------------------------------------------
# Tests


def test_catalogue__has_every_item_of_the_issue():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.outcome for c in CASES} == {"error", "warning", "accepted"}


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "error"],
                         ids=lambda c: c.id)
def test_bad_input__error_names_file_line_value_expected_remedy(case, tmp_path):
    rc, err = run_case(case, tmp_path)
    assert rc == 2, err
    assert "error:" in err and "Traceback" not in err
    msg = message_of(err)
    if case.file is not None:
        where = case.file + (f", line {case.line}" if case.line is not None else "")
        assert where in msg, msg
    if case.value is not None:
        assert "value: " in msg and case.value in msg.split("value: ", 1)[1], msg
    for fragment in case.says:
        assert fragment in msg, (fragment, msg)
    assert "what to do: " in msg, msg
    if not case.id.startswith("dense"):  # the resource errors give numbers, not an "expected"
        assert "expected: " in msg or case.line is None, msg
    # nothing is written: no output folder (one the command made is removed when it fails
    # empty), or (disk full, a folder there before) no file and no temporary left
    out = tmp_path / "out"
    if case.fsize is None:
        assert not out.exists() or case.id == "out-not-writable"
    else:
        assert not out.exists() or sorted(p.name for p in out.iterdir()) == []


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "accepted"],
                         ids=lambda c: c.id)
def test_awkward_input__accepted_with_the_clean_results(case, tmp_path):
    rc, err = run_case(case, tmp_path / "case")
    assert rc == 0, err
    clean = Case("clean", "", case.same_as, rel())
    assert run_case(clean, tmp_path / "clean")[0] == 0
    got = (tmp_path / "case" / "out" / "reliability.csv").read_bytes()
    assert got == (tmp_path / "clean" / "out" / "reliability.csv").read_bytes()


@pytest.mark.parametrize("case", [c for c in CASES if c.outcome == "warning"],
                         ids=lambda c: c.id)
def test_warned_input__exit_0_and_a_warning_naming_file_and_count(case, tmp_path):
    rc, err = run_case(case, tmp_path)
    assert rc == 0, err
    assert "warning" in err and "Traceback" not in err
    msg = message_of(err)
    if case.file is not None:
        assert case.file in msg, msg
    for fragment in case.says:
        assert fragment in msg, (fragment, msg)


def test_single_record_groups__warned_with_count_and_listed_in_a_file(tmp_path):
    case = next(c for c in CASES if c.id == "single-record-group")
    rc, err = run_case(case, tmp_path)
    assert rc == 0, err
    msg = message_of(err)
    assert "warning" in err and "rec.txt" in msg
    for fragment in case.says:
        assert fragment in msg
    listed = (tmp_path / "out" / "single_record_groups.csv").read_text()
    assert listed == "cg,animal\ng3,k2\ng4,d1\n"
    # a later run on data without such groups removes the stale list
    (tmp_path / "rec.txt").write_text(REC)
    assert run_case(Case("again", "", {}, rel()), tmp_path)[0] == 0
    assert not (tmp_path / "out" / "single_record_groups.csv").exists()


def test_single_record_groups__python_api_warns(tmp_path):
    from bigeval.pipeline.workflow import ReliabilityJob, run_reliability

    (tmp_path / "ped.txt").write_text(PED)
    (tmp_path / "rec.txt").write_text(REC + "k2 g3\n")
    job = ReliabilityJob(pedigree=tmp_path / "ped.txt", records=tmp_path / "rec.txt",
                         out=tmp_path / "out", h2=0.3)
    with pytest.warns(BigevalWarning, match=r"^1 contemporary group\(s\)"):
        run_reliability(job, progress=False)


def test_docs_table_is_current():
    """docs/bad-inputs.md is what docs/make_bad_inputs_table.py writes from these cases."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_bad_inputs_table", ROOT / "docs" / "make_bad_inputs_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    current = (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    assert mod.render(CASES, _cached) == current, (
        "docs/bad-inputs.md is out of date: run python3 docs/make_bad_inputs_table.py")



def test_run__founder_rows_without_birth_and_sex_and_a_dollar_label_are_read(tmp_path):
    """Founder rows that stop before the birth-year and sex columns have them unknown (it was
    ``KeyError: 3``), and a sex ``$\\foo$`` is drawn as plain text (matplotlib parsed it as
    mathtext and failed the report after all the computing)."""
    ped = "s1 0 0\nd1 0 0\nk1 s1 d1 2015 $\\foo$\nk2 s1 d1 2016 F\n"
    files = {"ped.txt": ped, "rec.txt": REC,
             "cfg.toml": run_config("birth_year_column = 4\nsex_column = 5")}
    rc, err = run_case(Case("run-extra", "", files, list(RUN), outcome="accepted"), tmp_path)
    assert rc == 0, err
    assert "Traceback" not in err
    assert (tmp_path / "res" / "report.html").stat().st_size > 0
