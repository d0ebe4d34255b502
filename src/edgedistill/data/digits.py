"""scikit-learn's bundled 8×8 digits: a real dataset that needs no download, for demos and tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.datasets import load_digits

from .base import DATA_SOURCES, ArrayImages, RawSplits, stratified_split

if TYPE_CHECKING:
    from ..recipe import DataConfig


def digits_classes(cfg: DataConfig) -> list[str]:
    return [str(d) for d in range(10)]


@DATA_SOURCES.register("digits", class_names=digits_classes,
                       description="scikit-learn's 1,797 8×8 handwritten digits (bundled, no download)")
def digits_source(cfg: DataConfig) -> RawSplits:
    """Stratified train/val split by data.val_ratio and data.split_seed; no test split."""
    d = load_digits()
    images = np.clip(d.images * 16, 0, 255).astype(np.uint8)
    labels = d.target.astype(int)
    tr, va = stratified_split(labels.tolist(), cfg.val_ratio, cfg.split_seed)
    return RawSplits(ArrayImages(images[tr], labels[tr]), ArrayImages(images[va], labels[va]), None,
                     digits_classes(cfg))
