"""report.md and the console table of a task=segmentation run, from its metrics.json data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write_text
from .model_table import LABELS, cell, model_rows, stage_table, teacher_speed_line, terms_text

COLUMNS = (("mIoU", "miou", "{:.1f}"), ("pixel acc", "pixel_acc", "{:.1f}"), ("boundary F1", "boundary_f1", "{:.1f}"),
           ("teacher agreement", "teacher_agreement", "{:.1f}"), ("params", "params", "{:,}"),
           ("latency ms (b=1)", "latency_ms_median", "{:.2f}"))


def _rows(metrics: dict[str, Any]) -> list[list[str]]:
    return model_rows(metrics, COLUMNS)


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
        cells = [cell(e["per_class_iou"][i], "{:.1f}") for e in metrics["models"].values()]
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


STAGE_HEAD = ("stage", "mIoU", "pixel acc", "agreement with input %", "size MB", "latency ms", "× its input", "note")


def _stage_row(r: dict[str, Any]) -> list[str]:
    lat = r.get("latency")
    note = []
    if r.get("gate"):
        g = r["gate"]
        note.append(f"int8 gate {'passed' if g['passed'] else 'FAILED: ' + '; '.join(g['reasons'])} "
                    f"(mIoU drop {g['miou_drop']:+.2f} ≤ {g['max_miou_drop']:g})")
        if g["passed"] and not r.get("shipped", True):
            note.append("not faster than fp32 here: the fp32 file ships")
    if r.get("int8_format"):
        note.append(f"{r['int8_format']}/{r['int8_graph']}")
    if r.get("ratio") is not None:
        note.append(f"{100 * r['ratio']:.0f}% channels pruned, {r.get('params', 0):,} params")
    return [r["stage"], cell(r.get("miou"), "{:.2f}"), cell(r.get("pixel_acc"), "{:.1f}"),
            cell(r.get("agreement"), "{:.1f}"), cell(r.get("size_mb"), "{:.2f}"), cell(r.get("latency_ms"), "{:.2f}"),
            "–" if not lat else f"{lat['speedup']:.2f} ({lat['speedup_min']:.2f}–{lat['speedup_max']:.2f})",
            ", ".join(note)]


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
