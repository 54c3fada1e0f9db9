"""The HTML report of a run: one self-contained file, plots embedded as PNG (base64).

Sections: the population and parameters (with the genomic method); the warnings of the run;
reliability distributions of genotyped and non-genotyped animals; mean reliability by birth
year and by sex; the gain from genomics (Part III − Part I) for young animals; convergence of
the iteration; the approximate-vs-exact check (when it ran), for all, genotyped and
non-genotyped animals; the genotype QC summary; the stage timings and peak memory.

The report shows what the run gave, also when it is wrong: the axes of every reliability plot
cover the smallest and largest value (the expected range [0, 1) is shaded) and a note under
the plot counts the values outside it; a negative mean gain from genomics is said in words
with what can cause it; every warning a stage emitted is listed (kept in its ``stage.json``
by the runner, see :func:`bigeval.pipeline.manifest.collect_warnings`).

Plots are drawn with matplotlib's Agg backend (no display needed). The page has no external
resource: it opens from a mail attachment or an archive as it is. A short inline script marks
the page with ``data-images="loaded/total"`` once the browser has decoded the figures, which the
browser test reads.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from bigeval import __version__

__all__ = ["write_report", "summary_text"]

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;
border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}td,th{padding:.2em .7em;border-bottom:1px solid #eee;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
.meta{color:#666;font-size:.9em}.note{color:#555;font-style:italic}
.warn{color:#8a1c00;font-weight:600}
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
});
"""

GENO_COLOUR, NONGENO_COLOUR, PED_COLOUR = "#1f77b4", "#ff7f0e", "#7f7f7f"
BAND = (0.0, 1.0)  # the expected range of a reliability, [0, 1)


