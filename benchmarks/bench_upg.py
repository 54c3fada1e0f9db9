"""Unknown parent groups: the Quaas-Pollak A⁻¹ and the groups' rank check at size.

A random pedigree of N animals in 20 discrete generations (10 % unknown sires, 20 % unknown
dams, each generation's unknown parents in their own group, the founders in two), 2N records
of the animals of generations 5-19 in N/50 contemporary groups:
``python benchmarks/bench_upg.py 200000``. Prints the seconds of ``ainv_sparse`` (no groups),
``ainv_qp_sparse`` (with them) and ``zero_groups``, and the peak memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp

from bigeval.groups import ainv_qp_sparse, zero_groups
from bigeval.pedigree import ainv_sparse


def pedigree(n: int, gens: int, n_groups: int, rng):
    per = n // gens
    sire, dam = np.full(n, -1), np.full(n, -1)
    sg, dg = np.full(n, -1), np.full(n, -1)
    sg[:per], dg[:per] = 0, 1
    for t in range(1, gens):
        idx = np.arange(t * per, (t + 1) * per)
        prev = np.arange((t - 1) * per, t * per)
        s = rng.choice(prev[: per // 20], per)
        d = rng.choice(prev[per // 2:], per)
        us, ud = rng.random(per) < 0.1, rng.random(per) < 0.2
        sire[idx], dam[idx] = np.where(us, -1, s), np.where(ud, -1, d)
        sg[idx] = np.where(us, (2 * t) % n_groups, -1)
        dg[idx] = np.where(ud, (2 * t + 1) % n_groups, -1)
    return sire, dam, sg, dg, per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, nargs="?", default=200_000)
    ap.add_argument("--groups", type=int, default=40)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    sire, dam, sg, dg, per = pedigree(a.n, 20, a.groups, rng)
    t0 = time.perf_counter()
    ainv_sparse(sire, dam)
    t1 = time.perf_counter()
    ainv_qp_sparse(sire, dam, sg, dg, a.groups)
    t2 = time.perf_counter()
    nrec, ncg = 2 * a.n, a.n // 50
    rec = rng.integers(per * 5, a.n, nrec)
    X = sp.csr_matrix((np.ones(nrec), (np.arange(nrec), rng.integers(0, ncg, nrec))),
                      shape=(nrec, ncg))
    t3 = time.perf_counter()
    zero = zero_groups(X, rec, sire, dam, sg, dg, a.groups)
    t4 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{a.n:,} animals, {a.groups} groups, {nrec:,} records, {ncg:,} cg: ainv_sparse "
          f"{t1 - t0:.1f} s, ainv_qp_sparse {t2 - t1:.1f} s, zero_groups {t4 - t3:.1f} s "
          f"({int(zero.sum())} set to zero); peak {peak:.2f} GiB")


if __name__ == "__main__":
    main()
