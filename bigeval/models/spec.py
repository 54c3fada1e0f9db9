"""Model specification: what to fit, read from a TOML file or built in Python.

A configuration file (paths are relative to the file)::

    [data]
    file = "ex3_1_data.csv"      # CSV with a header, or whitespace-separated with a header
    trait = "wwg_kg"
    weights = "edc"              # optional residual weights: var(e_i) = sigma_e2 / w_i

    [fixed]
    intercept = false            # default true
    factors = ["sex"]            # cross-classified class effects
    covariates = []              # linear regressions

    [animal]                     # optional: no [animal] means a fixed-effects model
    column = "animal"
    relationship = "A"           # A (pedigree), G (genomic) or H (single step)
    pedigree = "ex3_1_pedigree.csv"
    genotypes = "genotypes.csv"  # CSV: animal, then one 0/1/2 column per SNP
    g_matrix = "g.csv"           # or a precomputed G: animal, then one column per animal
    g_ridge = 0.0                # G + ridge I before inversion
    g_blend = 0.05               # H only: G* = (1 - w) G + w A22, then tuned to A22
    pe = false                   # permanent-environment effect (repeated records)
    inbreeding = true            # A⁻¹ with inbreeding (false: as BLUPF90 without codes)

    [variance]
    sigma_a2 = 20.0
    sigma_pe2 = 12.0
    sigma_e2 = 40.0
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError

RELATIONSHIPS = ("A", "G", "H")


@dataclass(frozen=True)
class ModelSpec:
    """What to fit. Frozen; build one with :meth:`from_toml` or directly.

    Variances are the values used by ``solve`` and the starting values of ``reml``.
    """

    data: Path
    trait: str
    factors: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    intercept: bool = True
    weights: str | None = None
    animal: str | None = None
    relationship: str = "A"
    pedigree: Path | None = None
    genotypes: Path | None = None
    g_matrix: Path | None = None
    g_ridge: float = 0.0
    g_blend: float = 0.05
    pe: bool = False
    inbreeding: bool = True
    sigma_a2: float | None = None
    sigma_pe2: float | None = None
    sigma_e2: float | None = None
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        where = self.source
        object.__setattr__(self, "data", Path(self.data))
        for name in ("factors", "covariates"):
            v = getattr(self, name)
            if isinstance(v, str):
                v = (v,)
            object.__setattr__(self, name, tuple(v))
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
        known = {"data": {"file", "trait", "weights"},
                 "fixed": {"intercept", "factors", "covariates"},
                 "animal": {"column", "relationship", "pedigree", "genotypes", "g_matrix",
                            "g_ridge", "g_blend", "pe", "inbreeding"},
                 "variance": {"sigma_a2", "sigma_pe2", "sigma_e2"}}
        for sec, body in cfg.items():
            if sec not in known or not isinstance(body, dict):
                raise InputError("unknown section", file=path, value=sec,
                                 expected=", ".join(f"[{k}]" for k in known))
            extra = set(body) - known[sec]
            if extra:
                raise InputError(f"unknown key in [{sec}]", file=path, value=sorted(extra)[0],
                                 expected=", ".join(sorted(known[sec])))
        base = path.parent
        rel = (lambda p: None if p is None else base / p)
        data, fixed = cfg.get("data", {}), cfg.get("fixed", {})
        animal, var = cfg.get("animal", {}), cfg.get("variance", {})
        if "file" not in data:
            raise InputError("no data file given", file=path,
                             remedy="set [data] file = \"<records file>\"")
        return cls(
            data=base / data["file"], trait=data.get("trait", ""), weights=data.get("weights"),
            factors=tuple(fixed.get("factors", ())), covariates=tuple(fixed.get("covariates", ())),
            intercept=bool(fixed.get("intercept", True)),
            animal=animal.get("column"), relationship=animal.get("relationship", "A"),
            pedigree=rel(animal.get("pedigree")), genotypes=rel(animal.get("genotypes")),
            g_matrix=rel(animal.get("g_matrix")), g_ridge=float(animal.get("g_ridge", 0.0)),
            g_blend=float(animal.get("g_blend", 0.05)), pe=bool(animal.get("pe", False)),
            inbreeding=bool(animal.get("inbreeding", True)),
            sigma_a2=var.get("sigma_a2"), sigma_pe2=var.get("sigma_pe2"),
            sigma_e2=var.get("sigma_e2"), source=path)


def read_data(spec: ModelSpec) -> pd.DataFrame:
    """The records of a model: the columns it uses, checked; rows with a missing trait dropped.

    Factor and animal columns are strings; trait, covariates and weights float64. A column
    ``line`` holds each row's 1-based line in the file.
    """
    path = spec.data
    try:
        if str(path).lower().endswith((".csv", ".csv.gz")):
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_csv(path, sep=r"\s+", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError("data file not found", file=path, remedy="check [data] file") from None
    df.columns = [c.strip() for c in df.columns]
    df["line"] = np.arange(2, len(df) + 2)
    wanted = [spec.trait, *spec.factors, *spec.covariates]
    wanted += [c for c in (spec.weights, spec.animal) if c is not None]
    for col in wanted:
        if col not in df.columns:
            raise InputError("unknown column", file=path, value=col,
                             expected="one of " + ", ".join(map(str, df.columns[:-1])),
                             remedy="fix the column name in the configuration")
    missing = df[spec.trait].str.strip().isin(["", "NA", "."])
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
