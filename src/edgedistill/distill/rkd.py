"""Relational KD as a registered method: preserve the distances and angles between samples' embeddings."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.relation import rkd_angle_loss, rkd_distance_loss
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class RKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module before the head; pooled to the embedding")
    teacher_layer: str = Field("auto", description="teacher module before the head; pooled to the embedding")
    distance_weight: float = Field(25.0, ge=0, description="λ of the distance loss (the paper: 25)")
    angle_weight: float = Field(50.0, ge=0, description="λ of the angle loss (the paper: 50)")


@METHODS.register("rkd", family="relation", paper="Park et al. CVPR 2019, Relational Knowledge Distillation")
class RKD(LayerPairTerm):
    """λ_D·RKD-D + λ_A·RKD-A (smooth-L1) on global-average-pooled last maps, i.e. the classifier's input."""

    Params = RKDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        # Pooling the tapped map stands in for a hook on the head's input, which FeatureTaps cannot capture.
        s, t = (x.float().mean((2, 3)) for x in self.maps(student, teacher))
        loss = s.new_zeros(())
        if self.params.distance_weight:
            loss = loss + self.params.distance_weight * rkd_distance_loss(s, t)
        if self.params.angle_weight:
            loss = loss + self.params.angle_weight * rkd_angle_loss(s, t)
        return loss
