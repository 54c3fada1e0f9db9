"""Model specification: what to fit, read from a TOML file or built in Python.

A configuration file (paths are relative to the file)::

    [data]
    file = "ex3_1_data.csv"      # CSV or whitespace-separated, with or without a header line
    trait = "wwg_kg"             # a header name, or a 1-based column number (trait = 9)
    weights = "edc"              # optional residual weights: var(e_i) = sigma_e2 / w_i
    header = "auto"              # true, false or "auto" (below)
    missing = ["0"]              # trait values that mean no observation (BLUPF90's 0);
                                 # NA, . and empty always do

    [fixed]
    intercept = false            # default true
    factors = ["sex"]            # cross-classified class effects
    covariates = []              # linear regressions

    [animal]                     # optional: no [animal] means a fixed-effects model
    column = "animal"
    relationship = "A"           # A (pedigree), G (genomic) or H (single step)
    pedigree = "ex3_1_pedigree.csv"
    genotypes = "geno.zarr"      # a store (`bigeval genotypes import`), a PLINK .bed, a
                                 # BLUPF90 marker file or a CSV (animal, then one 0/1/2 per SNP)
    genotypes_format = "blupf90" # of a genotype file: plink, blupf90 or csv (default: suffix)
    g_matrix = "g.csv"           # or a precomputed G: animal, then one column per animal
    g_ridge = 0.0                # G + ridge I before inversion
    g_blend = 0.05               # H only: G* = (1 - w) G + w A22, then tuned to A22
    pe = false                   # permanent-environment effect (repeated records)
    inbreeding = true            # A⁻¹ with inbreeding (false: as BLUPF90 without codes)
    groups = "^-[0-9]+$"         # parent codes that are unknown parent groups: a pattern
                                 # (default: negative integers), a list of codes, or false
    groups_in_genomic = false    # H only: groups in A⁻¹ only (false) or in G⁻¹ − A22⁻¹ too

    [variance]
    sigma_a2 = 20.0
    sigma_pe2 = 12.0
    sigma_e2 = 40.0

Every column (trait, weights, factors, covariates, the animal column) is a name from the
header line or a 1-based column number. ``header = "auto"`` reads the first line as a header
unless every column is given by number and the first line's trait field is a number (a
BLUPF90 data file); numbers work with a header too (a header name that is a number, "9", is
taken as the name: set ``header = true`` for such a file).

What is supported: one trait; fixed class effects and covariates; the animal effect with A,
G or H, with unknown parent groups of the pedigree (:mod:`bigeval.models.upg`); a
permanent-environment effect of the animal (repeated records); residual weights.
Several traits, other random effects (a ``[random]`` section) and maternal effects are
refused with an error saying so.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.defaults import BLEND
from bigeval.errors import InputError
from bigeval.io.columns import missing_mask

RELATIONSHIPS = ("A", "G", "H")
#: what the model commands fit, for the errors about what they do not
SUPPORTED = ("one trait; fixed class effects and covariates; the animal effect (relationship A, "
             "G or H) with an optional permanent-environment effect (pe = true); residual "
             "weights")
_UNSUPPORTED_REMEDY = ("fit one trait at a time with the animal effect (and pe for repeated "
                       "records); these models are not implemented in bigeval yet")


@dataclass(frozen=True)
class ModelSpec:
    """What to fit. Frozen; build one with :meth:`from_toml` or directly.

    Variances are the values used by ``solve`` and the starting values of ``reml``.
    """

    data: Path
    trait: str
    header: bool | None = None  # None: auto (module docstring)
    missing: tuple[str, ...] = ()  # further missing-trait codes (a number matches its value)
    factors: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    intercept: bool = True
    weights: str | None = None
    animal: str | None = None
    relationship: str = "A"
    pedigree: Path | None = None
    genotypes: Path | None = None
    genotypes_format: str | None = None
    g_matrix: Path | None = None
    g_ridge: float = 0.0
    g_blend: float = BLEND
    pe: bool = False
    inbreeding: bool = True
    groups: object = None  # unknown parent group codes: None default, a pattern, a list, False
    groups_in_genomic: bool = False
    sigma_a2: float | None = None
    sigma_pe2: float | None = None
    sigma_e2: float | None = None
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        where = self.source
        object.__setattr__(self, "data", Path(self.data))
        if isinstance(self.trait, (list, tuple)):
            raise InputError(f"{len(self.trait)} traits given: the model commands fit one trait",
                             file=where, value=list(self.trait), expected=SUPPORTED,
                             remedy=_UNSUPPORTED_REMEDY)
        for name in ("trait", "weights", "animal"):
            v = getattr(self, name)
            if isinstance(v, int) and not isinstance(v, bool):
                object.__setattr__(self, name, str(v))  # a column number
        for name in ("factors", "covariates"):
            v = getattr(self, name)
            if isinstance(v, (str, int)):
                v = (v,)
            object.__setattr__(self, name, tuple(str(c) for c in v))
        for name in ("pedigree", "genotypes", "g_matrix"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, Path(v))
        if not self.trait:
            raise InputError("no trait column given", file=where,
                             remedy="set [data] trait = \"<column name>\"")
        if self.relationship not in RELATIONSHIPS:
            raise InputError("unknown relationship", file=where, value=self.relationship,
                             expected="A, G or H", remedy="set [animal] relationship")
        if self.animal is not None:
            if self.relationship in ("A", "H") and self.pedigree is None:
                raise InputError(f"relationship {self.relationship} needs a pedigree file",
                                 file=where, remedy="set [animal] pedigree = \"<file>\"")
            if self.relationship in ("G", "H") and self.genotypes is None \
                    and self.g_matrix is None:
                raise InputError(f"relationship {self.relationship} needs genotypes or G",
                                 file=where,
                                 remedy="set [animal] genotypes = \"<file>\" or g_matrix")
        if self.pe and self.animal is None:
            raise InputError("a permanent-environment effect needs the animal column",
                             file=where, remedy="add an [animal] section")
        for name in ("sigma_a2", "sigma_pe2", "sigma_e2"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise InputError(f"variance {name} must be positive", file=where, value=v,
                                 expected="a number > 0",
                                 remedy="give a positive variance or a starting value")
        if not 0.0 <= self.g_blend <= 1.0 or self.g_ridge < 0:
            raise InputError("g_blend must lie in [0, 1] and g_ridge be >= 0", file=where,
                             value=(self.g_blend, self.g_ridge))

    @property
    def has_animal(self) -> bool:
        return self.animal is not None

    def require_variances(self) -> None:
        """Raise unless every variance the model needs is given."""
        need = ["sigma_e2"] + (["sigma_a2"] if self.has_animal else []) \
            + (["sigma_pe2"] if self.pe else [])
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise InputError("variance components missing", file=self.source,
                             value=", ".join(missing),
                             remedy="give them under [variance] (or estimate them with reml)")

    def replace(self, **changes) -> "ModelSpec":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_toml(cls, path) -> "ModelSpec":
        """Read a configuration file (layout in the module docstring)."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                cfg = tomllib.load(fh)
        except FileNotFoundError:
            raise InputError("configuration file not found", file=path,
                             remedy="check the path") from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"not valid TOML: {exc}", file=path,
                             remedy="fix the syntax") from None
        known = {"data": {"file", "trait", "weights", "header", "missing"},
                 "fixed": {"intercept", "factors", "covariates"},
                 "animal": {"column", "relationship", "pedigree", "genotypes",
                            "genotypes_format", "g_matrix", "g_ridge", "g_blend", "pe",
                            "inbreeding", "groups", "groups_in_genomic"},
                 "variance": {"sigma_a2", "sigma_pe2", "sigma_e2"}}
        refuse_unsupported(cfg, path)
        for sec, body in cfg.items():
            if sec not in known or not isinstance(body, dict):
                raise InputError("unknown section", file=path, value=sec,
                                 expected=", ".join(f"[{k}]" for k in known))
            extra = set(body) - known[sec]
            if extra:
                raise InputError(f"unknown key in [{sec}]", file=path, value=sorted(extra)[0],
                                 expected=", ".join(sorted(known[sec])))
        base = path.parent

        def rel(p):
            return None if p is None else base / p

        data, fixed = cfg.get("data", {}), cfg.get("fixed", {})
        animal, var = cfg.get("animal", {}), cfg.get("variance", {})
        if "file" not in data:
            raise InputError("no data file given", file=path,
                             remedy="set [data] file = \"<records file>\"")
        header = data.get("header", "auto")
        if header not in (True, False, "auto"):
            raise InputError("[data] header must be true, false or \"auto\"", file=path,
                             value=header, expected="true, false or \"auto\"")
        return cls(
            data=base / data["file"], trait=data.get("trait", ""), weights=data.get("weights"),
            header=None if header == "auto" else header,
            missing=tuple(str(m) for m in data.get("missing", ())),
            genotypes_format=animal.get("genotypes_format"),
            factors=tuple(fixed.get("factors", ())), covariates=tuple(fixed.get("covariates", ())),
            intercept=bool(fixed.get("intercept", True)),
            animal=animal.get("column"), relationship=animal.get("relationship", "A"),
            pedigree=rel(animal.get("pedigree")), genotypes=rel(animal.get("genotypes")),
            g_matrix=rel(animal.get("g_matrix")), g_ridge=float(animal.get("g_ridge", 0.0)),
            g_blend=float(animal.get("g_blend", BLEND)), pe=bool(animal.get("pe", False)),
            inbreeding=bool(animal.get("inbreeding", True)),
            groups=tuple(animal["groups"]) if isinstance(animal.get("groups"), list)
            else animal.get("groups"),
            groups_in_genomic=bool(animal.get("groups_in_genomic", False)),
            sigma_a2=var.get("sigma_a2"), sigma_pe2=var.get("sigma_pe2"),
            sigma_e2=var.get("sigma_e2"), source=path)


