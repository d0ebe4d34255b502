"""Segmentation data: what every mask source returns, its registry, and the one check every mask passes.

A source yields (RGB PIL image, 2-D uint8/int mask of class indices) pairs; joint transforms
(seg_transforms.py) turn them into (3×S×S float tensor, S×S int64 tensor) batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from ..recipe import Recipe


@dataclass
class SegSplits:
    """Untransformed splits of (RGB image, mask) pairs, and the class names of the masks."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]


SegSourceFn = Callable[["Recipe"], SegSplits]
SEG_SOURCES: Registry[SegSourceFn] = Registry("segmentation dataset source")


def mask_array(mask: Any) -> np.ndarray:
    """A mask image → its 2-D class indices: palette PNGs (VOC) give their palette indices, index PNGs their
    values; an RGB mask is refused (its colours are no class indices)."""
    if isinstance(mask, Image.Image):
        if mask.mode in ("RGB", "RGBA"):
            raise ValueError(f"is an {mask.mode} image; allowed: a palette (P) or single-channel index PNG")
        mask = np.asarray(mask)
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"has shape {arr.shape}; allowed: a 2-D array of class indices")
    return arr.astype(np.int64)


def check_masks(masks: Iterable[tuple[str, Any]], num_classes: int, ignore_index: int) -> None:
    """Every mask holds only 0..num_classes-1 or the ignore index: the first that does not is named, before any
    training (a class the model cannot output would be dropped silently by the loss and the metrics)."""
    for where, mask in masks:
        try:
            arr = mask_array(mask)
        except ValueError as e:
            raise UserError(f"mask {where} {e}", key="data.root") from None
        values = np.unique(arr)
        bad = [int(v) for v in values if (v < 0 or v >= num_classes) and v != ignore_index]
        if bad:
            raise UserError(f"mask {where} holds value(s) {bad[:8]} outside the {num_classes} classes; allowed: "
                            f"0..{num_classes - 1} and the ignore index {ignore_index} (segmentation.num_classes, "
                            "segmentation.ignore_index)", key="segmentation.num_classes")


class PairList(Dataset):
    """(image, mask) pairs from a callable per index: in-memory arrays, files or dataset rows alike."""

    def __init__(self, n: int, get: Callable[[int], tuple[Image.Image, np.ndarray]]):
        self.n, self.get = n, get

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Image.Image, np.ndarray]:
        return self.get(i)


def split_indices(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded train/val split of n images (masks hold many classes each: no stratification)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * val_ratio))
    if n - n_val < 1:
        raise UserError(f"{n} image(s) cannot be split into train and val by data.val_ratio={val_ratio}",
                        key="data.val_ratio")
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def class_names_for(r: Recipe, n: int) -> list[str]:
    return list(r.segmentation.class_names or [str(i) for i in range(n)])


def needs_task(name: str) -> Callable[..., Any]:
    """The classification entry of a segmentation source: check_task refuses it first; this is the backstop."""
    def refuse(cfg: Any) -> Any:
        raise UserError(f"data.source={name} is a segmentation source; allowed: task: segmentation",
                        key="data.source")
    return refuse


__all__ = ["SEG_SOURCES", "PairList", "SegSplits", "check_masks", "mask_array", "split_indices"]
