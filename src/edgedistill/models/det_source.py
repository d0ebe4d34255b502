"""`det:NAME`: torchvision's detection models (FCOS, RetinaNet, SSDlite, Faster R-CNN), built without any
download (weights=None, weights_backbone=None), wrapped in DetNet.

torchvision's own builders: fcos_resnet50_fpn, retinanet_resnet50_fpn, ssdlite320_mobilenet_v3_large,
fasterrcnn_mobilenet_v3_large_fpn. Small ones for CPU budgets: fcos_mobilenet_v3_{large,small}[@W] and
retinanet_mobilenet_v3_{large,small}[@W] put torchvision's FCOS/RetinaNet (the same classes its builders use)
on a MobileNetV3 of width multiplier W with an FPN on its stride-8/16/32 stages plus P6/P7 — the five levels
(strides 8..128) of the ResNet-50 builders, so a MobileNet student and a ResNet teacher pair level by level.
FPN and head widths scale with W (64 channels at W ≤ 0.5, 128 at ≤ 1, else 256).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from .base import MODEL_SOURCES, parse_width

BN_MOMENTUM = 0.1
DEFAULT_SIZE = 320
MIN_SCORE = 0.05  # the lowest score a detector returns (COCO AP needs its low-score boxes)


class DetNet(nn.Module):
    """A torchvision detector taking an N×3×S×S batch in 0..1 and class ids 0..K-1.

    Eval: forward(images) → one dict per image (boxes x1y1x2y2 in pixels, labels 0..K-1, scores). Training:
    forward(images, boxes, labels) → torchvision's dict of losses. Faster R-CNN and SSD count the background as
    class 0, so their labels are shifted by `offset` = 1 on the way in and out. `has_head`: FCOS/RetinaNet,
    whose `net.head` returns per-anchor class logits (cls_logits, N×A×K, sigmoid) for head distillation."""

    def __init__(self, net: nn.Module, offset: int, has_head: bool, image_size: int = DEFAULT_SIZE):
        super().__init__()
        self.net, self.offset, self.has_head = net, offset, has_head
        self.set_image_size(image_size)

    def set_image_size(self, size: int) -> None:
        """Inputs are data.image_size squares: the detector's transform keeps them at that size (no upscale)."""
        t = self.net.transform
        t.min_size, t.max_size = (size,), size
        if getattr(t, "fixed_size", None) is not None:
            t.fixed_size = (size, size)

    def forward(self, images: torch.Tensor, boxes: list[torch.Tensor] | None = None,
                labels: list[torch.Tensor] | None = None) -> Any:
        if boxes is None or labels is None:
            out = self.net(list(images))
            return [{**d, "labels": d["labels"] - self.offset} for d in out]
        targets = [{"boxes": b, "labels": c + self.offset} for b, c in zip(boxes, labels, strict=True)]
        return self.net(list(images), targets)

    def maps(self, images: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor] | None]:
        """The FPN (backbone) maps and, for FCOS/RetinaNet, the head outputs — the detector's forward up to its
        head, without losses or box decoding (what a frozen teacher gives the distillation terms)."""
        x, _ = self.net.transform(list(images))
        feats = list(self.net.backbone(x.tensors).values())
        return feats, (self.net.head(feats) if self.has_head else None)

    def train_outputs(self, images: torch.Tensor, boxes: list[torch.Tensor], labels: list[torch.Tensor]
                      ) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], dict[str, torch.Tensor] | None]:
        """Training losses, and the FPN maps and head outputs of the same forward (forward hooks)."""
        seen: dict[str, Any] = {}
        hooks = [self.net.backbone.register_forward_hook(lambda m, i, o: seen.__setitem__("fpn", list(o.values())))]
        if self.has_head:
            hooks.append(self.net.head.register_forward_hook(lambda m, i, o: seen.__setitem__("head", o)))
        try:
            losses = self(images, boxes, labels)
        finally:
            for h in hooks:
                h.remove()
        return losses, seen["fpn"], seen.get("head")


def _fpn_width(width: float) -> int:
    return 64 if width <= 0.5 else 128 if width <= 1 else 256


