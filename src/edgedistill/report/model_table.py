"""The model table of a dense task's report (segmentation, detection): one row per trained model, the task's
metric columns, and the distillation terms in words."""

from __future__ import annotations

from typing import Any

LABELS = {"teacher": "teacher", "student_alone": "student alone", "student": "student distilled"}
Column = tuple[str, str, str]  # header, metrics key, format


def cell(v: Any, fmt: str) -> str:
    return "–" if v is None else fmt.format(v)


def model_rows(metrics: dict[str, Any], columns: tuple[Column, ...]) -> list[list[str]]:
    return [[LABELS.get(n, n), f"`{e['model']}`", *(cell(e.get(k), f) for _, k, f in columns)]
            for n, e in metrics["models"].items()]


def terms_text(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{t['name']} ×{t['weight']:g}" for t in metrics["terms"]) or "none"
