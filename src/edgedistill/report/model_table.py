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


def keeps_line(c: dict[str, Any], metric: str) -> str:
    """The retention line; a ratio under 1 reads "5.2× more", not "0.2× fewer" (a student larger than its teacher)."""
    def times(r: float | None, less: str, more: str) -> str:
        if not r:
            return f"– {less}"
        return f"{r:.1f}× {less}" if r >= 1 else f"{1 / r:.1f}× {more}"

    return (f"- the student keeps {100 * c['retention']:.1f}% of the teacher's {metric} with "
            f"{times(c['params_ratio'], 'fewer parameters', 'more parameters')}, "
            f"{times(c['latency_ratio'], 'lower latency', 'higher latency')}")


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


def write_task_report(run_dir: Any, metrics: dict[str, Any], task: str, columns: tuple[Column, ...],
                      lines: list[str], extra: list[str] | None = None) -> Any:
    """report.md of a dense-task run: its lines in words, the model table, `extra` sections, the time spent."""
    from ..atomic import atomic_write_text

    head = ["model", "spec", *(c for c, _, _ in columns)]
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in metrics["seconds"].items())
    out = [f"# edgedistill {task} report", "", *lines, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
           *("| " + " | ".join(r) + " |" for r in model_rows(metrics, columns)), *(extra or []), "",
           f"Time: {secs}. All numbers: [metrics.json](metrics.json); recipe: [recipe.yaml](recipe.yaml).", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(out))
    return path


def print_task_summary(metrics: dict[str, Any], console: Any, task: str, columns: tuple[Column, ...],
                       lines: list[str]) -> None:
    """The console model table of a dense-task run, then its lines in words (markdown bold dropped)."""
    from rich.table import Table

    table = Table(title=f"edgedistill {task} — {metrics['split']} split, {metrics['n_images']} images")
    for col in ("", "model", *(c for c, _, _ in columns)):
        table.add_column(col, justify="left" if col in ("", "model") else "right")
    for row in model_rows(metrics, columns):
        table.add_row(row[0], row[1].strip("`"), *row[2:])
    console.print(table)
    for line in lines[2:]:
        console.print(line.replace("**", ""))


def stage_notes(r: dict[str, Any], metric: str, drop_key: str, max_key: str) -> list[str]:
    """The note cell of a compress stage row: the int8 gate (drop of `metric`), the int8 format, what prune kept."""
    note = []
    if r.get("gate"):
        g = r["gate"]
        note.append(f"int8 gate {'passed' if g['passed'] else 'FAILED: ' + '; '.join(g['reasons'])} "
                    f"({metric} drop {g[drop_key]:+.2f} ≤ {g[max_key]:g})")
        if g["passed"] and not r.get("shipped", True):
            note.append("not faster than fp32 here: the fp32 file ships")
    if r.get("int8_format"):
        ch = r.get("int8_choice") or {}  # a detector's choice is timed end to end (with decoding and NMS): say so
        how = (f" (chosen {ch['timed']}: {ch['speedup_vs_fp32']:.2f}× fp32)"
               if ch.get("timed", "graph") != "graph" and ch.get("speedup_vs_fp32") is not None else "")
        note.append(f"{r['int8_format']}/{r['int8_graph']}{how}")
    p, key = r.get("parity") or {}, metric.lower()
    if f"{key}_onnx" in p:
        note.append(f"parity: max abs Δ {p['max_abs_diff']:.1e}, {metric} {p[f'{key}_onnx']:.2f} vs "
                    f"PyTorch {p[f'{key}_pytorch']:.2f}")
    if r.get("ratio") is not None:
        note.append(f"{100 * r['ratio']:.0f}% channels pruned, {r.get('params', 0):,} params")
    return note


def speed_cell(r: dict[str, Any]) -> str:
    lat = r.get("latency")
    return "–" if not lat else f"{lat['speedup']:.2f} ({lat['speedup_min']:.2f}–{lat['speedup_max']:.2f})"
