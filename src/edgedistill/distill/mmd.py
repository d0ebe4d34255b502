"""MMD distillation: match the batch's distribution of prediction vectors, not each sample's."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.distribution import mmd_loss
from .base import Outputs, Term
from .registry import METHODS


class MMDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature")
    scales: list[float] = Field([0.5, 1.0, 2.0], min_length=1,
                                description="Gaussian σ² as multiples of the median squared distance")


@METHODS.register("mmd", family="response",
                  paper="Gretton et al. JMLR 2012, A Kernel Two-Sample Test (MMD on softened predictions)")
class MMD(Term):
    """Multi-scale Gaussian MMD² between softened probabilities; ignores pairing, so keep CE."""

    Params = MMDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return mmd_loss(student.logits, teacher.logits, self.params.T, self.params.scales)
