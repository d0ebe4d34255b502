"""One definition of the summary table, rendered to the terminal (rich) and to markdown."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from ..deploy.energy import energy_text

LABELS = {"teacher": "teacher", "student_alone": "student alone", "student": "student (distilled)"}


def stage_label(e: dict[str, Any]) -> str:
    """A compression stage's name in tables: `teacher`, or `<k>-<stage>`, as its folder is named."""
    return e["stage"] if e["index"] == "ref" else f"{e['index']}-{e['stage']}"


def num_text(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def human_number(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


Column = tuple[str, Callable[[dict[str, Any]], str]]

SUMMARY_COLUMNS: list[Column] = [
    ("model", lambda m: m["model"]),
    ("top-1 %", lambda m: num_text(m.get("top1"), ".2f")),
    ("top-5 %", lambda m: num_text(m.get("top5"), ".2f")),
    ("F1 macro", lambda m: num_text(m.get("f1_macro"), ".3f")),
    ("ECE", lambda m: num_text(m.get("ece"), ".3f")),
    ("agree %", lambda m: num_text(m.get("agreement"), ".1f")),
    ("params", lambda m: human_number(m.get("params"))),
    ("FLOPs", lambda m: human_number(m.get("flops"))),
    ("size MB", lambda m: num_text(m.get("size_mb"), ".3f")),
    ("latency ms p50/p90", lambda m: f"{num_text(m.get('latency_ms_median'), '.2f')} / {num_text(m.get('latency_ms_p90'), '.2f')}"),
    ("energy/img", lambda m: energy_text(m.get("energy"))),
]

METRIC_KEYS = ["top1", "top5", "precision_macro", "recall_macro", "f1_macro", "precision_weighted",
               "recall_weighted", "f1_weighted", "kappa", "qwk", "mcc", "roc_auc", "log_loss", "ece",
               "agreement", "kl", "js", "kd_loss", "params", "flops", "macs", "size_mb", "latency_ms_median",
               "latency_ms_p90", "peak_mem_mb"]


def rows(metrics: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [(LABELS.get(name, name), [fn(m) for _, fn in SUMMARY_COLUMNS])
            for name, m in metrics["models"].items()]


def comparison_lines(metrics: dict[str, Any]) -> list[str]:
    c, split, n = metrics["comparison"], metrics["split"], metrics["n_images"]
    threads = next(iter(metrics["models"].values())).get("threads")
    lines = [f"Accuracy on the held-out `{split}` split ({n} images), weights of the last epoch; "
             f"latency: CPU, batch 1, {threads} thread(s)."]
    primary = metrics.get("primary", "student")
    who = "student" if primary == "student" else f"student = {primary}"
    if c.get("retention") is not None:
        lines.append(f"Retention ({who} top-1 / teacher top-1): {100 * c['retention']:.1f}%")
    if c.get("gain_over_alone") is not None:
        lines.append(f"Distillation gain over the student trained alone ({who}): {c['gain_over_alone']:+.2f} points")
    if c.get("gain_over_alone_by_model"):
        lines.append("Gain over the student alone, each model: "
                     + ", ".join(f"{n} {g:+.2f}" for n, g in c["gain_over_alone_by_model"].items()))
    ratios = [(k, v) for k in ("params", "flops", "size", "latency") if (v := c.get(f"{k}_ratio")) is not None]
    if ratios:
        lines.append("Teacher / student: " + ", ".join(f"{k} {v:.1f}×" for k, v in ratios))
    pcr = metrics["models"].get(primary, {}).get("pcr") or {}
    if any(v is not None for v in pcr.values()):
        lines.append(f"Performance-Cost Ratio ({who} vs teacher): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in pcr.items() if v is not None))
    return lines


def rich_table(title: str, header: list[str], body: list[list[str]], caption: str | None = None) -> Table:
    """The console twin of markdown_table: the first column (a name) left, the numbers right."""
    t = Table(title=title, caption=caption)
    for i, h in enumerate(header):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in body:
        t.add_row(*r)
    return t


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)


def summary_markdown(metrics: dict[str, Any]) -> str:
    header = [""] + [c for c, _ in SUMMARY_COLUMNS]
    return markdown_table(header, [[label, *cells] for label, cells in rows(metrics)])


def print_summary(metrics: dict[str, Any], console: Console) -> None:
    table = Table(title=f"edgedistill — {metrics['split']} split, {metrics['n_images']} images")
    table.add_column("")
    for col, _ in SUMMARY_COLUMNS:
        table.add_column(col, justify="left" if col == "model" else "right")
    for label, cells in rows(metrics):
        table.add_row(label, *cells)
    console.print(table)
    for line in comparison_lines(metrics):
        console.print(line.replace("`", ""))
