"""From a DataConfig to ready datasets and loaders: the one entry point the pipeline uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from ..errors import UserError
from .base import DATA_SOURCES
from .dataset import EpochSampler, TransformedDataset
from .transforms import build_transform

if TYPE_CHECKING:
    from ..recipe import DataConfig


@dataclass
class DataBundle:
    """Transformed splits plus what models and reports need to know about them."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def held_out(self, split: str) -> Dataset:
        """The split metrics are computed on: val, or test where the source has one."""
        if split == "val":
            return self.val
        if split == "test":
            if self.test is None:
                raise UserError("this dataset has no test split; allowed: val", key="eval.split")
            return self.test
        raise UserError(f"unknown split {split!r}; allowed: val, test", key="eval.split")


def class_names_of(cfg: DataConfig) -> list[str]:
    """Class names without decoding any image, to validate a recipe before work starts."""
    return list(DATA_SOURCES.entry(cfg.source, key="data.source").meta["class_names"](cfg))


def first_samples(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """First n images after a seeded shuffle, so a small budget still mixes all classes."""
    if n is None or n >= len(ds):  # type: ignore[arg-type]
        return ds
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(ds), generator=g)[:n]  # type: ignore[arg-type]
    return Subset(ds, sorted(perm.tolist()))


def held_splits(raw: Any, where: str, eval_split: str) -> dict[str, Dataset]:
    """A dense task's held-out splits (val, and test when the source has one), every split checked non-empty
    and eval.split among them: one check for segmentation and detection sources."""
    held = {"val": raw.val, **({"test": raw.test} if raw.test is not None else {})}
    for split, ds in {"train": raw.train, **held}.items():
        if len(ds) == 0:
            raise UserError(f"the {split} split of {where} holds no images", key="data.root")
    if eval_split not in held:
        raise UserError(f"this dataset has no {eval_split} split; allowed: {', '.join(held)}", key="eval.split")
    return held


def build_data(cfg: DataConfig) -> DataBundle:
    """Load the source's splits, cap their sizes, attach train augmentation and eval preprocessing."""
    raw = DATA_SOURCES.get(cfg.source, key="data.source")(cfg)
    for split in ("train", "val", "test"):  # every split before any work, not after a teacher epoch
        ds = getattr(raw, split)
        if ds is not None and len(ds) == 0:  # type: ignore[arg-type]
            where = f"{cfg.root}/{split}" if cfg.root is not None else cfg.source
            raise UserError(f"the {split} split ({where}) holds no images", key="data.root")
    train_tf, eval_tf = build_transform(cfg, train=True), build_transform(cfg, train=False)
    held = cfg.max_val_samples
    test = None if raw.test is None else TransformedDataset(first_samples(raw.test, held, cfg.split_seed), eval_tf)
    return DataBundle(
        train=TransformedDataset(first_samples(raw.train, cfg.max_train_samples, cfg.split_seed), train_tf),
        val=TransformedDataset(first_samples(raw.val, held, cfg.split_seed), eval_tf),
        test=test,
        class_names=raw.class_names,
        image_size=cfg.image_size,
        mean=tuple(cfg.mean),  # type: ignore[arg-type]
        std=tuple(cfg.std),  # type: ignore[arg-type]
        skipped=raw.skipped,
        skipped_files=list(raw.skipped_files),
    )


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, workers: int, seed: int = 0,
                device_type: str = "cpu", num_replicas: int = 1, rank: int = 0, keys: bool = False) -> DataLoader:
    """Train: epoch-seeded shuffling and augmentation, full batches; eval: fixed order, every image.

    With num_replicas > 1 each rank gets its shard (batch_size is then per rank); an eval shard is
    padded by DistributedSampler, which evaluate.inference.predict removes when it gathers the ranks' rows.
    `keys` makes train batches (images, labels, index, epoch) for the teacher-output cache.
    """
    common = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=device_type == "cuda")
    if not train:
        if num_replicas > 1:
            sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
            return DataLoader(dataset, batch_size, sampler=sampler, **common)  # type: ignore[arg-type]
        return DataLoader(dataset, batch_size, shuffle=False, **common)  # type: ignore[arg-type]
    if isinstance(dataset, TransformedDataset):
        ds = dataset.with_seed(seed, keys=keys)
    else:  # a plain dataset: wrap it so it accepts the sampler's (index, epoch) keys
        ds = TransformedDataset(dataset, None, seed, keys=keys)
    sampler = EpochSampler(len(ds), seed, num_replicas, rank)
    n = len(sampler)
    return DataLoader(ds, batch_size, sampler=sampler, drop_last=n > batch_size, **common)  # type: ignore[arg-type]
