"""Jensen–Shannon distillation: a symmetric, bounded stand-in for KD's KL."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.distribution import js_divergence
from .base import Outputs, Term
from .registry import METHODS


class JSParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature")


@METHODS.register("js", family="response",
                  paper="Lin 1991, Divergence measures based on the Shannon entropy (JS in place of KD's KL)")
class JS(Term):
    """JS(p_t, p_s)·T²: the T² keeps gradient scale independent of T, as in Hinton KD."""

    Params = JSParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        T = self.params.T
        return js_divergence(student.logits, teacher.logits, T) * (T * T)
