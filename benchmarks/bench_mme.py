"""Benchmark: factor, solve and selected inversion of national-size MMEs.

Two herd-structured simulated populations (bigeval.simulate; a random-mating pedigree fills
in catastrophically and is not what real data look like):

* PBLUP: a 1 000 000-animal pedigree, y = contemporary group + animal + e (α = 3): the
  MME of ~1.07 M equations with ~67 000 groups;
* ssGBLUP: 10 000 genotyped animals inside a 200 000-animal pedigree, H⁻¹ with
  G* = tune(0.95 G + 0.05 A22) (VanRaden G from simulated SNPs).

Each solver runs in a fresh Python process that loads the saved LHS, so that its peak
memory is its own: CHOLMOD (supernodal, analyse + factor, then solve, then the selected
inversion of the whole diagonal of C⁻¹; for ssGBLUP also ``schur``: the genotyped block kept
apart by its Schur complement, as ``bigeval solve --se`` does, :mod:`bigeval.linalg.schur`),
PCG with a diagonal preconditioner (BLUPF90's
default iterative solver; convergence ||r||/||b|| < 1e-6, i.e. BLUPF90's 1e-12 on the
squared ratio) and, where affordable, the SuperLU fallback. Timings are medians of
``--repeats`` runs; ratios are against CHOLMOD in the same run. Goal (issue 6): PBLUP
factor + solve ≤ 60 s.

    flock /tmp/bigeval-heavy.lock python benchmarks/bench_mme.py \\
        [--animals 1000000] [--ss-animals 200000 --genotyped 10000 --snps 5000] \\
        [--repeats 3] [--superlu-max 250000] [--skip-pblup] [--skip-ss]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _population import renumbered_simulation  # noqa: E402

GiB = 1024 ** 3


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


# ------------------------------------------------------------------------------ workers

def worker(method: str, path: str, repeats: int, n_fixed: int) -> dict:
    """Runs in its own process: load the LHS, solve (and invert) it, report JSON."""
    import scipy.sparse as sp

    from bigeval.linalg.cholesky import cholesky
    from bigeval.linalg.selinv import SelectedInverse, takahashi
    from bigeval.models.solve import solve_pcg

    A = sp.load_npz(path + ".lhs.npz").tocsc()
    b = np.load(path + ".rhs.npy")
    base = _rss()
    res = {"method": method, "neq": A.shape[0], "nnz_lhs": int(A.nnz)}
    if method in ("cholmod", "superlu"):
        res["factor_s"], res["factor_all_s"], f = _median_time(
            lambda: cholesky(A, method), repeats)
        res["solve_s"], _, x = _median_time(lambda: f.solve(b), repeats)
        res["residual"] = float(np.linalg.norm(A @ x - b) / np.linalg.norm(b))
        np.save(path + f".x_{method}.npy", x)
        t = time.perf_counter()
        L = f.L
        res["extract_L_s"] = time.perf_counter() - t
        res["nnz_L"] = int(L.nnz)
        sel_repeats = 1 if A.shape[0] > 300_000 else repeats
        res["selinv_s"], res["selinv_all_s"], Z = _median_time(lambda: takahashi(L),
                                                               sel_repeats)
        d = SelectedInverse(Z, f.perm).diagonal()
        # independent check: C⁻¹_ii = e_i' C⁻¹ e_i by solves with the factor
        rng = np.random.default_rng(1)
        pick = rng.choice(A.shape[0], 5, replace=False)
        E = np.zeros((A.shape[0], 5))
        E[pick, np.arange(5)] = 1.0
        direct = f.solve(E)[pick, np.arange(5)]
        res["selinv_check_max_rel"] = float(np.max(np.abs(d[pick] - direct) / direct))
        np.save(path + f".d_{method}.npy", d)
    elif method == "schur":  # the genotyped block apart (bigeval.linalg.schur), as solve --se
        from bigeval.linalg.schur import schur_factor
        e2 = np.load(path + ".dense.npy")

        def run():
            f = schur_factor(A, e2)
            return f.solve(b), f.diagonal()
        res["total_s"], res["total_all_s"], (x, d) = _median_time(run, repeats)
        res["residual"] = float(np.linalg.norm(A @ x - b) / np.linalg.norm(b))
        for other in ("x", "d"):
            ref = path + f".{other}_cholmod.npy"
            if os.path.exists(ref):
                v = np.load(ref)
                res[f"max_rel_diff_{other}_vs_cholmod"] = float(
                    np.max(np.abs((x if other == "x" else d) - v)) / np.max(np.abs(v)))
    elif method == "pcg":
        res["solve_s"], _, sol = _median_time(
            lambda: solve_pcg(A, b, n_fixed=n_fixed, rtol=1e-6, maxiter=100_000), repeats)
        res["iterations"] = sol.iterations
        x = sol.x
        res["residual"] = float(np.linalg.norm(A @ x - b) / np.linalg.norm(b))
        ref = path + ".x_cholmod.npy"
        if os.path.exists(ref):
            xr = np.load(ref)
            res["max_abs_diff_vs_cholmod"] = float(np.abs(x - xr).max())
            res["sd_solution"] = float(np.std(xr))
    res["peak_rss_gib"] = _peak() / GiB
    res["beyond_lhs_gib"] = (_peak() - base) / GiB
    return res


def run_worker(method, path, repeats, n_fixed, timeout=3600) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--path", path,
           "--repeats", str(repeats), "--n-fixed", str(n_fixed)]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        return {"method": method, "error": out.stderr.strip().splitlines()[-1:]}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = time.perf_counter() - t
    return res


# ------------------------------------------------------------------------------ systems

def _rhs(rec_animal, rec_cg, y, k, neq):
    b = np.zeros(neq)
    np.add.at(b, rec_cg, y)
    np.add.at(b, k + rec_animal, y)
    return b


def _save(path, lhs, rhs):
    import scipy.sparse as sp
    sp.save_npz(path + ".lhs.npz", lhs, compressed=False)
    np.save(path + ".rhs.npy", rhs)


def pblup_system(args, path):
    from bigeval.reliability.exact import _exact_lhs
    t = time.perf_counter()
    _, sire, dam, rec_animal, rec_cg, y, _ = renumbered_simulation(args.animals, 0, 0, args.seed)
    print(f"  simulated {len(sire):,} animals, {len(y):,} records, {rec_cg.max() + 1:,} "
          f"contemporary groups in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    lhs, k, _ = _exact_lhs(sire, dam, rec_animal, rec_cg, 3.0, tau=None, genotyped=None,
                           ginv=None, a22inv=None, f=None)
    _save(path, lhs, _rhs(rec_animal, rec_cg, y, k, lhs.shape[0]))
    print(f"  MME: {lhs.shape[0]:,} equations, {lhs.nnz:,} non-zeros "
          f"({time.perf_counter() - t:.1f} s to build and save)", flush=True)
    return lhs.shape[0], k


def ssgblup_system(args, path):
    from bigeval.genomic import blend_g, tune_g, vanraden_g
    from bigeval.linalg import spd_inverse
    from bigeval.pedigree import a22_dense, inbreeding
    from bigeval.reliability.exact import _exact_lhs
    t = time.perf_counter()
    sim, sire, dam, rec_animal, rec_cg, y, gen = renumbered_simulation(
        args.ss_animals, args.genotyped, args.snps, args.seed + 1)
    print(f"  simulated {len(sire):,} animals, {len(y):,} records, {len(gen):,} genotyped x "
          f"{args.snps:,} SNPs in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    G, _ = vanraden_g(sim.genotypes)
    del sim
    t_g = time.perf_counter() - t
    t = time.perf_counter()
    f = inbreeding(sire, dam)
    A22 = a22_dense(sire, dam, gen, f)
    t_a22 = time.perf_counter() - t
    t = time.perf_counter()
    G = tune_g(blend_g(G, A22, 0.05), A22)
    ginv = spd_inverse(G, overwrite=True, what="G*")
    del G
    a22inv = spd_inverse(A22, overwrite=True, what="A22")
    del A22
    t_inv = time.perf_counter() - t
    print(f"  G {t_g:.1f} s, A22 {t_a22:.1f} s, G*⁻¹ and A22⁻¹ {t_inv:.1f} s", flush=True)
    t = time.perf_counter()
    lhs, k, _ = _exact_lhs(sire, dam, rec_animal, rec_cg, 3.0, tau=None, genotyped=gen,
                           ginv=ginv, a22inv=a22inv, f=f)
    del ginv, a22inv
    _save(path, lhs, _rhs(rec_animal, rec_cg, y, k, lhs.shape[0]))
    np.save(path + ".dense.npy", k + np.asarray(gen, np.int64))  # the genotyped equations
    print(f"  MME: {lhs.shape[0]:,} equations, {lhs.nnz:,} non-zeros "
          f"({time.perf_counter() - t:.1f} s to build and save)", flush=True)
    return lhs.shape[0], k


# ------------------------------------------------------------------------------ report

def report(title, results, goal_s=None):
    print(f"\n{title}")
    chol = next((r for r in results if r.get("method") == "cholmod" and "error" not in r),
                None)
    for r in results:
        m = r["method"]
        if "error" in r:
            print(f"  {m:8s} failed: {r['error']}")
            continue
        if "skipped" in r:
            print(f"  {m:8s} skipped: {r['skipped']}")
            continue
        if m == "schur":
            ratio = ""
            if chol:
                whole = chol["factor_s"] + chol["solve_s"] + chol["selinv_s"] + chol[
                    "extract_L_s"]
                ratio = (f"; {r['total_s'] / whole:.2f}x CHOLMOD's factor + solve + "
                         f"selected inversion of the whole LHS ({whole:.1f} s), max rel. "
                         f"diff: solutions {r.get('max_rel_diff_x_vs_cholmod', float('nan')):.1e},"
                         f" diag(C⁻¹) {r.get('max_rel_diff_d_vs_cholmod', float('nan')):.1e}")
            print(f"  schur    solutions + diag(C⁻¹) {r['total_s']:7.1f} s (runs "
                  f"{', '.join(f'{x:.1f}' for x in r['total_all_s'])}), residual "
                  f"{r['residual']:.1e}; peak {r['peak_rss_gib']:.2f} GiB{ratio}")
            continue
        if m == "pcg":
            extra = ""
            if "max_abs_diff_vs_cholmod" in r:
                extra = (f"; max |x - x_cholmod| {r['max_abs_diff_vs_cholmod']:.2e} "
                         f"(solution SD {r['sd_solution']:.3f})")
            ratio = ""
            if chol:
                ratio = (f"; PCG solve / CHOLMOD factor+solve = "
                         f"{r['solve_s'] / (chol['factor_s'] + chol['solve_s']):.2f}")
            print(f"  pcg      solve {r['solve_s']:7.1f} s ({r['iterations']} iterations, "
                  f"residual {r['residual']:.1e}){extra}; peak {r['peak_rss_gib']:.2f} GiB "
                  f"({r['beyond_lhs_gib']:.2f} beyond the loaded LHS){ratio}")
            continue
        fs = r["factor_s"] + r["solve_s"]
        line = (f"  {m:8s} factor {r['factor_s']:7.1f} s (runs "
                f"{', '.join(f'{x:.1f}' for x in r['factor_all_s'])}), solve "
                f"{r['solve_s']:.2f} s, fill nnz(L) {r['nnz_L']:,}; selected inversion "
                f"(whole diag of C⁻¹) {r['selinv_s']:.1f} s (+ {r['extract_L_s']:.1f} s to "
                f"extract L), check vs solves {r['selinv_check_max_rel']:.1e}; peak "
                f"{r['peak_rss_gib']:.2f} GiB ({r['beyond_lhs_gib']:.2f} beyond the LHS)")
        if chol and m != "cholmod":
            line += f"; factor {r['factor_s'] / chol['factor_s']:.1f}x CHOLMOD's"
        print(line)
        if goal_s is not None and m == "cholmod":
            print(f"  goal: factor + solve {fs:.1f} s <= {goal_s} s: "
                  f"{'met' if fs <= goal_s else 'NOT met'}")


def bench(kind, args, tmp):
    path = os.path.join(tmp, kind)
    print(f"\n== {kind} ==", flush=True)
    neq, k = (pblup_system if kind == "pblup" else ssgblup_system)(args, path)
    results = []
    for method in ("cholmod", "pcg", "superlu") + (("schur",) if kind == "ssgblup" else ()):
        if method == "superlu" and neq > args.superlu_max:
            results.append({"method": method, "skipped": f"{neq:,} equations > "
                            f"--superlu-max {args.superlu_max:,} (111 s at 215 000)"})
            continue
        print(f"  running {method} ...", flush=True)
        results.append(run_worker(method, path, args.repeats, n_fixed=k))
    title = (f"PBLUP, herd-structured {args.animals:,}-animal pedigree" if kind == "pblup"
             else f"ssGBLUP, {args.genotyped:,} genotyped in a {args.ss_animals:,}-animal "
                  "pedigree")
    report(f"{title} ({neq:,} equations)", results, goal_s=60 if kind == "pblup" else None)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--animals", type=int, default=1_000_000)
    ap.add_argument("--ss-animals", type=int, default=200_000)
    ap.add_argument("--genotyped", type=int, default=10_000)
    ap.add_argument("--snps", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--superlu-max", type=int, default=250_000)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--skip-pblup", action="store_true")
    ap.add_argument("--skip-ss", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--n-fixed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.repeats, args.n_fixed)))
        return 0
    from bigeval.linalg.cholesky import HAVE_CHOLMOD
    from threadpoolctl import threadpool_info
    print(f"cores {os.cpu_count()}, CHOLMOD {'yes' if HAVE_CHOLMOD else 'NO'}, BLAS "
          + ", ".join(f"{i['filepath'].rsplit('/', 1)[-1]} ({i['num_threads']} threads)"
                      for i in threadpool_info() if i["user_api"] == "blas")
          + f", load average {os.getloadavg()[0]:.1f}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_pblup:
            out["pblup"] = bench("pblup", args, tmp)
        if not args.skip_ss:
            out["ssgblup"] = bench("ssgblup", args, tmp)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
