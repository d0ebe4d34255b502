"""Channel-wise distillation on FPN maps (task=detection)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from ..losses.detection import fpn_cwd_loss
from .base import Outputs
from .det_base import DET, FPNParams, FPNTerm
from .registry import METHODS


class FPNCWDParams(FPNParams):
    T: float = Field(1.0, gt=0, description="softmax temperature over locations")


@METHODS.register("fpn_cwd", family="feature (detection)", tasks=DET,
                  paper="Shu et al. ICCV 2021, Channel-wise Knowledge Distillation for Dense Prediction")
class FPNCWD(FPNTerm):
    """Each channel of each FPN level as a distribution over its locations; KL(teacher || student) · T²."""

    Params = FPNCWDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return fpn_cwd_loss(*self.pairs(student, teacher), self.params.T)
