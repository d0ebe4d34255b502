"""`pixel_kd` (task=segmentation): per-pixel KD over the class distributions."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dense import pixel_kd_loss
from .base import Outputs, Term
from .dense import SEG
from .registry import METHODS


class PixelKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(1.0, gt=0, description="softmax temperature over classes")
    standardize: bool = Field(False, description="z-score each pixel's logits first (Sun et al. CVPR 2024)")


@METHODS.register("pixel_kd", family="dense (segmentation)", tasks=SEG,
                  paper="Liu et al. CVPR 2019, Structured Knowledge Distillation for Semantic Segmentation (pixel-wise)")
class PixelKD(Term):
    """KL between the teacher's and the student's class distributions at every pixel, scaled by T²."""

    Params = PixelKDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return pixel_kd_loss(student.logits, teacher.logits, self.params.T, self.params.standardize)
