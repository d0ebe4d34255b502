"""Images without labels for the distillation terms, and the loader that mixes them into labelled batches.

Unlabeled rows carry NO_LABEL (= torch's cross-entropy ignore_index), never a class: the Distiller's
cross-entropy skips them, so only the terms learn from them. Function matching (Beyer et al. 2022,
"a good teacher is patient and consistent") mixes images pairwise and drops every label: the loss is
the terms alone, on exactly the view the teacher saw.
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..errors import UserError
from .base import to_rgb
from .build import make_loader
from .dataset import TransformedDataset
from .imagefolder import IMG_EXTENSIONS, image_problem

if TYPE_CHECKING:
    from ..recipe import DataConfig

NO_LABEL = -100  # F.cross_entropy's default ignore_index: a row with it adds nothing to the cross-entropy


class UnlabeledImages(Dataset):
    """Every readable image under a folder tree (any layout, folder names ignored), as (image, NO_LABEL)."""

    def __init__(self, root: Path | str, key: str = "data.unlabeled", bad_images: str = "fail"):
        root = Path(root).expanduser()
        files, reasons = _scan(str(root))
        bad = [(f, r) for f, r in zip(files, reasons, strict=True) if r is not None]
        if bad and len(bad) < len(files) and bad_images == "fail":  # as for labelled images: never silently
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise UserError(f"unreadable image {bad[0][0]} ({bad[0][1]}){more} under {key}={root}; allowed: "
                            "readable images, or data.bad_images=skip to skip such files", key=key)
        self.files = [f for f, r in zip(files, reasons, strict=True) if r is None]
        self.skipped, self.skipped_files = len(bad), [f for f, _ in bad]
        if not self.files:
            found = f"{len(files)} image file(s), none readable" if files else "no image files"
            raise UserError(f"{key}={root} holds {found} ({', '.join(IMG_EXTENSIONS)}); allowed: a folder tree "
                            "with readable images", key=key)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        with Image.open(self.files[i]) as im:
            im.load()
            return to_rgb(im), NO_LABEL


@functools.lru_cache(maxsize=4)
def _scan(root: str) -> tuple[list[str], list[str | None]]:
    """Every image file under root and why it cannot be read (None = readable); cached, as the recipe check,
    the loader and the skipped-images count all read the same tree in one run."""
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root, followlinks=True)
                   for f in fs if f.lower().endswith(IMG_EXTENSIONS))
    return files, [image_problem(f) for f in files]


def skipped_unlabeled(cfg: DataConfig) -> list[str]:
    """The unreadable data.unlabeled files skipped under data.bad_images=skip, for metrics.json and the console."""
    if cfg.unlabeled is None:
        return []
    return list(getattr(open_unlabeled(cfg), "skipped_files", []))


class HFUnlabeled(Dataset):
    """One image column of a dataset saved with `save_to_disk`, as (image, NO_LABEL): only that column is
    selected, so a label column the dataset may have is never read."""

    def __init__(self, root: Path | str, split: str | None = None, column: str | None = None):
        from .hf_disk import image_column, load_saved, splits_of

        splits = splits_of(load_saved(Path(root), "data.unlabeled", "data.unlabeled (a saved dataset)"))
        name = split or ("train" if "train" in splits else next(iter(splits)))
        if name not in splits:
            raise UserError(f"data.unlabeled_split={name!r} is not a split of {root}; allowed: "
                            f"{', '.join(splits)}", key="data.unlabeled_split")
        ds = splits[name]
        col = column or image_column(ds)
        if col is None or col not in ds.features:
            raise UserError(f"data.unlabeled_column={col!r}: {root} [{name}] has no such image column; its columns: "
                            f"{', '.join(ds.features)}", key="data.unlabeled_column")
        if type(ds.features[col]).__name__ != "Image":
            raise UserError(f"data.unlabeled_column={col!r} holds {type(ds.features[col]).__name__} values, not "
                            "images (the datasets Image feature)", key="data.unlabeled_column")
        if len(ds) == 0:
            raise UserError(f"data.unlabeled={root} [{name}] has no rows", key="data.unlabeled")
        self.ds, self.column, self.skipped = ds.select_columns([col]), col, 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        img = self.ds[i][self.column]
        if isinstance(img, dict):  # undecoded Image feature: {'bytes': ..., 'path': ...}
            img = Image.open(io.BytesIO(img["bytes"])) if img.get("bytes") else Image.open(img["path"])
        return to_rgb(img), NO_LABEL


def open_unlabeled(cfg: DataConfig) -> Dataset:
    """data.unlabeled as a dataset: a saved Hugging Face dataset's image column, else a folder tree of images."""
    from .hf_disk import is_saved_dataset

    root = Path(cfg.unlabeled).expanduser()  # type: ignore[arg-type]
    if is_saved_dataset(root):
        return HFUnlabeled(root, cfg.unlabeled_split, cfg.unlabeled_column)
    if cfg.unlabeled_column is not None or cfg.unlabeled_split is not None:
        key = "data.unlabeled_column" if cfg.unlabeled_column is not None else "data.unlabeled_split"
        raise UserError(f"{key} applies to a dataset saved with save_to_disk, but data.unlabeled={root} is a "
                        "folder of image files; allowed: null", key=key)
    return UnlabeledImages(root, bad_images=cfg.bad_images)


