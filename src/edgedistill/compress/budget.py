"""Hardware budgets (`deploy.budget`) checked against the measured final artifact: pass, fail, or not measurable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..deploy.energy import NOT_MEASURABLE

STRICT_EXIT_CODE = 3  # `--strict`: a failed budget ends the command with this code


def _measured(key: str, final: dict[str, Any], reference: dict[str, Any]) -> float | None:
    if key == "latency_ms":
        return final.get("deploy_latency_ms")
    if key == "max_accuracy_drop":
        a, b = reference.get("top1"), final.get("top1")
        return None if a is None or b is None else a - b
    return final.get(key)


def check_budgets(budget: Any, final: dict[str, Any] | None, reference: dict[str, Any], deploy: Any,
                  latency_elsewhere: str | None = None) -> list[dict[str, Any]]:
    """One row per budget set in the recipe: limit, measured value, passed (True/False, None = not measurable).

    latency_elsewhere: why deploy.target's latency cannot be timed here; the latency budget then reads
    not measurable, whatever this machine measured.
    """
    rows = []
    for key, limit in budget.model_dump().items():
        if limit is None:
            continue
        value = None if final is None else _measured(key, final, reference)
        if key == "latency_ms" and latency_elsewhere:
            value = None
        row: dict[str, Any] = {"budget": key, "limit": limit, "measured": value,
                               "passed": None if value is None else bool(value <= limit)}
        if key == "latency_ms" and latency_elsewhere:
            row["note"] = f"{NOT_MEASURABLE} ({latency_elsewhere})"
        elif value is None:
            why = "no artifact passed its checks" if final is None else "this figure was not measured"
            row["note"] = f"{NOT_MEASURABLE} ({why})"
        elif key == "latency_ms":
            row["note"] = f"ONNX Runtime median, batch {deploy.batch_size}, {deploy.threads} thread(s)"
        elif key == "max_accuracy_drop":
            row["note"] = "top-1 points below the uncompressed model"
        rows.append(row)
    return rows


def run_budgets_passed(run_dir: Path) -> bool:
    """A finished run's verdict: True unless its compression stages measured a budget over its limit."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():  # a non-zero torchrun rank: rank 0 writes the metrics and gives the verdict
        return True
    metrics = json.loads(path.read_text())
    return bool(metrics.get("compress", {}).get("budgets_passed", True))
