"""Which module to tap for a feature map, and how to read any tapped output as a [B,C,H,W] map.

Feature-based distillation needs one default layer per architecture and one shape for CNN maps,
ViT token sequences and Hugging Face layer outputs alike; both live here so every method agrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..registry import unknown_name_message
from .cifar import CifarResNet, WideResNet
from .hf import HFClassifier
from .taps import FeatureTaps

AUTO = "auto"
_HF_STACKS = ("encoder.layer", "encoder.layers", "encoder.stages", "encoder.block")


def _first_tensor(out: Any) -> torch.Tensor:
    """HF layers return tuples or ModelOutputs (dicts): the hidden state is their first tensor."""
    if isinstance(out, torch.Tensor):
        return out
    values = out.values() if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else ()
    for v in values:
        t = _first_tensor(v) if not isinstance(v, torch.Tensor) else v
        if isinstance(t, torch.Tensor):
            return t
    raise TypeError(f"no tensor in a feature of type {type(out).__name__}")


def to_spatial(feat: Any) -> torch.Tensor:
    """Any tapped output → [B,C,H,W]: maps pass through, [B,N,C] tokens lose their N−h·w leading tokens.

    The prefix (class, distillation, register tokens) is inferred as N − s² with s² the largest square ≤ N,
    which holds for square patch grids whenever there are fewer than 2s+1 prefix tokens. [B,C] → [B,C,1,1].
    """
    x = _first_tensor(feat)
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        b, n, c = x.shape
        s = math.isqrt(n)
        if s == 0:
            raise ValueError(f"cannot read {tuple(x.shape)} tokens as a square grid")
        return x[:, n - s * s:, :].transpose(1, 2).reshape(b, c, s, s)
    if x.dim() == 2:
        return x[:, :, None, None]
    raise ValueError(f"cannot read a feature of shape {tuple(x.shape)} as a [B,C,H,W] map")


def _hf_layer(hf: nn.Module) -> str | None:
    """The last block of a transformers encoder stack (ViT/DeiT: encoder.layer.N; 5.x: vit.layers.N)."""
    best: str | None = None
    for name, mod in hf.named_modules():
        stack = any(name.endswith(s) for s in _HF_STACKS)
        stack = stack or (name.count(".") <= 1 and name.endswith("layers"))  # transformers 5: vit.layers.N
        if isinstance(mod, nn.ModuleList) and len(mod) and stack:
            best = f"{name}.{len(mod) - 1}"
    return best


def _traced_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """Fallback for unknown architectures: the last 4-D output that finished before the global pool began."""
    done: list[tuple[str, bool]] = []
    pool_at: list[int] = []
    handles = []
    for name, mod in model.named_modules():
        if not name:
            continue
        if type(mod).__name__.startswith(("AdaptiveAvgPool", "AdaptiveMaxPool", "SelectAdaptivePool")):
            handles.append(mod.register_forward_pre_hook(
                lambda *_: pool_at.append(len(done)) if not pool_at else None))

        def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            done.append((name, isinstance(out, torch.Tensor) and out.dim() == 4))

        handles.append(mod.register_forward_hook(hook))
    try:
        _probe(model, example)
    finally:
        for h in handles:
            h.remove()
    cut = pool_at[0] if pool_at else len(done)
    spatial = [n for n, is4d in done[:cut] if is4d]
    return spatial[-1] if spatial else None


def default_feature_layer(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """The module whose output is the last spatial map before global pooling (a ViT's last block)."""
    hint = getattr(model, "default_feature_layer", None)  # a model that names its own (seg: its decoder map)
    if isinstance(hint, str):
        return hint
    if isinstance(model, CifarResNet):
        return "layer3"  # its blocks end in ReLU: layer3 is already post-activation
    if isinstance(model, WideResNet):
        return "block3"  # bn1+ReLU run functionally after it; AT's WRN code taps these group outputs
    if isinstance(model, HFClassifier):
        name = _hf_layer(model.hf)
        if name:
            return f"hf.{name}"
    info = getattr(model, "feature_info", None)  # timm: the deepest stage it reports for features_only
    if isinstance(info, list) and info and isinstance(info[-1], dict) and info[-1].get("module"):
        return str(info[-1]["module"])
    features = getattr(model, "features", None)  # torchvision MobileNet/EfficientNet/VGG/ConvNeXt/…
    if isinstance(features, nn.Sequential) and len(features):
        return f"features.{len(features) - 1}"
    if isinstance(getattr(model, "layer4", None), nn.Module):  # torchvision ResNet/ResNeXt/WRN
        return "layer4"
    if example is not None:
        name = _traced_layer(model, example)
        if name:
            return name
    raise UserError(f"no default feature layer for {type(model).__name__}; set the method's layer parameter "
                    "to a module name (see `edgedistill list` / model.named_modules())")


def resolve_layer(model: nn.Module, name: str, example: torch.Tensor | None = None,
                  key: str | None = None) -> str:
    """A method's layer parameter → a module name ('auto' → default_feature_layer), checked at build time."""
    if name == AUTO:
        return default_feature_layer(model, example)
    modules = [n for n, _ in model.named_modules() if n]
    if name not in modules:
        raise UserError(unknown_name_message(f"module of {type(model).__name__}", name, modules), key=key)
    return name


def _probe(model: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """One forward in eval mode without grad, so BatchNorm statistics of a 2-image batch are never learned."""
    was = model.training
    try:
        p = next(model.parameters(), None)
        model.eval()
        with torch.no_grad():
            return model(example.to(p.device) if p is not None else example)
    finally:
        model.train(was)


def probe_features(model: nn.Module, names: Iterable[str], example: torch.Tensor,
                   key: str | None = None) -> dict[str, torch.Tensor]:
    """Features of `names` for `example` as [B,C,H,W] maps on CPU, to size connectors at build time."""
    with FeatureTaps(model, list(names), key=key) as taps:
        _probe(model, example)
    return {n: to_spatial(f).detach().cpu() for n, f in taps.features.items()}


__all__ = ["AUTO", "default_feature_layer", "probe_features", "resolve_layer", "to_spatial"]
