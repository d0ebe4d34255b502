"""CIFAR-style ResNets and WideResNets of the CIFAR-100 distillation protocol (CRD, mdistiller)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError
from ..registry import Registry
from .base import MODEL_SOURCES

CIFAR_MODELS: Registry[Callable[[int], nn.Module]] = Registry("cifar model")


def _init(model: nn.Module) -> None:
    """Kaiming for convs, unit BN, zero biases: the literature's init, so results compare."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Post-activation 3×3/3×3 residual block with a 1×1 projection when the shape changes."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(nn.Module):
    """resnetN (widths 16-16-32-64) and resnetNx4 (32-64-128-256): stem, 3 stages, pool, fc.

    `depth` is 6n+2 (n blocks in every stage) or a per-stage block count (b1, b2, b3) for `arch:cifar_resnet`.
    """

    def __init__(self, depth: int | tuple[int, int, int], widths: tuple[int, int, int, int],
                 num_classes: int = 100):
        super().__init__()
        if isinstance(depth, int):
            assert (depth - 2) % 6 == 0, "depth must be 6n+2"
            depth = ((depth - 2) // 6,) * 3
        n1, n2, n3 = depth
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._stage(widths[0], widths[1], n1, 1)
        self.layer2 = self._stage(widths[1], widths[2], n2, 2)
        self.layer3 = self._stage(widths[2], widths[3], n3, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[3], num_classes)
        _init(self)

    @staticmethod
    def _stage(inplanes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*(BasicBlock(inplanes if i == 0 else planes, planes, stride if i == 0 else 1)
                               for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class WideBlock(nn.Module):
    """Pre-activation wide block (BN-ReLU-conv ×2) with a 1×1 shortcut when the shape changes."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Conv2d(inplanes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return out + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-depth-k (widths 16, 16k, 32k, 64k): conv1, block1..block3, bn1, pool, fc."""

    def __init__(self, depth: int, widen: int, num_classes: int = 100):
        super().__init__()
        assert (depth - 4) % 6 == 0, "depth must be 6n+4"
        n = (depth - 4) // 6
        w = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1 = self._stage(w[0], w[1], n, 1)
        self.block2 = self._stage(w[1], w[2], n, 2)
        self.block3 = self._stage(w[2], w[3], n, 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w[3], num_classes)
        _init(self)

    @staticmethod
    def _stage(inplanes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*(WideBlock(inplanes if i == 0 else planes, planes, stride if i == 0 else 1)
                               for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.relu(self.bn1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


_SMALL, _X4 = (16, 16, 32, 64), (32, 64, 128, 256)
_SPECS: dict[str, tuple[str, Callable[[int], nn.Module]]] = {
    **{f"resnet{d}": (p, lambda k, d=d: CifarResNet(d, _SMALL, k))
       for d, p in [(8, "0.08M"), (14, "0.17M"), (20, "0.28M"), (32, "0.47M"), (44, "0.67M"), (56, "0.86M"),
                    (110, "1.74M")]},
    "resnet8x4": ("1.23M", lambda k: CifarResNet(8, _X4, k)),
    "resnet32x4": ("7.43M", lambda k: CifarResNet(32, _X4, k)),
    **{f"wrn_{d}_{w}": (p, lambda k, d=d, w=w: WideResNet(d, w, k))
       for d, w, p in [(16, 1, "0.18M"), (16, 2, "0.70M"), (40, 1, "0.57M"), (40, 2, "2.26M")]},
}
for _name, (_params, _fn) in _SPECS.items():
    CIFAR_MODELS.register(_name, params=_params)(_fn)


class CifarSource:
    """`cifar:NAME`: the nets above, trained from scratch (no hub weights exist for them)."""

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        fn = CIFAR_MODELS.get(name)
        if pretrained:
            raise UserError(f"cifar:{name} has no pretrained weights; allowed: a weights file, or none")
        return fn(100 if num_classes is None else num_classes)

    def names(self) -> list[str]:
        return CIFAR_MODELS.names()

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        return None


MODEL_SOURCES.register("cifar", description="CIFAR-style ResNets/WRNs of the CIFAR-100 KD protocol "
                                         "(CRD, mdistiller); train from scratch")(CifarSource())
