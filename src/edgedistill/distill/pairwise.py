"""`pairwise` (task=segmentation): pair-wise affinity distillation on the decoder features."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dense import pairwise_loss
from ..losses.feature import match_spatial
from .base import LayerPairTerm, Outputs
from .dense import SEG
from .registry import METHODS


class PairwiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: its decoder features)")
    teacher_layer: str = Field("auto", description="teacher module (auto: its decoder features)")
    grid: int = Field(16, gt=0, le=64, description="maps are average-pooled to at most grid×grid locations")


@METHODS.register("pairwise", family="dense (segmentation)", tasks=SEG,
                  paper="Liu et al. CVPR 2019, Structured Knowledge Distillation for Semantic Segmentation (pair-wise)")
class Pairwise(LayerPairTerm):
    """The student's location-to-location cosine affinities regress the teacher's (no connector needed)."""

    Params = PairwiseParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = self.maps(student, teacher)
        s, t = match_spatial(s, t)
        return pairwise_loss(s, t, self.params.grid)
