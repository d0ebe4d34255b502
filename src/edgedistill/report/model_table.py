"""The model table of a dense task's report (segmentation, detection): one row per trained model, the task's
metric columns, and the distillation terms in words; and the compress stage table and teacher-speed line both
tasks' compress reports share."""

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


def teacher_speed_line(t: dict[str, Any], form: str) -> str:
    """The run's teacher (`form`, its headline score) against the final student artifact, interleaved."""
    from pathlib import Path

    return (f"Teacher ({form}) {t['teacher_ms']:.2f} ms vs the final student `{Path(t['student_artifact']).name}` "
            f"{t['student_ms']:.2f} ms: the student is **{t['student_speedup']:.1f}× faster** "
            f"({t['speedup_min']:.1f}–{t['speedup_max']:.1f} over {t['rounds']} interleaved rounds).")


def stage_table(title: str, head: list[str] | tuple[str, ...], rows: list[list[str]]) -> Any:
    """A rich table of compress stages: text columns left, numbers right."""
    from rich.table import Table

    table = Table(title=title)
    for col in head:
        table.add_column(col, justify="left" if col in ("stage", "note") else "right")
    for r in rows:
        table.add_row(*r)
    return table
