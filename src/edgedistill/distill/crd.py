"""Contrastive representation distillation as a registered method, with in-batch negatives."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..losses.relation import contrastive_loss
from .base import LayerPairTerm, Outputs
from .registry import METHODS


class CRDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_layer: str = Field("auto", description="student module before the head; pooled to the embedding")
    teacher_layer: str = Field("auto", description="teacher module before the head; pooled to the embedding")
    dim: int = Field(128, ge=2, description="width of the shared embedding both sides are projected to")
    tau: float = Field(0.07, gt=0, description="temperature of the contrastive scores (the paper: 0.07)")


@METHODS.register("crd", family="relation",
                  paper="Tian et al. ICLR 2020, Contrastive Representation Distillation (in-batch negatives)")
class CRD(LayerPairTerm):
    """InfoNCE that pulls each student embedding to its own teacher embedding and away from the batch's others.

    The paper draws 16,384 negatives from a memory bank indexed by dataset position; here the other
    samples of the batch are the negatives (batch − 1 of them), because the engine's batches carry no
    sample index and a bank would tie the loss to one dataset. Both linear projections are trained with
    the student and never exported.
    """

    Params = CRDParams

    def __init__(self, params: CRDParams, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        s, t = self.probe(student, teacher, example, "projections")
        self.embed_student = nn.Linear(s.shape[1], params.dim)
        self.embed_teacher = nn.Linear(t.shape[1], params.dim)

    def forward(self, student: Outputs, teacher: Outputs, batch: Any) -> torch.Tensor:
        s, t = (x.float().mean((2, 3)) for x in self.maps(student, teacher))
        return contrastive_loss(self.embed_student(s), self.embed_teacher(t), self.params.tau)
