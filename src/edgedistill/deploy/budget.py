"""Hardware budgets (`deploy.budget`) checked against the measured final artifact: pass, fail, or not measurable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .energy import NOT_MEASURABLE, is_estimate

STRICT_EXIT_CODE = 3  # `--strict`: a failed budget ends the command with this code


def _measured(key: str, final: dict[str, Any], reference: dict[str, Any]) -> float | None:
    if key == "latency_ms":
        return final.get("deploy_latency_ms")
    if key == "max_accuracy_drop":
        a, b = reference.get("top1"), final.get("top1")
        return None if a is None or b is None else a - b
    if key == "energy_mj":
        j = (final.get("energy") or {}).get("j_per_image")
        return None if j is None else 1e3 * j
    return final.get(key)


def check_budgets(budget: Any, final: dict[str, Any] | None, reference: dict[str, Any], deploy: Any,
                  latency_elsewhere: str | None = None) -> list[dict[str, Any]]:
    """One row per budget set in the recipe: limit, measured value, passed (True/False, None = not measurable).

    latency_elsewhere: why deploy.target's latency cannot be timed here; the latency budget then reads
    not measurable, whatever this machine measured.
    """
    rows = []
    for key, limit in budget.model_dump(exclude={"energy_estimates"}).items():
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
        elif key == "energy_mj":
            _energy_row(row, final["energy"], budget.energy_estimates)  # type: ignore[index]
        rows.append(row)
    return rows


def _energy_row(row: dict[str, Any], energy: dict[str, Any], policy: str) -> None:
    """Label the energy verdict measured or estimated; an estimate counts only as deploy.budget.energy_estimates says."""
    row["kind"] = "estimated" if is_estimate(energy) else "measured"
    row["note"] = f"{energy.get('label') or row['kind']}; CPU, ONNX Runtime at the deploy batch/threads"
    if row["kind"] == "measured":
        return
    row["estimated"] = True
    if policy == "warn":
        row["counts"] = False
        row["note"] += "; estimated: not counted (deploy.budget.energy_estimates=warn)"
    elif policy == "fail":
        row["passed"] = False
        row["note"] += "; estimated: fails (deploy.budget.energy_estimates=fail wants a measured figure)"
    else:
        row["note"] += "; estimated: counted (deploy.budget.energy_estimates=count)"


def budgets_passed(rows: list[dict[str, Any]]) -> bool:
    """False when a counted budget failed; not measurable and uncounted (estimated, warn) rows never fail."""
    return all(r["passed"] is not False for r in rows if r.get("counts", True))


def unmeasured(rows: list[dict[str, Any]]) -> list[str]:
    """The counted budgets nothing here could measure: `--strict` cannot call them kept."""
    return [r["budget"] for r in rows if r["passed"] is None and r.get("counts", True)]


def overall(rows: list[dict[str, Any]]) -> str:
    """One word for the budget table's title: FAIL, pass, or not measurable (never pass when nothing was measured)."""
    if not budgets_passed(rows):
        return "FAIL"
    missing = unmeasured(rows)
    counted = [r for r in rows if r.get("counts", True)]
    if missing and len(missing) == len(counted):
        return NOT_MEASURABLE
    return "pass" + (f" ({len(missing)} not measurable)" if missing else "")


def verdict(row: dict[str, Any]) -> str:
    """pass / FAIL / not measurable here, with `(estimated)` or `(estimated, not counted)` for an estimate."""
    v = {True: "pass", False: "FAIL", None: NOT_MEASURABLE}[row["passed"]]
    if row.get("estimated"):
        v += " (estimated" + (", not counted)" if row.get("counts") is False else ")")
    return v


def strict_failure(result: dict[str, Any]) -> str | None:
    """Why `--strict` ends with STRICT_EXIT_CODE: a budget failed, or a set budget could not be measured here."""
    if not result.get("budgets_passed", True):
        return "budget failed"
    missing = unmeasured(result.get("budgets") or [])
    return f"budget not measurable here: {', '.join(missing)}" if missing else None


def run_strict_failure(run_dir: Path) -> str | None:
    """A finished run's `--strict` verdict from its metrics.json (see strict_failure)."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():  # a non-zero torchrun rank: rank 0 writes the metrics and gives the verdict
        return None
    return strict_failure(json.loads(path.read_text()).get("compress", {}))
