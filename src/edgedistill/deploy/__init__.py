"""Deployment-side measures: what a model costs to store and run on the target CPU.

Names load lazily (PEP 562), so `edgedistill.deploy.onnx_classify` runs without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {name: "profile" for name in ("count_flops", "count_macs", "count_params", "measure_latency", "peak_memory_mb",
                                      "profile_model", "weights_size_bytes")}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import the owning submodule on first use of a name."""
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
