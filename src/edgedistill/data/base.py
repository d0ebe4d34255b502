"""What every dataset source returns, and the registry recipes name sources by."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from ..recipe import DataConfig


@dataclass
class RawSplits:
    """Untransformed splits yielding (RGB PIL image, int label), so transforms are applied in one place."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]
    skipped: int = 0
    skipped_files: list[str] = field(default_factory=list)  # with data.bad_images=skip, for metrics.json


SourceFn = Callable[["DataConfig"], RawSplits]
DATA_SOURCES: Registry[SourceFn] = Registry("dataset source")


def to_rgb(img: Any) -> Image.Image:
    """Every model takes 3 channels: grayscale, palette and RGBA images become RGB."""
    if not isinstance(img, Image.Image):
        img = Image.fromarray(np.asarray(img))
    return img if img.mode == "RGB" else img.convert("RGB")


class ArrayImages(Dataset):
    """Images held in memory as uint8 arrays (N, H, W) or (N, H, W, 3): cheap to pickle to workers."""

    def __init__(self, images: np.ndarray, labels: Sequence[int]):
        self.images, self.labels = images, [int(y) for y in labels]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return to_rgb(Image.fromarray(self.images[i])), self.labels[i]


def stratified_split(labels: Sequence[int], val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/val indices with every class in the same proportion in both, fixed by the seed."""
    idx = np.arange(len(labels))
    try:
        tr, va = train_test_split(idx, test_size=val_ratio, random_state=seed, stratify=np.asarray(labels))
    except ValueError as e:
        msg = f"cannot split {len(labels)} images stratified by class ({e})"
        raise UserError(msg, key="data.val_ratio") from None
    return sorted(int(i) for i in tr), sorted(int(i) for i in va)
