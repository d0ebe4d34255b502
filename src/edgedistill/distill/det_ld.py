"""LD (task=detection): a registered name that is refused, because no det: model here predicts box distributions.

Localization distillation (Zheng et al. CVPR 2022) softens the teacher's per-edge box distributions (the
General Focal Loss / DFL head of GFL) and distills them with KL. torchvision's FCOS regresses four edge distances
per point and RetinaNet four box deltas per anchor: one number per edge, no distribution to soften. Inventing one
(e.g. a Gaussian around the teacher's edge) would be another method under LD's name, so `ld` is listed, explains
itself and exits 2 until a det: model with a distribution head exists (`has_box_distribution`). What does fit
these heads, the teacher's boxes as regression targets, is `box_kd` under its own name.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..errors import UserError
from .base import Outputs, Term
from .det_base import DET
from .registry import METHODS


class LDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(10.0, gt=0, description="temperature of the box-edge distributions (paper: 10)")


@METHODS.register("ld", family="localization (detection)", tasks=DET,
                  paper="Zheng et al. CVPR 2022, Localization Distillation for Dense Object Detection "
                  "(refused: needs a head with box-edge distributions, e.g. GFL; no det: model has one)")
class LD(Term):
    """KL between the teacher's and the student's softened box-edge distributions; refused for every head that
    regresses one number per edge."""

    Params = LDParams

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        if not all(getattr(m, "has_box_distribution", False) for m in (student, teacher)):
            raise UserError("ld (localization distillation) needs a student and a teacher whose heads predict a "
                            "distribution over each box edge (GFL/DFL heads); torchvision's FCOS regresses edge "
                            "distances and RetinaNet box deltas, one number per edge, so there is nothing to "
                            "soften; allowed for det: models: box_kd (the teacher's boxes as regression targets), "
                            "pkd, fpn_cwd, fgd (features) and head_kd (class scores)", key="distill.terms")

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError("refused in __init__")