_MAX_CONFLICTS_SHOWN = 50  # rows of the parent-progeny conflict table


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    """A figure as an <img> tag with the PNG inline (no metadata: same bytes every time)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _table(rows, header=None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _plain(label) -> str:
    """A label from the user's data drawn as plain text: every ``$`` escaped, so matplotlib
    never parses it as mathtext (``$\\foo$`` failed the report after all the computing)."""
    return str(label).replace("$", r"\$")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
    return str(v)


# ---------------------------------------------------------------------------------------------
# Values outside the expected range


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).ravel()
    return v[np.isfinite(v)]


def _limits(*values, pad: float = 0.03) -> tuple[float, float]:
    """Axis limits that hold the expected range [0, 1] and every value given."""
    v = np.concatenate([_finite(x) for x in values]) if values else np.empty(0)
    lo = min(BAND[0], float(v.min())) if len(v) else BAND[0]
    hi = max(BAND[1], float(v.max())) if len(v) else BAND[1]
    margin = pad * (hi - lo)
    return lo - margin, hi + margin


def _mark_band(ax, axis: str = "x") -> None:
    """Shade the expected range [0, 1) of a reliability (behind the data)."""
    span, line = (ax.axvspan, ax.axvline) if axis == "x" else (ax.axhspan, ax.axhline)
    span(*BAND, color="#2ca02c", alpha=0.07, lw=0, zorder=0)
    for edge in BAND:
        line(edge, color="#2ca02c", lw=0.8, ls=":", zorder=0)


def outside_range(values) -> dict:
    """How many finite values lie outside [0, 1): below 0, at or above 1, the extremes."""
    v = _finite(values)
    return {"n": int(len(v)), "below": int((v < BAND[0]).sum()),
            "above": int((v >= BAND[1]).sum()),
            "min": float(v.min()) if len(v) else None, "max": float(v.max()) if len(v) else None}


def _outside_note(named, what: str = "values") -> str:
    """The note under a plot: how many of each plotted series lie outside [0, 1)."""
    counts = [(name, outside_range(v)) for name, v in named]
    if all(c["below"] + c["above"] == 0 for _, c in counts):
        n = ", ".join(f"{c['n']:,} {name}" for name, c in counts)
        return (f"<p class=\"note\">No {what} outside [0, 1) (shaded): all in range ({n}).</p>")
    bits = []
    for name, c in counts:
        out = c["below"] + c["above"]
        bit = f"{name}: {out:,} of {c['n']:,}"
        if out:
            extra = []
            if c["below"]:
                extra.append(f"{c['below']:,} below 0, lowest {c['min']:.4g}")
            if c["above"]:
                extra.append(f"{c['above']:,} at or above 1, highest {c['max']:.4g}")
            bit += f" ({'; '.join(extra)})"
        bits.append(bit)
    return (f"<p class=\"note\">{what.capitalize()} outside [0, 1) (the shaded band is the "
            f"expected range; the axes cover every value): {html.escape('; '.join(bits))}.</p>")


# ---------------------------------------------------------------------------------------------
# Figures (``_draw_*`` build the matplotlib figure, ``_fig_*`` give the HTML)


def _fig_distributions(table: pd.DataFrame) -> str:
    cols = (("rel_pedigree", "Part I"), ("rel_final", "final"))
    return (_png(_draw_distributions(table))
            + _outside_note([(label, table[c]) for c, label in cols], "reliabilities"))


def _draw_distributions(table: pd.DataFrame):
    plt = _plt()
    g = table["genotyped"].to_numpy(bool)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
    both = (table["rel_pedigree"], table["rel_final"])  # one scale: the panels compare
    lo, hi = _limits(*both, pad=0.0)
    bins = np.linspace(lo, hi, int(min(200, np.ceil((hi - lo) / 0.02))) + 1)
    for ax, col, title in ((axes[0], "rel_pedigree", "Part I (pedigree and records)"),
                           (axes[1], "rel_final", "final (Part III)")):
        v = table[col].to_numpy(np.float64)
        _mark_band(ax, "x")
        if (~g).any():
            ax.hist(v[~g], bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    color=NONGENO_COLOUR, label=f"not genotyped (n={int((~g).sum()):,})")
        if g.any():
            ax.hist(v[g], bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    color=GENO_COLOUR, label=f"genotyped (n={int(g.sum()):,})")
        ax.set_xlim(*_limits(*both))
        ax.set_xlabel("reliability")
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("Reliability distributions")
    return fig


def _fig_of_means(draw, table: pd.DataFrame) -> str | None:
    """A figure of mean reliabilities (``draw`` gives it and the plotted means, or None) as
    PNG, with the note on means outside [0, 1)."""
    drawn = draw(table)
    if drawn is None:
        return None
    fig, means = drawn
    return _png(fig) + _outside_note([("means", means)], "plotted means")


def _draw_by_birth_year(table: pd.DataFrame):
    """The figure and the plotted means (or None without birth years)."""
    by = table["birth_year"]
    if by.isna().all():
        return None
    plt = _plt()
    plotted = []
    t = table.loc[by.notna()].copy()
    t["birth_year"] = t["birth_year"].astype(int)
    fig, ax = plt.subplots(figsize=(11, 3.8))
    m = t.groupby("birth_year")[["rel_pedigree", "rel_final"]].mean()
    ax.plot(m.index, m["rel_pedigree"], "o-", color=PED_COLOUR, label="Part I, all animals")
    ax.plot(m.index, m["rel_final"], "o-", color="#2ca02c", label="final, all animals")
    plotted += [m["rel_pedigree"].to_numpy(), m["rel_final"].to_numpy()]
    g = t.loc[t["genotyped"]]
    if len(g):
        mg = g.groupby("birth_year")["rel_final"].mean()
        ax.plot(mg.index, mg.values, "s--", color=GENO_COLOUR, label="final, genotyped")
        plotted.append(mg.to_numpy())
    ng = t.loc[~t["genotyped"]]
    if len(ng) and len(g):
        mn = ng.groupby("birth_year")["rel_final"].mean()
        ax.plot(mn.index, mn.values, "^--", color=NONGENO_COLOUR, label="final, not genotyped")
        plotted.append(mn.to_numpy())
    _mark_band(ax, "y")
    ax.set_xlabel("birth year")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("mean reliability")
    ax.set_ylim(*_limits(*plotted))
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Mean reliability by birth year")
    return fig, np.concatenate(plotted)




def _draw_by_sex(table: pd.DataFrame):
    """The figure and the plotted means (or None without sexes)."""
    sex = table["sex"]
    if sex.isna().all():
        return None
    plt = _plt()
    t = table.loc[sex.notna()]
    m = t.groupby("sex")[["rel_pedigree", "rel_final"]].mean()
    n = t.groupby("sex").size()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(m))
    ax.bar(x - 0.2, m["rel_pedigree"], width=0.4, color=PED_COLOUR, label="Part I")
    ax.bar(x + 0.2, m["rel_final"], width=0.4, color="#2ca02c", label="final")
    ax.set_xticks(x, [f"{_plain(s)}\n(n={n[s]:,})" for s in m.index])
    _mark_band(ax, "y")
    ax.set_ylabel("mean reliability")
    means = np.concatenate([m["rel_pedigree"].to_numpy(), m["rel_final"].to_numpy()])
    ax.set_ylim(*_limits(means))
    ax.legend(fontsize=8)
    ax.set_title("Mean reliability by sex")
    return fig, means


def young_animals(table: pd.DataFrame, young_years: int) -> tuple[np.ndarray, str]:
    """Mask of the young animals and how they were chosen.

    Born in the last ``young_years`` birth years when birth years are known; otherwise the
    animals without own records (erc_records == 0), which is where genomics matters most.
    """
    by = table["birth_year"]
    if by.notna().any() and young_years > 0:
        last = int(by.max())
        first = last - young_years + 1
        return (by >= first).fillna(False).to_numpy(bool), f"born {first}–{last}"
    return (table["erc_records"].to_numpy() <= 0), "without own records"


def gain_stats(table: pd.DataFrame, young_years: int) -> dict:
    """Mean gain from genomics (final − Part I reliability) of the groups the report shows."""
    young, how = young_animals(table, young_years)
    gain = (table["rel_final"] - table["rel_pedigree"]).to_numpy(np.float64)
    g = table["genotyped"].to_numpy(bool)
    no_records = table["erc_records"].to_numpy(np.float64) <= 0

    def mean(mask):
        return float(gain[mask].mean()) if mask.any() else None

    return {"young": how, "n_young": int(young.sum()),
            "n_young_genotyped": int((young & g).sum()),
            "mean_gain_genotyped": mean(g),
            "mean_gain_young_genotyped": mean(young & g),
            "n_young_genotyped_no_records": int((young & g & no_records).sum()),
            "mean_gain_young_genotyped_no_records": mean(young & g & no_records),
            "mean_gain_young_not_genotyped": mean(young & ~g)}


def negative_gain_text(stats: dict, exact_ran: bool) -> list[str]:
    """Sentences for each group of genotyped animals whose mean gain from genomics is negative."""
    groups = (("genotyped animals", "mean_gain_genotyped"),
              ("young genotyped animals", "mean_gain_young_genotyped"),
              ("young genotyped animals without own records",
               "mean_gain_young_genotyped_no_records"))
    check = ("compare with the exact check below" if exact_ran else
             "the exact check did not run; run it on a sample (bigeval sample) to tell which")
    out = []
    for name, key in groups:
        v = stats.get(key)
        if v is not None and v < 0:
            out.append(f"The mean gain from genomics of the {name} is negative ({v:+.4f}): "
                       "their final reliability is below the one from pedigree and records "
                       "alone (Part I). This can be so when the genomic relationships of these "
                       "animals are below the pedigree ones (they are less related to the "
                       "informative animals than the pedigree says), or it is an approximation "
                       f"failing: {check}.")
    return out


def _fig_gain(table: pd.DataFrame, young_years: int) -> tuple[str | None, dict]:
    stats = gain_stats(table, young_years)
    fig = _draw_gain(table, young_years)
    return (None if fig is None else _png(fig)), stats


def _draw_gain(table: pd.DataFrame, young_years: int):
    young, how = young_animals(table, young_years)
    gain = (table["rel_final"] - table["rel_pedigree"]).to_numpy(np.float64)
    g = table["genotyped"].to_numpy(bool)
    if not g.any() or not young.any():
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    lo, hi = min(0.0, float(gain[young].min())), max(0.05, float(gain[young].max()))
    bins = np.linspace(lo, hi, 51)
    if (young & ~g).any():
        ax.hist(gain[young & ~g], bins=bins, histtype="stepfilled", alpha=0.45,
                color=NONGENO_COLOUR, label=f"not genotyped (n={int((young & ~g).sum()):,})")
    ax.hist(gain[young & g], bins=bins, histtype="stepfilled", alpha=0.45, color=GENO_COLOUR,
            label=f"genotyped (n={int((young & g).sum()):,})")
    ax.axvline(0.0, color="k", lw=0.8, ls=":")  # left of it: genomics lowered the reliability
    ax.set_yscale("log")
    ax.set_xlabel("gain in reliability from genomics (Part III − Part I)")
    ax.set_ylabel("animals")
    ax.set_title(f"Gain from genomics, young animals ({how})")
    ax.legend(fontsize=8)
    return fig


def _fig_convergence(conv: pd.DataFrame) -> str | None:
    if conv is None or not len(conv):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.4))
    for part, colour in (("I", PED_COLOUR), ("III", "#2ca02c")):
        c = conv.loc[conv["part"] == part]
        if len(c):
            ax.semilogy(c["round"], np.maximum(c["max_change"], 1e-17), "-", color=colour,
                        label=f"Part {part}")
    ax.set_xlabel("round")
    ax.set_ylabel("largest change of a reliability")
    ax.set_title("Convergence of the iteration")
    ax.legend(fontsize=8)
    return _png(fig)


def _exact_pairs(exact: pd.DataFrame) -> list[tuple[str, str, str]]:
    pairs = [("rel_pedigree", "rel_exact_pblup", "Part I vs exact PBLUP")]
    if "rel_exact_ssgblup" in exact:
        pairs.append(("rel_final", "rel_exact_ssgblup", "Part III vs exact ssGBLUP"))
    return pairs


def _fig_exact(exact: pd.DataFrame, seed: int = 1) -> str:
    names = {"rel_pedigree": "Part I", "rel_exact_pblup": "exact PBLUP",
             "rel_final": "Part III", "rel_exact_ssgblup": "exact ssGBLUP"}
    named = [(names[c], exact[c]) for a, e, _ in _exact_pairs(exact) for c in (a, e)]
    return _png(_draw_exact(exact, seed)) + _outside_note(named, "reliabilities")


def _draw_exact(exact: pd.DataFrame, seed: int = 1):
    plt = _plt()
    pairs = _exact_pairs(exact)
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 5), squeeze=False)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(exact))
    if len(idx) > 4000:  # a sample, with every value outside [0, 1) drawn
        cols = [exact[c].to_numpy(np.float64) for a, e, _ in pairs for c in (a, e)]
        odd = np.flatnonzero(np.any([(v < BAND[0]) | (v >= BAND[1]) for v in cols], axis=0))
        idx = np.union1d(rng.choice(idx, 4000, replace=False), odd)
    for ax, (a, e, title) in zip(axes[0], pairs):
        x, y = exact[a].to_numpy(np.float64), exact[e].to_numpy(np.float64)
        r = np.corrcoef(x, y)[0, 1]
        lo, hi = _limits(x, y)  # all values, also those not drawn
        _mark_band(ax, "x")
        _mark_band(ax, "y")
        ax.plot(x[idx], y[idx], ".", ms=2, alpha=0.5, color=GENO_COLOUR)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("approximate")
        ax.set_ylabel("exact")
        ax.set_title(f"{title}\nr = {r:.4f}, mean |diff| {np.mean(np.abs(x - y)):.4f}",
                     fontsize=10)
    fig.suptitle("Approximate vs exact reliabilities"
                 + (f" ({len(idx):,} of {len(exact):,} animals shown)"
                    if len(idx) < len(exact) else ""))
    return fig


def _fig_timings(info: dict) -> str | None:
    rows = [(name, meta.get("seconds", 0.0)) for name, meta in info.items()]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2))
    names = [r[0] for r in rows][::-1]
    secs = [r[1] for r in rows][::-1]
    ax.barh(names, secs, color=GENO_COLOUR)
    ax.set_xlabel("seconds (last execution of each stage)")
    ax.set_title("Stage timings")
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# Text


def _read(folder: Path | None, name: str) -> pd.DataFrame | None:
    if folder is None or not (folder / name).exists():
        return None
    import pyarrow.parquet as pq

    return pq.read_table(folder / name).to_pandas()


def summary_text(cfg, table: pd.DataFrame, up: dict, info: dict) -> str:
    """The run's summary as text (``summary.txt``)."""
    from bigeval.pipeline.workflow import agreement_line

    val = json.loads((up["validate"] / "validation.json").read_text())
    rel = info["reliabilities"]["summary"]
    g = table["genotyped"].to_numpy(bool)
    lines = [
        f"bigeval {__version__} — evaluation run ({cfg.source.name if cfg.source else 'config'})",
        f"animals {val['animals']:,}  records {val['records']:,}  contemporary groups "
        f"{val['contemporary_groups']:,}  genotyped {int(g.sum()):,}  Interbull bulls "
        f"{val['interbull']:,}",
        f"alpha {rel['alpha']:g}  tau {cfg['parameters.tau'] if cfg['parameters.tau'] else '-'}"
        f"  sib-adjust {'yes' if cfg['parameters.sib_adjust'] else 'no'}  rounds "
        f"{cfg['parameters.rounds']}" + (f"  tol {cfg['parameters.tol']:g}"
                                         if cfg['parameters.tol'] else ""),
        f"Part I: {rel['rounds_part1']} rounds; mean reliability "
        f"{table['rel_pedigree'].mean():.3f}",
    ]
    if g.any():
        method = genomic_method(cfg, info)
        lines.append(f"Part II{f' ({method})' if method else ''}: mean genomic reliability of "
                     f"genotyped animals {table['rel_genomic'][g].mean():.3f} (Part I: "
                     f"{table['rel_pedigree'][g].mean():.3f})")
        lines.extend(f"note: {n}" for n in rel.get("genomic", {}).get("notes", []))
        lines.append(f"Part III: {rel['rounds_part3']} rounds; mean reliability "
                     f"{table['rel_final'].mean():.3f} (genotyped "
                     f"{table['rel_final'][g].mean():.3f}, not genotyped "
                     f"{table['rel_final'][~g].mean():.3f})")
    if "solve" in info:
        s = info["solve"]["summary"]
        lines.append(f"solve: {'ssGBLUP (H)' if s['relationship'] == 'H' else 'PBLUP (A)'}"
                     f"{' with pe' if s['pe'] else ''}, {s['equations']:,} equations, solver "
                     f"{s['solver']}; EBV in the column ebv")
        used = [f"{sym} {s[k]:.6g}" for k, sym in (("sigma_a2", "σa²"), ("sigma_pe2", "σpe²"),
                                                   ("sigma_e2", "σe²")) if s.get(k)]
        if used:
            lines.append(f"solve: variances used {', '.join(used)}")
    exact = _read(up.get("reliabilities"), "exact.parquet")
    if exact is not None:
        lines.append("exact check (same information on both sides, no Interbull):")
        lines.append("  " + agreement_line("Part I vs exact PBLUP", exact["rel_pedigree"],
                                           exact["rel_exact_pblup"]))
        if "rel_exact_ssgblup" in exact:
            lines.append("  " + agreement_line("Part III vs exact ssGBLUP", exact["rel_final"],
                                               exact["rel_exact_ssgblup"]))
            gx = table.set_index("animal")["genotyped"].reindex(
                exact["animal"]).to_numpy(bool)  # join by ID
            for label, mask in ((", genotyped", gx), (", not genotyped", ~gx)):
                if mask.sum() > 1:
                    lines.append("  " + agreement_line("Part III vs exact ssGBLUP" + label,
                                                       exact["rel_final"][mask],
                                                       exact["rel_exact_ssgblup"][mask]))
    elif not rel["exact"]["ran"]:
        lines.append(f"exact check not run ({rel['exact']['equations']:,} equations; "
                     "[exact] check / max_equations / max_genotyped)")
    return "\n".join(lines)


