"""Hidden-state alignment across architectures: a CNN student learns a ViT teacher's token map."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.feature import hidden_align_loss
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class HiddenAlignParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module whose map is aligned (auto: last map)")
    teacher_layer: str = Field("auto", description="teacher module; ViT tokens become a map, class tokens "
                                                   "dropped (auto: last block)")
    loss: Literal["mse", "cosine"] = Field(
        "mse", description="mse of per-position L2-normalized features, or 1 − cosine")


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize, antialiased when shrinking so a 14×14 token grid does not alias onto a 7×7 map."""
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


@METHODS.register("hidden_align", family="feature",
                  paper="FitNets-style hint across architectures (Romero et al. 2015; ViT→CNN as in ViTKD, "
                        "Yang et al. 2022)")
class HiddenAlign(LayerPairTerm):
    """Student map → 1×1 conv to the teacher's width; teacher tokens → map, resized to the student's grid.

    The projector sits on the student side: a teacher-side projector feeding a normalized loss could collapse
    the target to one direction and zero the loss without teaching anything. The teacher (frozen, no grad) is
    the one resized, so the student is supervised at its own resolution with no upsampled-pixel artifacts.
    """

    Params = HiddenAlignParams

    def __init__(self, params: HiddenAlignParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        s, t = self.probe(student, teacher, example, "projector")
        self.projector = nn.Conv2d(s.shape[1], t.shape[1], 1)

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = self.maps(student, teacher)
        s = self.projector(s)
        t = resize_to(t.float(), (s.shape[-2], s.shape[-1]))
        return hidden_align_loss(s, t, self.params.loss)
