"""The comparison's verdict table (terminal and markdown), its forest plot and report.md/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .charts import plt
from .html import write_html
from .sweep import sweep_chart
from .tables import markdown_table

_CORR = {"holm": "Holm", "bh": "Benjamini–Hochberg"}
_COLORS = {"better": "#2a7d2a", "worse": "#b22222", "no evidence": "#666666", "not enough seeds": "#b8860b"}


def _n(v: float | None, fmt: str = ".2f") -> str:
    return "–" if v is None else format(v, fmt)


def _p(v: float | None) -> str:
    return "–" if v is None else (f"{v:.3f}" if v >= 0.001 else f"{v:.1e}")


def _ci(lo_hi: list[float | None]) -> str:
    lo, hi = lo_hi
    return "–" if lo is None else f"[{lo:.2f}, {hi:.2f}]"


_UNIT_NOTE = {
    "mcnemar": "McNemar: per-image correctness pooled over the paired runs.",
    "per_image_iou": "per-image IoU: Wilcoxon signed-rank on each image's IoU, pooled over the paired runs.",
    "per_image_map": "per-image mAP: Wilcoxon signed-rank on each image's COCO mAP, pooled over the paired runs "
                     "(images without a ground-truth box left out).",
}


def verdict_rows(res: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    m, corr = res["metric"], _CORR[res["correction"]]
    unit = res.get("per_image_test", "mcnemar")  # segmentation/detection: Wilcoxon on per-image IoU/mAP
    label = {"mcnemar": "McNemar p", "per_image_map": "per-image mAP Wilcoxon p"}.get(unit, "per-image IoU Wilcoxon p")
    head = ["arm", "vs", f"Δ {m}", "95% CI", "p (t)", f"p {corr} (verdict's test)", "Wilcoxon p", label, "dz",
            "P(improve)", f"verdict (α={res['alpha']})"]
    rows = [[c["arm"], c["vs"], f"{c['diff']:+.2f}", _ci(c["diff_ci"]), _p(c["t_p"]), _p(c.get("p_adj", c.get("t_p_adj"))),
             _p(c["wilcoxon_p"]), _p(c.get(unit, {}).get("p")), _n(c["dz"]), _n(c["p_improve"]), c["verdict"]]
            for c in res["comparisons"]]
    return head, rows


def arm_rows(res: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["arm", "runs", f"{res['metric']} mean ± std", "95% CI (t)", "95% CI (bootstrap)", "min–max",
            "churn", "churn entropy (bits)"]
    rows = []
    for a, s in res["arms"].items():
        ch = s.get("churn", {})
        rows.append([a + (" (baseline)" if a == res["baseline"] else ""), str(s["n"]),
                     f"{s['mean']:.2f} ± {_n(s['std'])}", _ci(s["t_ci"]), _ci(s["bootstrap_ci"]),
                     f"{s['min']:.2f}–{s['max']:.2f}", _n(ch.get("share"), ".3f"), _n(ch.get("entropy_bits"), ".3f")])
    return head, rows


def print_compare(res: dict[str, Any], console: Console) -> None:
    for title, (head, rows) in (("Arms", arm_rows(res)), ("Verdicts", verdict_rows(res))):
        t = Table(title=f"{title}: {res['metric']} on the {res['split']} split, {len(res['units'])} paired runs")
        for h in head:
            t.add_column(h)
        for r in rows:
            style = {"better": "green", "worse": "red"}.get(r[-1], "") if title == "Verdicts" else ""
            t.add_row(*r, style=style)
        console.print(t)


def forest_plot(res: dict[str, Any], path: Path) -> None:
    """Each comparison's mean paired difference with its 95% t interval, coloured by verdict."""
    comps = res["comparisons"]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(comps) + 1.4))
    for i, c in enumerate(reversed(comps)):
        lo, hi = c["diff_ci"]
        color = _COLORS[c["verdict"]]
        if lo is not None:
            ax.plot([lo, hi], [i, i], color=color, lw=2)
        ax.plot(c["diff"], i, "o", color=color)
        ax.annotate(c["verdict"], (1.01, i), xycoords=("axes fraction", "data"), va="center", color=color, fontsize=9)
    ax.axvline(0, color="black", lw=0.8, ls="--")
    ax.set_yticks(range(len(comps)), [f"{c['arm']} − {c['vs']}" for c in reversed(comps)])
    ax.set_xlabel(f"paired difference in {res['metric']} (mean, 95% t interval)")
    ax.set_title(f"{_CORR[res['correction']]}-corrected verdicts at α={res['alpha']}, {len(res['units'])} paired runs",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_compare_report(folder: Path, res: dict[str, Any]) -> Path:
    """report.md, forest.png and report.html in the comparison folder."""
    forest_plot(res, folder / "forest.png")
    units = ", ".join(f"seed {s}" + (f"/split {k}" if res["splits"] > 1 else "") for s, k in res["units"])
    runs = "\n".join(f"- {a}: " + ", ".join(f"[{Path(r).name}](runs/{Path(r).name}/report.md)" for r in s["runs"])
                     for a, s in res["arms"].items())
    lines = [
        "# edgedistill comparison", "",
        (f"Metric: `{res['metric']}` of the student on the `{res['split']}` split "
         f"({'higher' if res['higher_is_better'] else 'lower'} is better); paired runs: {units}. "
         f"Baseline: `{res['baseline']}`."), "",
        "## Arms", "", markdown_table(*arm_rows(res)), "",
        ("churn: share of validation images whose prediction changes between seeds; entropy: mean per-image "
         "entropy of the predicted label across seeds."), "",
        "## Verdicts", "", markdown_table(*verdict_rows(res)), "",
        (f"Verdict from the paired t-test, {_CORR[res['correction']]}-corrected over all {len(res['comparisons'])} "
         "comparisons (Wilcoxon needs ≥ 6 pairs to reach p < 0.05, so it is reported, not used); Δ = arm − vs; "
         "dz: paired Cohen's d; P(improve): share of paired runs where arm beats vs (ties ½); "
         + _UNIT_NOTE.get(res.get("per_image_test", "mcnemar"), "")), "",
        "![Paired differences with 95% intervals](forest.png)", "",
        *(["## Sensitivity", "", "![Metric surface of the sweep](sensitivity.png)", ""]
          if sweep_chart(res, folder / "sensitivity.png") else []),
        *([f"Notes: {'; '.join(res['notes'])}.", ""] if res["notes"] else []),
        "## Runs", "", runs, "",
        "All numbers: [compare.json](compare.json).", "",
    ]
    md = folder / "report.md"
    md.write_text("\n".join(lines))
    write_html(md, "edgedistill comparison")
    return md
