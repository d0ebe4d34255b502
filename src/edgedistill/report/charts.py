"""Charts people look at before they read: matplotlib PNGs written into the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .tables import LABELS  # noqa: E402


def training_curves(histories: dict[str, list[dict[str, Any]]], path: Path) -> bool:
    """Held-out top-1 after each epoch, one line per trained stage; False when nothing was trained."""
    series = {k: [(h["epoch"], h["val_top1"]) for h in v if "val_top1" in h] for k, v in histories.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in series.items():
        ax.plot(*zip(*pts), marker="o", ms=3, label=LABELS.get(name, name))
    ax.set(xlabel="epoch", ylabel="held-out top-1 (%)", title="Training curves")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def accuracy_vs_latency(models: dict[str, dict[str, Any]], path: Path) -> bool:
    pts = {k: (m.get("latency_ms_median"), m.get("top1")) for k, m in models.items()}
    pts = {k: v for k, v in pts.items() if None not in v}
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (lat, acc) in pts.items():
        ax.scatter(lat, acc, s=60)
        ax.annotate(LABELS.get(name, name), (lat, acc), textcoords="offset points", xytext=(6, 4))
    ax.set(xlabel="CPU latency, batch 1 (ms, median)", ylabel="held-out top-1 (%)",
           title="Accuracy vs latency")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
