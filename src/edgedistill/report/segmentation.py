"""report.md and the console table of a task=segmentation run, from its metrics.json data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write_text

COLUMNS = (("mIoU", "miou", "{:.1f}"), ("pixel acc", "pixel_acc", "{:.1f}"), ("boundary F1", "boundary_f1", "{:.1f}"),
           ("teacher agreement", "teacher_agreement", "{:.1f}"), ("params", "params", "{:,}"),
           ("latency ms (b=1)", "latency_ms_median", "{:.2f}"))
LABELS = {"teacher": "teacher", "student_alone": "student alone", "student": "student distilled"}


def _cell(v: Any, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def _rows(metrics: dict[str, Any]) -> list[list[str]]:
    return [[LABELS.get(n, n), f"`{e['model']}`", *(_cell(e.get(k), f) for _, k, f in COLUMNS)]
            for n, e in metrics["models"].items()]


def seg_lines(metrics: dict[str, Any]) -> list[str]:
    c = metrics["comparison"]
    terms = ", ".join(f"{t['name']} ×{t['weight']:g}" for t in metrics["terms"]) or "none"
    out = [f"Segmentation, {metrics['split']} split, {metrics['n_images']} images, "
           f"{len(metrics['class_names'])} classes (ignore index {metrics['ignore_index']}); distillation terms: "
           f"{terms}. mIoU, pixel accuracy and per-class IoU over the whole split (confusion matrix), boundary F1 "
           "class-agnostic, teacher agreement = share of labelled pixels where the argmax equals the teacher's.", ""]
    if c.get("gain_over_alone") is not None:
        out.append(f"- distillation gain over the student alone: **{c['gain_over_alone']:+.2f} mIoU**, "
                   f"{c['agreement_gain']:+.2f} points of teacher agreement (one seed)")
    if c.get("retention"):
        out.append(f"- the student keeps {100 * c['retention']:.1f}% of the teacher's mIoU with "
                   f"{c['params_ratio'] or 0:.1f}× fewer parameters, {c['latency_ratio'] or 0:.1f}× lower latency")
    return out


def write_seg_report(run_dir: Path, metrics: dict[str, Any]) -> Path:
    head = ["model", "spec", *(c for c, _, _ in COLUMNS)]
    lines = ["# edgedistill segmentation report", "", *seg_lines(metrics), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             *("| " + " | ".join(r) + " |" for r in _rows(metrics)), "", "## IoU per class", ""]
    names = metrics["class_names"]
    lines += ["| class | " + " | ".join(LABELS.get(n, n) for n in metrics["models"]) + " |",
              "|---|" + "---|" * len(metrics["models"])]
    for i, cls in enumerate(names):
        cells = [_cell(e["per_class_iou"][i], "{:.1f}") for e in metrics["models"].values()]
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in metrics["seconds"].items())
    lines += ["", f"Time: {secs}. All numbers: [metrics.json](metrics.json); recipe: [recipe.yaml](recipe.yaml).", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def print_seg_summary(metrics: dict[str, Any], console: Console) -> None:
    table = Table(title=f"edgedistill segmentation — {metrics['split']} split, {metrics['n_images']} images")
    for col in ("", "model", *(c for c, _, _ in COLUMNS)):
        table.add_column(col, justify="left" if col in ("", "model") else "right")
    for row in _rows(metrics):
        table.add_row(row[0], row[1].strip("`"), *row[2:])
    console.print(table)
    for line in seg_lines(metrics)[2:]:
        console.print(line.replace("**", ""))


__all__ = ["print_seg_summary", "write_seg_report"]
