"""NST as a registered method: match the distribution of channel activation patterns, not the channels."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.feature import nst_loss
from ..models.features import resolve_layer, to_spatial
from .base import Outputs, Term
from .registry import METHODS


class NSTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module (auto: last map)")
    degree: int = Field(2, ge=1, le=4, description="polynomial-kernel degree (the paper's choice: 2)")


@METHODS.register("nst", family="feature",
                  paper="Huang & Wang 2017, Like What You Like: Knowledge Distill via Neuron "
                        "Selectivity Transfer")
class NST(Term):
    """Per-sample squared MMD (polynomial kernel) between L2-normalized channel maps; needs no connector."""

    Params = NSTParams
    family = "feature"
    paper = "Huang & Wang 2017"

    def __init__(self, params: NSTParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        if teacher is None:
            raise ValueError("nst needs a teacher")
        self.s_layer = resolve_layer(student, params.student_layer, example)
        self.t_layer = resolve_layer(teacher, params.teacher_layer, example)

    def student_features(self) -> list[str]:
        return [self.s_layer]

    def teacher_features(self) -> list[str]:
        return [self.t_layer]

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = to_spatial(student.features[self.s_layer]), to_spatial(teacher.features[self.t_layer])
        return nst_loss(s, t, self.params.degree)
