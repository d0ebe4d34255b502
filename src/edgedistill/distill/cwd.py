"""`cwd` (task=segmentation): channel-wise distillation, each class channel a distribution over locations."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dense import cwd_loss
from ..losses.feature import match_spatial
from .base import Outputs, Term
from .dense import SEG
from .registry import METHODS


class CWDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature over locations")


@METHODS.register("cwd", family="dense (segmentation)", tasks=SEG,
                  paper="Shu et al. ICCV 2021, Channel-wise Knowledge Distillation for Dense Prediction")
class CWD(Term):
    """Each class channel of the logits as a distribution over locations; KL(teacher || student) · T²."""

    Params = CWDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = match_spatial(student.logits, teacher.logits)
        return cwd_loss(s, t, self.params.T)
