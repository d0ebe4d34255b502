"""Detection distillation (task=detection): the DetDistiller, and the FPN-level base its feature methods share.

A term sees Outputs whose features are the FPN levels ("fpn.0", "fpn.1", …, finest first) and whose logits are
the dense head's class logits (N×A×K; FCOS/RetinaNet) or an empty tensor (SSD, Faster R-CNN). The student's come
from its training forward (the same pass that gives torchvision's detection losses), the frozen teacher's from
DetNet.maps (backbone and head, no loss, no box decoding).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ..errors import UserError
from ..losses.feature import match_spatial
from .base import Distiller, Outputs, Term

DET = ("detection",)


def det_outputs(fpn: list[torch.Tensor], head: dict[str, torch.Tensor] | None) -> Outputs:
    """FPN maps as fpn.0, fpn.1, …; a dense head's class logits as logits and its other outputs as head.NAME
    (bbox_regression N×A×4, and FCOS's bbox_ctrness N×A×1)."""
    logits = head["cls_logits"] if head is not None else torch.zeros(0)
    extra = {f"head.{k}": v for k, v in (head or {}).items() if k != "cls_logits"}
    return Outputs(logits, {**{f"fpn.{i}": f for i, f in enumerate(fpn)}, **extra})


def fpn_levels(out: Outputs) -> list[torch.Tensor]:
    return [out.features[f"fpn.{i}"] for i in range(sum(k.startswith("fpn.") for k in out.features))]


@torch.no_grad()
def probe(model: nn.Module, example: torch.Tensor) -> Outputs:
    """A detector's FPN maps and head logits on `example`, in eval mode (its mode is restored)."""
    was = model.training
    model.eval()
    try:
        return det_outputs(*model.maps(example))
    finally:
        model.train(was)


def dense_pair(name: str, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor | None
               ) -> tuple[Outputs, Outputs]:
    """The student's and the teacher's head outputs on `example`; a pair without dense heads exits 2."""
    if teacher is None or example is None or not all(getattr(m, "has_head", False) for m in (student, teacher)):
        raise UserError(f"{name} needs a teacher and a student with a dense class head; allowed: det:fcos_* and "
                        "det:retinanet_* models", key="distill.terms")
    return probe(student, example), probe(teacher, example)


class FPNParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    levels: int | None = Field(None, gt=0, description="the finest N FPN levels only (default: all); e.g. 1 = P3 "
                               "alone, where small images put every object")


class FPNTerm(Term):
    """A term on the student's and the teacher's FPN maps, paired level by level (finest first); `levels` keeps
    the finest N (on 64-px scenes P4..P7 are 4×4..1×1 maps that hold no object, and imitating them hurt).

    Where their channel counts differ, a 1×1 convolution per level maps the student's to the teacher's (trained
    with the student, never exported); where sizes differ, the larger map is average-pooled."""

    def __init__(self, params: BaseModel, student: nn.Module, teacher: nn.Module | None,
                 example: torch.Tensor | None = None):
        super().__init__(params, student, teacher, example)
        name = type(self).__name__
        if teacher is None or example is None or not hasattr(student, "maps") or not hasattr(teacher, "maps"):
            raise UserError(f"{name} needs a det: teacher and student and an example batch", key="distill.terms")
        s, t = fpn_levels(probe(student, example)), fpn_levels(probe(teacher, example))
        if len(s) != len(t):
            raise UserError(f"{name}: the student has {len(s)} FPN levels and the teacher {len(t)}; allowed: models "
                            "with as many levels (e.g. det:fcos_* and det:retinanet_* have 5)", key="distill.terms")
        self.connectors = nn.ModuleList(nn.Conv2d(a.shape[1], b.shape[1], 1) if a.shape[1] != b.shape[1]
                                        else nn.Identity() for a, b in zip(s, t, strict=True))
        self.channels = [b.shape[1] for b in t]  # the teacher's, per level: what the student's are mapped to
        n = getattr(params, "levels", None)
        if n is not None and n > len(s):
            raise UserError(f"{name}: levels={n} but the models have {len(s)} FPN levels; allowed: 1..{len(s)}",
                            key="distill.terms")
        self.levels = n or len(s)

    def pairs(self, student: Outputs, teacher: Outputs) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        s, t = [], []
        n = self.levels
        for conn, a, b in zip(self.connectors[:n], fpn_levels(student)[:n], fpn_levels(teacher)[:n], strict=True):
            a, b = match_spatial(conn(a), b)
            s.append(a)
            t.append(b)
        return s, t


class DetDistiller(Distiller):
    """The Distiller for detectors: torchvision's own detection losses (× det_weight, logged as `det`) plus the
    weighted terms. With no teacher and no terms it trains the detector alone (teacher, student-alone baseline)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None,
                 terms: dict[str, tuple[float, Term]] | None = None, det_weight: float = 1.0):
        super().__init__(student, teacher, terms, ce_weight=det_weight)

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        images, boxes, labels = batch
        t_out = None
        if self.terms and self.teacher is not None:
            with torch.no_grad():
                t_out = det_outputs(*self.teacher.maps(images))
        sup, fpn, head = self.student.train_outputs(images, boxes, labels)
        s_out = det_outputs(fpn, head)
        losses: dict[str, torch.Tensor] = {}
        if self.ce_weight > 0:
            losses["det"] = self.ce_weight * sum(sup.values())
        for name, term in self.terms.items():
            losses[name] = self.weights[name] * term(s_out, t_out, batch)
        total = sum(losses.values()) if losses else fpn[0].sum() * 0
        return {"loss": total, **losses}

    @torch.no_grad()
    def diagnose_nonfinite(self, batch: Any) -> str:
        for who, model in (("student", self.student), ("teacher", self.teacher)):
            bad = [n for n, p in (model.state_dict() if model is not None else {}).items()
                   if p.is_floating_point() and not torch.isfinite(p).all()]
            if bad:
                return f"{who} weight {bad[0]} holds NaN/inf ({len(bad)} tensor(s) in all); try a lower train.lr " \
                       "or train.grad_clip"
        if not torch.isfinite(batch[0]).all():
            return "the input images hold NaN/inf; check the data"
        return "the detection losses or a distillation term overflowed; try a lower train.lr or train.grad_clip"


__all__ = ["DET", "DetDistiller", "FPNParams", "FPNTerm", "dense_pair", "det_outputs", "fpn_levels", "probe"]
