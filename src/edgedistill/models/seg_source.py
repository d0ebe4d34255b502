"""`seg:NAME`: torchvision's semantic segmentation models (LR-ASPP, DeepLabV3 on MobileNetV3 and ResNet),
built without any download (weights=None, weights_backbone=None) and returning the N×K×H×W logits tensor.

`seg:lraspp_mobilenet_v3_small@0.5` is an LR-ASPP on a MobileNetV3-Small of width multiplier 0.5 (torchvision
ships the large one only; the small one is built with torchvision's own LR-ASPP builder on its dilated
MobileNetV3-Small). `@W` sets the width of every MobileNetV3 backbone.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import UserError
from . import seg_timm
from .base import MODEL_SOURCES, parse_width

BN_MOMENTUM = 0.1


class SegNet(nn.Module):
    """A torchvision segmentation model whose forward returns the "out" logits (upsampled to the input size).

    `default_feature_layer` names its decoder features (the head's last map before the classifier): the layer
    feature methods (fitnet, pairwise) tap when their layer is `auto`."""

    def __init__(self, net: nn.Module, feature_layer: str):
        super().__init__()
        self.net = net
        self.default_feature_layer = f"net.{feature_layer}"

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.net(x)["out"]


def _mobilenet(kind: str, width: float):  # noqa: ANN202
    import torchvision

    build = getattr(torchvision.models, f"mobilenet_v3_{kind}")
    return build(weights=None, width_mult=width, dilated=True)


def _lraspp(kind: str) -> Callable[[int, float], tuple[nn.Module, str]]:
    def make(n: int, width: float) -> tuple[nn.Module, str]:
        from torchvision.models.segmentation.lraspp import _lraspp_mobilenetv3

        return _lraspp_mobilenetv3(_mobilenet(kind, width), n), "classifier.cbr"
    return make


def _deeplab_mobilenet(n: int, width: float) -> tuple[nn.Module, str]:
    from torchvision.models.segmentation.deeplabv3 import _deeplabv3_mobilenetv3

    return _deeplabv3_mobilenetv3(_mobilenet("large", width), n, False), "classifier.3"


def _deeplab_resnet(depth: int) -> Callable[[int, float], tuple[nn.Module, str]]:
    def make(n: int, width: float) -> tuple[nn.Module, str]:
        import torchvision
        from torchvision.models.segmentation.deeplabv3 import _deeplabv3_resnet

        backbone = getattr(torchvision.models, f"resnet{depth}")(weights=None,
                                                                 replace_stride_with_dilation=[False, True, True])
        return _deeplabv3_resnet(backbone, n, False), "classifier.3"
    return make


BUILDERS: dict[str, Callable[[int, float], tuple[nn.Module, str]]] = {
    "lraspp_mobilenet_v3_large": _lraspp("large"),
    "lraspp_mobilenet_v3_small": _lraspp("small"),
    "deeplabv3_mobilenet_v3_large": _deeplab_mobilenet,
    "deeplabv3_resnet50": _deeplab_resnet(50),
    "deeplabv3_resnet101": _deeplab_resnet(101),
}
WIDTHS = tuple(n for n in BUILDERS if "mobilenet" in n)


def parse(name: str) -> tuple[str, float]:
    """'lraspp_mobilenet_v3_small@0.5' → ('lraspp_mobilenet_v3_small', 0.5); UserError naming what is allowed."""
    return parse_width(name, BUILDERS, WIDTHS, "segmentation", "seg:lraspp_mobilenet_v3_small@0.5")


class SegSource:
    """Models for task=segmentation; weights=None always (a weights file is loaded by the caller)."""

    def validate(self, name: str) -> None:
        if name.startswith(seg_timm.PREFIX):
            seg_timm.check(name)
        else:
            parse(name)

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        if pretrained:
            raise UserError("seg: models are built without downloads; allowed: weights none or a weights file")
        if name.startswith(seg_timm.PREFIX):
            net, layer = seg_timm.build(name, num_classes or 21)
        else:
            base, width = parse(name)
            net, layer = BUILDERS[base](num_classes or 21, width)
        for m in net.modules():  # torchvision's MobileNetV3 uses 0.01: its running statistics would lag far
            if isinstance(m, nn.BatchNorm2d):  # behind on the few hundred steps a small dataset gives
                m.momentum = BN_MOMENTUM
        return SegNet(net, layer)

    def names(self) -> list[str]:
        return [*BUILDERS, "lraspp_mobilenet_v3_small@0.5", f"{seg_timm.PREFIX}resnet18"]

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        return None


MODEL_SOURCES.register("seg", description="task=segmentation: torchvision LR-ASPP / DeepLabV3 (MobileNetV3, "
                       "ResNet), no download; @W sets the MobileNetV3 width; lraspp_timm:NAME puts the LR-ASPP "
                       "head on a timm backbone")(SegSource())
