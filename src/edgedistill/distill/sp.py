"""Similarity-preserving KD as a registered method: what the teacher finds alike stays alike."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.relation import sp_loss
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class SPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module (auto: last map)")


@METHODS.register("sp", family="relation",
                  paper="Tung & Mori ICCV 2019, Similarity-Preserving Knowledge Distillation")
class SP(LayerPairTerm):
    """‖G_s − G_t‖²_F / b² of row-normalized batch Gram matrices; γ (paper: 3000) is the term weight."""

    Params = SPParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return sp_loss(*self.maps(student, teacher))
