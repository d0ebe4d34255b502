"""Segmentation methods (task=segmentation): pixel-wise KD, channel-wise distillation (CWD) and pairwise
affinity distillation; FitNet (fitnet.py) also applies, on the decoder features by default."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ..losses.dense import cwd_loss, pairwise_loss, pixel_kd_loss
from ..losses.feature import match_spatial
from .base import Distiller, LayerPairTerm, Outputs, Term
from .registry import METHODS

SEG = ("segmentation",)


class PixelKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(1.0, gt=0, description="softmax temperature over classes")


@METHODS.register("pixel_kd", family="dense (segmentation)", tasks=SEG,
                  paper="Liu et al. CVPR 2019, Structured Knowledge Distillation for Semantic Segmentation (pixel-wise)")
class PixelKD(Term):
    """KL between the teacher's and the student's class distributions at every pixel, scaled by T²."""

    Params = PixelKDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        return pixel_kd_loss(student.logits, teacher.logits, self.params.T)


class CWDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    T: float = Field(4.0, gt=0, description="softmax temperature over locations")


@METHODS.register("cwd", family="dense (segmentation)", tasks=SEG,
                  paper="Shu et al. ICCV 2021, Channel-wise Knowledge Distillation for Dense Prediction")
class CWD(Term):
    """Each class channel of the logits as a distribution over locations; KL(teacher || student) · T²."""

    Params = CWDParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = match_spatial(student.logits, teacher.logits)
        return cwd_loss(s, t, self.params.T)


class PairwiseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module (auto: its decoder features)")
    teacher_layer: str = Field("auto", description="teacher module (auto: its decoder features)")
    grid: int = Field(16, gt=0, le=64, description="maps are average-pooled to at most grid×grid locations")


@METHODS.register("pairwise", family="dense (segmentation)", tasks=SEG,
                  paper="Liu et al. CVPR 2019, Structured Knowledge Distillation for Semantic Segmentation (pair-wise)")
class Pairwise(LayerPairTerm):
    """The student's location-to-location cosine affinities regress the teacher's (no connector needed)."""

    Params = PairwiseParams

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = self.maps(student, teacher)
        s, t = match_spatial(s, t)
        return pairwise_loss(s, t, self.params.grid)


class SegDistiller(Distiller):
    """The Distiller with a per-pixel cross-entropy that skips the masks' ignore index."""

    def __init__(self, *args: Any, ignore_index: int = 255, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ignore_index = ignore_index

    def _ce(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if not bool((labels != self.ignore_index).any()):
            return logits.sum() * 0  # a batch of unlabelled pixels only: no loss rather than 0/0
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing)
