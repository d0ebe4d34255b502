"""Detection distillation losses on FPN maps and on a dense head's class scores. They take tensors and know
nothing of models or training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dense import cwd_loss


def pearson_normalize(feat: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """N×C×H×W → each channel standardized over its N·H·W values (zero mean, unit variance)."""
    n, c = feat.shape[:2]
    f = feat.transpose(0, 1).reshape(c, -1)
    f = (f - f.mean(1, keepdim=True)) / (f.std(1, keepdim=True) + eps)
    return f.reshape(c, n, *feat.shape[2:]).transpose(0, 1)


def pkd_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Cao et al. NeurIPS 2022 (PKD): MSE/2 between the Pearson-normalized student and teacher maps of each FPN
    level (equivalent to 1 − their Pearson correlation per channel), summed over levels."""
    return sum((F.mse_loss(pearson_normalize(s.float()), pearson_normalize(t.float())) / 2
                for s, t in zip(student, teacher, strict=True)), torch.zeros(()))


def fpn_cwd_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], T: float = 1.0) -> torch.Tensor:
    """Shu et al. ICCV 2021 (CWD) on feature maps: each channel of each FPN level softened over its locations,
    KL(teacher || student) · T², summed over levels."""
    return sum((cwd_loss(s.float(), t.float(), T) for s, t in zip(student, teacher, strict=True)), torch.zeros(()))


def head_kd_loss(student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0, focus: bool = True) -> torch.Tensor:
    """Class-score KD for sigmoid heads (FCOS, RetinaNet): N×A×K logits at the same anchors/points; binary
    cross-entropy between sigmoid(student/T) and the teacher's sigmoid(teacher/T) per class, summed over
    classes, · T². With `focus`, anchors are weighted by the teacher's highest class score (where it sees an
    object), so the many background points of a dense head do not drown the few object ones."""
    s, t = student.float() / T, teacher.float() / T
    per_anchor = F.binary_cross_entropy_with_logits(s, torch.sigmoid(t), reduction="none").sum(-1)
    per_anchor = per_anchor - F.binary_cross_entropy_with_logits(t, torch.sigmoid(t), reduction="none").sum(-1)
    if not focus:
        return per_anchor.mean() * T * T
    w = torch.sigmoid(teacher.float()).amax(-1)
    return (per_anchor * w).sum() / w.sum().clamp_min(1e-6) * T * T


def box_kd_loss(student: torch.Tensor, teacher: torch.Tensor, teacher_logits: torch.Tensor, giou: bool
                ) -> torch.Tensor:
    """The teacher's box regression as the student's soft target at the same N×A anchors/points, each weighted by
    the teacher's highest class score. `giou` (FCOS: ReLU'd edge distances l, t, r, b in units of the point's
    size): 1 − GIoU of the boxes (−l, −t, r, b) — the decoded boxes' GIoU, which a shared point's position and
    size do not change; else (RetinaNet's box deltas) L1 summed over the 4 deltas, as its own regression loss."""
    from torchvision.ops import generalized_box_iou_loss

    s, t = student.float(), teacher.float()
    if giou:
        per_anchor = generalized_box_iou_loss(_ltrb_box(s), _ltrb_box(t), reduction="none")
    else:
        per_anchor = (s - t).abs().sum(-1)
    w = torch.sigmoid(teacher_logits.float()).amax(-1)
    return (per_anchor * w).sum() / w.sum().clamp_min(1e-6)


def _ltrb_box(d: torch.Tensor, pad: float = 0.05) -> torch.Tensor:
    """Edge distances (l, t, r, b) from a point at the origin → the box (−l, −t, r, b), x1y1x2y2, each edge moved
    out by `pad` (5% of the point's size) so that two equal empty boxes (a dead point: all 0) have GIoU 1, not 0."""
    d = d + pad
    return torch.cat([-d[..., :2], d[..., 2:]], dim=-1)


__all__ = ["box_kd_loss", "fpn_cwd_loss", "head_kd_loss", "pearson_normalize", "pkd_loss"]
