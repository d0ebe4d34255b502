"""DIST as a registered method: match the teacher's relations (correlations), not its exact probabilities."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.correlation import dist_loss
from ..losses.standardize import zscore
from .base import Outputs, Term
from .registry import METHODS


class DISTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    beta: float = Field(1.0, ge=0, description="inter-class weight (per sample, across classes)")
    gamma: float = Field(1.0, ge=0, description="intra-class weight (per class, across the batch)")
    T: float = Field(1.0, gt=0, description="softmax temperature (paper: 1)")
    correlation: Literal["pearson", "spearman"] = Field("pearson", description="pearson (paper) or spearman")
    rank_tau: float = Field(0.1, gt=0, description="soft-rank sharpness for spearman, in std units; 0 → hard")
    standardize: bool = Field(False, description="z-score logits per sample first (Sun et al. CVPR 2024)")


@METHODS.register("dist", family="response",
                  paper="Huang et al. NeurIPS 2022, Knowledge Distillation from A Stronger Teacher")
class DIST(Term):
    """1 − correlation, inter- and intra-class: a stronger teacher's ranking is easier to match."""

    Params = DISTParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        p = self.params
        s, t = student.logits, teacher.logits
        if p.standardize:
            s, t = zscore(s), zscore(t)
        return dist_loss(s, t, p.beta, p.gamma, p.T, p.correlation, p.rank_tau)
