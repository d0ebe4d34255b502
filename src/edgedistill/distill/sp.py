"""Similarity-preserving KD as a registered method: what the teacher finds alike stays alike."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.relation import sp_loss
from ..models.features import resolve_layer, to_spatial
from .base import Outputs, Term
from .registry import METHODS


class SPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module (auto: last map)")


@METHODS.register("sp", family="relation",
                  paper="Tung & Mori ICCV 2019, Similarity-Preserving Knowledge Distillation")
class SP(Term):
    """‖G_s − G_t‖²_F / b² of row-normalized batch Gram matrices; γ (paper: 3000) is the term weight."""

    Params = SPParams
    family = "relation"
    paper = "Tung & Mori 2019"

    def __init__(self, params: SPParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        if teacher is None:
            raise ValueError("sp needs a teacher")
        self.s_layer = resolve_layer(student, params.student_layer, example)
        self.t_layer = resolve_layer(teacher, params.teacher_layer, example)

    def student_features(self) -> list[str]:
        return [self.s_layer]

    def teacher_features(self) -> list[str]:
        return [self.t_layer]

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return sp_loss(to_spatial(student.features[self.s_layer]), to_spatial(teacher.features[self.t_layer]))
