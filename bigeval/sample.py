"""``bigeval sample``: a laptop-size subset of national inputs, as a ready-to-run config.

A sample is drawn by herd, so that contemporary groups stay whole:

1. herds are drawn at random (seeded) among the herds of the records: the herd of a record
   is the match of ``herd_pattern`` in its contemporary-group code (by default the whole
   code, i.e. groups are drawn), and every record of a drawn herd is kept;
2. the animals with those records and **every ancestor** of theirs are kept, so the sample's
   pedigree is complete (no animal loses a known parent);
3. the genotyped animals among the kept animals keep their genotypes (rows of the Zarr store)
   or their rows and columns of a ready G; Interbull bulls among them keep their values;
4. the kept lines of every text input are written as they are (same IDs, same columns,
   same layout), and a ``config.toml`` that names the new files and keeps every parameter of
   the national configuration.

The same configuration and seed give the same files, byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval.errors import InputError
from bigeval.io import read_genotyped, read_interbull, read_pedigree, read_records
from bigeval.io.writers import atomic_path, claim_output, refuse_overwriting_inputs

__all__ = ["SampleResult", "draw_sample", "herd_of", "ancestors"]


@dataclass(frozen=True)
class SampleResult:
    """Where the sample's config is, what it holds, and a text summary."""

    config: Path
    counts: dict
    text: str


def herd_of(cg: np.ndarray, pattern: str | None, *, path=None, lines=None) -> np.ndarray:
    """The herd of each contemporary-group code: the match of ``pattern`` (whole code if None).

    Examples
    --------
    >>> herd_of(np.array(["H0012Y2019S2", "H0012Y2020S1", "H7Y2019S1"]), "^[^Y]+").tolist()
    ['H0012', 'H0012', 'H7']
    """
    cg = np.asarray(cg, dtype=object)
    if pattern is None:
        return cg.astype(str)
    rx = re.compile(pattern)
    uniq, inv = np.unique(cg.astype(str), return_inverse=True)
    herds = []
    for k, code in enumerate(uniq):
        m = rx.search(code)
        if m is None or not m.group(0):
            i = int(np.flatnonzero(inv == k)[0])
            raise InputError("the herd pattern does not match a contemporary group", file=path,
                             line=None if lines is None else int(lines[i]), value=code,
                             expected=f"a match of {pattern!r} in every cg code",
                             remedy="fix [sample] herd_pattern (--herd-pattern)")
        herds.append(m.group(0))
    return np.asarray(herds, dtype=object)[inv].astype(str)


def ancestors(keep: np.ndarray, sire: np.ndarray, dam: np.ndarray) -> np.ndarray:
    """``keep`` (boolean, per animal) extended by every ancestor (parents as row numbers,
    -1 unknown); one vectorised pass per generation.

    Examples
    --------
    >>> ancestors(np.array([False, False, False, True]), np.array([-1, -1, 0, 2]),
    ...           np.array([-1, -1, 1, -1])).tolist()
    [True, True, True, True]
    """
    keep = np.array(keep, dtype=bool)
    frontier = np.flatnonzero(keep)
    while frontier.size:
        parents = np.concatenate([sire[frontier], dam[frontier]])
        parents = np.unique(parents[parents >= 0])
        frontier = parents[~keep[parents]]
        keep[frontier] = True
    return keep


def _copy_lines(src: Path, dst: Path, keep_lines: np.ndarray, header: bool) -> int:
    """Copy the lines whose 1-based numbers are set in ``keep_lines`` (and a header line)."""
    import gzip

    opener = gzip.open if src.suffix == ".gz" else open
    n = 0
    with atomic_path(dst) as tmp:
        with opener(src, "rb") as fin, opener(tmp, "wb") as fout:
            for i, line in enumerate(fin, 1):
                if (header and i == 1) or (i < len(keep_lines) and keep_lines[i]):
                    fout.write(line if line.endswith(b"\n") else line + b"\n")
                    n += 0 if header and i == 1 else 1
    return n


def _line_mask(lines: np.ndarray, keep: np.ndarray) -> np.ndarray:
    mask = np.zeros(int(lines.max(initial=0)) + 2, dtype=bool)
    mask[lines[keep]] = True
    return mask


def _is_csv(path: Path) -> bool:
    from bigeval.io.readers import is_csv

    return is_csv(path)