def refuse_unsupported(cfg: dict, path: Path, trait_section: str = "data") -> None:
    """Several traits, a ``[random]`` section and maternal effects: errors saying what is
    supported (before the generic unknown-key checks, which would not). ``cfg`` is the
    parsed TOML; the trait is the key ``trait`` of ``[trait_section]``."""
    sec = cfg.get(trait_section)
    trait = sec.get("trait") if isinstance(sec, dict) else None
    if isinstance(trait, list):
        raise InputError(f"{len(trait)} traits given ([{trait_section}] trait is a list): the "
                         "model commands fit one trait", file=path, value=trait,
                         expected=SUPPORTED, remedy=_UNSUPPORTED_REMEDY)
    maternal = [f"[{sec}] {key}" for sec, body in cfg.items() if isinstance(body, dict)
                for key in body if "maternal" in str(key).lower()]
    if any("maternal" in str(sec).lower() for sec in cfg) or maternal:
        raise InputError("maternal effects are not supported", file=path,
                         value=maternal[0] if maternal else
                         next(f"[{s}]" for s in cfg if "maternal" in str(s).lower()),
                         expected=SUPPORTED, remedy=_UNSUPPORTED_REMEDY)
    if "random" in cfg:
        body = cfg["random"]
        raise InputError("a [random] section: random effects other than the animal (and its "
                         "permanent environment) are not supported", file=path,
                         value=", ".join(map(str, body)) if isinstance(body, dict) else body,
                         expected=SUPPORTED,
                         remedy="put the animal effect under [animal] (pe = true for repeated "
                                "records); " + _UNSUPPORTED_REMEDY)


