"""The segmentation Distiller (task=segmentation): the classification one with a per-pixel cross-entropy.

Its methods are one file each: pixel_kd.py, cwd.py, pairwise.py; FitNet (fitnet.py) also applies, on the
decoder features by default. SEG is the `tasks` every one of them registers with."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import Distiller

SEG = ("segmentation",)


class SegDistiller(Distiller):
    """The Distiller with a per-pixel cross-entropy that skips the masks' ignore index."""

    def __init__(self, *args: Any, ignore_index: int = 255, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ignore_index = ignore_index

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not bool((labels != self.ignore_index).any()):
            return logits.sum() * 0  # a batch of unlabelled pixels only: no loss rather than 0/0
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing)