def draw_sample(cfg, out: str | os.PathLike, *, herds: int | None = None,
                fraction: float | None = None, seed: int | None = None,
                herd_pattern: str | None = None) -> SampleResult:
    """Draw a sample of the inputs of run configuration ``cfg`` into ``out``.

    ``herds``/``fraction``/``seed``/``herd_pattern`` default to the configuration's
    ``[sample]`` keys (``herds`` there wins over ``fraction`` unless ``fraction`` is given
    here). Returns the path of the sample's ``config.toml``.
    """
    from bigeval.pipeline.config import dump_config
    from bigeval.pipeline.inputs import is_zarr_store

    if fraction is None and herds is None:
        herds = cfg["sample.herds"]
    fraction = cfg["sample.fraction"] if fraction is None else fraction
    seed = cfg["sample.seed"] if seed is None else seed
    pattern = herd_pattern if herd_pattern is not None else cfg["sample.herd_pattern"]
    if cfg["inputs.ginv"] is not None:
        raise InputError("a sample cannot be drawn from G⁻¹ triplets: the inverse of a subset "
                         "is not a subset of the inverse", file=cfg["inputs.ginv"],
                         remedy="give the run the genotypes (or G) instead of G⁻¹ and A22⁻¹")
    if herds is not None and herds < 1 or not 0 < fraction <= 1:
        raise InputError("the sample size must be positive", value=herds or fraction,
                         expected="--herds N >= 1 or --fraction in (0, 1]")
    refuse_overwriting_inputs(cfg.input_paths, folders=[out])
    out = claim_output(out)
    ped_path, rec_path = Path(cfg["inputs.pedigree"]), Path(cfg["inputs.records"])

    # 1. herds and their records
    columns = cfg.record_columns()  # the records' column map (the group may be joined)
    rec = read_records(rec_path) if columns is None else columns.read(rec_path)
    herd = herd_of(rec["cg"].to_numpy(), pattern, path=rec_path, lines=rec["line"].to_numpy())
    all_herds = np.unique(herd)
    k = herds if herds is not None else max(1, int(round(fraction * len(all_herds))))
    if k > len(all_herds):
        raise InputError(f"cannot draw {k:,} herds: the records have {len(all_herds):,}",
                         file=rec_path, value=k, expected=f"at most {len(all_herds):,}",
                         remedy="draw fewer herds, or check [sample] herd_pattern")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(all_herds, size=k, replace=False))
    rec_keep = np.isin(herd, chosen)

    # 2. animals with those records and all their ancestors
    ped = read_pedigree(ped_path)
    first = ~ped["animal"].duplicated(keep="first").to_numpy()
    index = pd.Index(ped["animal"].to_numpy()[first])
    sire = index.get_indexer(ped["sire"].to_numpy()[first])
    dam = index.get_indexer(ped["dam"].to_numpy()[first])
    keep = np.zeros(len(index), dtype=bool)
    pos = index.get_indexer(np.unique(rec["animal"].to_numpy()[rec_keep]))
    keep[pos[pos >= 0]] = True  # records of animals without a row: prepare reports them
    keep = ancestors(keep, sire, dam)
    kept_ids = set(index[keep])
    ped_keep = ped["animal"].isin(kept_ids).to_numpy()

    names = {}
    used = {"config.toml", "results"}

    def unique(key: str, name: str) -> str:
        """The input's file name in the sample, another input's name prefixed by its key
        (two inputs named data.txt in different folders must not overwrite each other)."""
        candidate, k = name, 1
        while candidate in used:
            candidate = f"{key}-{name}" if k == 1 else f"{key}{k}-{name}"
            k += 1
        used.add(candidate)
        names[key] = candidate
        return candidate

    def target(key: str) -> Path:
        return out / unique(key, Path(cfg[f"inputs.{key}"]).name)

    counts = {"herds": int(k), "herds_total": int(len(all_herds)), "seed": int(seed),
              "animals": int(keep.sum()), "animals_total": int(len(index)),
              "records": int(rec_keep.sum()), "records_total": int(len(rec))}
    _copy_lines(ped_path, target("pedigree"), _line_mask(ped["line"].to_numpy(), ped_keep),
                _is_csv(ped_path))
    _copy_lines(rec_path, target("records"), _line_mask(rec["line"].to_numpy(), rec_keep),
                _is_csv(rec_path))
    if cfg["inputs.interbull"] is not None:
        ib = read_interbull(cfg["inputs.interbull"])
        ib_keep = ib["animal"].isin(kept_ids).to_numpy()
        counts["interbull"] = int(ib_keep.sum())
        _copy_lines(Path(cfg["inputs.interbull"]), target("interbull"),
                    _line_mask(ib["line"].to_numpy(), ib_keep), _is_csv(cfg["inputs.interbull"]))
    if cfg["inputs.genotyped"] is not None:
        gl = read_genotyped(cfg["inputs.genotyped"])
        gl_keep = gl["animal"].isin(kept_ids).to_numpy()
        _copy_lines(Path(cfg["inputs.genotyped"]), target("genotyped"),
                    _line_mask(gl["line"].to_numpy(), gl_keep), _is_csv(cfg["inputs.genotyped"]))

    # 3. genotypes (rows of the store) or G (rows and columns)
    if cfg["inputs.genotypes"] is not None:
        src = Path(cfg["inputs.genotypes"])
        if is_zarr_store(src):
            counts["genotyped"] = _sample_store(src, out / unique("genotypes", src.name),
                                                kept_ids)
        else:
            from bigeval.io.genotypes import import_genotypes

            with tempfile.TemporaryDirectory(dir=out, prefix=".import.") as tmp:
                store = import_genotypes(src, Path(tmp) / "g.zarr",
                                         fmt=cfg["inputs.genotypes_format"])
                name = unique("genotypes", src.name.split(".")[0] + ".zarr")
                counts["genotyped"] = _sample_store(store, out / name, kept_ids)
            names["genotypes_format"] = None
    if cfg["inputs.grm"] is not None:
        src = Path(cfg["inputs.grm"])
        counts["genotyped"] = _sample_grm(src, out / unique("grm", src.name), kept_ids)

    # 4. the ready-to-run config
    raw = cfg.to_dict()
    for key, name in names.items():
        if name is None:
            raw["inputs"].pop(key, None)
        else:
            raw["inputs"][key] = name
    raw["output"] = {k: v for k, v in raw.get("output", {}).items() if k != "folder"}
    raw["output"]["folder"] = "results"
    raw["cluster"] = {"scheduler": "threads"}
    raw.pop("sample", None)
    header = (f"# a sample of {cfg.source.name if cfg.source else 'a configuration'}: "
              f"{k:,} of {len(all_herds):,} herds (seed {seed}), {counts['animals']:,} "
              f"animals with their ancestors, {counts['records']:,} records\n"
              f"# written by `bigeval sample`; run it with `bigeval run config.toml`")
    from bigeval.io.writers import write_text_atomic

    config = write_text_atomic(dump_config(raw, header=header), out / "config.toml")
    text = (f"sample: {k:,} of {len(all_herds):,} herds (seed {seed}); "
            f"{counts['animals']:,} of {counts['animals_total']:,} animals, "
            f"{counts['records']:,} of {counts['records_total']:,} records"
            + (f", {counts['genotyped']:,} genotyped" if "genotyped" in counts else "")
            + (f", {counts['interbull']:,} Interbull bulls" if "interbull" in counts else "")
            + f"\nready to run: bigeval run {config}")
    return SampleResult(config=config, counts=counts, text=text)


