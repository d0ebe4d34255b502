"""The audit of a segmentation or detection run (analysis/dense_audit.py): its tables (terminal and markdown), its
robustness chart and audit/report.md + report.html, in the shape of the classification audit's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from ..atomic import atomic_write_text
from .audit import robustness_chart
from .html import write_html
from .tables import LABELS, markdown_table, rich_table

SHORT = {"teacher": "T", "student": "S", "student_alone": "A"}  # the perturbation table is wide: LEGEND says them
LEGEND = ("T teacher, S student (distilled), A student alone; (Δ) change from clean in points; kept: perturbed / "
          "clean (%); agree: with the teacher on the same perturbed images; p: the student's per-image drop vs the "
          "teacher's (Wilcoxon, Holm)")
EXTRA = {"pixel_acc": "pixel acc (%)", "boundary_f1": "boundary F1", "map50": "mAP50"}


def _f(v: Any, fmt: str = ".1f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _p(v: Any) -> str:
    return "–" if v is None else ("<0.001" if v < 0.001 else f"{v:.3f}")


def clean_rows(audit: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per model: its metric and extra scores on the clean images, and each student's teacher agreement."""
    first = next(iter(audit["clean"].values()))
    extras = [k for k in first if k != audit["metric"]]
    head = ["model", "", audit["metric_label"], *(EXTRA.get(k, k) for k in extras),
            f"{audit['agreement_kind']} agreement with teacher (%)"]
    rows = [[LABELS.get(n, n), audit["models"][n], _f(s[audit["metric"]], ".2f"),
             *(_f(s[k], ".2f") for k in extras), _f(audit["fidelity"].get(n, {}).get("agreement"), ".2f")]
            for n, s in audit["clean"].items()]
    return head, rows


def _with_change(v: Any, drop: Any) -> str:
    return "–" if v is None else f"{v:.1f} ({-round(drop, 1) + 0.0:+.1f})"


def perturbation_rows(audit: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per perturbation and severity: metric (and its drop from clean) and retention of every model, agreement with
    the teacher and the Holm-corrected p that a student's per-image drop differs from the teacher's."""
    models, students, m, label = list(audit["clean"]), list(audit["fidelity"]), audit["metric"], audit["metric_label"]
    head = ["perturbation", "level", *(f"{label} {SHORT.get(n, n)} (Δ)" for n in models),
            *(f"kept {SHORT.get(n, n)} %" for n in models), *(f"agree {SHORT.get(s, s)}" for s in students),
            *(f"p {SHORT.get(s, s)}" for s in students)]
    rows = [["clean", "–", *(_f(audit["clean"][n][m]) for n in models),
             *("100.0" if audit["clean"][n][m] else "–" for n in models),
             *(_f(audit["fidelity"][s]["agreement"]) for s in students), *("–" for _ in students)]]
    for name, p in audit["perturbations"].items():
        for r in p["rows"]:
            rows.append([name, f"{r['level']:.4g}", *(_with_change(r[m][n], r["drop"][n]) for n in models),
                         *(_f(r["retention"][n]) for n in models), *(_f(r["agreement"][s]) for s in students),
                         *(_p(r["drop_vs_teacher"][s]["p_holm"]) for s in students)])
    return head, rows


def _skipped(audit: dict[str, Any]) -> list[str]:
    return [f"{n} skipped: {why}." for n, why in audit.get("skipped", {}).items()]


def write_dense_audit_report(folder: Path, audit: dict[str, Any]) -> Path:
    """audit/report.md (tables, chart) and its self-contained report.html."""
    label, unit = audit["metric_label"], "per-image IoU" if audit["metric"] == "miou" else "per-image COCO mAP"
    chart = robustness_chart(audit, folder / "robustness.png", audit["metric"], label)
    lines = [
        "# Fidelity audit",
        "",
        f"Run `{audit['run']}` (task={audit['task']}): teacher `{audit['models']['teacher']}` → student "
        f"`{audit['models']['student']}`, {audit['n_images']} images of the {audit['split']} split.",
        "",
        markdown_table(*clean_rows(audit)),
        "",
        "## Under perturbation",
        "",
        (f"Perturbations are applied to the [0, 1] pixels before normalization; each is photometric, so the "
         f"{'masks' if audit['task'] == 'segmentation' else 'boxes'} stay as they are. Agreement is "
         f"{audit['agreement_kind']}; p is the Wilcoxon signed-rank test of the student's {unit} drop against the "
         f"teacher's on the same images, Holm-corrected over the table (audit.json also holds each model's "
         f"clean-vs-perturbed test). {LEGEND}."),
        *(["", *_skipped(audit)] if audit.get("skipped") else []),
        "",
        markdown_table(*perturbation_rows(audit)),
        "",
    ]
    if chart:
        lines += [f"![{label} and agreement vs severity](robustness.png)", ""]
    md = folder / "report.md"
    atomic_write_text(md, "\n".join(lines))
    write_html(md, title="edgedistill fidelity audit")
    return md


def print_dense_audit(audit: dict[str, Any], console: Console) -> None:
    for title, (head, rows) in (("Fidelity audit", clean_rows(audit)), ("Under perturbation",
                                                                         perturbation_rows(audit))):
        console.print(rich_table(f"{title}: {audit['n_images']} images, {audit['split']} split ({audit['task']})",
                                 head, rows, caption=LEGEND if title == "Under perturbation" else None))
    for line in _skipped(audit):
        console.print(line)


__all__ = ["clean_rows", "perturbation_rows", "print_dense_audit", "write_dense_audit_report"]
