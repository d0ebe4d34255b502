"""FitNets as a registered method: the student regresses the teacher's feature map via a learned connector."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.feature import fitnet_loss, match_spatial
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class FitNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module: the guided layer (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module whose map is the hint (auto: last map)")


@METHODS.register("fitnet", family="feature", tasks=("classification", "segmentation"),
                  paper="Romero et al. ICLR 2015, FitNets: Hints for Thin Deep Nets")
class FitNet(LayerPairTerm):
    """MSE between a 1×1 conv + BN regression of the student map and the teacher map (single-stage hints)."""

    Params = FitNetParams

    def __init__(self, params: FitNetParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        s, t = self.probe(student, teacher, example, "connector")
        cs, ct = s.shape[1], t.shape[1]
        self.connector = nn.Sequential(nn.Conv2d(cs, ct, 1, bias=False), nn.BatchNorm2d(ct))

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = self.maps(student, teacher)
        s, t = match_spatial(s, t)
        return fitnet_loss(self.connector(s), t)
