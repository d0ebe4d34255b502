"""The deploy matrix's runtimes by name, and the checks of `--runtimes` / `--precisions` before any work."""

from __future__ import annotations

from ..errors import UserError
from .backend import PRECISIONS, Backend
from .rt_executorch import ExecuTorch
from .rt_litert import LiteRt
from .rt_onnxruntime import OnnxRuntime
from .rt_openvino import OpenVino

RUNTIMES: dict[str, Backend] = {b.name: b for b in (OnnxRuntime(), OpenVino(), ExecuTorch(), LiteRt())}


def _pick(value: str | None, allowed: tuple[str, ...], option: str) -> list[str]:
    """Comma-separated names, each one of `allowed` (order kept, duplicates dropped); None or 'all' = all."""
    if value is None or value.strip() == "all":
        return list(allowed)
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        shown = ", ".join(repr(b) for b in bad) or repr(value)
        raise UserError(f"unknown value {shown}; allowed: {', '.join(allowed)} (comma-separated) or all", key=option)
    return list(dict.fromkeys(names))


def pick_runtimes(value: str | None) -> list[str]:
    """The runtimes `--runtimes` names; unknown names exit 2 with the allowed ones."""
    return _pick(value, tuple(RUNTIMES), "--runtimes")


def pick_precisions(value: str | None) -> list[str]:
    """The precisions `--precisions` names (fp32, int8)."""
    return _pick(value, PRECISIONS, "--precisions")
