"""The deploy matrix for people: a rich table on the console and matrix.md beside matrix.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

HEADER = ["runtime", "precision", "status", "top-1 agree", "max |Δlogit|", "size", "RSS MB"]


def _ms(row: dict[str, Any], key: str) -> str:
    lat = row.get("latency", {}).get(key)
    if lat is None:
        return "–"
    if "error" in lat:
        return "failed"
    ratio = lat.get("speedup_vs_ort_fp32")
    return f"{lat['median_ms']:.3f}" + (f" ({ratio:.2f}x)" if ratio is not None and row["id"] != "onnxruntime-fp32"
                                        else "")


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def header(result: dict[str, Any]) -> list[str]:
    """The fixed columns, agreement named by what it counts (top-1 per image, or per pixel), plus a task's own."""
    head = [h.replace("top-1", result.get("agreement", "top-1")) for h in HEADER]
    return head + [h for h, _ in result.get("columns", [])]


def row_cells(row: dict[str, Any], settings: list[str], columns: list[list[str]] | None = None) -> list[str]:
    """One row's cells: names, verdict, agreement, diff, size, memory, a task's own figures, then ms per setting."""
    built = "agreement" in row
    own = [f"{row[k]:.2f}" if isinstance(row.get(k), float) else "–" for _, k in columns or []]
    status = "pass (baseline)" if row["status"] == "pass" and row["id"] == "onnxruntime-fp32" else row["status"]
    rss = row.get("rss_mb")
    return [row["label"], row["precision"], status,
            f"{100 * row['agreement']:.1f}% (≥{100 * row['gate']:.0f}%)" if built else "–",
            f"{row['max_abs_diff']:.2g}" if built else "–", _size(row.get("size_bytes")),
            f"{rss:.1f}" if rss is not None else "–", *own, *[_ms(row, k) for k in settings]]


def notes(result: dict[str, Any]) -> list[str]:
    """Why each row that did not pass did not (not installed: how to install; failed: which op; below gate), and
    what a built row's runtime did differently (its info's note)."""
    lines = [f"{r['label']} {r['precision']}: {r['reason']}" for r in result["rows"] if r.get("reason")]
    lines += [f"{r['label']} {r['precision']}: {r['info']['note']}" for r in result["rows"]
              if r.get("info", {}).get("note")]
    return lines + [f"{r['label']} {r['precision']} at {_setting_header(k)}: {v['error']}" for r in result["rows"]
                    for k, v in r.get("latency", {}).items() if "error" in v]


def _setting_header(key: str) -> str:
    b, t = key[1:].split("_t")
    return f"ms b{b} {t}T"


def print_matrix(result: dict[str, Any], console: Console) -> None:
    """The matrix as a rich table, then the recommendation line."""
    settings = result["settings"]
    table = Table(title=f"deploy matrix — {result['images']} {result.get('images_from', 'held-out')} images; "
                        "ms = median of round medians "
                        "(×: speed-up over ONNX Runtime fp32, interleaved)")
    for h in [*header(result), *map(_setting_header, settings)]:
        table.add_column(h, overflow="fold", justify="left" if h in HEADER[:3] else "right")
    rec = result["recommendation"]["id"]
    for row in result["rows"]:
        style = "bold green" if row["id"] == rec else ("dim" if row["status"] != "pass" else None)
        table.add_row(*row_cells(row, settings, result.get("columns")), style=style)
    console.print(table)
    for line in notes(result):
        console.print(f"  [dim]{escape(line)}[/]", highlight=False)
    console.print(f"[bold]recommendation:[/] {result['recommendation']['line']}")


def matrix_markdown(result: dict[str, Any]) -> str:
    """matrix.md: how it was measured, the table, the recommendation."""
    settings = result["settings"]
    head = [*header(result), *map(_setting_header, settings)]
    intro = (f"Student `{result.get('model', '?')}` on {result.get('cpu', 'this CPU')}; agreement and max |Δlogit| "
             f"against the PyTorch student on {result['images']} {result.get('images_from', 'held-out')} images. "
             "Latency: median of round medians in ms, every row timed in the same interleaved rounds, "
             "`ms bN TT` = batch N with T threads; (×) is the per-round speed-up over ONNX Runtime fp32. "
             f"RSS: peak memory a fresh process adds to load and run the file at the deploy setting "
             f"({result['deploy_setting']}). All numbers: [matrix.json](matrix.json).")
    lines = ["# edgedistill deploy matrix", "", intro, "",
             "| " + " | ".join(h.replace("|", "\\|") for h in head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(row, settings, result.get("columns")))
                     + " |")
    lines += ["", *[f"- {line}" for line in notes(result)]]
    lines += ["", f"**Recommendation:** {result['recommendation']['line']}", ""]
    return "\n".join(lines)

