"""FGD (task=detection): focal (box-masked, attention-weighted) and global (GcBlock) feature distillation on FPN
levels."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import ConfigDict, Field, model_validator
from torch import nn

from ..losses.fgd import GlobalContext, fgd_loss
from .base import Outputs
from .det_base import DET, FPNParams, FPNTerm
from .registry import METHODS


class FGDParams(FPNParams):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    T: float = Field(0.5, gt=0, le=100, description="temperature of the teacher's spatial and channel attention "
                     "(paper: 0.5 RetinaNet, 0.8 FCOS)")
    alpha_fgd: float = Field(1e-3, ge=0, description="weight of the foreground feature loss (paper: 1e-3 "
                             "RetinaNet, 1.6e-3 FCOS)")
    beta_fgd: float = Field(5e-4, ge=0, description="weight of the background feature loss (paper: 5e-4 "
                            "RetinaNet, 8e-4 FCOS)")
    gamma_fgd: float = Field(5e-4, ge=0, description="weight of the attention loss (paper: 5e-4 RetinaNet, "
                             "8e-4 FCOS)")
    lambda_fgd: float = Field(5e-6, ge=0, description="weight of the global (GcBlock) loss (paper: 5e-6 "
                              "RetinaNet, 8e-6 FCOS)")

    @model_validator(mode="after")
    def _some_weight(self) -> FGDParams:
        if not any((self.alpha_fgd, self.beta_fgd, self.gamma_fgd, self.lambda_fgd)):
            raise ValueError("alpha_fgd, beta_fgd, gamma_fgd and lambda_fgd are all 0; allowed: at least one > 0 "
                             "(or drop the fgd term)")
        return self


@METHODS.register("fgd", family="feature (detection)", tasks=DET,
                  paper="Yang et al. CVPR 2022, Focal and Global Knowledge Distillation for Detectors")
class FGD(FPNTerm):
    """On each FPN level the student imitates the teacher's map where the teacher attends (its spatial and channel
    attention), foreground (inside the ground-truth boxes, each box weighted 1/its area) and background apart,
    matches the teacher's attention, and matches its global context through a GcBlock on each side. The blocks
    (one pair per level) and any channel connectors are the distiller's, trained with the student and never
    exported. Defaults are the authors' RetinaNet settings, tuned for 256-channel FPNs on COCO-sized images:
    the losses are sums over the map, so on small maps scale the term's `weight`."""

    Params = FGDParams

    def __init__(self, params: FGDParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        channels = self.channels[:self.levels]
        self.ctx_student = nn.ModuleList(GlobalContext(c) for c in channels)
        self.ctx_teacher = nn.ModuleList(GlobalContext(c) for c in channels)
        transform = getattr(getattr(student, "net", None), "transform", None)
        self.divisible = int(getattr(transform, "size_divisible", 1))

    def canvas(self, images: torch.Tensor) -> tuple[int, int]:
        """The detector's input canvas: torchvision pads each side up to a multiple of size_divisible."""
        d = self.divisible
        return math.ceil(images.shape[-2] / d) * d, math.ceil(images.shape[-1] / d) * d

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        images, boxes = batch[0], batch[1]
        p = self.params
        return fgd_loss(*self.pairs(student, teacher), boxes, self.canvas(images),
                        list(zip(self.ctx_student, self.ctx_teacher, strict=True)), p.T, p.alpha_fgd, p.beta_fgd,
                        p.gamma_fgd, p.lambda_fgd)