def strong_transform(cfg: DataConfig) -> v2.Compose:
    """Function matching's aggressive view: random-resized crop (down to a quarter), flip, RandAugment."""
    steps: list[v2.Transform] = [v2.RandomResizedCrop(cfg.image_size, scale=(0.25, 1.0), antialias=True)]
    if cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.RandAugment(num_ops=2, magnitude=9), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
              v2.Normalize(list(cfg.mean), list(cfg.std))]
    return v2.Compose(steps)


class _Samplers:
    """Forwards the engine's set_epoch to every loader mixed, so each reshuffles per epoch."""

    def __init__(self, *loaders: Any):
        self.samplers = [getattr(ld, "sampler", None) for ld in loaders]

    def set_epoch(self, epoch: int) -> None:
        for s in self.samplers:
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)


class MixedLoader:
    """Labelled batches (images, labels) + as many unlabeled images (label NO_LABEL) per step; one epoch =
    one pass over the labelled loader, the unlabeled one cycled. `mixup`: each image mixed with another of
    the batch (λ ~ Beta(1, 1), one per batch) and every label dropped (function matching)."""

    def __init__(self, labelled: Any, unlabeled: Any | None = None, mixup: bool = False):
        self.labelled, self.unlabeled, self.mixup = labelled, unlabeled, mixup
        self.sampler = _Samplers(labelled, *([unlabeled] if unlabeled is not None else []))

    def __len__(self) -> int:
        return len(self.labelled)

    def _cycle(self) -> Iterator[Any]:
        while True:
            yield from self.unlabeled  # type: ignore[union-attr]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        extra = self._cycle() if self.unlabeled is not None else None
        for batch in self.labelled:
            images, labels = batch[0], batch[1]
            if extra is not None:
                u = next(extra)[0].to(images.device)
                images = torch.cat([images, u])
                labels = torch.cat([labels, torch.full((len(u),), NO_LABEL, dtype=labels.dtype,
                                                       device=labels.device)])
            if self.mixup:
                lam = float(torch.distributions.Beta(1.0, 1.0).sample())
                perm = torch.randperm(len(images), device=images.device)
                images = lam * images + (1 - lam) * images[perm]
                labels = torch.full_like(labels, NO_LABEL)
            yield images, labels


def unlabeled_loader(cfg: DataConfig, batch_size: int, seed: int, strong: bool, train_tf: Any) -> Any:
    """Shuffled, epoch-seeded loader of data.unlabeled with the train (or strong) augmentation."""
    ds = TransformedDataset(open_unlabeled(cfg), strong_transform(cfg) if strong else train_tf, seed)  # type: ignore[arg-type]
    return make_loader(ds, batch_size, train=True, workers=cfg.workers, seed=seed)
