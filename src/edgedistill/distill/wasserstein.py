"""Wasserstein distillation: moving mass to a similar class costs less than to an unrelated one."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.distribution import cosine_cost, sinkhorn_divergence
from .base import Outputs, Term
from .registry import METHODS


class WassersteinParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(2.0, gt=0, description="softmax temperature")
    cost: Literal["classifier", "batch"] = Field(
        "classifier", description="cost 1 − cos of teacher classifier rows, or of batch probabilities")
    epsilon: float = Field(0.05, gt=0, description="entropic regularization (cost is in [0, 2])")
    iters: int = Field(50, gt=0, description="Sinkhorn iterations")


@METHODS.register("wasserstein", family="response",
                  paper="Lv et al. NeurIPS 2024, Wasserstein Distance Rivals KL Divergence for KD (WKD-L)")
class Wasserstein(Term):
    """Debiased entropic OT (Sinkhorn divergence) between softened distributions, costs from the teacher.

    cost=classifier: 1 − cosine of the rows of the teacher's last Linear (fixed, computed once);
    cost=batch: 1 − cosine of the teacher's per-class probability columns over each batch.
    """

    Params = WassersteinParams

    def __init__(self, params: WassersteinParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        cost = None
        if params.cost == "classifier":
            fc = next((m for m in reversed(list(teacher.modules())) if isinstance(m, nn.Linear)), None)
            if fc is None:
                raise ValueError("wasserstein: the teacher has no nn.Linear classifier; use cost: batch")
            cost = cosine_cost(fc.weight.detach())
        self.register_buffer("cost", cost, persistent=False)

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        p = self.params
        t = teacher.logits.float()
        cost = self.cost if self.cost is not None else cosine_cost((t / p.T).softmax(1).T)
        if cost.shape[0] != t.shape[1]:
            raise ValueError(f"wasserstein: classifier has {cost.shape[0]} rows, logits {t.shape[1]} classes")
        return sinkhorn_divergence(student.logits, t, cost.to(t.device), p.T, p.epsilon, p.iters)
