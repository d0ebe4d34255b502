"""`pixel_dkd` (task=segmentation): DKD at every labelled pixel."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dense import pixel_dkd_loss
from .base import Outputs, Term
from .dense import SEG
from .registry import METHODS


class PixelDKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(1.0, ge=0, description="weight of TCKD (target-class knowledge) per pixel")
    beta: float = Field(8.0, ge=0, description="weight of NCKD (non-target knowledge) per pixel")
    T: float = Field(4.0, gt=0, description="softmax temperature over classes")
    standardize: bool = Field(False, description="z-score each pixel's logits first (Sun et al. CVPR 2024)")


@METHODS.register("pixel_dkd", family="dense (segmentation)", tasks=SEG,
                  paper="Zhao et al. CVPR 2022, Decoupled Knowledge Distillation (applied per pixel)")
class PixelDKD(Term):
    """α·TCKD + β·NCKD of every pixel whose mask names a class (the ignore index has no target class)."""

    Params = PixelDKDParams
    uses_labels = True

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        p = self.params
        return pixel_dkd_loss(student.logits, teacher.logits, batch[1], p.alpha, p.beta, p.T, p.standardize)
