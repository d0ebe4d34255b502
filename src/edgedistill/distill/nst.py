"""NST as a registered method: match the distribution of channel activation patterns, not the channels."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.feature import nst_loss
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class NSTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module (auto: last map)")
    degree: int = Field(2, ge=1, le=4, description="polynomial-kernel degree (the paper's choice: 2)")


@METHODS.register("nst", family="feature",
                  paper="Huang & Wang 2017, Like What You Like: Knowledge Distill via Neuron "
                        "Selectivity Transfer")
class NST(LayerPairTerm):
    """Per-sample squared MMD (polynomial kernel) between L2-normalized channel maps; needs no connector."""

    Params = NSTParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = self.maps(student, teacher)
        return nst_loss(s, t, self.params.degree)