def _sample_store(src: Path, dst: Path, kept_ids: set) -> int:
    """Rows of a genotype store whose animals are kept, in the store's order."""
    from bigeval.io.genotypes import open_genotypes, write_genotypes

    X, ids, snps = open_genotypes(src)
    rows = np.flatnonzero(np.isin(ids, np.array(sorted(kept_ids), dtype=str)))
    if not len(rows):
        if dst.exists():
            shutil.rmtree(dst)
        raise InputError("no genotyped animal is in the sample", file=src,
                         remedy="draw more herds (--herds) so that genotyped animals or their "
                                "relatives are included")
    chunk_rows = min(int(X.chunksize[0]), len(rows))

    def blocks():
        for r0 in range(0, len(rows), chunk_rows):
            sel = rows[r0:r0 + chunk_rows]
            yield ids[sel].tolist(), np.asarray(X[sel].compute())  # one block per chunk row

    write_genotypes(blocks(), dst, snp_ids=snps, chunks=(chunk_rows, int(X.chunksize[1])))
    return len(rows)


def _sample_grm(src: Path, dst: Path, kept_ids: set) -> int:
    """Rows and columns of a ready G (HDF5 or Zarr from `bigeval grm`) of the kept animals."""
    from bigeval.genomic.grm import write_grm

    if src.suffix.lower() == ".zarr":
        import zarr

        group = zarr.open_group(src, mode="r")
        ids = np.array(group["ids"][:].tolist(), dtype=str)
        idx = np.flatnonzero(np.isin(ids, np.array(sorted(kept_ids), dtype=str)))
        sub = group["G"].get_orthogonal_selection((idx, idx))
    else:
        import h5py

        with h5py.File(src, "r") as f:
            ids = f["ids"].asstr()[:].astype(str)
            idx = np.flatnonzero(np.isin(ids, np.array(sorted(kept_ids), dtype=str)))
            sub = np.empty((len(idx), len(idx)))
            for r0 in range(0, len(idx), 256):
                sub[r0:r0 + 256] = f["G"][idx[r0:r0 + 256], :][:, idx]
    if not len(idx):
        raise InputError("no genotyped animal is in the sample", file=src,
                         remedy="draw more herds (--herds)")
    write_grm(sub, ids[idx], dst, name="G")
    return len(idx)
