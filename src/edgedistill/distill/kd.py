"""Hinton KD as a registered method: the reference every other method is compared with."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import kd_loss
from ..losses.standardize import zscore
from .base import Outputs, Term
from .registry import METHODS


class KDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature")
    standardize: bool = Field(False, description="z-score logits per sample first (Sun et al. CVPR 2024)")


@METHODS.register("kd", family="response", paper="Hinton et al. 2015, Distilling the Knowledge in a Neural Network")
class KD(Term):
    """KL between temperature-softened teacher and student distributions, scaled by T²."""

    Params = KDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = student.logits, teacher.logits
        if self.params.standardize:
            s, t = zscore(s), zscore(t)
        return kd_loss(s, t, self.params.T)
