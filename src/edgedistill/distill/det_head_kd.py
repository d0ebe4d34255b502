"""Classification-head KD (task=detection): the student's class scores regress the teacher's at the same
anchors/points, for dense sigmoid heads (FCOS, RetinaNet)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..errors import UserError
from ..losses.detection import head_kd_loss
from .base import Outputs, Term
from .det_base import DET, dense_pair
from .registry import METHODS


class HeadKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(1.0, gt=0, description="temperature of the sigmoid class scores")
    focus: bool = Field(True, description="weight each anchor by the teacher's highest class score")


@METHODS.register("head_kd", family="logits (detection)", tasks=DET,
                  paper="Hinton et al. 2015 on a dense detector's class scores, as in Chen et al. NeurIPS 2017 "
                  "(Learning Efficient Object Detection Models with Knowledge Distillation)")
class HeadKD(Term):
    """Binary KL between the teacher's and the student's per-class sigmoid scores at every anchor/point; the two
    heads must score the same anchors (same FPN levels, sizes and anchors per location) and classes."""

    Params = HeadKDParams

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        s_out, t_out = dense_pair("head_kd", student, teacher, example)
        s, t = s_out.logits.shape, t_out.logits.shape
        if s != t:
            raise UserError(f"head_kd: the student scores {tuple(s)} anchors×classes and the teacher {tuple(t)}; "
                            "allowed: the same detector type on both sides (e.g. det:fcos_* with det:fcos_*)",
                            key="distill.terms")

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return head_kd_loss(student.logits, teacher.logits, self.params.T, self.params.focus)
