"""PKD (task=detection): Pearson-correlation feature imitation on every FPN level."""

from __future__ import annotations

from typing import Any

import torch

from ..losses.detection import pkd_loss
from .base import Outputs
from .det_base import DET, FPNParams, FPNTerm
from .registry import METHODS


@METHODS.register("pkd", family="feature (detection)", tasks=DET,
                  paper="Cao et al. NeurIPS 2022, PKD: General Distillation Framework for Object Detectors via "
                  "Pearson Correlation Coefficient")
class PKD(FPNTerm):
    """Each FPN channel standardized over the batch and its locations, then MSE/2 to the teacher's: the student
    imitates the teacher's feature pattern, not its magnitudes (robust to heterogeneous detector pairs)."""

    Params = FPNParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return pkd_loss(*self.pairs(student, teacher))
