"""DKD as a registered method: target and non-target knowledge weighted apart."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dkd import dkd_loss
from ..losses.standardize import zscore
from .base import Outputs, Term
from .registry import METHODS


class DKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alpha: float = Field(1.0, ge=0, description="weight of TCKD (target-class knowledge)")
    beta: float = Field(8.0, ge=0, description="weight of NCKD (non-target knowledge); paper: 8 on CIFAR")
    T: float = Field(4.0, gt=0, description="softmax temperature")
    warmup: int = Field(0, ge=0, description="epochs of linear ramp of the loss from 0 to 1 (paper: 20)")
    standardize: bool = Field(False, description="z-score logits per sample first (Sun et al. CVPR 2024)")


@METHODS.register("dkd", family="response", paper="Zhao et al. CVPR 2022, Decoupled Knowledge Distillation")
class DKD(Term):
    """α·TCKD + β·NCKD, ramped in over `warmup` epochs so early NCKD cannot swamp CE (paper's code)."""

    Params = DKDParams
    uses_labels = True

    def __init__(self, params: DKDParams, student: Any, teacher: Any, example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        self.ramp = 1.0

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        w = self.params.warmup
        self.ramp = min((epoch + 1) / w, 1.0) if w else 1.0  # paper: min(epoch / warmup, 1), epochs from 1

    def epoch_log(self) -> dict[str, float]:
        return {"ramp": self.ramp} if self.params.warmup else {}

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        p = self.params
        s, t = student.logits, teacher.logits
        if p.standardize:
            s, t = zscore(s), zscore(t)
        return self.ramp * dkd_loss(s, t, batch[1], p.alpha, p.beta, p.T)
