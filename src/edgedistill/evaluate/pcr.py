"""Performance-Cost Ratio: accuracy kept relative to a reference (the teacher) per unit of cost relative to it.

    PCR_v = (top1 / top1_ref) / (cost_v / cost_v_ref),   v ∈ {latency, size, energy, flops}

1.0 = the same accuracy per unit of cost as the teacher; 2.0 = twice the accuracy per unit of cost (e.g. 95%
of the accuracy at 47.5% of the latency). Higher is better; a search can maximise it. Costs: latency =
`latency_ms_median`, size = `size_mb`, energy = `energy.j_per_image`, flops = `flops`. None where either
model lacks the figure (not measurable here, no teacher).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import UserError

PCR_VARIANTS = ("latency", "size", "energy", "flops")


def _cost(m: dict[str, Any], variant: str) -> float | None:
    if variant == "energy":
        return (m.get("energy") or {}).get("j_per_image")
    return m.get({"latency": "latency_ms_median", "size": "size_mb", "flops": "flops"}[variant])


def check_variants(variants: Iterable[str], key: str = "eval.pcr") -> list[str]:
    """The variants, or a UserError naming the unknown one and the allowed ones."""
    out = list(variants)
    for v in out:
        if v not in PCR_VARIANTS:
            raise UserError(f"{key}: unknown PCR variant {v!r}; allowed: {', '.join(PCR_VARIANTS)}", key=key)
    return out


def pcr(model_metrics: dict[str, Any], teacher_metrics: dict[str, Any], variant: str) -> float | None:
    """(top1 / teacher top1) / (cost / teacher cost) for one variant; None when a figure is missing or zero."""
    check_variants([variant], key="pcr variant")
    a, a_ref = model_metrics.get("top1"), teacher_metrics.get("top1")
    c, c_ref = _cost(model_metrics, variant), _cost(teacher_metrics, variant)
    if not a_ref or a is None or not c or not c_ref:
        return None
    return (a / a_ref) / (c / c_ref)


def pcr_all(model_metrics: dict[str, Any], teacher_metrics: dict[str, Any],
            variants: Iterable[str] = PCR_VARIANTS) -> dict[str, float | None]:
    """Every requested variant: {"latency": …, "size": …, …}."""
    return {v: pcr(model_metrics, teacher_metrics, v) for v in variants}


def pcr_text(values: dict[str, float | None] | None, variant: str) -> str:
    v = (values or {}).get(variant)
    return "–" if v is None else f"{v:.2f}"
