"""BLUPF90 parameter files as bigeval model files (``bigeval config from-blupf90``).

Both layouts are read:

* **blupf90 / airemlf90** (renumbered data): ``DATAFILE``, ``NUMBER_OF_TRAITS``,
  ``NUMBER_OF_EFFECTS``, ``OBSERVATION(S)``, ``WEIGHT(S)``, ``EFFECTS:`` (one line per effect:
  position, levels, ``cross`` or ``cov``), ``RANDOM_RESIDUAL VALUES``, then per random group
  ``RANDOM_GROUP``, ``RANDOM_TYPE``, ``FILE``, ``(CO)VARIANCES``; ``OPTION`` lines.
* **renumf90**: ``DATAFILE``, ``TRAITS``, ``WEIGHT(S)``, ``RESIDUAL_VARIANCE``, ``EFFECT``
  blocks (``POS cross alpha|numer`` or ``POS cov``) with ``RANDOM animal|diagonal``,
  ``OPTIONAL pe``, ``FILE``, ``SNP_FILE``, ``(CO)VARIANCES``; ``OPTION`` lines.

What maps: one trait; fixed class effects (``cross``) and covariates (``cov``), without an
intercept (BLUPF90 fits none); the animal effect (``add_animal`` / ``RANDOM animal``; with
unknown parent groups ``add_an_upg`` / ``add_an_upginb``, the groups found by
:func:`upg_codes`) with its pedigree, A⁻¹ without inbreeding as BLUPF90 builds it from three
pedigree columns (H with a marker file: ``SNP_FILE`` / ``OPTION SNP_file``); a
permanent-environment effect (``diagonal`` on the animal's column, or ``OPTIONAL pe``);
residual weights; the variances (the values of ``solve``, the starting values of ``reml``);
the missing observation code (BLUPF90's ``0``, or ``OPTION missing``). Everything else
(several traits, nested covariates, other random effects, options with no equivalent) is
listed in the converted file's comments and by the command, never dropped silently; several
traits and other random effects are an error, since the model would not be the one the file
describes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bigeval.errors import InputError

__all__ = ["Blupf90Model", "read_parameter_file", "model_toml"]

#: OPTIONs with an equivalent (what the converted file does with them)
KNOWN_OPTIONS = {
    "method": "run `bigeval reml` on the converted file (`bigeval solve` for BLUP)",
    "missing": "the missing observation code ([data] missing)",
    "snp_file": "the marker file ([animal] genotypes, relationship H)",
    "se_covar_function": "bigeval reml prints h² with its standard error",
    "sol": "bigeval solve writes solutions (with standard errors and PEV: --se, the default)",
    "conv_crit": "bigeval reml --tol",
    "maxrounds": "bigeval reml --maxiter",
    "em-reml": "bigeval reml --method em",
    "origid": "bigeval keeps the IDs as given",
}

_KEYWORDS = ("DATAFILE", "NUMBER_OF_TRAITS", "NUMBER_OF_EFFECTS", "OBSERVATION(S)",
             "WEIGHT(S)", "EFFECTS:", "RANDOM_RESIDUAL VALUES", "RANDOM_GROUP", "RANDOM_TYPE",
             "FILE", "FILE_POS", "PED_DEPTH", "INBREEDING", "(CO)VARIANCES", "TRAITS",
             "FIELDS_PASSED TO OUTPUT", "RESIDUAL_VARIANCE", "EFFECT", "NESTED", "RANDOM",
             "OPTIONAL", "SNP_FILE", "UPG_TYPE", "GEN_INT", "REC_SEX", "COMBINE")


@dataclass
class Blupf90Model:
    """What a parameter file says, in bigeval's terms."""

    source: Path
    datafile: Path
    trait: int
    weights: int | None = None
    factors: list = field(default_factory=list)
    covariates: list = field(default_factory=list)
    animal: int | None = None
    pedigree: Path | None = None
    genotypes: Path | None = None
    pe: bool = False
    sigma_a2: float | None = None
    sigma_pe2: float | None = None
    sigma_e2: float | None = None
    missing: str = "0"
    groups: list | None = None  # add_an_upg: the unknown parent group codes of the pedigree
    inbreeding: bool = False  # add_an_upginb
    notes: list = field(default_factory=list)  # options and keywords with an equivalent
    unsupported: list = field(default_factory=list)  # what has none


