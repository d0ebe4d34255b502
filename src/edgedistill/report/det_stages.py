"""The stage table of a detection compress (report.md and the console): mAP, box agreement with the stage's input,
size and end-to-end latency against its input."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from .model_table import cell, speed_cell, stage_notes, stage_table, teacher_speed_line

STAGE_HEAD = ("stage", "mAP", "mAP50", "box agreement with input %", "size MB", "latency ms", "× its input", "note")


def _stage_row(r: dict[str, Any]) -> list[str]:
    return [r["stage"], cell(r.get("map"), "{:.2f}"), cell(r.get("map50"), "{:.2f}"), cell(r.get("agreement"), "{:.1f}"),
            cell(r.get("size_mb"), "{:.2f}"), cell(r.get("latency_ms"), "{:.2f}"), speed_cell(r),
            ", ".join(stage_notes(r, "mAP", "map_drop", "max_map_drop"))]


def det_stage_lines(result: dict[str, Any]) -> list[str]:
    """The stage table of a detection compress, with what runs outside the ONNX graph and the teacher's speed."""
    d, dec = result["deploy"], result["decode"]
    out = [f"{result['split']} split, {result['images']} images. Latency: median of 5 interleaved rounds against "
           f"the stage's input, batch {d['batch']}, {d['threads']} thread(s), end to end (an ONNX stage includes "
           "box decoding and NMS in Python); box agreement: boxes matched one to one (IoU ≥ 0.5, same class) with "
           "the input stage's.", "",
           f"NMS: {result['nms']} — score_thresh {dec['score_thresh']:g}, nms_thresh {dec['nms_thresh']:g}, "
           f"{dec['detections_per_img']} detections per image; ONNX outputs {dec['outputs']}"
           + (f"; scores: {dec['scores']}; resize: {dec['resize']}." if "resize" in dec else "."), "",
           "| " + " | ".join(STAGE_HEAD) + " |", "|" + "---|" * len(STAGE_HEAD),
           *("| " + " | ".join(_stage_row(r)) + " |" for r in result["stages"])]
    t = result.get("teacher")
    if t:
        out += ["", teacher_speed_line(t, f"{t['form']}, mAP {t['map']:.2f}")]
    return out


def print_det_stages(result: dict[str, Any], console: Console) -> None:
    console.print(stage_table(f"edgedistill compress (detection) — {result['split']} split, {result['images']} "
                              "images", STAGE_HEAD, [_stage_row(r) for r in result["stages"]]))
    console.print(det_stage_lines(result)[2])
    if result.get("teacher"):
        console.print(det_stage_lines(result)[-1].replace("**", ""))


__all__ = ["det_stage_lines", "print_det_stages"]
