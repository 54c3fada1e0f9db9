"""Exact reliabilities from the inverse of the mixed-model equations.

The exact reliability of animal i is

    r²_i = 1 - α C^aa_ii      (Mrode 2014, section 3.3.3: r² = 1 - PEV/σa², PEV = C^aa_ii σe²)

where C is the inverse of the LHS with the residual variance scaled to 1. This is what the
approximation of :mod:`bigeval.reliability` is checked against (method spec, "What this
method is checked against").

Model: y = X b + Z a (+ W pe) + e, with b the contemporary groups (fixed, no overall mean),
a the animals (var A σa², or H σa² in single step) and, with repeated records, pe a
permanent-environment effect of every animal that has records (var I σpe²):

    [ X'X   X'Z          X'W      ]
    [ Z'X   Z'Z + α H⁻¹  Z'W      ]     α = σe²/σa², τ = σe²/σpe²
    [ W'X   W'Z          W'W + τ I]

with H⁻¹ = A⁻¹ + [[0, 0], [0, G⁻¹ - A22⁻¹]] (Aguilar et al. 2010) in single step, else
A⁻¹ (Henderson's rules with inbreeding, :func:`bigeval.pedigree.ainv_sparse`).

Two paths give the same numbers: ``dense`` inverts the LHS with LAPACK (potrf + potri; the
twin, small data only) and ``sparse`` factors it (CHOLMOD, else SuperLU) and takes the
diagonal of the inverse by selected inversion (Takahashi equations,
:mod:`bigeval.linalg.selinv`), which scales to the ~10⁶ equations that factor on one node;
in single step the genotyped animals' dense block is kept apart, by its Schur complement
(:mod:`bigeval.linalg.schur`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bigeval._resources import check_dense
from bigeval.errors import InputError
from bigeval.linalg import spd_inverse_diag
from bigeval.pedigree import _as_f, _as_pedigree, ainv_sparse

__all__ = ["exact_pev", "exact_reliability", "exact_method", "publishable"]

# The OpenBLAS bundled with the numpy/scipy wheels was measured to crash in multithreaded
# dpotrf for n >= ~16 300 (shared notes, "More measured facts"); above this size the
# factorisation runs on one BLAS thread.
_ONE_THREAD_FROM = 16_000
# Above this many equations ``method='auto'`` takes the sparse path (factor + selected
# inversion): the dense inverse costs n³/3 flops and 8 n² bytes (20 000 equations: 3 GiB,
# 90-130 s; shared notes), the sparse one about what the factorisation costs.
DENSE_MAX_EQUATIONS = 5_000
#: an exact reliability this close to 0 is 0 (the rounding of 1 − α·C_ii with C_ii = 1/α)
ROUNDING = 1e-10


def _positive(x, name: str, meaning: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0.0):
        raise InputError(
            f"{name} must be a positive number ({meaning})",
            value=x,
            expected="a finite number > 0",
            remedy=f"pass {name} from the variance components",
        )
    return v


def _as_index(x, name: str, upper: int | None, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1 or (x.size and not np.issubdtype(x.dtype, np.integer)):
        raise InputError(
            f"{name} must be a one-dimensional integer array ({what})",
            value=f"dtype {x.dtype}, shape {x.shape}",
            expected="integer numbers, one per entry",
            remedy="renumber with bigeval.prepare first",
        )
    x = x.astype(np.int64, copy=False)
    bad = np.flatnonzero((x < 0) | (x >= upper) if upper is not None else (x < 0))
    if bad.size:
        rng = f"0..{upper - 1}" if upper is not None else ">= 0"
        raise InputError(
            f"{name}[{bad[0]}] is out of range ({what})",
            value=int(x[bad[0]]),
            expected=f"an integer in {rng}",
            remedy="renumber with bigeval.prepare first",
        )
    return x


def _genomic_blocks(genotyped, ginv, a22inv, n: int):
    """Check the single-step inputs; return (indices, (G⁻¹, A22⁻¹)) or (None, None)."""
    given = [x is not None for x in (genotyped, ginv, a22inv)]
    if not any(given):
        return None, None
    if not all(given):
        raise InputError(
            "single step needs genotyped, ginv and a22inv together",
            value=", ".join(k for k, g in zip(("genotyped", "ginv", "a22inv"), given) if not g)
            + " missing",
            expected="all three, or none of them for a pedigree-only model",
            remedy="pass the genotyped animals with G⁻¹ and A22⁻¹ in the same order",
        )
    g = _as_index(genotyped, "genotyped", n, "internal numbers of genotyped animals")
    if np.unique(g).size != g.size:
        raise InputError(
            "an animal is listed twice among the genotyped animals",
            value=int(g[np.flatnonzero(np.bincount(g) > 1)[0]]),
            expected="each genotyped animal once",
            remedy="remove duplicate genotyped animals",
        )
    ng = g.size
    out = []
    for name, m in (("ginv", ginv), ("a22inv", a22inv)):
        m = np.asarray(m, dtype=np.float64)
        if m.shape != (ng, ng):
            raise InputError(
                f"{name} must be a square matrix over the genotyped animals",
                value=f"shape {m.shape}",
                expected=f"shape ({ng}, {ng}), in the order of genotyped",
                remedy="pass dense matrices in the order of the genotyped animals",
            )
        if not np.all(np.isfinite(m)):
            raise InputError(f"{name} holds non-finite values", value="nan or inf",
                             expected="finite numbers", remedy=f"recompute {name}")
        tol = 1e-8 * max(1.0, float(np.abs(m).max(initial=0.0)))
        asym = _max_asymmetry(m)
        if asym > tol:
            raise InputError(
                f"{name} is not symmetric",
                value=f"max |{name} - {name}'| = {asym:.3g}",
                expected="a symmetric matrix",
                remedy=f"pass the full symmetric {name} (both triangles)",
            )
        out.append(m)
    return g, (out[0], out[1])


def _max_asymmetry(m: np.ndarray, block: int = 2048) -> float:
    """max |m − mᵀ| by blocks (no n × n temporaries: 20 000 genotyped are 3.2 GB a copy)."""
    n = m.shape[0]
    worst = 0.0
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        for j0 in range(0, i1, block):
            j1 = min(n, j0 + block)
            worst = max(worst, float(np.abs(m[i0:i1, j0:j1] - m[j0:j1, i0:i1].T).max()))
    return worst


def _sparse_parts(sire, dam, rec_animal, rec_cg, alpha, *, tau, genotyped, ginv, a22inv, f):
    """(sparse LHS without the genomic block (CSC, both triangles), k, n, genotyped,
    ginv, a22inv as float64 arrays); genotyped None for a pedigree model."""
    sire, dam = _as_pedigree(sire, dam)
    n = sire.shape[0]
    alpha = _positive(alpha, "alpha", "σe²/σa²")
    tau = None if tau is None else _positive(tau, "tau", "σe²/σpe²")
    rec_animal = _as_index(rec_animal, "rec_animal", n, "the animal of each record")
    rec_cg = _as_index(rec_cg, "rec_cg", None, "the contemporary group of each record")
    if rec_cg.shape != rec_animal.shape:
        raise InputError(
            "rec_animal and rec_cg must have one entry per record",
            value=f"{rec_animal.size} animals, {rec_cg.size} groups",
            expected="equal lengths",
            remedy="pass the animal and contemporary group of every record",
        )
    f = None if f is None else _as_f(f, n)
    g, gm = _genomic_blocks(genotyped, ginv, a22inv, n)

    nrec = rec_animal.size
    # Contemporary groups without records are dropped: their X'X rows would be zero and
    # make the LHS singular.
    _, cg = np.unique(rec_cg, return_inverse=True)
    k = int(cg.max()) + 1 if nrec else 0
    cols = [cg, k + rec_animal]
    npe = 0
    if tau is not None:
        # pe effects only for animals with records
        _, pe = np.unique(rec_animal, return_inverse=True)
        npe = int(pe.max()) + 1 if nrec else 0
        cols.append(k + n + pe)
    neq = k + n + npe

    # W = [X Z W_pe]: one 1 per record and effect; W'W holds X'X, X'Z, Z'Z, ... (R = I)
    rows = np.tile(np.arange(nrec), len(cols))
    design = sp.csr_matrix((np.ones(rows.size), (rows, np.concatenate(cols))),
                           shape=(nrec, neq))
    lhs = (design.T @ design).tocsr()
    blocks = [sp.csr_matrix((k, k)), alpha * ainv_sparse(sire, dam, f)]
    if tau is not None:
        blocks.append(tau * sp.identity(npe, format="csr"))
    lhs = lhs + sp.block_diag(blocks, format="csr")  # + α A⁻¹, + τ I
    return lhs.tocsc(), k, n, g, gm


def _exact_lhs(sire, dam, rec_animal, rec_cg, alpha, *, tau, genotyped, ginv, a22inv, f):
    """The MME left-hand side (σe² = 1), sparse, and the offset k of the animal equations.

    Returns (lhs as CSC, k, n): equations are [groups (k), animals (n), pe].
    """
    lhs, k, n, g, gm = _sparse_parts(sire, dam, rec_animal, rec_cg, alpha, tau=tau,
                                     genotyped=genotyped, ginv=ginv, a22inv=a22inv, f=f)
    return _with_genomic(lhs, k, g, gm, float(alpha)).tocsc(), k, n


def _with_genomic(lhs, k, g, gm, alpha):
    """``lhs`` + α(G⁻¹ − A22⁻¹) on the genotyped animals' equations (both triangles):
    H⁻¹ = A⁻¹ + [[0, 0], [0, G⁻¹ − A22⁻¹]] (Aguilar et al. 2010); ``lhs`` when g is None."""
    if g is None:
        return lhs
    from bigeval.models.mme import dense_block

    return lhs + dense_block(alpha * (gm[0] - gm[1]), k + g, lhs.shape[0])


def exact_method(neq: int) -> str:
    """The path :func:`exact_reliability` takes for ``neq`` equations with ``method='auto'``:
    ``dense`` (LAPACK inverse, the twin) up to :data:`DENSE_MAX_EQUATIONS`, else ``sparse``
    (sparse Cholesky and selected inversion, :mod:`bigeval.linalg.selinv`)."""
    return "dense" if neq <= DENSE_MAX_EQUATIONS else "sparse"


def _caa_diagonal(sire, dam, rec_animal, rec_cg, alpha, *, tau, genotyped, ginv, a22inv, f,
                  method="auto", solver="auto"):
    """Diagonal of the animal block C^aa of the inverse LHS (σe² = 1), length n."""
    if method not in ("auto", "dense", "sparse"):
        raise InputError("unknown method", value=method, expected="auto, dense or sparse")
    lhs, k, n, g, gm = _sparse_parts(sire, dam, rec_animal, rec_cg, alpha, tau=tau,
                                     genotyped=genotyped, ginv=ginv, a22inv=a22inv, f=f)
    neq = lhs.shape[0]
    if method == "auto":
        method = exact_method(neq)
    remedy = ("check that G⁻¹ and A22⁻¹ are positive definite and in the order of "
              "genotyped, and that alpha and tau are positive")
    if method == "sparse":
        return _sparse_caa(lhs, k, n, g, gm, float(alpha), solver, remedy)
    lhs = _with_genomic(lhs, k, g, gm, float(alpha))
    check_dense(neq, copies=1, what=f"the exact MME left-hand side ({neq:,} equations)")
    dense = lhs.toarray(order="F")
    del lhs
    with threadpool_limits(limits=1 if neq >= _ONE_THREAD_FROM else None, user_api="blas"):
        diag = spd_inverse_diag(dense, overwrite=True, what="the MME left-hand side",
                                remedy=remedy)
    return diag[k:k + n].copy()


def _sparse_caa(lhs, k, n, g, gm, alpha, solver, remedy):
    """The sparse path: factor, then selected inversion (:mod:`bigeval.linalg.selinv`).

    Pedigree model: the sparse LHS factored whole (CHOLMOD reads its lower triangle). Single
    step: by the Schur complement of the genotyped animals' equations
    (:func:`bigeval.linalg.schur.schur_factor`): the sparse rest is factored
    alone, and the dense genotyped block C22 + α(G⁻¹ − A22⁻¹) − L21 L21ᵀ is the one dense
    n_g × n_g array, inverted in place by blocked LAPACK. Each large array is freed as soon
    as the next step no longer needs it.
    """
    from bigeval.linalg.cholesky import HAVE_CHOLMOD, cholesky
    from bigeval.linalg.schur import schur_factor
    from bigeval.linalg.selinv import SelectedInverse, takahashi

    if solver == "auto":
        solver = "cholmod" if HAVE_CHOLMOD else "superlu"
    if g is not None:
        e2 = k + np.asarray(g, np.int64)
        c22 = _genomic_block(sp.csc_matrix(lhs)[e2][:, e2], gm[0], gm[1], alpha)
        del gm
        f = schur_factor(lhs, e2, c22=c22, keep_factor=False, solver=solver,
                         what="the MME left-hand side", remedy=remedy)
        return f.diagonal()[k:k + n].copy()
    A = sp.tril(lhs, format="csc") if solver == "cholmod" else lhs  # CHOLMOD: lower only
    del lhs
    try:
        fac = cholesky(A, solver, what="the MME left-hand side")
        del A
        L, perm = fac.L, np.asarray(fac.perm, dtype=np.int64)
        del fac  # CHOLMOD's own copy of the factor
        Z = takahashi(L, overwrite=True)
    except InputError as exc:
        raise InputError(exc.message, remedy=remedy) from None
    del L
    return SelectedInverse(Z, perm).diagonal()[k:k + n].copy()


def _genomic_block(sparse22, ginv, a22inv, alpha, block: int = 2048) -> np.ndarray:
    """C22 = (the sparse LHS on the genotyped) + α(G⁻¹ − A22⁻¹), dense, Fortran order,
    written column block by column block (no n_g × n_g temporaries)."""
    ng = sparse22.shape[0]
    out = np.empty((ng, ng), order="F")
    for j0 in range(0, ng, block):
        j1 = min(ng, j0 + block)
        # G⁻¹ and A22⁻¹ are symmetric: their rows j0:j1 are the columns, in either order
        np.subtract(ginv[j0:j1, :].T, a22inv[j0:j1, :].T, out=out[:, j0:j1])
    out *= alpha
    coo = sp.coo_matrix(sparse22)
    coo.sum_duplicates()
    out[coo.row, coo.col] += coo.data
    return out


def exact_reliability(sire, dam, rec_animal, rec_cg, alpha, *, tau=None, genotyped=None,
                      ginv=None, a22inv=None, f=None, method: str = "auto") -> np.ndarray:
    """Exact reliability ``1 - α C^aa_ii`` of every animal, from the inverse of the MME.

    Parameters
    ----------
    sire, dam
        Parent numbers, one per animal (length n), -1 for an unknown parent; any numbering.
    rec_animal
        The animal (0..n-1) of each record; several records of one animal are repeated
        records.
    rec_cg
        The contemporary group (integer >= 0, fixed effect) of each record. Group numbers
        without records are dropped.
    alpha
        ``α = σe²/σa²``.
    tau
        ``τ = σe²/σpe²``; when given, a permanent-environment effect is fitted for every
        animal with records (repeatability model).
    genotyped
        Internal numbers of the genotyped animals (length ng), for single step.
    ginv, a22inv
        G⁻¹ and A22⁻¹, dense ng by ng, in the order of ``genotyped``.
    f
        Inbreeding coefficients (length n) for A⁻¹; computed from the pedigree when None.
    method
        ``dense``: LAPACK inverse of the dense LHS (the twin; small data); ``sparse``: sparse
        Cholesky (CHOLMOD when installed) and selected inversion of the factor
        (:mod:`bigeval.linalg.selinv`), for systems up to ~10⁶ equations that factor in
        memory; ``auto`` (default): :func:`exact_method`.

    Returns
    -------
    numpy.ndarray
        float64, length n, in the animal numbering. Values are returned as computed: no
        clipping (a tiny negative value of an animal without information is kept).

    Raises
    ------
    InputError
        Bad inputs, or a left-hand side that is not positive definite.
    ResourceError
        If the dense left-hand side (cgs + n + pe equations, squared) does not fit in memory
        (dense path).

    Notes
    -----
    Reliability is relative to σa², as in Mrode (2014, section 3.3.3): an inbred animal,
    whose breeding value has variance (1 + F) σa², is not rescaled.

    Examples
    --------
    A sire (0) without records, its two progeny (1, 2) and an unrelated animal (3) with one
    record each, all in one contemporary group, α = 2:

    >>> exact_reliability([-1, 0, 0, -1], [-1, -1, -1, -1], [1, 2, 3], [0, 0, 0], 2.0).round(4)
    array([0.0541, 0.1867, 0.1867, 0.2162])
    """
    d = _caa_diagonal(sire, dam, rec_animal, rec_cg, alpha, tau=tau, genotyped=genotyped,
                      ginv=ginv, a22inv=a22inv, f=f, method=method)
    return 1.0 - float(alpha) * d  # Mrode (2014) 3.3.3: r² = 1 - PEV/σa² = 1 - d α


def exact_pev(sire, dam, rec_animal, rec_cg, alpha, *, sigma_e2=1.0, tau=None,
              genotyped=None, ginv=None, a22inv=None, f=None, method: str = "auto") -> np.ndarray:
    """Exact prediction error variance ``C^aa_ii σe²`` of every animal.

    Parameters are those of :func:`exact_reliability`, plus ``sigma_e2`` (σe², default 1: the
    PEV in units of the residual variance).

    Returns
    -------
    numpy.ndarray
        float64, length n.

    Examples
    --------
    >>> pev = exact_pev([-1, 0, 0, -1], [-1, -1, -1, -1], [1, 2, 3], [0, 0, 0], 2.0,
    ...                 sigma_e2=40.0)
    >>> pev.round(3)
    array([18.919, 16.265, 16.265, 15.676])
    """
    sigma_e2 = _positive(sigma_e2, "sigma_e2", "the residual variance")
    d = _caa_diagonal(sire, dam, rec_animal, rec_cg, alpha, tau=tau, genotyped=genotyped,
                      ginv=ginv, a22inv=a22inv, f=f, method=method)
    return d * sigma_e2  # PEV = C^aa_ii σe² (Mrode 2014, section 3.3.3)


def publishable(rel: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact reliabilities as a run publishes them, and the animals below 0 (a warning).

    ``1 − α C^aa_ii`` within :data:`ROUNDING` of 0 is 0 (rounding). It is below 0 for an
    animal whose prior variance exceeds σa² (inbred, or G*_ii > 1) and which has almost no
    information: on the σa² scale of the method spec its
    PEV exceeds σa². Such a value is no reliability; it is published as 0, the animals are
    marked (the returned mask, written as a column ``exact_below_zero``) and a
    :class:`bigeval.errors.BigevalWarning` says how many.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     publishable(np.array([0.3, -0.02]), "exact PBLUP")
    (array([0.3, 0. ]), array([False,  True]))
    """
    import warnings

    from bigeval.errors import BigevalWarning

    rel = np.asarray(rel, np.float64)
    # an animal without any information has 1 − α·(1/α) = 0 up to rounding (±1e-16): 0
    rel = np.where(np.abs(rel) < ROUNDING, 0.0, rel)
    below = rel < 0.0
    if below.any():
        warnings.warn(f"{int(below.sum()):,} animal(s) have an {what} reliability 1 − PEV/σa² "
                      f"below 0 (lowest {float(rel.min()):.4f}): prior variance above σa² "
                      "(inbred, or G*_ii > 1) with almost no information; published as 0 and "
                      "marked in the column exact_below_zero", BigevalWarning, stacklevel=2)
    return np.where(below, 0.0, rel), below