def _is_number(text: str) -> bool:
    try:
        return np.isfinite(float(text))
    except ValueError:
        return False


def _has_header(spec: ModelSpec, first: list[str]) -> bool:
    """Whether the data file's first line (``first``, its fields) is a header: as
    ``spec.header`` says, else (auto) yes unless every column is given by number and the
    trait's field in that line is a number."""
    if spec.header is not None:
        return spec.header
    cols = [spec.trait, *spec.factors, *spec.covariates,
            *(c for c in (spec.weights, spec.animal) if c is not None)]
    if not all(c.isdigit() for c in cols):
        return True
    k = int(spec.trait) - 1
    return not (k < len(first) and _is_number(first[k]))


def read_data(spec: ModelSpec) -> pd.DataFrame:
    """The records of a model: the columns it uses, checked; rows with a missing trait dropped.

    Factor and animal columns are strings; trait, covariates and weights float64. A column
    ``line`` holds each row's 1-based line in the file. Columns are named as the spec names
    them: header names, or column numbers as strings ("9").
    """
    path = spec.data
    try:
        if str(path).lower().endswith((".csv", ".csv.gz")):
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, header=None)
        else:
            raw = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False, header=None)
    except FileNotFoundError:
        raise InputError("data file not found", file=path, remedy="check [data] file") from None
    except IsADirectoryError:
        raise InputError("the data file is a folder", file=path,
                         remedy="check [data] file") from None
    except pd.errors.EmptyDataError:
        raise InputError("the data file is empty", file=path,
                         remedy="check [data] file") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"the data file cannot be read as a table ({str(exc).strip()})",
                         file=path, expected="the same number of fields on every line",
                         remedy="fix the line named") from None
    wanted = [spec.trait, *spec.factors, *spec.covariates]
    wanted += [c for c in (spec.weights, spec.animal) if c is not None]
    first = [str(c).strip() for c in raw.iloc[0]] if len(raw) else []
    header = _has_header(spec, first)
    names = first if header else [str(k + 1) for k in range(raw.shape[1])]
    df = raw.iloc[1:] if header else raw
    df = df.reset_index(drop=True)
    df.columns = names
    df = df.loc[:, ~pd.Index(names).duplicated()]
    for col in dict.fromkeys(wanted):
        if col in df.columns:
            continue
        number = col.isdigit() and 1 <= int(col) <= raw.shape[1]
        if number:  # a column number in a file with a header line
            df[col] = raw.iloc[1 if header else 0:, int(col) - 1].to_numpy()
            continue
        looks_data = spec.header is None and all(_is_number(f) for f in first)
        if header and not looks_data:
            raise InputError("unknown column", file=path, value=col,
                             expected=f"a name of the header line ({', '.join(first[:12])}"
                                      f"{', …' if len(first) > 12 else ''}) or a column number "
                                      f"1-{raw.shape[1]}",
                             remedy="fix the column name in the configuration")
        raise InputError("unknown column: the data file has no header line (its first line is "
                         "data)", file=path, line=1, value=col,
                         expected=f"a column number 1-{raw.shape[1]}",
                         remedy=f"name the columns by number (1-based: trait = "
                                f"{min(raw.shape[1], 9)}), or add a header line to the file")
    df["line"] = np.arange(2 if header else 1, len(df) + (2 if header else 1))
    missing = missing_mask(df[spec.trait].str.strip(), ["", "NA", ".", *spec.missing])
    df = df.loc[~missing].reset_index(drop=True)
    if len(df) == 0:
        raise InputError("no records with a trait value", file=path, value=spec.trait)
    for col in [c for c in (*spec.factors, spec.animal) if c is not None]:
        df[col] = df[col].str.strip()
        empty = df[col].isin(["", "NA", "."]).to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise InputError(f"empty level of {col}", file=path, line=int(df.at[i, "line"]),
                             expected="a level code", remedy="fill it in or remove the record")
    for col in [c for c in (spec.trait, *spec.covariates, spec.weights) if c is not None]:
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(v)
        if col == spec.weights:
            bad |= ~(v > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{col} is not a valid number", file=path,
                             line=int(df.at[i, "line"]), value=df.at[i, col],
                             expected="a positive number" if col == spec.weights
                             else "a decimal number", remedy="fix or remove the record")
        df[col] = v
    return df