def genomic_method(cfg, info: dict) -> str | None:
    """The genomic method of the run (Part II): what the reliabilities stage says it used,
    else ``[parameters] genomic_method`` of the configuration; None when neither says."""
    used = (info.get("reliabilities", {}).get("summary", {}) or {}).get("genomic") or {}
    if used.get("method"):
        return str(used["method"])
    get = getattr(cfg, "get", None)
    try:
        method = get("parameters.genomic_method") if get is not None else None
    except KeyError:  # a configuration without the key
        method = None
    return None if method is None else str(method)


def warnings_section(info: dict, own=()) -> str:
    """The warnings of the run: each stage's (``stage.json``) and the report's own ``own``."""
    rows, unknown = [], []
    for name, meta in info.items():
        if "warnings" not in meta:
            unknown.append(name)  # a checkpoint from before warnings were kept
            continue
        rows += [(name, w.get("category"), w.get("message"), w.get("count", 1))
                 for w in meta["warnings"]]
    rows += [("report", w.get("category"), w.get("message"), w.get("count", 1)) for w in own]
    out = []
    if rows:
        out.append(f"<p class=\"warn\">The run gave {len(rows):,} warning"
                   f"{'s' if len(rows) != 1 else ''}:</p>")
        out.append(_table(rows, header=("stage", "kind", "warning", "times")))
    else:
        out.append("<p>The run gave no warnings.</p>")
    if unknown:
        out.append(f"<p class=\"note\">Not recorded for {html.escape(', '.join(unknown))}: "
                   "their checkpoints are older than the recording of warnings (bigeval run "
                   "--force all records them).</p>")
    return "\n".join(out)


