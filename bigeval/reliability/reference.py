"""Slow, literal twins of the SAS/IML program (appendix of the certified methodology).

:func:`sas_part1` is a loop-by-loop transcription in plain Python of the SAS program's
blocks V1 (Part I) and V3 (Part III): the ERC start vector from the records, the optional
v7 relatives count, repeated records, Interbull, and the 100 rounds of the iteration with
the 10-step family solve. It is written for clarity, not speed, and serves as the oracle the
fast kernel is tested against. :func:`iterate_scalar` is the straightforward scalar numba
loop of the same iteration, the baseline of the benchmark.

Deviations from the SAS text, all documented in the spec:

* the relatives count q skips the animal's own records instead of counting them and
  subtracting 1 (so q ≥ 0 for an animal with unknown parents);
* the threshold of the ``if abs(b[k,l]) < … then s[k,l]=0`` guard was lost in the text
  extraction; it is :data:`bigeval.reliability.kernel.ZERO_ERC`;
* the family of an animal without information in its subtree (no own information, nor any
  descendant's) is solved at its exact outside information q_a = 0 and gives its parents
  nothing (:func:`bigeval.reliability.kernel.informative` says why: the SAS iteration lets
  such families feed a sire of many record-less progeny without bound). ``literal=True``
  runs the SAS text as it is.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from bigeval.defaults import ROUNDS
from bigeval.reliability.kernel import N_STEPS, ZERO_ERC


def sas_start_vector(n, rec_animal, rec_cg, n_cg, sire, dam, *, alpha, tau=None,
                     sib_adjust=False, interbull_animal=None, interbull_erc=None):
    """d⁰ as the SAS program builds it (z, then τ, then Interbull), with Python loops."""
    tcg = [0] * n_cg
    for i in range(len(rec_animal)):
        tcg[rec_cg[i]] += 1
    z = [0.0] * n
    if sib_adjust:
        # v7: for each group, for each record, count relatives among the group's records.
        members = [[] for _ in range(n_cg)]
        for i in range(len(rec_animal)):
            members[rec_cg[i]].append(rec_animal[i])
        qk = {}
        for cg in range(n_cg):
            sou = members[cg]
            for i in sou:
                x = 0
                for j in sou:
                    if j == i:
                        continue
                    if (i == sire[j] or i == dam[j] or sire[i] == j or dam[i] == j
                            or (sire[i] == sire[j] and sire[j] >= 0)
                            or (dam[i] == dam[j] and dam[j] >= 0)):
                        x += 1
                qk[(i, cg)] = x
        for i in range(len(rec_animal)):
            a, cg = rec_animal[i], rec_cg[i]
            w = math.sqrt((tcg[cg] - qk[(a, cg)]) / tcg[cg])
            z[a] = z[a] + (1 - 1 / (tcg[cg] * w))
    else:
        for i in range(len(rec_animal)):
            a, cg = rec_animal[i], rec_cg[i]
            z[a] = z[a] + (1 - 1 / tcg[cg])
    if tau is not None:
        d = [tau * z[i] / (tau + z[i]) for i in range(n)]
    else:
        d = list(z)
    if interbull_animal is not None:
        bulrod = [0.0] * n
        for i in range(len(interbull_animal)):
            bulrod[interbull_animal[i]] = interbull_erc[i]
        d = [d[i] + bulrod[i] for i in range(n)]
    return np.array(d, dtype=np.float64)


def informative_slow(d0, sire, dam) -> list:
    """Whether each animal or a descendant has information (d⁰ ≠ 0): marked parents of
    marked animals, again and again until nothing changes."""
    has = [x != 0 for x in d0]
    changed = True
    while changed:
        changed = False
        for i in range(len(has)):
            for p in (sire[i], dam[i]):
                if has[i] and p >= 0 and not has[p]:
                    has[p] = changed = True
    return has


def sas_iterate(d0, sire, dam, *, alpha, rounds=ROUNDS, fixed_animal=None, fixed_erc=None,
                literal=False):
    """The SAS iteration, loop by loop (blocks V1 and V3), on Python lists.

    Parameters
    ----------
    d0
        Start vector (length N); in Part III the genotyped animals' values already replaced.
    sire, dam
        Parents, -1 unknown.
    fixed_animal, fixed_erc
        Part III: animals whose d is written back to ``fixed_erc`` after every round.
    literal
        The SAS text as it is; else the families of animals without information in their
        subtree are solved at q_a = 0 and give their parents nothing (module docstring).
    """
    a = alpha
    pa = len(d0)
    d = [float(x) for x in d0]
    if fixed_animal is not None:
        for i in range(len(fixed_animal)):
            d[fixed_animal[i]] = float(fixed_erc[i])
    d0 = list(d)
    own = [True] * pa if literal else informative_slow(d0, sire, dam)
    for _m in range(rounds):
        b = [[0.0, 0.0, 0.0] for _ in range(pa)]
        for i in range(pa):
            ba = d[i]
            bs = 0.0 if sire[i] < 0 else d[sire[i]]
            bd = 0.0 if dam[i] < 0 else d[dam[i]]
            b[i] = [ba, bs, bd]
        q = [list(row) for row in b]
        for i in range(pa):
            if not own[i]:
                q[i][0] = 0.0
        bx = [[0.0, 0.0, 0.0] for _ in range(pa)]
        for _j in range(N_STEPS):
            for i in range(pa):
                qa, qs, qd = q[i]
                bxs = 0.5 * a + qs - (0.25 * (a**2) * (2 * a + qa) - (a**3) + (a**2) * (
                    1.5 * a + qd)) / ((1.5 * a + qd) * (2 * a + qa) - (a**2))
                bxd = 0.5 * a + qd - (0.25 * (a**2) * (2 * a + qa) - a**3 + (a**2) * (
                    1.5 * a + qs)) / ((1.5 * a + qs) * (2 * a + qa) - a**2)
                bxa = a + qa - ((a**2) * (1.5 * a + qd) - a**3 + (a**2) * (1.5 * a + qs)) / (
                    (1.5 * a + qs) * (1.5 * a + qd) - 0.25 * (a**2))
                bx[i] = [bxa, bxs, bxd]
            s = [[0.0, 0.0, 0.0] for _ in range(pa)]
            for k in range(pa):
                for l in range(3):
                    if abs(b[k][l]) < ZERO_ERC or (l == 0 and not own[k]):
                        s[k][l] = 0.0
                    else:
                        s[k][l] = bx[k][l] - b[k][l]
            for k in range(pa):
                for l in range(3):
                    q[k][l] = q[k][l] - s[k][l]
            for k in range(pa):
                for l in range(3):
                    if q[k][l] < 0:
                        q[k][l] = 0.0
        r = [[bx[k][l] - q[k][l] if l == 0 or own[k] else 0.0 for l in range(3)]
             for k in range(pa)]
        d1 = list(d0)
        for k in range(pa):
            d1[k] = d1[k] + r[k][0]
        for k in range(pa):
            if sire[k] >= 0:
                d1[sire[k]] = d1[sire[k]] + r[k][1]
        for k in range(pa):
            if dam[k] >= 0:
                d1[dam[k]] = d1[dam[k]] + r[k][2]
        d = [0.5 * (d[k] + d1[k]) for k in range(pa)]
        if fixed_animal is not None:
            for i in range(len(fixed_animal)):
                d[fixed_animal[i]] = float(fixed_erc[i])
    return np.array(d, dtype=np.float64)


def sas_part2(d_genotyped, ginv, a22inv, *, alpha):
    """Block V2: Q = inv(D + (I + G⁻¹ − A22⁻¹)α), r²_g = 1 − α Q_ii, negatives set to 0."""
    ng = len(d_genotyped)
    qq = np.diag(d_genotyped) + (np.eye(ng) + ginv - a22inv) * alpha
    qqinv = np.linalg.inv(qq)
    rg = np.array([1 - alpha * qqinv[i, i] for i in range(ng)])
    for i in range(ng):
        if rg[i] < 0:
            rg[i] = 0.0
    return rg


def family_slow(b, own, alpha):
    """One family's contributions (animal, sire, dam) by the 10 SAS steps, in scalars.

    ``b``: the three members' values (an unknown or taken-out member is 0); ``own``: the
    animal has information in its subtree (else q_a = 0 and the parents get nothing).
    """
    a = alpha
    q = [0.0 if not own else b[0], b[1], b[2]]
    bx = [0.0, 0.0, 0.0]
    for _j in range(N_STEPS):
        qa, qs, qd = q
        bx = [a + qa - ((a**2) * (1.5 * a + qd) - a**3 + (a**2) * (1.5 * a + qs)) / (
                  (1.5 * a + qs) * (1.5 * a + qd) - 0.25 * (a**2)),
              0.5 * a + qs - (0.25 * (a**2) * (2 * a + qa) - (a**3) + (a**2) * (
                  1.5 * a + qd)) / ((1.5 * a + qd) * (2 * a + qa) - (a**2)),
              0.5 * a + qd - (0.25 * (a**2) * (2 * a + qa) - a**3 + (a**2) * (
                  1.5 * a + qs)) / ((1.5 * a + qs) * (2 * a + qa) - a**2)]
        for l in range(3):
            if not (abs(b[l]) < ZERO_ERC or (l == 0 and not own)):
                q[l] = q[l] - (bx[l] - b[l])
            if q[l] < 0:
                q[l] = 0.0
    return [bx[0] - q[0]] + [bx[l] - q[l] if own else 0.0 for l in (1, 2)]


def own_data_erc_slow(d, d0, sire, dam, genotyped, alpha):
    """Twin of :func:`bigeval.reliability.genomic.own_data_erc`: for each genotyped animal,
    its start value plus each of its families' contribution with the other genotyped
    members set to 0 (none from a family whose animal is another genotyped animal), family
    by family in loops."""
    gset = set(int(x) for x in genotyped)
    own = informative_slow(d0, sire, dam)
    out = []
    for t in genotyped:
        t = int(t)
        w = float(d0[t])
        for i in range(len(d)):
            members = [i, int(sire[i]), int(dam[i])]
            if t not in members:
                continue
            b = [float(d[m]) if m >= 0 else 0.0 for m in members]
            for pos in range(3):
                if members[pos] != t:
                    continue
                if pos > 0 and i in gset:
                    cut = 0.0  # a genotyped progeny informs its parent through G
                else:
                    bz = [0.0 if (members[k] in gset and k != pos) else b[k] for k in range(3)]
                    cut = family_slow(bz, own[i], alpha)[pos]
                w += cut
        out.append(max(w, 0.0))
    return np.array(out)


def erc_gblup_dense(d_genotyped, w, ginv, a22inv, *, alpha):
    """Twin of :func:`bigeval.reliability.genomic.erc_gblup` with general inverses."""
    qg = np.linalg.inv(np.diag(w) + alpha * np.asarray(ginv))
    qa = np.linalg.inv(np.diag(w) + alpha * np.asarray(a22inv))
    return np.array([d_genotyped[i] + 1.0 / qg[i, i] - 1.0 / qa[i, i]
                     for i in range(len(w))])


@numba.njit(cache=True)
def iterate_scalar(d0, sire, dam, alpha, rounds, own):  # pragma: no cover - numba
    """Straightforward scalar numba loop of the iteration: the benchmark's baseline.

    One thread, one family at a time (10 steps each), scatter by ``+=``; ``own`` as
    :func:`bigeval.reliability.kernel.informative` (all 1: the SAS text).
    """
    n = len(d0)
    d = d0.copy()
    d1 = np.empty(n)
    a = alpha
    for _m in range(rounds):
        d1[:] = d0
        for i in range(n):
            b0 = d[i]
            b1 = d[sire[i]] if sire[i] >= 0 else 0.0
            b2 = d[dam[i]] if dam[i] >= 0 else 0.0
            q0, q1, q2 = (b0 if own[i] else 0.0), b1, b2
            x0 = x1 = x2 = 0.0
            for _j in range(N_STEPS):
                x1 = 0.5 * a + q1 - (0.25 * a * a * (2 * a + q0) - a * a * a + a * a * (
                    1.5 * a + q2)) / ((1.5 * a + q2) * (2 * a + q0) - a * a)
                x2 = 0.5 * a + q2 - (0.25 * a * a * (2 * a + q0) - a * a * a + a * a * (
                    1.5 * a + q1)) / ((1.5 * a + q1) * (2 * a + q0) - a * a)
                x0 = a + q0 - (a * a * (1.5 * a + q2) - a * a * a + a * a * (1.5 * a + q1)) / (
                    (1.5 * a + q1) * (1.5 * a + q2) - 0.25 * a * a)
                if abs(b0) >= ZERO_ERC and own[i]:
                    q0 = max(q0 - (x0 - b0), 0.0)
                if abs(b1) >= ZERO_ERC:
                    q1 = max(q1 - (x1 - b1), 0.0)
                if abs(b2) >= ZERO_ERC:
                    q2 = max(q2 - (x2 - b2), 0.0)
            d1[i] += x0 - q0
            if sire[i] >= 0 and own[i]:
                d1[sire[i]] += x1 - q1
            if dam[i] >= 0 and own[i]:
                d1[dam[i]] += x2 - q2
        for i in range(n):
            d[i] = 0.5 * (d[i] + d1[i])
    return d
