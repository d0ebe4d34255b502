"""report.md and the console table of a task=segmentation run, from its metrics.json data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from .model_table import (LABELS, cell, keeps_line, print_task_summary, speed_cell, stage_notes, stage_table,
                          teacher_speed_line, terms_text, write_task_report)

COLUMNS = (("mIoU", "miou", "{:.1f}"), ("pixel acc", "pixel_acc", "{:.1f}"), ("boundary F1", "boundary_f1", "{:.1f}"),
           ("teacher agreement", "teacher_agreement", "{:.1f}"), ("params", "params", "{:,}"),
           ("latency ms (b=1)", "latency_ms_median", "{:.2f}"))


def seg_lines(metrics: dict[str, Any]) -> list[str]:
    c = metrics["comparison"]
    terms = terms_text(metrics)
    out = [f"Segmentation, {metrics['split']} split, {metrics['n_images']} images, "
           f"{len(metrics['class_names'])} classes (ignore index {metrics['ignore_index']}); distillation terms: "
           f"{terms}. mIoU, pixel accuracy and per-class IoU over the whole split (confusion matrix), boundary F1 "
           "class-agnostic, teacher agreement = share of labelled pixels where the argmax equals the teacher's.", ""]
    if c.get("gain_over_alone") is not None:
        out.append(f"- distillation gain over the student alone: **{c['gain_over_alone']:+.2f} mIoU**, "
                   f"{c['agreement_gain']:+.2f} points of teacher agreement (one seed)")
    if c.get("retention"):
        out.append(keeps_line(c, "mIoU"))
    return out


def write_seg_report(run_dir: Path, metrics: dict[str, Any]) -> Path:
    models = metrics["models"]
    extra = ["", "## IoU per class", "", "| class | " + " | ".join(LABELS.get(n, n) for n in models) + " |",
             "|---|" + "---|" * len(models)]
    extra += [f"| {cls} | " + " | ".join(cell(e["per_class_iou"][i], "{:.1f}") for e in models.values()) + " |"
              for i, cls in enumerate(metrics["class_names"])]
    return write_task_report(run_dir, metrics, "segmentation", COLUMNS, seg_lines(metrics), extra)


def print_seg_summary(metrics: dict[str, Any], console: Console) -> None:
    print_task_summary(metrics, console, "segmentation", COLUMNS, seg_lines(metrics))


STAGE_HEAD = ("stage", "mIoU", "pixel acc", "agreement with input %", "size MB", "latency ms", "× its input", "note")


def _stage_row(r: dict[str, Any]) -> list[str]:
    return [r["stage"], cell(r.get("miou"), "{:.2f}"), cell(r.get("pixel_acc"), "{:.1f}"),
            cell(r.get("agreement"), "{:.1f}"), cell(r.get("size_mb"), "{:.2f}"), cell(r.get("latency_ms"), "{:.2f}"),
            speed_cell(r), ", ".join(stage_notes(r, "mIoU", "miou_drop", "max_miou_drop"))]


def seg_stage_lines(result: dict[str, Any]) -> list[str]:
    """The stage table of a segmentation compress: mIoU, agreement with the stage's input, size and latency
    against its input (interleaved ONNX Runtime / PyTorch rounds at the deploy batch and threads)."""
    d = result["deploy"]
    out = [f"{result['split']} split, {result['images']} images. Latency: median of 5 interleaved rounds against "
           f"the stage's input, batch {d['batch']}, {d['threads']} thread(s); agreement: share of labelled pixels "
           "whose argmax equals the input stage's.", "", "| " + " | ".join(STAGE_HEAD) + " |",
           "|" + "---|" * len(STAGE_HEAD), *("| " + " | ".join(_stage_row(r)) + " |" for r in result["stages"])]
    t = result.get("teacher")
    if t:
        out += ["", teacher_speed_line(t, f"fp32 ONNX, mIoU {t['miou']:.2f}")]
    return out


def print_seg_stages(result: dict[str, Any], console: Console) -> None:
    console.print(stage_table(f"edgedistill compress (segmentation) — {result['split']} split, {result['images']} "
                              "images", STAGE_HEAD, [_stage_row(r) for r in result["stages"]]))
    for line in seg_stage_lines(result)[len(result["stages"]) + 4:]:
        if line:
            console.print(line.replace("**", ""))


__all__ = ["print_seg_stages", "print_seg_summary", "seg_stage_lines", "write_seg_report"]
