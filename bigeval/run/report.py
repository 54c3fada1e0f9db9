"""The HTML report of a run: one self-contained file, plots embedded as PNG (base64).

Sections: the population and parameters; reliability distributions of genotyped and
non-genotyped animals; mean reliability by birth year and by sex; the gain from genomics
(Part III − Part I) for young animals; convergence of the iteration; the approximate-vs-exact
check (when it ran); the genotype QC summary; the stage timings and peak memory.

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
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", ok + "/" + imgs.length);
});
"""

GENO_COLOUR, NONGENO_COLOUR, PED_COLOUR = "#1f77b4", "#ff7f0e", "#7f7f7f"


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
# Figures


def _fig_distributions(table: pd.DataFrame) -> str:
    plt = _plt()
    g = table["genotyped"].to_numpy(bool)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
    bins = np.linspace(0, 1, 51)
    for ax, col, title in ((axes[0], "rel_pedigree", "Part I (pedigree and records)"),
                           (axes[1], "rel_final", "final (Part III)")):
        v = table[col].to_numpy(np.float64)
        if (~g).any():
            ax.hist(v[~g], bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    color=NONGENO_COLOUR, label=f"not genotyped (n={int((~g).sum()):,})")
        if g.any():
            ax.hist(v[g], bins=bins, density=True, histtype="stepfilled", alpha=0.45,
                    color=GENO_COLOUR, label=f"genotyped (n={int(g.sum()):,})")
        ax.set_xlabel("reliability")
        ax.set_ylabel("density")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("Reliability distributions")
    return _png(fig)


def _fig_by_birth_year(table: pd.DataFrame) -> str | None:
    by = table["birth_year"]
    if by.isna().all():
        return None
    plt = _plt()
    t = table.loc[by.notna()].copy()
    t["birth_year"] = t["birth_year"].astype(int)
    fig, ax = plt.subplots(figsize=(11, 3.8))
    m = t.groupby("birth_year")[["rel_pedigree", "rel_final"]].mean()
    ax.plot(m.index, m["rel_pedigree"], "o-", color=PED_COLOUR, label="Part I, all animals")
    ax.plot(m.index, m["rel_final"], "o-", color="#2ca02c", label="final, all animals")
    g = t.loc[t["genotyped"]]
    if len(g):
        mg = g.groupby("birth_year")["rel_final"].mean()
        ax.plot(mg.index, mg.values, "s--", color=GENO_COLOUR, label="final, genotyped")
    ng = t.loc[~t["genotyped"]]
    if len(ng) and len(g):
        mn = ng.groupby("birth_year")["rel_final"].mean()
        ax.plot(mn.index, mn.values, "^--", color=NONGENO_COLOUR, label="final, not genotyped")
    ax.set_xlabel("birth year")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("mean reliability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Mean reliability by birth year")
    return _png(fig)


def _fig_by_sex(table: pd.DataFrame) -> str | None:
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
    ax.set_xticks(x, [f"{s}\n(n={n[s]:,})" for s in m.index])
    ax.set_ylabel("mean reliability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Mean reliability by sex")
    return _png(fig)


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


def _fig_gain(table: pd.DataFrame, young_years: int) -> tuple[str | None, dict]:
    young, how = young_animals(table, young_years)
    gain = (table["rel_final"] - table["rel_pedigree"]).to_numpy(np.float64)
    g = table["genotyped"].to_numpy(bool)
    stats = {"young": how, "n_young": int(young.sum()),
             "n_young_genotyped": int((young & g).sum()),
             "mean_gain_young_genotyped": float(gain[young & g].mean()) if (young & g).any()
             else None,
             "mean_gain_young_not_genotyped": float(gain[young & ~g].mean())
             if (young & ~g).any() else None}
    if not g.any() or not young.any():
        return None, stats
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.6))
    lo, hi = min(0.0, float(gain[young].min())), max(0.05, float(gain[young].max()))
    bins = np.linspace(lo, hi, 51)
    if (young & ~g).any():
        ax.hist(gain[young & ~g], bins=bins, histtype="stepfilled", alpha=0.45,
                color=NONGENO_COLOUR, label=f"not genotyped (n={int((young & ~g).sum()):,})")
    ax.hist(gain[young & g], bins=bins, histtype="stepfilled", alpha=0.45, color=GENO_COLOUR,
            label=f"genotyped (n={int((young & g).sum()):,})")
    ax.set_yscale("log")
    ax.set_xlabel("gain in reliability from genomics (Part III − Part I)")
    ax.set_ylabel("animals")
    ax.set_title(f"Gain from genomics, young animals ({how})")
    ax.legend(fontsize=8)
    return _png(fig), stats


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


