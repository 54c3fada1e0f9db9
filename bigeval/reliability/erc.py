"""Part I start vector: effective record contributions (ERC) from own records and Interbull.

Misztal et al. (1993) own-record ERC, Tier & Meyer (2004) adjustment for relatives in the
contemporary group, Misztal et al. (1991) repeated records, and Interbull information as one
more source (methodology II.3.2, Part I).
"""

from __future__ import annotations

import warnings

import numba
import numpy as np

from bigeval.errors import BigevalWarning, InputError, opt


def cg_sizes(rec_cg: np.ndarray, n_cg: int) -> np.ndarray:
    """Number of records n_k in each contemporary group (length K)."""
    return np.bincount(rec_cg, minlength=n_cg).astype(np.float64)


@numba.njit(cache=True)
def _relatives_in_cg(order, starts, rec_animal, sire, dam):  # pragma: no cover - numba
    """q per record: other animals' records in the group that are parent/progeny/(half-)sib.

    ``order`` sorts records by group; ``starts`` are the group boundaries in that order.
    """
    q = np.zeros(len(rec_animal), dtype=np.int64)
    for g in range(len(starts) - 1):
        lo, hi = starts[g], starts[g + 1]
        for a in range(lo, hi):
            ra = order[a]
            i = rec_animal[ra]
            si, di = sire[i], dam[i]
            x = 0
            for b in range(lo, hi):
                j = rec_animal[order[b]]
                if j == i:
                    continue  # the animal's own records are not relatives
                sj, dj = sire[j], dam[j]
                # SAS v7: i is j's sire or dam, j is i's sire or dam, same known sire or dam
                if (i == sj or i == dj or si == j or di == j
                        or (si == sj and sj >= 0) or (di == dj and dj >= 0)):
                    x += 1
            q[ra] = x
    return q


def relatives_in_cg(rec_animal, rec_cg, sire, dam, n_cg: int) -> np.ndarray:
    """Count, for each record, the relatives of its animal among the group's other records.

    Relatives are parents, progeny, half-sibs and full-sibs (same known sire, or same known
    dam), as in the SAS program's v7 block. The SAS program counts matches over all group
    members, the animal itself included, and subtracts 1 (giving -1 for an animal with both
    parents unknown); here the animal's own records are skipped instead, so q ≥ 0.

    Returns
    -------
    q
        int array, one value per record.
    """
    order = np.argsort(rec_cg, kind="stable")
    starts = np.searchsorted(rec_cg[order], np.arange(n_cg + 1)).astype(np.int64)
    return _relatives_in_cg(order.astype(np.int64), starts, rec_animal.astype(np.int64),
                            sire.astype(np.int64), dam.astype(np.int64))


def own_record_erc(
    n_animals: int,
    rec_animal: np.ndarray,
    rec_cg: np.ndarray,
    n_cg: int,
    *,
    sire: np.ndarray | None = None,
    dam: np.ndarray | None = None,
    sib_adjust: bool = False,
    tau: float | None = None,
) -> np.ndarray:
    """ERC from own records, z_i = Σ_k (1 − 1/n_k) (Misztal et al. 1993), per animal.

    Parameters
    ----------
    n_animals
        N, the length of the result.
    rec_animal, rec_cg
        Per record, the animal's and the contemporary group's internal numbers.
    sib_adjust
        Apply Tier & Meyer (2004): z_i = Σ_k (1 − 1/(n_k w_k)), w_k = sqrt((n_k − q_k)/n_k),
        q_k the relatives of i among the group's other records (needs ``sire``, ``dam``).
    tau
        σe²/σpe² for repeated records: d_i = τ z_i / (τ + z_i) (Misztal et al. 1991).

    Returns
    -------
    d
        float64 array of length N.

    Examples
    --------
    Two animals in one group of two records, the first also alone in another group:

    >>> own_record_erc(2, np.array([0, 1, 0]), np.array([0, 0, 1]), 2)
    array([0.5, 0.5])
    """
    n_k = cg_sizes(rec_cg, n_cg)
    nk = n_k[rec_cg]
    if sib_adjust:
        if sire is None or dam is None:
            raise ValueError("sib_adjust needs sire and dam")
        q = relatives_in_cg(rec_animal, rec_cg, sire, dam, n_cg)
        w = np.sqrt((nk - q) / nk)
        contrib = 1.0 - 1.0 / (nk * w)
    else:
        contrib = 1.0 - 1.0 / nk
    z = np.bincount(rec_animal, weights=contrib, minlength=n_animals)
    if tau is not None:
        if not tau > 0:
            raise InputError("tau must be positive", value=tau,
                             expected="σe²/σpe² > 0",
                             remedy=f"give {opt('parameters.tau')} > 0 or leave it out")
        z = tau * z / (tau + z)
    return z


def interbull_erc(value: np.ndarray, alpha: float, *, kind: str = "reliability",
                  source=None, animals=None) -> np.ndarray:
    """ERC contributed by Interbull (MACE) information, one value per Interbull bull.

    With ``kind="reliability"``, each bull's reliability r² becomes a weight
    w_p = α r²/(1 − r²), and all bulls form one information source:
    b_p = w_p (1 − w_p/Σ_j w_j) (methodology II.3.2; with all w = 1 it is 1 − 1/n_b).
    With ``kind="erc"`` the values are ready ERCs and are returned as they are. A bull with
    a reliability above 0 that gets ERC 0 (a single bull) is warned about, with the count.

    Examples
    --------
    >>> interbull_erc(np.array([0.5, 0.5]), 1.0)
    array([0.5, 0.5])
    """
    value = np.asarray(value, dtype=np.float64)
    if kind == "erc":
        bad = value < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError("Interbull ERC is negative", file=source,
                             value=None if animals is None else f"{animals[i]} {value[i]}",
                             expected="a value ≥ 0", remedy="fix the value")
        return value.copy()
    if kind != "reliability":
        raise InputError("unknown Interbull kind", value=kind,
                         expected="'reliability' or 'erc'")
    bad = (value < 0) | (value >= 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError("Interbull reliability outside [0, 1)", file=source,
                         value=None if animals is None else f"{animals[i]} {value[i]}",
                         expected="0 ≤ reliability < 1",
                         remedy="give reliabilities as fractions (0.85, not 85), or use "
                                "--interbull-kind erc for ready ERC values")
    w = alpha * value / (1.0 - value)
    total = w.sum()
    b = np.zeros_like(w) if total <= 0 else w * (1.0 - w / total)
    lost = (value > 0) & (b <= 0)
    if lost.any():
        i = int(np.flatnonzero(lost)[0])
        where = "" if source is None else f"{source}: "
        first = "" if animals is None else f" (first: {animals[i]})"
        warnings.warn(
            f"{where}{int(lost.sum()):,} Interbull bull(s) with a reliability above 0 get ERC 0"
            f"{first}: the bulls form one information source, b = w(1 − w/Σw), and a bull "
            "alone in it (or whose weight is all of it) adds nothing; give the other "
            "Interbull bulls too, or ready ERCs with --interbull-kind erc",
            BigevalWarning, stacklevel=2)
    return b