def exact_rows(table: pd.DataFrame, exact: pd.DataFrame) -> list[tuple]:
    """Rows of the approximate-vs-exact table: each comparison for all, genotyped and
    non-genotyped animals (joined by ID), by :func:`bigeval.pipeline.workflow.agreement`."""
    from bigeval.pipeline.workflow import agreement

    gx = table.set_index("animal")["genotyped"].reindex(exact["animal"]).eq(True).to_numpy()
    rows = []
    for a, e, label in _exact_pairs(exact):
        for group, mask in (("all", np.ones(len(exact), bool)), ("genotyped", gx),
                            ("not genotyped", ~gx)):
            n = int(mask.sum())
            if n < 2:  # no correlation or slope of fewer than two animals
                rows.append((label, group, n, None, None, None, None, None))
                continue
            with np.errstate(divide="ignore", invalid="ignore"):  # constant values: nan
                ag = agreement(exact[a].to_numpy(np.float64)[mask],
                               exact[e].to_numpy(np.float64)[mask])
            rows.append((label, group, ag["n"], ag["corr"], ag["slope"], ag["mad"],
                         ag["mean_approx"], ag["mean_exact"]))
    return rows


EXACT_HEADER = ("comparison", "animals", "number", "correlation", "slope (exact on approx.)",
                "mean |diff|", "mean approx.", "mean exact")

