"""Box-regression KD (task=detection): the teacher's boxes as soft regression targets at the same points; what
fits torchvision's FCOS and RetinaNet heads in place of LD (see det_ld.py)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from ..errors import UserError
from ..losses.detection import box_kd_loss
from .base import Outputs, Term
from .det_base import DET, dense_pair
from .registry import METHODS


class BoxKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@METHODS.register("box_kd", family="box regression (detection)", tasks=DET,
                  paper="no single paper: the teacher's regression as a soft target (the regression-imitation "
                  "idea of Chen et al. NeurIPS 2017, without its ground-truth bound); not LD, which needs "
                  "box-edge distributions")
class BoxKD(Term):
    """At every anchor/point, weighted by the teacher's highest class score, the student's box regression is
    pulled to the teacher's: 1 − GIoU of the decoded boxes for FCOS (its own box loss), L1 on the box deltas for
    RetinaNet (its own). Both heads must regress the same anchors (same detector type, FPN levels and sizes)."""

    Params = BoxKDParams

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        s, t = (o.features for o in dense_pair("box_kd", student, teacher, example))
        kinds = ["FCOS" if "head.bbox_ctrness" in f else "RetinaNet" for f in (s, t)]
        shapes = [tuple(f["head.bbox_regression"].shape) for f in (s, t)]
        if kinds[0] != kinds[1] or shapes[0] != shapes[1]:
            raise UserError(f"box_kd: the student is a {kinds[0]} regressing {shapes[0]} and the teacher a "
                            f"{kinds[1]} regressing {shapes[1]}; allowed: the same detector type and anchors on "
                            "both sides (e.g. det:fcos_* with det:fcos_*)", key="distill.terms")
        self.giou = kinds[0] == "FCOS"

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return box_kd_loss(student.features["head.bbox_regression"], teacher.features["head.bbox_regression"],
                           teacher.logits, self.giou)
