"""Joint image + mask transforms and loaders for segmentation.

torchvision.transforms.v2 transforms an image and its mask together (tv_tensors.Mask is resized with nearest
neighbour, never blended). Train: resize to data.image_size, random horizontal flip (data.hflip) and, with
data.augment other than none, a random scale crop (0.5–1.0 of the side); eval: resize only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from ..recipe import Recipe


def joint_transform(r: Recipe, train: bool) -> Any:
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    size = r.data.image_size
    steps: list[Any] = [v2.ToImage(), v2.Resize((size, size), antialias=True)]
    if train and r.data.augment != "none":
        steps.append(v2.RandomResizedCrop((size, size), scale=(0.5, 1.0), ratio=(0.75, 1.33), antialias=True))
    if train and r.data.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
              v2.Normalize(list(r.data.mean), list(r.data.std))]
    return v2.Compose(steps)


class SegDataset(Dataset):
    """(image, mask) pairs → (3×S×S float tensor, S×S int64 mask)."""

    def __init__(self, pairs: Dataset, transform: Any):
        self.pairs, self.transform = pairs, transform

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision import tv_tensors

        image, mask = self.pairs[i]
        m = tv_tensors.Mask(torch.from_numpy(np.asarray(mask, dtype=np.int64)))
        x, y = self.transform(image, m)
        return x, y.as_subclass(torch.Tensor).long()


def seg_loader(ds: Dataset, batch: int, *, train: bool, workers: int, seed: int) -> DataLoader:
    """Train: seeded shuffle and full batches; eval: fixed order, every image."""
    g = torch.Generator().manual_seed(seed)
    n = len(ds)  # type: ignore[arg-type]
    return DataLoader(ds, batch, shuffle=train, generator=g if train else None, drop_last=train and n > batch,
                      num_workers=workers, persistent_workers=workers > 0)


__all__ = ["SegDataset", "joint_transform", "seg_loader"]
