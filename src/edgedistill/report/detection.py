"""report.md and the console table of a task=detection run, from its metrics.json data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from .model_table import keeps_line, print_task_summary, terms_text, write_task_report

COLUMNS = (("mAP", "map", "{:.1f}"), ("mAP50", "map50", "{:.1f}"), ("mAP small", "map_small", "{:.1f}"),
           ("mAP medium", "map_medium", "{:.1f}"), ("mAP large", "map_large", "{:.1f}"),
           ("teacher agreement", "teacher_agreement", "{:.1f}"), ("params", "params", "{:,}"),
           ("latency ms (b=1)", "latency_ms_median", "{:.2f}"))


def det_lines(metrics: dict[str, Any]) -> list[str]:
    c = metrics["comparison"]
    terms = terms_text(metrics)
    out = [f"Detection, {metrics['split']} split, {metrics['n_images']} images, {metrics['n_boxes']} boxes, "
           f"{len(metrics['class_names'])} classes, {metrics['image_size']} px; distillation terms: {terms}. "
           "COCO box AP by pycocotools (torchmetrics MeanAveragePrecision): mAP over IoU 0.50:0.95, mAP50 at IoU "
           "0.5, small/medium/large by COCO's areas (– where the split has none); teacher agreement = 2·matched / "
           "(student + teacher boxes), boxes matched one to one at IoU ≥ 0.5 with the same class.", ""]
    if c.get("gain_over_alone") is not None:
        out.append(f"- distillation gain over the student alone: **{c['gain_over_alone']:+.2f} mAP**, "
                   f"{c['map50_gain_over_alone']:+.2f} mAP50, {c['agreement_gain']:+.2f} points of teacher "
                   "agreement (one seed)")
    if c.get("retention"):
        out.append(keeps_line(c, "mAP"))
    return out


def write_det_report(run_dir: Path, metrics: dict[str, Any]) -> Path:
    return write_task_report(run_dir, metrics, "detection", COLUMNS, det_lines(metrics))


def print_det_summary(metrics: dict[str, Any], console: Console) -> None:
    print_task_summary(metrics, console, "detection", COLUMNS, det_lines(metrics))


__all__ = ["print_det_summary", "write_det_report"]
