"""Hinton KD as a registered method: the reference every other method is compared with."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses import kd_loss
from .base import Outputs, Term
from .registry import METHODS


class KDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature")


@METHODS.register("kd", family="response", paper="Hinton et al. 2015, Distilling the Knowledge in a Neural Network")
class KD(Term):
    """KL between temperature-softened teacher and student distributions, scaled by T²."""

    Params = KDParams
    family = "response"
    paper = "Hinton et al. 2015"

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return kd_loss(student.logits, teacher.logits, self.params.T)
