"""Train augmentation and eval preprocessing, chosen by image size so small and large inputs both work."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torchvision.transforms import v2

if TYPE_CHECKING:
    from ..recipe import DataConfig

SMALL = 64  # up to this side, pad-and-crop (CIFAR-style); above, random-resized-crop (ImageNet-style)


def _eval_resize(size: int) -> list[v2.Transform]:
    """Small images: resize to the side; large: resize to side/0.875 then center-crop, the usual protocol."""
    if size <= SMALL:
        return [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    return [v2.Resize(int(size / 0.875), antialias=True), v2.CenterCrop(size)]


def build_transform(cfg: DataConfig, train: bool) -> v2.Compose:
    """PIL image → normalized float tensor (3, S, S); random only when train is true."""
    size = cfg.image_size
    mode = cfg.augment
    if mode == "auto":
        mode = "padcrop" if size <= SMALL else "randomresizedcrop"
    steps: list[v2.Transform]
    if not train or mode == "none":
        steps = _eval_resize(size)
    elif mode == "padcrop":
        steps = [v2.Resize(size, antialias=True), v2.RandomCrop(size, padding=size // 8)]
    else:
        steps = [v2.RandomResizedCrop(size, antialias=True)]
    if train and mode != "none" and cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    steps.append(v2.Normalize(list(cfg.mean), list(cfg.std)))
    return v2.Compose(steps)