_WARNINGS_SLOT = "<!-- warnings -->"


def write_report(cfg, table: pd.DataFrame, up: dict, info: dict, path: Path) -> Path:
    """Write the self-contained HTML report of a run to ``path``."""
    from bigeval.pipeline.manifest import collect_warnings

    with collect_warnings() as own:  # warnings while drawing the report are listed too
        parts = _report_parts(cfg, table, up, info)
    parts[parts.index(_WARNINGS_SLOT)] = warnings_section(info, own)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _report_parts(cfg, table: pd.DataFrame, up: dict, info: dict) -> list[str]:
    val = json.loads((up["validate"] / "validation.json").read_text())
    rel = info["reliabilities"]["summary"]
    title = cfg["report.title"]
    g = table["genotyped"].to_numpy(bool)
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class=\"meta\">bigeval {__version__}; configuration "
             f"{html.escape(cfg.source.name if cfg.source else '-')}; per-animal results in "
             f"reliability.csv and reliability.parquet</p>"]
    # overview
    parts.append("<h2 id=\"overview\">Population and parameters</h2>")
    rows = [("animals", val["animals"]), ("records", val["records"]),
            ("contemporary groups", val["contemporary_groups"]),
            ("animals with records", val["animals_with_records"]),
            ("genotyped", int(g.sum())), ("Interbull bulls", val["interbull"]),
            ("α = σe²/σa²", rel["alpha"]), ("τ = σe²/σpe²", cfg["parameters.tau"]),
            ("h²", cfg["parameters.h2"]), ("repeatability", cfg["parameters.repeatability"]),
            ("rounds (Part I / III)", f"{rel['rounds_part1']} / {rel['rounds_part3'] or '–'}")]
    method = genomic_method(cfg, info)
    if method is not None and g.any():
        rows.append(("genomic method (Part II)", method))
    parts.append(_table(rows))
    means = [("Part I", table["rel_pedigree"].mean(), table["rel_pedigree"][g].mean()
              if g.any() else None, table["rel_pedigree"][~g].mean())]
    if g.any():
        means.append(("Part II (genomic)", None, table["rel_genomic"][g].mean(), None))
    means.append(("final", table["rel_final"].mean(), table["rel_final"][g].mean()
                  if g.any() else None, table["rel_final"][~g].mean()))
    parts.append(_table(means, header=("mean reliability", "all", "genotyped",
                                       "not genotyped")))
    for note in val.get("notes", []):
        parts.append(f"<p class=\"note\">{html.escape(note)}</p>")
    parts.append("<h2 id=\"warnings\">Warnings</h2>")
    parts.append(_WARNINGS_SLOT)
    # figures
    parts.append("<h2 id=\"distributions\">Reliability of genotyped and non-genotyped animals"
                 "</h2>")
    parts.append(_fig_distributions(table))
    parts.append("<h2 id=\"birth-year\">Mean reliability by birth year</h2>")
    fig = _fig_of_means(_draw_by_birth_year, table)
    parts.append(fig or "<p class=\"note\">No birth years known: set [inputs] "
                        "birth_year_column.</p>")
    parts.append("<h2 id=\"sex\">Mean reliability by sex</h2>")
    fig = _fig_of_means(_draw_by_sex, table)
    parts.append(fig or "<p class=\"note\">No sex known: set [inputs] sex_column.</p>")
    parts.append("<h2 id=\"gain\">Gain from genomics for young animals</h2>")
    fig, stats = _fig_gain(table, cfg["report.young_years"])
    parts.append(_table([("young animals", stats["young"]), ("number", stats["n_young"]),
                         ("of them genotyped", stats["n_young_genotyped"]),
                         ("of them without own records",
                          stats["n_young_genotyped_no_records"]),
                         ("mean gain, all genotyped animals", stats["mean_gain_genotyped"]),
                         ("mean gain, young genotyped", stats["mean_gain_young_genotyped"]),
                         ("mean gain, young genotyped without own records",
                          stats["mean_gain_young_genotyped_no_records"]),
                         ("mean gain, young not genotyped",
                          stats["mean_gain_young_not_genotyped"])]))
    exact_ran = "reliabilities" in up and (up["reliabilities"] / "exact.parquet").exists()
    for text in negative_gain_text(stats, exact_ran):
        parts.append(f"<p class=\"warn\">{html.escape(text)}</p>")
    for note in (rel.get("genomic") or {}).get("notes", []):
        parts.append(f"<p class=\"note\">{html.escape(note)}</p>")
    parts.append(fig or "<p class=\"note\">No genotyped young animals.</p>")
    parts.append("<h2 id=\"convergence\">Convergence of the iteration</h2>")
    fig = _fig_convergence(_read(up.get("reliabilities"), "convergence.parquet"))
    parts.append(fig or "<p class=\"note\">No rounds were run.</p>")
    parts.append("<h2 id=\"exact\">Approximate vs exact reliabilities</h2>")
    exact = _read(up.get("reliabilities"), "exact.parquet")
    if exact is not None:
        parts.append(_table(exact_rows(table, exact), header=EXACT_HEADER))
        parts.append("<p class=\"note\">Both sides use the same information (records, "
                     "pedigree, genomics); Interbull is left out because the exact model has "
                     "none.</p>")
        parts.append(_fig_exact(exact))
    else:
        parts.append(f"<p class=\"note\">The check did not run: the exact MME has "
                     f"{rel['exact']['equations']:,} equations (limits with check = auto: "
                     f"[exact] max_equations = {cfg['exact.max_equations']:,}, "
                     f"max_genotyped = {cfg['exact.max_genotyped']:,}). Set [exact] check = "
                     "true, or run it on a sample (<code>bigeval sample</code>).</p>")
    parts.append("<h2 id=\"qc\">Genotype quality control</h2>")
    qc = _read(up.get("relationships"), "qc.parquet")
    rsum = info.get("relationships", {}).get("summary", {})
    if qc is not None:
        counts = qc.groupby(["kind", "reason"]).size().reset_index(name="n")
        rows = [("animals in the genotypes", rsum.get("animals_in_store")),
                ("SNPs in the genotypes", rsum.get("snps_in_store")),
                ("animals used for G", rsum.get("animals_used")),
                ("SNPs used for G", rsum.get("snps_used"))]
        parts.append(_table(rows))
        removed = counts[counts["kind"] != "pair"]
        parts.append(_table([(k, r, n) for k, r, n in removed.itertuples(index=False)],
                            header=("removed", "reason", "number")) if len(removed)
                     else "<p>QC removed nothing.</p>")
        pairs = qc[qc["kind"] == "pair"]
        if len(pairs):
            shown = pairs.head(_MAX_CONFLICTS_SHOWN)
            parts.append(f"<p class=\"warn\">{len(pairs):,} genotyped animal(s) conflict with "
                         "a recorded genotyped parent (opposing homozygotes at more than the "
                         "share given; a wrong parent or a sample mix-up). They were kept: "
                         "check the parent or the sample."
                         + (f" The first {len(shown)} are shown." if len(shown) < len(pairs)
                            else "") + "</p>")
            parts.append(_table([(a, t.split(", ", 1)[-1], f"{v:.4f}") for a, t, v in
                                 zip(shown["id"], shown["threshold"], shown["value"])],
                                header=("animal", "recorded parent", "opposing homozygotes")))
    elif rsum:
        parts.append(f"<p class=\"note\">No QC: genomic relationships came from "
                     f"{html.escape(str(rsum.get('source')))}.</p>")
    else:
        parts.append("<p class=\"note\">No genomic data in this run.</p>")
    parts.append("<h2 id=\"timings\">Stage timings</h2>")
    parts.append(_table([(name, meta.get("seconds"), meta.get("peak_rss_mb"),
                          meta.get("finished"))
                         for name, meta in info.items()],
                        header=("stage", "seconds", "peak memory (MB)", "finished")))
    parts.append(_fig_timings(info) or "")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return parts