def _blocks(path: Path) -> list[tuple[str, list[str], int]]:
    """(keyword, its value lines, line number) in file order; comments (#) dropped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError("parameter file not found", file=path,
                         remedy="give the path of the BLUPF90 parameter file") from None
    except IsADirectoryError:
        raise InputError("the parameter file is a folder", file=path,
                         remedy="give the path of the BLUPF90 parameter file") from None
    blocks: list[tuple[str, list[str], int]] = []
    for k, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        head = line.strip()
        upper = head.upper()
        if upper.startswith("OPTION"):
            blocks.append(("OPTION", [head[6:].strip()], k))
            continue
        key = next((w for w in sorted(_KEYWORDS, key=len, reverse=True)
                    if upper == w or upper.startswith(w + " ") or
                    (w == "EFFECTS:" and upper.startswith("EFFECTS"))), None)
        if key is not None and not (key == "EFFECT" and upper.startswith("EFFECTS")):
            rest = head[len(key):].strip() if key not in ("EFFECTS:",) else ""
            blocks.append((key, [rest] if rest and key == "EFFECT" else [], k))
            continue
        if not blocks:
            if head:
                raise InputError("a BLUPF90 parameter file starts with a keyword", file=path,
                                 line=k, value=head, expected="DATAFILE (blupf90, renumf90)",
                                 remedy="give a blupf90, airemlf90 or renumf90 parameter file")
            continue
        blocks[-1][1].append(head)
    return blocks


def _numbers(values: list[str], path: Path, line: int, what: str) -> list[float]:
    try:
        return [float(v) for s in values for v in s.split()]
    except ValueError:
        raise InputError(f"{what} holds something that is not a number", file=path, line=line,
                         value=" ".join(values), expected="numbers") from None


def _first(values: list[str]) -> str:
    return next((v for v in values if v), "")


def read_parameter_file(path) -> Blupf90Model:
    """Read a blupf90/airemlf90 or renumf90 parameter file (module docstring)."""
    path = Path(path)
    blocks = _blocks(path)
    keys = {b[0] for b in blocks}
    if "DATAFILE" not in keys:
        raise InputError("no DATAFILE in the parameter file", file=path,
                         remedy="give a blupf90, airemlf90 or renumf90 parameter file")
    if "TRAITS" in keys or "EFFECT" in keys:
        return _renumf90(path, blocks)
    return _blupf90(path, blocks)


def _option(m: Blupf90Model, text: str, path: Path, base: Path) -> None:
    name, _, rest = text.partition(" ")
    low = name.lower()
    if low == "missing":
        m.missing = rest.split()[0] if rest.split() else m.missing
    elif low == "snp_file" and rest.split():
        m.genotypes = base / rest.split()[0]
    if low in KNOWN_OPTIONS:
        m.notes.append(f"OPTION {text}: {KNOWN_OPTIONS[low]}")
    else:
        m.unsupported.append(f"OPTION {text}")


def _blupf90(path: Path, blocks) -> Blupf90Model:
    base = path.parent
    get = {}
    for key, values, line in blocks:
        get.setdefault(key, (values, line))
    datafile = base / _first(get["DATAFILE"][0])
    n_traits = int(_numbers(*get.get("NUMBER_OF_TRAITS", (["1"], 0)), path,
                            "NUMBER_OF_TRAITS")[0])
    if n_traits != 1:
        raise InputError(f"{n_traits} traits: the model commands fit one trait", file=path,
                         line=get["NUMBER_OF_TRAITS"][1] + 1, value=n_traits,
                         expected="NUMBER_OF_TRAITS 1",
                         remedy="convert one trait at a time (a parameter file per trait)")
    obs = _numbers(*get["OBSERVATION(S)"], path, "OBSERVATION(S)")
    weights = _numbers(*get.get("WEIGHT(S)", ([], 0)), path, "WEIGHT(S)")
    m = Blupf90Model(source=path, datafile=datafile, trait=int(obs[0]),
                     weights=int(weights[0]) if weights else None)
    effects = []
    values, line = get["EFFECTS:"]
    for k, text in enumerate(v for v in values if v):
        f = text.split()
        if len(f) < 3:
            raise InputError("an EFFECTS line is position, levels and type", file=path,
                             line=line + 1 + k, value=text, expected="e.g. '6 155 cross'")
        if len(f) > 3:
            m.unsupported.append(f"nested effect '{text}'")
        effects.append((int(f[0]), f[2].lower()))
    groups, i = [], 0
    while i < len(blocks):
        key, values, line = blocks[i]
        if key == "RANDOM_GROUP":
            group = {"effects": [int(x) for x in _numbers(values, path, line, "RANDOM_GROUP")],
                     "line": line}
            j = i + 1
            while j < len(blocks) and blocks[j][0] not in ("RANDOM_GROUP", "OPTION"):
                group[blocks[j][0]] = blocks[j][1]
                j += 1
            groups.append(group)
            i = j
            continue
        i += 1
    residual = _numbers(*get.get("RANDOM_RESIDUAL VALUES", ([], 0)), path, "residual")
    m.sigma_e2 = residual[0] if residual else None
    random = set()
    for g in groups:
        kind = _first(g.get("RANDOM_TYPE", [""])).lower()
        cols = [effects[e - 1][0] for e in g["effects"]]
        var = _numbers(g.get("(CO)VARIANCES", []), path, g["line"], "(CO)VARIANCES")
        random.update(g["effects"])
        if kind in ("add_animal", "add_an_upg", "add_an_upginb") and len(cols) == 1:
            m.animal = cols[0]
            ped = _first(g.get("FILE", []))
            m.pedigree = base / ped if ped else None
            m.sigma_a2 = var[0] if var else None
            if kind != "add_animal" and m.pedigree is not None:
                m.groups = upg_codes(m.pedigree)
                m.inbreeding = kind == "add_an_upginb"
                m.notes.append(f"RANDOM_TYPE {kind}: unknown parent groups "
                               f"{', '.join(m.groups)} ([animal] groups; Quaas-Pollak A⁻¹)")
        elif kind == "diagonal" and len(cols) == 1 and m.animal is not None \
                and cols[0] == m.animal:
            m.pe, m.sigma_pe2 = True, (var[0] if var else None)
        else:
            raise InputError(f"random group of type {kind or '?'} on effect(s) "
                             f"{g['effects']} has no equivalent", file=path, line=g["line"],
                             value=kind, expected="add_animal or add_an_upg(inb) (the animal "
                             "effect), and a "
                             "diagonal effect on the animal's column (permanent environment)",
                             remedy="the model commands fit the animal effect and pe only")
    for k, (col, kind) in enumerate(effects, start=1):
        if k in random:
            continue
        (m.covariates if kind.startswith("cov") else m.factors).append(col)
    for key, values, _ in blocks:
        if key == "OPTION":
            _option(m, values[0], path, base)
        elif key in ("FILE_POS", "PED_DEPTH", "INBREEDING", "UPG_TYPE"):
            m.unsupported.append(f"{key} {' '.join(values)}".strip())
    return m


def _renumf90(path: Path, blocks) -> Blupf90Model:
    base = path.parent
    first = {}
    for key, values, line in blocks:
        first.setdefault(key, (values, line))
    traits = _numbers(*first["TRAITS"], path, "TRAITS")
    if len(traits) != 1:
        raise InputError(f"{len(traits)} traits: the model commands fit one trait", file=path,
                         line=first["TRAITS"][1] + 1, value=len(traits),
                         expected="one TRAITS column",
                         remedy="convert one trait at a time (a parameter file per trait)")
    weights = _numbers(*first.get("WEIGHT(S)", ([], 0)), path, "WEIGHT(S)")
    m = Blupf90Model(source=path, datafile=base / _first(first["DATAFILE"][0]),
                     trait=int(traits[0]), weights=int(weights[0]) if weights else None)
    residual = _numbers(*first.get("RESIDUAL_VARIANCE", ([], 0)), path, "RESIDUAL_VARIANCE")
    m.sigma_e2 = residual[0] if residual else None
    current = None
    for key, values, line in blocks:
        if key == "EFFECT":
            f = " ".join(values).split()
            if len(f) < 2:
                raise InputError("an EFFECT is position and type", file=path, line=line,
                                 value=" ".join(values), expected="e.g. '6 cross alpha'")
            current = {"col": int(f[0]), "type": f[1].lower(), "random": None}
            (m.covariates if current["type"].startswith("cov") else m.factors).append(
                current["col"])
        elif key == "RANDOM" and current is not None:
            kind = _first(values).lower()
            current["random"] = kind
            bucket = m.covariates if current["type"].startswith("cov") else m.factors
            bucket.remove(current["col"])
            if kind == "animal":
                m.animal = current["col"]
            elif kind == "diagonal" and m.animal is not None and current["col"] == m.animal:
                m.pe = True
            else:
                raise InputError(f"RANDOM {kind} has no equivalent", file=path, line=line,
                                 value=kind, expected="animal, or diagonal on the animal's "
                                 "column (permanent environment)",
                                 remedy="the model commands fit the animal effect and pe only")
        elif key == "OPTIONAL" and current is not None:
            opt = " ".join(values).split()
            if "pe" in opt:
                m.pe = True
            other = [o for o in opt if o != "pe"]
            if other:
                raise InputError(f"OPTIONAL {' '.join(other)} has no equivalent", file=path,
                                 line=line, value=" ".join(other), expected="pe",
                                 remedy="the model commands fit the animal effect and pe only")
        elif key == "FILE" and current is not None and current.get("random") == "animal":
            m.pedigree = base / _first(values)
        elif key == "SNP_FILE":
            m.genotypes = base / _first(values)
        elif key == "(CO)VARIANCES" and current is not None:
            var = _numbers(values, path, line, "(CO)VARIANCES")
            if current.get("random") == "animal":
                if m.pe and len(var) == 1 and m.sigma_a2 is not None:
                    m.sigma_pe2 = var[0]
                else:
                    m.sigma_a2 = var[0] if var else None
                    if len(var) > 1:
                        m.unsupported.append("(CO)VARIANCES with more than one value "
                                             "(maternal or several traits): the first used")
            elif current.get("random") == "diagonal":
                m.sigma_pe2 = var[0] if var else None
        elif key == "OPTION":
            _option(m, values[0], path, base)
        elif key in ("FIELDS_PASSED TO OUTPUT", "NESTED", "FILE_POS", "PED_DEPTH",
                     "UPG_TYPE", "GEN_INT", "REC_SEX", "INBREEDING", "COMBINE"):
            if any(values):
                m.unsupported.append(f"{key} {' '.join(values)}".strip())
    return m


def upg_codes(pedigree: Path) -> list[str]:
    """The unknown parent groups of a BLUPF90 pedigree for ``add_an_upg``: the parent codes
    without a row of their own that are numbered after the last animal (BLUPF90's rule)."""
    from bigeval.io import read_pedigree

    ped = read_pedigree(pedigree, groups=False, birth=False)
    animals = pd.to_numeric(ped["animal"], errors="coerce")
    parents = pd.unique(pd.concat([ped["sire"], ped["dam"]]))
    last = animals.max()
    codes = [p for p in parents if p != "" and p not in set(ped["animal"])
             and p.isdigit() and int(p) > last]
    if not codes:
        raise InputError("RANDOM_TYPE add_an_upg, but the pedigree has no group codes",
                         file=pedigree, expected="parent codes numbered after the last "
                         "animal, without a row", remedy="use add_animal, or add the groups")
    return sorted(codes, key=int)


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def model_toml(m: Blupf90Model, out: Path) -> str:
    """The bigeval model file (``[data]``, ``[fixed]``, ``[animal]``, ``[variance]``) of a
    parameter file, with paths relative to ``out``'s folder."""
    where = out.parent
    lines = [f"# converted from the BLUPF90 parameter file {m.source.name} by "
             "`bigeval config from-blupf90`",
             "# run: bigeval reml THIS.toml --out DIR   (or bigeval solve)"]
    for n in m.notes:
        lines.append(f"# {n}")
    for u in m.unsupported:
        lines.append(f"# NOT CONVERTED (no equivalent): {u}")
    lines += ["[data]", f'file = "{_rel(m.datafile, where)}"', f"trait = {m.trait}",
              "header = false"]
    if m.weights is not None:
        lines.append(f"weights = {m.weights}")
    lines.append(f'missing = ["{m.missing}"]  # BLUPF90\'s missing observation code')
    lines += ["", "[fixed]", "intercept = false  # BLUPF90 fits no intercept",
              f"factors = [{', '.join(str(c) for c in m.factors)}]"]
    if m.covariates:
        lines.append(f"covariates = [{', '.join(str(c) for c in m.covariates)}]")
    if m.animal is not None:
        if m.pedigree is None:
            raise InputError("the animal effect has no pedigree FILE", file=m.source,
                             remedy="add the pedigree file under FILE")
        lines += ["", "[animal]", f"column = {m.animal}",
                  f'relationship = "{"H" if m.genotypes is not None else "A"}"',
                  f'pedigree = "{_rel(m.pedigree, where)}"']
        if m.groups is not None:
            lines += ["groups = [" + ", ".join(f'"{c}"' for c in m.groups) + "]  # add_an_upg: "
                      "parents without a row, numbered after the animals",
                      f"inbreeding = {'true' if m.inbreeding else 'false'}  # add_an_upg"
                      f"{'inb' if m.inbreeding else ''}"]
        else:
            lines.append("inbreeding = false  # as BLUPF90 builds A⁻¹ from three pedigree "
                         "columns")
        if m.genotypes is not None:
            lines += [f'genotypes = "{_rel(m.genotypes, where)}"',
                      'genotypes_format = "blupf90"']
        if m.pe:
            lines.append("pe = true")
    var = [(k, getattr(m, k)) for k in ("sigma_a2", "sigma_pe2", "sigma_e2")
           if getattr(m, k) is not None]
    if var:
        lines += ["", "[variance]  # solve: the values used; reml: the starting values"]
        lines += [f"{k} = {v!r}" for k, v in var]
    return "\n".join(lines) + "\n"


