"""`seg:lraspp_timm:NAME`: torchvision's LR-ASPP head on any timm backbone (features_only), built without a download.

torchvision puts its light LR-ASPP head on MobileNetV3 only; timm gives every backbone a `features_only` form that
names each map's stride and channels (feature_info), so the head takes the backbone's stride-8 map (or the finest
one above stride 4 where none is at 8) as its low-level input and the deepest map as its high-level input.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..registry import unknown_name_message

PREFIX = "lraspp_timm:"
INTER_CHANNELS = 128  # torchvision's LR-ASPP width


def check(name: str) -> str:
    """'lraspp_timm:resnet18' → 'resnet18'; UserError naming the timm models when it is not one."""
    import timm

    arch = name.removeprefix(PREFIX)
    if not arch or not timm.is_model(arch):
        raise UserError(unknown_name_message("timm backbone", arch, timm.list_models()) +
                        f" (in seg:{name}; allowed: seg:{PREFIX}NAME with a timm model name)")
    return arch


def _low_index(reductions: list[int]) -> int:
    """The stride-8 map, else the finest map coarser than stride 4 (LR-ASPP's low-level input)."""
    if 8 in reductions:
        return len(reductions) - 1 - reductions[::-1].index(8)
    above = [i for i, r in enumerate(reductions) if r > 4]
    return above[0] if above else 0


class TimmLRASPP(nn.Module):
    """timm backbone → (low, high) maps → LRASPPHead → logits upsampled to the input; forward returns {"out": …}
    like torchvision's segmentation models."""

    def __init__(self, arch: str, num_classes: int):
        super().__init__()
        import timm
        from torchvision.models.segmentation.lraspp import LRASPPHead

        info = timm.create_model(arch, pretrained=False, features_only=True).feature_info
        reductions, channels = info.reduction(), info.channels()
        low, high = _low_index(reductions), len(reductions) - 1
        if low >= high:
            raise UserError(f"timm backbone {arch} has no map between stride 4 and its deepest one (strides "
                            f"{reductions}); allowed: a backbone with a stride-8 or stride-16 stage")
        self.backbone = timm.create_model(arch, pretrained=False, features_only=True, out_indices=(low, high))
        self.classifier = LRASPPHead(channels[low], channels[high], num_classes, INTER_CHANNELS)

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        low, high = self.backbone(x)
        out = self.classifier({"low": low, "high": high})
        return {"out": F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def build(name: str, num_classes: int) -> tuple[nn.Module, str]:
    """The model and its decoder-feature layer (the head's cbr block, as on torchvision's LR-ASPP)."""
    return TimmLRASPP(check(name), num_classes), "classifier.cbr"


__all__ = ["PREFIX", "TimmLRASPP", "build", "check"]
