"""Charts people look at before they read: matplotlib PNGs written into the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .tables import LABELS


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


# The metric suite on one scale (0-1; top-k divided by 100): higher is better except ECE, marked so.
SUITE = (("top1", "top-1", 100), ("top5", "top-5", 100), ("f1_macro", "F1 macro", 1), ("mcc", "MCC", 1),
         ("kappa", "Cohen's κ", 1), ("roc_auc", "ROC AUC", 1), ("agreement", "agreement w/ teacher", 100),
         ("ece", "ECE (lower is better)", 1))


def metric_suite(models: dict[str, dict[str, Any]], path: Path) -> bool:
    """Teacher vs students on every quality metric as grouped bars; False when no model has any of them."""
    rows = [(label, scale, key) for key, label, scale in SUITE
            if any(isinstance(m.get(key), (int, float)) for m in models.values())]
    if not rows:
        return False
    import numpy as np

    names = list(models)
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.28 * len(rows) * len(names)))
    height = 0.8 / len(names)
    y = np.arange(len(rows))
    for i, name in enumerate(names):
        vals = [(models[name].get(key) or 0) / scale if isinstance(models[name].get(key), (int, float)) else 0
                for _, scale, key in rows]
        bars = ax.barh(y + i * height, vals, height, label=LABELS.get(name, name))
        ax.bar_label(bars, labels=[f"{v:.3f}" if v else "–" for v in vals], fontsize=7, padding=2)
    ax.set_yticks(y + height * (len(names) - 1) / 2, [label for label, _, _ in rows])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.12), xlabel="value (top-k and agreement as fractions)", title="Metric suite")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
