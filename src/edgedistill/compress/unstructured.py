"""Unstructured magnitude pruning (torch.nn.utils.prune): zeroed weights that compress well, not faster dense maths."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn
from torch.nn.utils import prune

from ..errors import UserError

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _targets(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv and Linear layers: where nearly all weights are, and what sparsity is measured on."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _LAYERS)]


def prune_unstructured(model: nn.Module, amount: float, scope: Literal["layerwise", "global"] = "layerwise"
                       ) -> nn.Module:
    """Zero the smallest-|w| share `amount` of weights per layer (l1_unstructured) or across all (global)."""
    if not 0.0 <= amount < 1.0:
        raise UserError(f"unstructured pruning amount must be in [0, 1), got {amount}")
    layers = _targets(model)
    if not layers:
        raise UserError(f"{type(model).__name__} has no Conv/Linear layers to prune")
    if scope == "layerwise":
        for _, m in layers:
            prune.l1_unstructured(m, name="weight", amount=amount)
    elif scope == "global":
        prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=prune.L1Unstructured,
                                  amount=amount)
    else:
        raise UserError(f"unknown unstructured pruning scope {scope!r}; allowed: layerwise, global")
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold masks into plain weights (prune.remove), so state dicts and ONNX export see ordinary tensors."""
    for _, m in model.named_modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
    return model


def sparsity_report(model: nn.Module) -> list[dict[str, Any]]:
    """Per Conv/Linear layer: weight count, zeros and their share (masked weights count as zero)."""
    rows = []
    for name, m in _targets(model):
        w = m.weight.detach()
        zeros = int((w == 0).sum())
        rows.append({"layer": name, "params": w.numel(), "zeros": zeros, "sparsity": zeros / max(1, w.numel())})
    return rows


def overall_sparsity(model: nn.Module) -> float:
    """Share of zeros over all Conv/Linear weights: the figure global pruning targets."""
    rows = sparsity_report(model)
    return sum(r["zeros"] for r in rows) / max(1, sum(r["params"] for r in rows))
