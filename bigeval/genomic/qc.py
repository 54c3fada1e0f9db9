"""Quality control of genotypes: call rates, minor allele frequency, duplicated animals,
parent–progeny conflicts.

Works on the dask array of a genotype store (:func:`bigeval.io.genotypes.open_genotypes`) in
blocks; each step is one named ``dask.compute`` over the genotypes kept so far, in the order
preGSf90 uses: SNP call rate, animal call rate, MAF and monomorphic SNPs (on the kept animals),
then duplicated genotypes (near-identical animals, on the kept SNPs).

Duplicates are found blockwise like G (:mod:`bigeval.genomic.grm`): for each pair of animal blocks
(upper triangle only) and each SNP block, the GEMMs of the genotype indicators
``sum_g [M_i = g] [M_j = g]'`` count the concordant calls and ``O_i O_j'`` the SNPs called in
both; only the pairs above the threshold leave the task, so no n x n matrix is ever held.

Parent–progeny conflicts (:func:`parent_progeny_conflicts`, as preGSf90 and seekparentf90
check them): a genotyped animal and its recorded genotyped sire or dam are homozygous for
different alleles (0 and 2) at a SNP that Mendelian inheritance cannot explain; a pair whose
share of such SNPs exceeds ``max_conflict_rate`` is reported (a wrong parent or a sample
mix-up), not removed: which record is wrong is for the user to find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bigeval.errors import InputError

__all__ = ["QCOptions", "QCResult", "qc", "parent_progeny_conflicts", "describe"]

REPORT_COLUMNS = ["kind", "id", "reason", "value", "threshold"]


@dataclass(frozen=True)
class QCOptions:
    """Thresholds of genotype QC (preGSf90's defaults). A threshold of 0 switches a check off.

    Attributes
    ----------
    min_call_rate_snp, min_call_rate_animal
        Smallest fraction of called genotypes to keep a SNP / an animal.
    min_maf
        Smallest minor allele frequency to keep a SNP.
    remove_monomorphic
        Remove SNPs with one allele only (MAF 0), whatever ``min_maf``.
    max_concordance
        Animals whose genotypes agree at more than this fraction of the SNPs called in both
        are duplicates; the later one (in row order) is removed. 0 or 1 switches it off.
    min_common_snps
        Pairs with fewer SNPs called in both are not compared.
    max_conflict_rate
        A genotyped animal and a genotyped parent with opposing homozygotes at more than
        this fraction of the SNPs called in both are reported (0 switches it off).
    """

    min_call_rate_snp: float = 0.90
    min_call_rate_animal: float = 0.90
    min_maf: float = 0.05
    remove_monomorphic: bool = True
    max_concordance: float = 0.99
    min_common_snps: int = 100
    max_conflict_rate: float = 0.01

    def __post_init__(self):
        for name in ("min_call_rate_snp", "min_call_rate_animal", "min_maf", "max_concordance",
                     "max_conflict_rate"):
            v = getattr(self, name)
            hi = 0.5 if name == "min_maf" else 1.0
            if not 0.0 <= v <= hi:
                raise InputError(f"QC threshold {name} is outside [0, {hi:g}]", value=v,
                                 expected=f"0 <= {name} <= {hi:g}", remedy="give a fraction")


@dataclass(frozen=True)
class QCResult:
    """What QC kept and why the rest was removed.

    Attributes
    ----------
    animals, snps
        Row and column positions (sorted int64) of the kept animals and SNPs.
    report
        One row per removed animal or SNP: ``kind`` ("animal"/"snp"), ``id``, ``reason``
        (``snp_call_rate``, ``animal_call_rate``, ``monomorphic``, ``maf``, ``duplicate``),
        ``value`` (the statistic, or the concordance for duplicates) and ``threshold``
        (for duplicates the ID of the animal kept).
    """

    animals: np.ndarray
    snps: np.ndarray
    report: pd.DataFrame


def _rows(kind, ids, reason, values, threshold):
    return pd.DataFrame({"kind": kind, "id": np.asarray(ids, dtype=object), "reason": reason,
                         "value": np.asarray(values, dtype=np.float64),
                         "threshold": [threshold] * len(ids)}, columns=REPORT_COLUMNS)


def _concordance_block(acc, Mi, Mj, same):
    """Add (concordant calls, calls in both) of one SNP block to ``acc`` (float64 pair)."""
    oi = (Mi >= 0).astype(np.float32)
    oj = oi if same else (Mj >= 0).astype(np.float32)
    both = oi @ oj.T
    equal = np.zeros_like(both)
    for g in (0, 1, 2):  # exact: integer counts below 2^24 per SNP block
        ig = (Mi == g).astype(np.float32)
        equal += ig @ (ig if same else (Mj == g).astype(np.float32)).T
    if acc is None:
        return equal.astype(np.float64), both.astype(np.float64)
    return acc[0] + equal, acc[1] + both


def _pairs_above(acc, r0, c0, same, threshold, min_common):
    """(row, col, concordance) of the pairs of one block above the threshold (row < col)."""
    equal, both = acc
    with np.errstate(invalid="ignore", divide="ignore"):
        conc = np.where(both >= max(min_common, 1), equal / both, 0.0)
    if same:
        conc = np.triu(conc, 1)
    i, j = np.nonzero(conc > threshold)
    return np.column_stack([i + r0, j + c0, conc[i, j]])


def _duplicates(X, threshold, min_common):
    import dask
    from dask import delayed

    parts = X.to_delayed()
    edges = np.concatenate([[0], np.cumsum(X.chunks[0])])
    nb, kb = X.numblocks
    tasks = []
    for i in range(nb):
        for j in range(i, nb):
            acc = None
            for k in range(kb):
                acc = delayed(_concordance_block, pure=True)(acc, parts[i, k], parts[j, k],
                                                             i == j)
            tasks.append(delayed(_pairs_above, pure=True)(acc, edges[i], edges[j], i == j,
                                                          threshold, min_common))
    found = dask.compute(*tasks)  # stage boundary: the duplicate pairs
    found = np.concatenate([np.empty((0, 3)), *found])
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def qc(genotypes, sample_ids, snp_ids, options: QCOptions = QCOptions(), *,
       chunks=None) -> QCResult:
    """Genotype QC: call rates, MAF, monomorphic SNPs and duplicated animals.

    Parameters
    ----------
    genotypes
        dask or numpy integer array, animals by SNPs, 0/1/2 and -1 for missing.
    sample_ids, snp_ids
        IDs of the rows and of the columns, for the report.
    options
        The thresholds.
    chunks
        Rechunk to (animals, SNPs) first; by default the array's chunks.

    Returns
    -------
    QCResult
        Kept animal and SNP positions and the report of what was removed and why.

    Raises
    ------
    InputError
        No SNP or no animal is left after QC (with the counts removed by each check).

    Examples
    --------
    >>> M = np.array([[0, 1, 2], [2, 1, 2], [1, -1, 2]], np.int8)
    >>> r = qc(M, ["a", "b", "c"], ["s1", "s2", "s3"],
    ...        QCOptions(min_call_rate_snp=0.5, min_call_rate_animal=0.5, min_maf=0.0))
    >>> r.snps.tolist(), r.report[["id", "reason"]].values.tolist()
    ([0, 1], [['s3', 'monomorphic']])
    """
    import dask
    import dask.array as da

    X = genotypes if isinstance(genotypes, da.Array) else da.from_array(
        np.asarray(genotypes), chunks=chunks or (4096, 8192))
    if chunks is not None:
        X = X.rechunk(chunks)
    sample_ids = np.asarray(sample_ids, dtype=object)
    snp_ids = np.asarray(snp_ids, dtype=object)
    if X.ndim != 2 or X.shape != (len(sample_ids), len(snp_ids)):
        raise InputError("genotypes must be animals by SNPs with one ID per row and column",
                         value=f"shape {X.shape}, {len(sample_ids)} and {len(snp_ids)} IDs",
                         expected="matching sizes", remedy="pass the IDs of the store")
    report = []
    animals = np.arange(X.shape[0])
    snps = np.arange(X.shape[1])

    # 1. SNP call rate over all animals (and, in the same pass, codes that are no count)
    called, bad = dask.compute((X >= 0).sum(axis=0), ((X > 2) | (X < -1)).sum(axis=0))
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise InputError(f"SNP column {j + 1} ({snp_ids[j]}) holds genotypes that are not "
                         f"0/1/2 counts or missing ({int(bad.sum()):,} such genotypes)",
                         value=j + 1, expected="0, 1, 2, or -1 for missing",
                         remedy="import the genotypes again with `bigeval genotypes import`, "
                                "which checks the codes")
    rate = called / max(X.shape[0], 1)
    drop = rate < options.min_call_rate_snp
    report.append(_rows("snp", snp_ids[drop], "snp_call_rate", rate[drop],
                        options.min_call_rate_snp))
    snps = snps[~drop]
    _check_left(snps, animals, report)

    # 2. animal call rate over the kept SNPs
    Xs = X[:, snps]
    (called,) = dask.compute((Xs >= 0).sum(axis=1))
    rate = called / len(snps)
    drop = rate < options.min_call_rate_animal
    report.append(_rows("animal", sample_ids[drop], "animal_call_rate", rate[drop],
                        options.min_call_rate_animal))
    animals = animals[~drop]
    _check_left(snps, animals, report)

    # 3. MAF and monomorphic SNPs over the kept animals
    Xa = Xs[animals]
    obs = Xa >= 0
    counts, called = dask.compute(da.where(obs, Xa, 0).sum(axis=0, dtype=np.int64),
                                  obs.sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / (2.0 * called)
    maf = np.minimum(p, 1.0 - p)
    mono = (maf == 0) | (called == 0)
    if not options.remove_monomorphic:
        mono[:] = False
    low = ~mono & (maf < options.min_maf)
    report.append(_rows("snp", snp_ids[snps[mono]], "monomorphic", np.nan_to_num(maf[mono]), 0.0))
    report.append(_rows("snp", snp_ids[snps[low]], "maf", maf[low], options.min_maf))
    snps = snps[~(mono | low)]
    _check_left(snps, animals, report)

    # 4. duplicated genotypes among the kept animals, on the kept SNPs
    if 0.0 < options.max_concordance < 1.0 and len(animals) > 1:
        Xd = X[animals][:, snps]
        pairs = _duplicates(Xd, options.max_concordance, options.min_common_snps)
        removed = np.zeros(len(animals), bool)
        rows = []
        for a, b, conc in pairs:
            a, b = int(a), int(b)
            if removed[a] or removed[b]:
                continue
            removed[b] = True
            rows.append((sample_ids[animals[b]], conc, sample_ids[animals[a]]))
        if rows:
            ids, conc, kept = zip(*rows)
            frame = _rows("animal", list(ids), "duplicate", list(conc), None)
            frame["threshold"] = [f"> {options.max_concordance:g}, duplicate of {k}"
                                  for k in kept]
            report.append(frame)
        animals = animals[~removed]
    report = pd.concat([r for r in report if len(r)] or [_rows("snp", [], "", [], 0.0)],
                       ignore_index=True)
    return QCResult(animals=animals.astype(np.int64), snps=snps.astype(np.int64), report=report)


def _check_left(snps, animals, report):
    if len(snps) and len(animals):
        return
    counts = pd.concat([r for r in report if len(r)] or [_rows("snp", [], "", [], 0.0)]
                       )["reason"].value_counts().to_dict()
    what = "SNP" if not len(snps) else "animal"
    raise InputError(f"no {what} is left after QC (removed: {counts})",
                     value=counts, expected=f"at least one {what} passing the thresholds",
                     remedy="check the genotype coding and the file, or relax the QC "
                            "thresholds (QCOptions)")


def parent_progeny_conflicts(genotypes, sample_ids, sire_ids, dam_ids, *,
                             max_rate: float = QCOptions.max_conflict_rate,
                             min_common: int = QCOptions.min_common_snps) -> pd.DataFrame:
    """Genotyped animals whose genotyped sire or dam they cannot descend from.

    Parameters
    ----------
    genotypes
        dask or numpy array, animals by SNPs, 0/1/2 and -1 for missing.
    sample_ids
        IDs of the rows.
    sire_ids, dam_ids
        The recorded sire and dam of each row ("" or None when unknown); parents that have
        no row are not checked.
    max_rate, min_common
        A pair is reported when more than ``max_rate`` of the SNPs called in both (at least
        ``min_common`` of them) are opposing homozygotes.

    Returns
    -------
    pandas.DataFrame
        QC report rows (:data:`REPORT_COLUMNS`): kind ``pair``, the animal's ID, reason
        ``parent_progeny_conflict``, the share of opposing homozygotes, and in ``threshold``
        the limit and the parent (``"> 0.01, sire S1"``).

    Examples
    --------
    >>> M = np.array([[0, 2, 1], [2, 0, 1], [0, 1, 1]], np.int8)
    >>> r = parent_progeny_conflicts(M, ["s", "a", "b"], ["", "s", "s"], ["", "", ""],
    ...                              min_common=3)
    >>> r[["id", "value", "threshold"]].values.tolist()
    [['a', 0.6666666666666666, '> 0.01, sire s']]
    """
    import dask
    import dask.array as da

    X = genotypes if isinstance(genotypes, da.Array) else da.from_array(np.asarray(genotypes))
    ids = pd.Index(np.asarray(sample_ids).astype(str))
    child, parent, role = [], [], []
    for name, parents in (("sire", sire_ids), ("dam", dam_ids)):
        p = np.array(["" if v is None else str(v) for v in parents], dtype=object)
        rows = ids.get_indexer(p)
        ok = np.flatnonzero((rows >= 0) & (p != ""))
        child.append(ok)
        parent.append(rows[ok])
        role += [name] * ok.size
    child, parent = np.concatenate(child), np.concatenate(parent)
    if not child.size or max_rate <= 0:
        return _rows("pair", [], "parent_progeny_conflict", [], max_rate)
    a, b = X[child], X[parent]
    opposing = ((a == 0) & (b == 2)) | ((a == 2) & (b == 0))
    common = (a >= 0) & (b >= 0)
    n_opp, n_common = dask.compute(opposing.sum(axis=1), common.sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = n_opp / n_common
    bad = np.flatnonzero((n_common >= min_common) & (rate > max_rate))
    frame = _rows("pair", ids[child[bad]].tolist(), "parent_progeny_conflict",
                  rate[bad].tolist(), None)
    frame["threshold"] = [f"> {max_rate:g}, {role[t]} {ids[parent[t]]}" for t in bad]
    return frame


def describe(report: pd.DataFrame) -> str:
    """One line: what QC removed and why, and the parent–progeny conflicts it found."""
    removed = report[report["kind"] != "pair"]
    text = "QC removed nothing" if not len(removed) else "QC removed " + ", ".join(
        f"{n:,} {k}{'s' if n > 1 else ''} ({r})"
        for (k, r), n in removed.groupby(["kind", "reason"]).size().items())
    pairs = int((report["kind"] == "pair").sum())
    if pairs:
        text += (f"; {pairs:,} parent-progeny pair{'s' if pairs > 1 else ''} in conflict "
                 "(opposing homozygotes; kept, listed in the QC report: check the parent or "
                 "the sample)")
    return text
