"""Device-resident train data for small images: the whole split as one uint8 tensor, augmented where it lives.

The fastest CIFAR trainers (Keller Jordan's airbench, hlb-CIFAR10) skip the DataLoader: 50k 32×32 images
are 150 MB, so decoding once and pad-crop+flip on the device removes per-image Python, PIL and worker
processes from every step. No library offers this loop for arbitrary datasets, hence this file. Draws are
keyed by (seed, epoch, index) like the CPU path (same distribution, not the same pixels), and shuffling
and sharding reuse EpochSampler, so order, ranks and resume behave as with the DataLoader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from .base import to_rgb
from .dataset import EpochSampler
from .transforms import SMALL

if TYPE_CHECKING:
    from ..recipe import DataConfig

_MASK = (1 << 62) - 1


def _mix(seed: int, epoch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A 62-bit hash per (seed, epoch, index), in int64 tensor ops so it runs on any device."""
    h = (index * 0x2545F4914F6CDD1D + epoch * 0x1F3D5B79A5C3E1 + ((seed * 0x5851F42D4C957F2D) & _MASK)) & _MASK
    h = h ^ (h >> 29)
    h = (h * 0x27BB2EE687B0B0FD) & _MASK
    return h ^ (h >> 32)


def decode_uint8(dataset: object, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (PIL, label) samples → uint8 (N, 3, size, size) and int64 labels, resized like eval preprocessing."""
    base = getattr(dataset, "base", dataset)
    resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size), v2.PILToTensor()])
    images, labels = [], []
    for i in range(len(base)):  # type: ignore[arg-type]
        img, label = base[i]  # type: ignore[index]
        images.append(resize(to_rgb(img)))
        labels.append(int(label))
    return torch.stack(images), torch.tensor(labels, dtype=torch.long)


def pad_crop_flip(x: torch.Tensor, index: torch.Tensor, epoch: torch.Tensor, seed: int, pad: int,
                  flip: bool) -> torch.Tensor:
    """Zero-pad by `pad`, crop back at a keyed offset, mirror half the images: v2.RandomCrop + RandomHorizontalFlip."""
    b, c, s, _ = x.shape
    h = _mix(seed, epoch, index)
    dy, dx = (h >> 8) % (2 * pad + 1), (h >> 24) % (2 * pad + 1)
    ar = torch.arange(s, device=x.device)
    rows, cols = dy[:, None] + ar, dx[:, None] + ar
    if flip:
        cols = torch.where(((h >> 40) & 1).bool()[:, None], cols.flip(1), cols)
    padded = F.pad(x, (pad, pad, pad, pad))
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class DeviceLoader:
    """Yields (images, labels, index, epoch) batches from tensors on `device`; a drop-in for the train DataLoader."""

    def __init__(self, dataset: object, cfg: DataConfig, batch_size: int, device: torch.device | str, *,
                 seed: int = 0, num_replicas: int = 1, rank: int = 0):
        self.device = torch.device(device)
        images, labels = decode_uint8(dataset, cfg.image_size)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        mode = cfg.augment if cfg.augment != "auto" else ("padcrop" if cfg.image_size <= SMALL else "none")
        self.pad = cfg.image_size // 8 if mode == "padcrop" else 0
        self.flip = mode == "padcrop" and cfg.hflip
        self.mean = torch.tensor(cfg.mean, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(cfg.std, device=self.device).view(1, 3, 1, 1) * 255
        self.seed, self.batch_size = seed, batch_size
        self.sampler = EpochSampler(len(labels), seed, num_replicas, rank)
        self.drop_last = len(self.sampler) > batch_size

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        keys = torch.tensor(list(self.sampler), dtype=torch.long)  # (index, epoch) rows, this rank's shard
        for k in range(len(self)):
            chunk = keys[k * self.batch_size:(k + 1) * self.batch_size].to(self.device, non_blocking=True)
            index, epoch = chunk[:, 0], chunk[:, 1]
            x = self.images[index]
            if self.pad:
                x = pad_crop_flip(x, index, epoch, self.seed, self.pad, self.flip)
            yield (x.float() - self.mean) / self.std, self.labels[index], index, epoch
