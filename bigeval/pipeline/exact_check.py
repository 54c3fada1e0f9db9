"""The exact check of the ``reliabilities`` stage of ``bigeval run``: on the whole population
when it fits the limits, else on a seeded herd sample.

``[exact] check``: ``true`` runs the check, ``false`` does not, ``"auto"`` runs it on the
whole population when its MME has at most ``exact.max_equations`` equations and at most
``exact.max_genotyped`` genotyped animals. ``[exact] sample``: ``"auto"`` (default) checks a
population over the limits (with ``check = "auto"``) on a seeded herd sample
(:mod:`bigeval.reliability.sample_check`) instead of skipping the check; ``true`` always
checks on a sample (unless ``check = false``); ``false`` never.

Either way the check writes ``exact.parquet`` (published as ``exact_check.csv``) into the
stage's folder: one row per animal checked (every animal, or the sample's) with the
approximation and the exact values, both computed with the same information (no Interbull:
the exact model has none). The stage summary (in the manifest) says which it was.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bigeval.errors import ResourceError
from bigeval.io.parquet import write_parquet

__all__ = ["exact_check", "manifest_entry", "plan"]


def _exact(pop, alpha: float, tau, *, genomic: bool) -> np.ndarray:
    """Exact reliabilities (:func:`bigeval.reliability.exact.exact_reliability`: dense
    inverse for small systems, sparse selected inversion for larger ones)."""
    from bigeval.reliability.exact import exact_reliability

    if genomic:
        return exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha, tau=tau,
                                 genotyped=pop.genotyped, ginv=pop.ginv, a22inv=pop.a22inv)
    return exact_reliability(pop.sire, pop.dam, pop.rec_animal, pop.rec_cg, alpha, tau=tau)


def plan(cfg, n_eq: int, n_genotyped: int) -> str | None:
    """Where the check runs: ``"whole"``, ``"sample"`` or None (not at all).

    Examples
    --------
    >>> cfg = {"exact.check": "auto", "exact.sample": "auto", "exact.max_equations": 100,
    ...        "exact.max_genotyped": 10}
    >>> plan(cfg, 90, 5), plan(cfg, 120, 5), plan(cfg, 90, 11)
    ('whole', 'sample', 'sample')
    >>> plan({**cfg, "exact.sample": False}, 120, 5) is None
    True
    >>> plan({**cfg, "exact.check": True}, 120, 5), plan({**cfg, "exact.sample": True}, 90, 5)
    ('whole', 'sample')
    """
    check, sample = cfg["exact.check"], cfg["exact.sample"]
    fits = n_eq <= cfg["exact.max_equations"] and n_genotyped <= cfg["exact.max_genotyped"]
    if check is False:
        return None
    if sample is True or (sample == "auto" and check == "auto" and not fits):
        return "sample"
    return "whole" if check is True or fits else None


def exact_check(ctx, pop, res, opts, *, rerun) -> tuple[dict, np.ndarray | None]:
    """Run the check as :func:`plan` says; write ``exact.parquet`` into ``ctx.work``.

    Parameters
    ----------
    ctx
        The stage's :class:`bigeval.pipeline.stages.StageContext`.
    pop, res, opts
        The population, its approximate reliabilities (with Interbull) and the options.
    rerun
        ``rerun(pop)``: the approximation of a population without Interbull (the run's
        engine), when the whole is checked and the run has Interbull.

    Returns
    -------
    summary, rel_exact
        The stage summary's ``exact`` entry, and the exact reliabilities of every animal for
        the per-animal table (None unless the whole population was checked).
    """
    from bigeval.pipeline.workflow import exact_size

    cfg = ctx.config
    n_eq = exact_size(pop, opts.tau is not None)
    n_g = 0 if pop.genotyped is None else len(pop.genotyped)
    where = plan(cfg, n_eq, n_g)
    if where is not None and n_g and not isinstance(pop.ginv, np.ndarray):
        # APY (genomics.inverse): G*⁻¹ is held as its pieces, A22⁻¹ as an operator
        return {"ran": False, "equations": n_eq,
                "reason": "G*⁻¹ is the APY inverse ([genomics] inverse): exact single-step "
                          "reliabilities need the full G*⁻¹"}, None
    summary = {"ran": where == "whole", "equations": n_eq}
    if where == "sample":
        summary.update(_on_sample(ctx, pop, opts, n_eq, n_g))
        return summary, None
    if where is None:
        return summary, None
    rel_exact = _whole(ctx, pop, res, opts, n_eq, rerun, summary)
    return summary, rel_exact


def _whole(ctx, pop, res, opts, n_eq, rerun, summary) -> np.ndarray:
    from bigeval.reliability.exact import publishable
    from bigeval.reliability.exact import agreement

    genomic = pop.genotyped is not None
    # Both sides with the same information: the exact model has no Interbull.
    base = dataclasses.replace(pop, interbull_animal=None, interbull_value=None)
    ctx.progress.phase(f"exact check: approximation without Interbull, "
                       f"MME inverse ({n_eq:,} equations)")
    res_ni = res if pop.interbull_animal is None else rerun(base)
    ex_a = _exact(base, opts.alpha, opts.tau, genomic=False)
    exact = pd.DataFrame({"animal": pd.array(pop.ids.astype(str), dtype="string"),
                          "rel_pedigree": res_ni.rel_pedigree, "rel_exact_pblup": ex_a})
    summary["part1_vs_pblup"] = agreement(res_ni.rel_pedigree, ex_a)
    if genomic:
        ex_h = _exact(base, opts.alpha, opts.tau, genomic=True)
        exact["rel_final"] = res_ni.rel_final
        exact["rel_exact_ssgblup"] = ex_h
        summary["part3_vs_ssgblup"] = agreement(res_ni.rel_final, ex_h)
        g = np.zeros(pop.n_animals, bool)
        g[pop.genotyped] = True
        summary["part3_vs_ssgblup_genotyped"] = agreement(res_ni.rel_final[g], ex_h[g])
    summary["interbull_left_out"] = pop.interbull_animal is not None
    below = np.zeros(pop.n_animals, bool)
    for col, what in (("rel_exact_pblup", "exact PBLUP"), ("rel_exact_ssgblup", "exact ssGBLUP")):
        if col in exact:
            exact[col], b = publishable(exact[col].to_numpy(), what)
            below |= b
    exact["exact_below_zero"] = below
    write_parquet(exact, ctx.work / "exact.parquet")
    return exact["rel_exact_ssgblup" if genomic else "rel_exact_pblup"].to_numpy()


def _on_sample(ctx, pop, opts, n_eq: int, n_g: int) -> dict:
    """The check on a seeded herd sample (:func:`bigeval.reliability.sample_check.
    exact_sample_check`): its rows as exact.parquet; the summary says what the sample is."""
    from bigeval.reliability.sample_check import CAVEAT, SampleDoesNotFit, exact_sample_check

    cfg = ctx.config
    fits = n_eq <= cfg["exact.max_equations"] and n_g <= cfg["exact.max_genotyped"]
    why = ("[exact] sample = true" if fits else
           f"the whole population ({n_eq:,} equations, {n_g:,} genotyped) is over the limits "
           f"(exact.max_equations {cfg['exact.max_equations']:,}, exact.max_genotyped "
           f"{cfg['exact.max_genotyped']:,})")
    ctx.progress.phase("exact check on a seeded herd sample")
    try:
        res = exact_sample_check(pop, opts, max_equations=cfg["exact.max_equations"],
                                 max_genotyped=cfg["exact.max_genotyped"],
                                 seed=cfg["exact.sample_seed"],
                                 herd_pattern=cfg["sample.herd_pattern"],
                                 a22inv_method=cfg["genomics.a22inv_method"],
                                 a22_from_pedigree=cfg["inputs.a22inv"] is None)
    except SampleDoesNotFit as exc:
        return {"on": "sample", "reason": exc.message}
    except ResourceError as exc:  # G*⁻¹ of the genotyped outside the sample: too large
        return {"on": "sample", "reason": str(exc)}
    table = res.table.assign(animal=pd.array(res.table["animal"], dtype="string"))
    write_parquet(table, ctx.work / "exact.parquet")
    return {"ran": True, "on": "sample",
            "sample": {**res.counts, "why": why, "note": CAVEAT, "file": "exact_check.csv "
                       "holds the sample's animals (approximation and exact values both "
                       "computed on the sample)"},
            "agreement": res.agreement, "interbull_left_out": pop.interbull_animal is not None}


def manifest_entry(stage_summary: dict) -> dict:
    """What ``manifest.json`` says of the exact check (``exact_check``), from the
    ``reliabilities`` stage's summary: where it ran (``whole``, ``sample`` or None), and for a
    sample what it is, why, and what its figures mean.

    Examples
    --------
    >>> manifest_entry({"exact": {"ran": False, "equations": 10}})
    {'ran': False, 'on': None, 'equations': 10}
    """
    ex = stage_summary.get("exact", {})
    on = ex.get("on", "whole") if ex.get("ran") else None
    entry = {"ran": bool(ex.get("ran")), "on": on, "equations": ex.get("equations")}
    if on == "sample":
        entry["sample"] = ex["sample"]
        entry["agreement"] = ex["agreement"]
    elif "reason" in ex:
        entry["sample_not_run"] = ex["reason"]
    return entry
