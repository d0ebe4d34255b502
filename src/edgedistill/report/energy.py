"""Accuracy vs energy per image (filled = measured, hollow = estimated, budget line) and the PCR table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
from matplotlib.lines import Line2D

from ..deploy.energy import is_estimate
from ..evaluate.pcr import pcr_text
from .tables import LABELS, markdown_table

ENERGY_NOTE = ("Energy: CPU joules per image through CodeCarbon, labelled *measured* (a hardware counter: Intel "
               "RAPL, …) or *estimated* (CodeCarbon's power model: CPU TDP × this process's CPU share, when no "
               "counter is readable); in the chart filled = measured, hollow = estimated.")


def model_points(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Teacher and students (PyTorch on the CPU), one point each where both figures exist."""
    return [{"label": LABELS.get(n, n), "top1": m.get("top1"), "energy": m.get("energy"), "group": "model"}
            for n, m in models.items()]


def stage_points(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reported compression stages (ONNX Runtime at the deploy batch/threads)."""
    return [{"label": e["stage"] if e["index"] == "ref" else f"{e['index']}-{e['stage']}", "top1": e.get("top1"),
             "energy": e.get("energy"), "group": "stage"} for e in stages if e.get("reported", True)]


def energy_chart(points: list[dict[str, Any]], path: Path, budget_mj: float | None = None,
                 title: str = "Accuracy vs energy per image") -> bool:
    """Scatter top-1 against mJ/image; False (no file) when no point has both figures."""
    pts = [p for p in points if p["top1"] is not None and (p["energy"] or {}).get("j_per_image") is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"model": "tab:blue", "stage": "tab:orange"}
    for k, p in enumerate(pts):
        x, c = 1e3 * p["energy"]["j_per_image"], colors[p["group"]]
        marker = "o" if p["group"] == "model" else "s"
        ax.scatter(x, p["top1"], s=60, marker=marker, edgecolors=c, linewidths=1.5,
                   facecolors="none" if is_estimate(p["energy"]) else c)
        ax.annotate(p["label"], (x, p["top1"]), textcoords="offset points", xytext=(6, 10 - 9 * (k % 3)), fontsize=8)
    xs = [1e3 * p["energy"]["j_per_image"] for p in pts]
    if budget_mj is not None:
        ax.axvline(budget_mj, color="tab:red", linestyle="--", linewidth=1)
        xs.append(budget_mj)
    if max(xs) > 20 * min(xs):  # a PyTorch teacher far above ONNX stages: log, else linear stays readable
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(0.12)  # room for the labels of the outermost points
    handles = [Line2D([], [], marker="o", color="gray", linestyle="", label="measured"),
               Line2D([], [], marker="o", color="gray", markerfacecolor="none", linestyle="", label="estimated")]
    groups = {p["group"] for p in pts}
    if "model" in groups:
        handles.append(Line2D([], [], marker="o", color=colors["model"], linestyle="", label="model (PyTorch)"))
    if "stage" in groups:
        handles.append(Line2D([], [], marker="s", color=colors["stage"], linestyle="", label="stage (ONNX Runtime)"))
    if budget_mj is not None:
        handles.append(Line2D([], [], color="tab:red", linestyle="--", label=f"budget {budget_mj:g} mJ"))
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set(xlabel="CPU energy per image (mJ)", ylabel="held-out top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def pcr_lines(rows: list[tuple[str, dict[str, float | None] | None]], variants: list[str], reference: str
              ) -> list[str]:
    """Markdown: one PCR row per model or stage, with the definition under the table."""
    if not variants or all(not values for _, values in rows):
        return []
    body = [[label, *(pcr_text(values, v) for v in variants)] for label, values in rows]
    return ["## Performance-Cost Ratio", "", markdown_table(["", *(f"PCR {v}" for v in variants)], body), "",
            (f"PCR = (top-1 / top-1 of the {reference}) / (cost / cost of the {reference}); 1.0 = the {reference}'s "
             "accuracy per unit of cost, higher is better. Costs: latency (median ms), size (MB), energy (J/image, "
             "measured or estimated as labelled), FLOPs."), ""]