def _mobile_backbone(kind: str, width: float) -> nn.Module:
    """MobileNetV3 stages at strides 8, 16, 32 → an FPN of _fpn_width(W) channels with P6/P7 (5 levels)."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    feats = getattr(torchvision.models, f"mobilenet_v3_{kind}")(weights=None, width_mult=width).features
    stages = [0] + [i for i, b in enumerate(feats) if getattr(b, "_is_cn", False)] + [len(feats) - 1]
    picked = [stages[-4], stages[-3], stages[-1]]  # first blocks of stride 8 and 16, the last (stride 32)
    c = _fpn_width(width)
    return BackboneWithFPN(feats, {str(k): str(v) for v, k in enumerate(picked)},
                           [feats[k].out_channels for k in picked], c, extra_blocks=LastLevelP6P7(c, c))


def _mobile(arch: str, kind: str) -> Callable[[int, float], DetNet]:
    def make(k: int, width: float) -> DetNet:
        from torchvision.models.detection import FCOS, RetinaNet
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.fcos import FCOSHead
        from torchvision.models.detection.retinanet import RetinaNetHead

        backbone = _mobile_backbone(kind, width)
        c, convs = backbone.out_channels, 2 if width <= 0.5 else 4
        if arch == "fcos":
            anchors = AnchorGenerator(tuple((8 * 2**i,) for i in range(5)), ((1.0,),) * 5)
            net: nn.Module = FCOS(backbone, k, anchor_generator=anchors, head=FCOSHead(c, 1, k, num_convs=convs))
        else:
            sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in (16, 32, 64, 128, 256))
            anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
            net = RetinaNet(backbone, k, anchor_generator=anchors, head=RetinaNetHead(c, 9, k))
        return DetNet(net, 0, True)
    return make


def _torchvision(name: str, offset: int, has_head: bool) -> Callable[[int, float], DetNet]:
    def make(k: int, width: float) -> DetNet:
        import torchvision

        build = getattr(torchvision.models.detection, name)
        return DetNet(build(weights=None, weights_backbone=None, num_classes=k + offset), offset, has_head)
    return make


BUILDERS: dict[str, Callable[[int, float], DetNet]] = {
    "fcos_resnet50_fpn": _torchvision("fcos_resnet50_fpn", 0, True),
    "retinanet_resnet50_fpn": _torchvision("retinanet_resnet50_fpn", 0, True),
    "ssdlite320_mobilenet_v3_large": _torchvision("ssdlite320_mobilenet_v3_large", 1, False),
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision("fasterrcnn_mobilenet_v3_large_fpn", 1, False),
    "fcos_mobilenet_v3_large": _mobile("fcos", "large"),
    "fcos_mobilenet_v3_small": _mobile("fcos", "small"),
    "retinanet_mobilenet_v3_large": _mobile("retinanet", "large"),
    "retinanet_mobilenet_v3_small": _mobile("retinanet", "small"),
}
WIDTHS = tuple(n for n in BUILDERS if n.startswith(("fcos_mobilenet", "retinanet_mobilenet")))


def parse(name: str) -> tuple[str, float]:
    """'fcos_mobilenet_v3_small@0.5' → ('fcos_mobilenet_v3_small', 0.5); UserError naming what is allowed."""
    return parse_width(name, BUILDERS, WIDTHS, "detection", "det:fcos_mobilenet_v3_small@0.5")


class DetSource:
    """Models for task=detection; weights=None always (a weights file is loaded by the caller, weights_only)."""

    def validate(self, name: str) -> None:
        parse(name)

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        if pretrained:
            raise UserError("det: models are built without downloads; allowed: weights none or a weights file")
        base, width = parse(name)
        model = BUILDERS[base](num_classes or 4, width)
        if getattr(model.net, "score_thresh", 0) > MIN_SCORE:  # FCOS keeps ≥ 0.2 only: too few boxes for mAP
            model.net.score_thresh = MIN_SCORE
        for m in model.modules():  # torchvision's MobileNetV3 uses 0.01: too slow for a few hundred steps
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = BN_MOMENTUM
        return model

    def names(self) -> list[str]:
        return [*BUILDERS, "fcos_mobilenet_v3_small@0.5"]

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        return None


MODEL_SOURCES.register("det", description="task=detection: torchvision FCOS / RetinaNet / SSDlite / Faster "
                       "R-CNN (MobileNetV3, ResNet-50), no download; @W sets the MobileNetV3 width")(DetSource())