def _fig_exact(exact: pd.DataFrame, seed: int = 1) -> str:
    plt = _plt()
    pairs = [("rel_pedigree", "rel_exact_pblup", "Part I vs exact PBLUP")]
    if "rel_exact_ssgblup" in exact:
        pairs.append(("rel_final", "rel_exact_ssgblup", "Part III vs exact ssGBLUP"))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.5 * len(pairs), 5), squeeze=False)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(exact))
    if len(idx) > 4000:
        idx = np.sort(rng.choice(idx, 4000, replace=False))
    for ax, (a, e, title) in zip(axes[0], pairs):
        x, y = exact[a].to_numpy(np.float64), exact[e].to_numpy(np.float64)
        r = np.corrcoef(x, y)[0, 1]
        ax.plot(x[idx], y[idx], ".", ms=2, alpha=0.5, color=GENO_COLOUR)
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("approximate")
        ax.set_ylabel("exact")
        ax.set_title(f"{title}\nr = {r:.4f}, mean |diff| {np.mean(np.abs(x - y)):.4f}",
                     fontsize=10)
    fig.suptitle("Approximate vs exact reliabilities"
                 + (f" ({len(idx):,} of {len(exact):,} animals shown)"
                    if len(idx) < len(exact) else ""))
    return _png(fig)


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
    from bigeval.workflow import agreement_line

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
        lines.append(f"Part II: mean genomic reliability of genotyped animals "
                     f"{table['rel_genomic'][g].mean():.3f} (Part I: "
                     f"{table['rel_pedigree'][g].mean():.3f})")
        lines.append(f"Part III: {rel['rounds_part3']} rounds; mean reliability "
                     f"{table['rel_final'].mean():.3f} (genotyped "
                     f"{table['rel_final'][g].mean():.3f}, not genotyped "
                     f"{table['rel_final'][~g].mean():.3f})")
    if "solve" in info:
        s = info["solve"]["summary"]
        lines.append(f"solve: {'ssGBLUP (H)' if s['relationship'] == 'H' else 'PBLUP (A)'}"
                     f"{' with pe' if s['pe'] else ''}, {s['equations']:,} equations, solver "
                     f"{s['solver']}; EBV in the column ebv")
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
            lines.append("  " + agreement_line("Part III vs exact ssGBLUP, genotyped",
                                               exact["rel_final"][gx],
                                               exact["rel_exact_ssgblup"][gx]))
    elif not rel["exact"]["ran"]:
        lines.append(f"exact check not run ({rel['exact']['equations']:,} equations; "
                     "[exact] check / max_equations)")
    return "\n".join(lines)


def write_report(cfg, table: pd.DataFrame, up: dict, info: dict, path: Path) -> Path:
    """Write the self-contained HTML report of a run to ``path``."""
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
    # figures
    parts.append("<h2 id=\"distributions\">Reliability of genotyped and non-genotyped animals"
                 "</h2>")
    parts.append(_fig_distributions(table))
    parts.append("<h2 id=\"birth-year\">Mean reliability by birth year</h2>")
    fig = _fig_by_birth_year(table)
    parts.append(fig or "<p class=\"note\">No birth years known: set [inputs] "
                        "birth_year_column.</p>")
    parts.append("<h2 id=\"sex\">Mean reliability by sex</h2>")
    fig = _fig_by_sex(table)
    parts.append(fig or "<p class=\"note\">No sex known: set [inputs] sex_column.</p>")
    parts.append("<h2 id=\"gain\">Gain from genomics for young animals</h2>")
    fig, stats = _fig_gain(table, cfg["report.young_years"])
    parts.append(_table([("young animals", stats["young"]), ("number", stats["n_young"]),
                         ("of them genotyped", stats["n_young_genotyped"]),
                         ("mean gain, genotyped", stats["mean_gain_young_genotyped"]),
                         ("mean gain, not genotyped", stats["mean_gain_young_not_genotyped"])]))
    parts.append(fig or "<p class=\"note\">No genotyped young animals.</p>")
    parts.append("<h2 id=\"convergence\">Convergence of the iteration</h2>")
    fig = _fig_convergence(_read(up.get("reliabilities"), "convergence.parquet"))
    parts.append(fig or "<p class=\"note\">No rounds were run.</p>")
    parts.append("<h2 id=\"exact\">Approximate vs exact reliabilities</h2>")
    exact = _read(up.get("reliabilities"), "exact.parquet")
    if exact is not None:
        from bigeval.workflow import agreement

        rows = [("Part I vs exact PBLUP",
                 *_agree(agreement(exact["rel_pedigree"], exact["rel_exact_pblup"])))]
        if "rel_exact_ssgblup" in exact:
            rows.append(("Part III vs exact ssGBLUP",
                         *_agree(agreement(exact["rel_final"], exact["rel_exact_ssgblup"]))))
        parts.append(_table(rows, header=("comparison", "animals", "correlation", "slope",
                                          "mean |diff|")))
        parts.append("<p class=\"note\">Both sides use the same information (records, "
                     "pedigree, genomics); Interbull is left out because the exact model has "
                     "none.</p>")
        parts.append(_fig_exact(exact))
    else:
        parts.append(f"<p class=\"note\">The check did not run: the exact MME has "
                     f"{rel['exact']['equations']:,} equations (limit [exact] "
                     f"max_equations = {cfg['exact.max_equations']:,}). Run it on a sample "
                     "(<code>bigeval sample</code>).</p>")
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
        parts.append(_table([(k, r, n) for k, r, n in counts.itertuples(index=False)],
                            header=("removed", "reason", "number")) if len(counts)
                     else "<p>QC removed nothing.</p>")
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
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _agree(a: dict) -> tuple:
    return a["n"], a["corr"], a["slope"], a["mad"]
