"""Transformed datasets and the epoch-aware sampler: augmentation depends on (seed, epoch, index) only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from .base import to_rgb

_MASK = (1 << 63) - 1


def item_seed(seed: int, epoch: int, index: int) -> int:
    """Distinct, reproducible seed per (seed, epoch, index); no dependence on worker or process."""
    return ((seed * 0x9E3779B97F4A7C15 + epoch) * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & _MASK


@dataclasses.dataclass
class TransformedDataset(Dataset):
    """Applies a transform to (image, label); an (index, epoch) key runs it under a seed of its own."""

    base: Dataset
    transform: Callable[[Any], Any] | None = None
    seed: int = 0

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        if isinstance(key, tuple):
            index, epoch = key
            img, label = self.base[index]
            with torch.random.fork_rng(devices=[]):  # leaves the caller's RNG (dropout, shuffling) untouched
                # CPU generator only: torch.manual_seed also reseeds CUDA's (not restored) and is 20× slower
                torch.default_generator.manual_seed(item_seed(self.seed, epoch, index))
                return self._apply(img), int(label)
        img, label = self.base[key]
        return self._apply(img), int(label)

    def _apply(self, img: Any) -> Any:
        if self.transform is None:
            return img
        return self.transform(to_rgb(img))

    def with_seed(self, seed: int) -> TransformedDataset:
        """A copy (sharing the images) augmenting under another seed."""
        return dataclasses.replace(self, seed=seed)


class EpochSampler(Sampler[tuple[int, int]]):
    """Shuffles with seed + epoch and tags each index with the epoch, so workers need no epoch state."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        epoch = self.epoch
        return iter([(int(i), epoch) for i in torch.randperm(self.n, generator=g)])
