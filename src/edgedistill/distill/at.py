"""Attention transfer as a registered method: match where the networks look, layer pair by pair."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from ..losses.feature import at_loss
from ..models.features import resolve_layer, to_spatial
from .base import Outputs, Term
from .registry import METHODS


class ATParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layers: list[str] = Field(["auto"], min_length=1,
                                      description="student modules, paired in order with teacher_layers "
                                                  "(auto: last map)")
    teacher_layers: list[str] = Field(["auto"], min_length=1, description="teacher modules (auto: last map)")
    p: float = Field(2.0, gt=0, description="exponent of |f|^p in the attention map (the paper's choice: 2)")

    @model_validator(mode="after")
    def _paired(self) -> ATParams:
        if len(self.student_layers) != len(self.teacher_layers):
            raise ValueError("student_layers and teacher_layers must have the same length (they are paired)")
        return self


@METHODS.register("at", family="feature",
                  paper="Zagoruyko & Komodakis ICLR 2017, Paying More Attention to Attention")
class AT(Term):
    """Σ over pairs of mean (Q_s − Q_t)², Q = normalized channel-pooled |f|^p; β (paper: 1e3): the weight."""

    Params = ATParams

    def __init__(self, params: ATParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        if teacher is None:
            raise ValueError("at needs a teacher")
        self.s_layers = [resolve_layer(student, n, example) for n in params.student_layers]
        self.t_layers = [resolve_layer(teacher, n, example) for n in params.teacher_layers]

    def student_features(self) -> list[str]:
        return list(dict.fromkeys(self.s_layers))

    def teacher_features(self) -> list[str]:
        return list(dict.fromkeys(self.t_layers))

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s = [to_spatial(student.features[n]) for n in self.s_layers]
        t = [to_spatial(teacher.features[n]) for n in self.t_layers]
        return at_loss(s, t, self.params.p)
