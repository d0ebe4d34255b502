"""Transformed datasets and the epoch-aware sampler: augmentation depends on (seed, epoch, index) only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

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
    keys: bool = False  # also return (index, epoch): a teacher-output cache looks rows up by them

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int]:
        if isinstance(key, tuple):
            with torch.random.fork_rng(devices=[]):  # leaves the caller's RNG (dropout, shuffling) untouched
                return self._seeded(key)
        img, label = self.base[key]
        return (self._apply(img), int(label), key, 0) if self.keys else (self._apply(img), int(label))

    def __getitems__(self, keys: list[Any]) -> list[tuple[Any, ...]]:
        """A batch (DataLoader's fetcher calls this when it exists): the caller's RNG is saved and restored once
        per batch, not once per image; every image is still augmented under its own (seed, epoch, index) seed."""
        if not keys or not isinstance(keys[0], tuple):
            return [self[k] for k in keys]
        state = torch.get_rng_state()
        try:
            return [self._seeded(k) for k in keys]
        finally:
            torch.set_rng_state(state)

    def _seeded(self, key: tuple[int, int]) -> tuple[Any, ...]:
        index, epoch = key
        img, label = self.base[index]
        # CPU generator only: torch.manual_seed also reseeds CUDA's (not restored) and is 20× slower
        torch.default_generator.manual_seed(item_seed(self.seed, epoch, index))
        x = self._apply(img)
        return (x, int(label), index, epoch) if self.keys else (x, int(label))

    def _apply(self, img: Any) -> Any:
        if self.transform is None:
            return img
        return self.transform(to_rgb(img))

    def with_seed(self, seed: int, keys: bool = False) -> TransformedDataset:
        """A copy (sharing the images) augmenting under another seed."""
        return dataclasses.replace(self, seed=seed, keys=keys)


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (shuffled with seed + epoch, sharded per rank) tagging each index with the epoch.

    The (index, epoch) keys let workers seed augmentation per (sample, epoch) with no epoch state. Rank r
    takes every world-th index of one permutation, so step k of N ranks with batch B/N covers the same
    images as step k of one process with batch B.
    """

    def __init__(self, n: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)  # type: ignore[arg-type]  (drops < world samples, never pads)
        self.n = n

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return iter([(int(i), epoch) for i in super().__iter__()])
