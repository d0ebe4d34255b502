"""Tf-KD_reg as a registered method: a virtual teacher built from the label, so no teacher model is needed."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from ..losses.teacher_free import tf_kd_reg_loss
from .base import Outputs, Term
from .registry import METHODS


class TfKDRegParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: float = Field(0.99, gt=0, lt=1, description="virtual teacher's probability of the correct class (paper: 0.99)")
    T: float = Field(20.0, gt=0, description="temperature applied to the virtual distribution (paper's ResNet-18: 20)")


@METHODS.register("tf_kd_reg", family="teacher-free",
                  paper="Yuan et al. CVPR 2020, Revisiting Knowledge Distillation via Label Smoothing Regularization")
class TfKDReg(Term):
    """KL from a virtual teacher (a on the label, the rest uniform, softened by T) to the student; no teacher."""

    Params = TfKDRegParams
    uses_labels = True
    needs_teacher = False

    def forward(self, student: Outputs, teacher: Outputs | None, batch: Any) -> torch.Tensor:
        return tf_kd_reg_loss(student.logits, batch[1], self.params.a, self.params.T)
