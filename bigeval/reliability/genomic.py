"""Part II: genomic reliabilities of the genotyped animals, by one of two methods.

``erc-gblup`` (the default) — GBLUP on the genotyped animals' own-data ERC, combined with the
Part I values in terms of ERC (after Misztal et al. 2013's own-information weights, Bermann,
Lourenco & Misztal 2022 and Gao et al. 2023):

1. **Own-data ERC** ``w`` of each genotyped animal (:func:`own_data_erc`): its Part I ERC less
   what its families bring from *other genotyped* animals (those relatives enter through G
   in the next step; counting them in ``w`` too would count them twice). Information from
   records, Interbull and non-genotyped relatives stays.
2. Two GBLUPs of the genotyped animals on those weights: ``Q_G = (W + αG⁻¹)⁻¹`` and its
   pedigree twin ``Q_A = (W + αA22⁻¹)⁻¹`` (W = diag(w)). Both matrices are positive definite
   by construction (W ≥ 0, G⁻¹ and A22⁻¹ positive definite), inverted by Cholesky.
3. The genomic ERC ``e_i = d_i + (1/Q_G,ii − α) − (1/Q_A,ii − α)``: the Part I ERC plus what
   genomic relationships among the genotyped animals add beyond the pedigree ones. Where G
   and A22 agree, e = d exactly, whatever the errors of the diagonal weights. The genomic
   reliability is ``e/(e + α)`` and Part III holds the genotyped animals at ``e``.

Why not the certified formula: ``Q = [D + (I + G⁻¹ − A22⁻¹)α]⁻¹`` with D the Part I ERC
counts the pedigree information among genotyped animals twice (in D and in αA22⁻¹'s
subtraction) and is not positive definite in general; measured on simulated populations it
gives values above 1 and young genotyped animals below their pedigree reliability (see the
README's "Genomic reliabilities").

``certified`` — the SAS Part II of the certified methodology exactly
(:func:`bigeval.reliability.engine.genomic_reliability`), guarded: a matrix that is not
positive definite, a value outside [0, 1) or a genomic value below the animal's Part I value
stops the run with :class:`GenomicReliabilityError` naming the animals; nothing is clipped.

Reliability here, as in the exact check, is ``1 − PEV/σa²`` (the method spec). An animal whose
genomic prior variance exceeds σa² (G*_ii > 1) and which has almost no information has an
exact value of that kind below 0; ``erc-gblup`` then gives an ERC below 0 too. Such animals are
published at 0 with a warning and listed in :attr:`GenomicResult.flags` (never silently).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval._resources import check_dense
from bigeval.errors import BigevalWarning, InputError, opt
from bigeval.io.writers import atomic_files
from bigeval.linalg import spd_inverse_diag
from bigeval.reliability import kernel

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "GenomicReliabilityError",
    "GenomicResult",
    "certified",
    "erc_gblup",
    "flags_frame",
    "genomic_part",
    "own_data_erc",
]

#: the Part II methods (``--genomic-method``, config ``parameters.genomic_method``)
METHODS = ("erc-gblup", "certified")
#: the default method
DEFAULT_METHOD = "erc-gblup"
#: file a run publishes with its results listing the genotyped animals a check flagged
FLAGS_FILE = "genomic_flags.csv"
#: the same list when the certified method stopped a run (no results: the earlier run's, if
#: any, stay as they were beside it; removed by the next run that publishes)
STOPPED_FLAGS_FILE = "genomic_flags.stopped.csv"
#: a genomic value this much below the Part I value counts as below it (rounding)
_BELOW_TOL = 1e-9


class GenomicReliabilityError(InputError):
    """The certified Part II cannot give publishable values; :attr:`flags` lists the animals."""

    def __init__(self, message: str, *, flags: pd.DataFrame, **kw):
        super().__init__(message, **kw)
        self.flags = flags


@dataclass(frozen=True)
class GenomicResult:
    """Part II's outcome for the genotyped animals (in the order of ``genotyped``).

    Attributes
    ----------
    method
        ``erc-gblup`` or ``certified``.
    rel
        Genomic reliability, each in [0, 1).
    erc
        Genomic ERC ``α r²/(1 − r²)`` (≥ 0): what Part III holds the animals at.
    flags
        One row per flagged genotyped animal: ``index`` (position in ``genotyped``),
        ``rel_pedigree``, ``value`` (the method's raw reliability), ``reason``.
    notes
        Plain-words lines for the summary (what was flagged and why).
    """

    method: str
    rel: np.ndarray
    erc: np.ndarray
    flags: pd.DataFrame = field(repr=False)
    notes: tuple[str, ...] = ()


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError("unknown genomic method", value=method,
                         expected=" or ".join(METHODS),
                         remedy=f"give {opt('parameters.genomic_method')} erc-gblup (default) or "
                                "certified")
    return method


def _family_contributions(ba, bs, bd, own, alpha):
    n = len(ba)
    ra, rs, rd = np.empty(n), np.empty(n), np.empty(n)
    kernel.family_solve(np.ascontiguousarray(ba, np.float64), np.ascontiguousarray(bs, np.float64),
                        np.ascontiguousarray(bd, np.float64), np.ascontiguousarray(own, np.uint8),
                        float(alpha), ra, rs, rd)
    return ra, rs, rd


def own_data_erc(d: np.ndarray, d0: np.ndarray, sire, dam, genotyped, alpha: float,
                 own: np.ndarray | None = None) -> np.ndarray:
    """ERC of the genotyped animals without what other genotyped animals bring them.

    From the Part I solution ``d``: ``w_i = d⁰_i + Σ_f r_f,i`` over the families f (animal,
    sire, dam) that i belongs to, each solved with the *other* genotyped members taken out
    (b = 0, as unknown parents); a genotyped parent gets nothing from the family of a
    genotyped progeny (the progeny's information reaches it through G). A family with no
    other genotyped member gives what it gives in Part I, so at Part I's solution w = d less
    the genotyped routes. One pass of the family solve over the families of genotyped
    animals: no iteration, any engine.

    Parameters
    ----------
    d, d0
        Part I ERC and start vector (length N).
    sire, dam
        Parents (-1 unknown), length N.
    genotyped
        Internal numbers of the genotyped animals.
    alpha
        σe²/σa².
    own
        :func:`bigeval.reliability.kernel.informative` of ``d0`` (computed when None).

    Returns
    -------
    numpy.ndarray
        float64, one per genotyped animal, ≥ 0.
    """
    d = np.asarray(d, np.float64)
    sire = np.asarray(sire)
    dam = np.asarray(dam)
    genotyped = np.asarray(genotyped)
    n = len(d)
    isg = np.zeros(n, bool)
    isg[genotyped] = True
    if own is None:
        own = kernel.informative(d0, sire, dam)
    hs, hd = sire >= 0, dam >= 0
    gs = np.zeros(n, bool)
    gs[hs] = isg[sire[hs]]
    gd = np.zeros(n, bool)
    gd[hd] = isg[dam[hd]]
    # every family with a genotyped member: its contribution to that member with the other
    # genotyped members taken out (a no-op where there are none)
    fam = np.flatnonzero(isg | gs | gd)
    w = np.array(d0, dtype=np.float64)
    s, m = sire[fam], dam[fam]
    ba = d[fam]
    bs = np.where(hs[fam], d[np.maximum(s, 0)], 0.0)
    bd = np.where(hd[fam], d[np.maximum(m, 0)], 0.0)
    o = own[fam]
    ga, gsf, gdf = isg[fam], gs[fam], gd[fam]
    # to the animal: its genotyped parents taken out
    za, _, _ = _family_contributions(ba, np.where(gsf, 0.0, bs), np.where(gdf, 0.0, bd), o,
                                     alpha)
    w[fam[ga]] += za[ga]
    # to a genotyped parent: nothing through a genotyped progeny, else the genotyped mate
    # taken out
    _, zs, _ = _family_contributions(ba, bs, np.where(gdf, 0.0, bd), o, alpha)
    _, _, zd = _family_contributions(ba, np.where(gsf, 0.0, bs), bd, o, alpha)
    keep_s, keep_d = gsf & ~ga, gdf & ~ga
    np.add.at(w, s[keep_s], zs[keep_s])
    np.add.at(w, m[keep_d], zd[keep_d])
    # a sum of contributions, each >= 0 at Part I's solution; rounding (or a Part I stopped
    # before convergence) can leave a value just below 0, which W + αG⁻¹ must not have
    return np.maximum(w[genotyped], 0.0)


def _gblup_precision(w: np.ndarray, kinv: np.ndarray, alpha: float, work: np.ndarray,
                     what: str, remedy: str) -> np.ndarray:
    """``1 / diag((diag(w) + α K⁻¹)⁻¹)``, the matrix built in ``work`` (Cholesky in place)."""
    np.multiply(kinv, alpha, out=work)
    work[np.diag_indices(len(w))] += w
    return 1.0 / spd_inverse_diag(work, overwrite=True, what=what, remedy=remedy)


def erc_gblup(d_genotyped: np.ndarray, w: np.ndarray, ginv: np.ndarray, a22inv: np.ndarray,
              alpha: float) -> np.ndarray:
    """Genomic ERC ``e = d + 1/Q_G,ii − 1/Q_A,ii`` (module docstring, method ``erc-gblup``).

    Parameters
    ----------
    d_genotyped
        Part I ERC of the genotyped animals.
    w
        Their own-data ERC (:func:`own_data_erc`).
    ginv, a22inv
        G*⁻¹ and A22⁻¹ (both triangles), in the order of ``d_genotyped``; not modified.
        Either may instead be an APY G*⁻¹ (:class:`bigeval.genomic.apy.ApyInverse`) or an A22⁻¹
        operator (:class:`bigeval.genomic.a22op.A22InverseOperator`): its diagonal of
        ``(W + αK⁻¹)⁻¹`` is then computed without an n_g × n_g matrix
        (:mod:`bigeval.reliability.genomic_apy`).
    alpha
        σe²/σa².

    Returns
    -------
    numpy.ndarray
        The raw genomic ERC (may be below 0 only for animals whose genomic prior variance
        exceeds σa²; :func:`genomic_part` flags those).

    Examples
    --------
    Where G equals A22 the genomic ERC is the Part I ERC:

    >>> a = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> ainv = np.linalg.inv(a)
    >>> erc_gblup(np.array([2.0, 0.5]), np.array([1.5, 0.0]), ainv, ainv, 3.0).round(12)
    array([2. , 0.5])
    """
    # lazy: bigeval.models (the A22⁻¹ operator's Cholesky) imports this module via the config
    from bigeval.reliability.genomic_apy import gblup_inverse_diagonal, is_structured

    ng = len(w)
    remedy = ("check that G*⁻¹ and A22⁻¹ are positive definite and in the order of the "
              "genotyped animals")
    dense = [k for k in (ginv, a22inv) if not is_structured(k)]
    work = None
    if dense:
        check_dense(ng, copies=len(dense),
                    what=f"Part II's GBLUP matrices for {ng:,} genotyped animals")
        work = np.empty((ng, ng), order="F")

    def precision(kinv, what):
        if is_structured(kinv):
            return 1.0 / gblup_inverse_diagonal(w, kinv, alpha)
        return _gblup_precision(w, np.asarray(kinv), alpha, work, what, remedy)
    pg = precision(ginv, "W + αG⁻¹")
    pa = precision(a22inv, "W + αA22⁻¹")
    return np.asarray(d_genotyped, np.float64) + (pg - pa)


def _flag_table(index, rel_pedigree, value, reason) -> pd.DataFrame:
    return pd.DataFrame({"index": np.asarray(index, np.int64),
                         "rel_pedigree": np.asarray(rel_pedigree, np.float64),
                         "value": np.asarray(value, np.float64),
                         "reason": pd.array(np.asarray(reason, dtype=object), dtype="string")})


_NO_FLAGS = _flag_table([], [], [], [])


def _smallest_eigenvalue(m: np.ndarray) -> float:
    import scipy.linalg

    return float(scipy.linalg.eigh(m, eigvals_only=True, subset_by_index=[0, 0])[0])


def certified(d_genotyped: np.ndarray, ginv: np.ndarray, a22inv: np.ndarray, alpha: float,
              ids=None) -> GenomicResult:
    """The SAS Part II, guarded: publishable values or :class:`GenomicReliabilityError`.

    ``ids``: the genotyped animals' IDs, for the error message.
    """
    d = np.asarray(d_genotyped, np.float64)
    ng = len(d)
    rel_p = d / (d + alpha)
    label = (lambda k: str(ids[k])) if ids is not None else (lambda k: f"#{k}")
    what = "Part II's D + (I + G⁻¹ − A22⁻¹)α"

    def matrix():
        m = np.array(ginv, dtype=np.float64, order="F")
        m -= a22inv
        m[np.diag_indices(ng)] += 1.0
        m *= alpha
        m[np.diag_indices(ng)] += d  # Misztal et al. (2013): D + (I + G⁻¹ − A22⁻¹)α
        return m

    check_dense(ng, copies=1, what=f"Part II's Q for {ng:,} genotyped animals")
    try:
        q = spd_inverse_diag(matrix(), overwrite=True, what=what)
    except InputError:
        lam = _smallest_eigenvalue(matrix())
        flags = _flag_table(np.arange(ng), rel_p, np.full(ng, np.nan),
                            np.full(ng, "matrix not positive definite", dtype=object))
        raise GenomicReliabilityError(
            f"the certified Part II matrix {what} of {ng:,} genotyped animals is not positive "
            f"definite (smallest eigenvalue {lam:.4g}): G⁻¹ − A22⁻¹ outweighs the animals' "
            "own information, and the certified formula has no valid inverse",
            flags=flags, value=f"smallest eigenvalue {lam:.4g}",
            expected="a positive-definite matrix",
            remedy="use --genomic-method erc-gblup (the default; positive definite by "
                   "construction), or tune G to A22 and blend more A22 into G") from None
    raw = 1.0 - alpha * q
    # the SAS twin gives the same numbers (tested); here nothing is clipped
    out = (raw < 0.0) | (raw >= 1.0) | ~np.isfinite(raw)
    below = ~out & (raw < rel_p - _BELOW_TOL)
    bad = np.flatnonzero(out | below)
    if bad.size:
        reason = np.where(out[bad], "outside [0, 1)", "below its Part I reliability")
        flags = _flag_table(bad, rel_p[bad], raw[bad], reason)
        first = ", ".join(f"{label(k)} ({raw[k]:.3f} vs Part I {rel_p[k]:.3f})"
                          for k in bad[:5])
        raise GenomicReliabilityError(
            f"the certified Part II gives {int(out.sum()):,} genotyped animal(s) a reliability "
            f"outside [0, 1) and {int(below.sum()):,} a genomic reliability below their own "
            f"Part I value (of {ng:,}; first: {first}). The formula counts the pedigree "
            "information among genotyped animals twice; it fails where genotyped animals have "
            "little own information (young animals without records)",
            flags=flags, value=f"{bad.size:,} animals", expected="0 ≤ r² < 1, not below Part I",
            remedy="use --genomic-method erc-gblup (the default), which agrees with exact "
                   "single-step reliabilities on such data")
    erc = alpha * raw / (1.0 - raw)
    return GenomicResult("certified", raw, erc, _NO_FLAGS.copy(), ())


def genomic_part(d: np.ndarray, d0: np.ndarray, sire, dam, genotyped, ginv, a22inv,
                 alpha: float, method: str = DEFAULT_METHOD, ids=None,
                 own: np.ndarray | None = None) -> GenomicResult:
    """Part II by ``method`` from the Part I solution ``d`` (length N).

    ``ids``: the genotyped animals' IDs, for messages.

    Raises
    ------
    GenomicReliabilityError
        ``certified`` only: see :func:`certified`.
    """
    _check_method(method)
    g = np.asarray(genotyped)
    dg = np.asarray(d, np.float64)[g]
    if g.size == 0:
        empty = np.zeros(0)
        return GenomicResult(method, empty, empty, _NO_FLAGS.copy(), ())
    if method == "certified":
        from bigeval.reliability.genomic_apy import is_structured  # lazy: see erc_gblup

        if is_structured(ginv) or is_structured(a22inv):
            raise InputError("the certified Part II needs the dense G*⁻¹ and A22⁻¹, not the "
                             "APY G*⁻¹ or the A22⁻¹ operator", value="certified",
                             expected="--genomic-method erc-gblup with APY",
                             remedy="use --genomic-method erc-gblup (the default), or "
                                    "--genomic-inverse full")
        return certified(dg, ginv, a22inv, alpha, ids=ids)
    w = own_data_erc(d, d0, sire, dam, g, alpha, own=own)
    e = erc_gblup(dg, w, ginv, a22inv, alpha)
    if not np.all(np.isfinite(e)):
        k = int(np.flatnonzero(~np.isfinite(e))[0])
        raise InputError("Part II gave a genomic ERC that is not a number",
                         value=f"animal {ids[k] if ids is not None else k}: {e[k]}",
                         expected="finite values",
                         remedy="check G⁻¹ and A22⁻¹ (finite, positive definite) and h2")
    rel_p = dg / (dg + alpha)
    erc = np.maximum(e, 0.0)
    rel = erc / (erc + alpha)
    neg = np.flatnonzero(e < 0.0)
    below = np.flatnonzero((e >= 0.0) & (rel < rel_p - _BELOW_TOL))
    notes = []
    flags = _flag_table(
        np.r_[neg, below], np.r_[rel_p[neg], rel_p[below]],
        np.r_[e[neg] / (e[neg] + alpha), rel[below]],  # the raw 1 − PEV/σa² of the first
        np.r_[np.full(neg.size, "below 0 on the σa² scale: published as 0", dtype=object),
              np.full(below.size, "below its Part I reliability", dtype=object)])
    if neg.size:
        msg = (f"{neg.size:,} genotyped animal(s) have less genomic information than their "
               "genomic prior variance allows on the σa² scale (G*_ii > 1 with almost no "
               "information: their exact 1 − PEV/σa² is below 0 too); their genomic "
               f"reliability and ERC are published as 0 (listed in {FLAGS_FILE})")
        warnings.warn(msg, BigevalWarning, stacklevel=3)
        notes.append(msg)
    if below.size:
        notes.append(f"{below.size:,} of {g.size:,} genotyped animals have a genomic reliability "
                     f"below their Part I value (mean change "
                     f"{float(np.mean(rel[below] - rel_p[below])):+.4f}): their genomic "
                     "relationships to informative animals are weaker than the pedigree "
                     f"ones (listed in {FLAGS_FILE})")
    return GenomicResult(method, rel, erc, flags, tuple(notes))


def flags_frame(flags: pd.DataFrame, genotyped_ids) -> pd.DataFrame:
    """:attr:`GenomicResult.flags` with the animals' IDs instead of positions."""
    ids = np.asarray(genotyped_ids, dtype=object)[flags["index"].to_numpy()]
    out = flags.drop(columns="index")
    out.insert(0, "animal", pd.array(ids.astype(str), dtype="string"))
    return out


def stopped(exc: GenomicReliabilityError, genotyped_ids, folder) -> InputError:
    """The error a command raises when the certified Part II stopped it: the flagged animals
    are written to ``folder/genomic_flags.stopped.csv`` (the only file written; results
    published earlier stay as they were) and named."""
    path = Path(folder) / STOPPED_FLAGS_FILE
    frame = flags_frame(exc.flags, genotyped_ids)
    with atomic_files(path) as (tmp,):
        frame.to_csv(tmp, index=False, float_format="%.10g")
    return InputError(f"{exc.message}; no results were written; the animals are listed in "
                      f"{path}", value=exc.value, expected=exc.expected, remedy=exc.remedy)
