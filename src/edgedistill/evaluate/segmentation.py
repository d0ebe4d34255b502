"""Segmentation metrics: mIoU, pixel accuracy, per-class IoU, boundary F1, and per-pixel teacher agreement.

IoU and pixel accuracy come from torchmetrics' MulticlassConfusionMatrix (ignore_index honoured) summed over
the whole split: the VOC/Cityscapes definition (dataset-level intersections and unions). torchmetrics'
MeanIoU averages per-image scores instead, and takes no ignore index, so it is not used for the headline.
A class absent from both the masks and the predictions has no IoU (null) and is left out of the mean.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .per_image import PER_IMAGE, load_per_image, save_per_image


def boundaries(labels: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """N×H×W label maps → bool maps of pixels whose right or lower neighbour has another label."""
    b = torch.zeros_like(labels, dtype=torch.bool)
    b[:, :, :-1] |= labels[:, :, :-1] != labels[:, :, 1:]
    b[:, :-1, :] |= labels[:, :-1, :] != labels[:, 1:, :]
    if ignore_index is not None:  # an edge against unlabelled pixels is no boundary of the scene
        ign = (labels == ignore_index).float()[:, None]
        b &= ~(F.max_pool2d(ign, 3, 1, 1)[:, 0] > 0)
    return b


def _dilate(b: torch.Tensor, d: int) -> torch.Tensor:
    return b if d == 0 else F.max_pool2d(b.float()[:, None], 2 * d + 1, 1, d)[:, 0] > 0


class SegScores:
    """Running sums for one model over a split. Boundary F1 (Csurka et al. BMVC 2013, class-agnostic): the
    share of predicted boundary pixels within `tolerance` px of a true boundary (precision) and the reverse
    (recall), summed over images. Written here because torchmetrics has no boundary metric."""

    def __init__(self, num_classes: int, ignore_index: int, tolerance: int):
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.cm = MulticlassConfusionMatrix(num_classes, ignore_index=ignore_index)
        self.k, self.ignore, self.tol = num_classes, ignore_index, tolerance
        self.bf = torch.zeros(4, dtype=torch.float64)  # matched pred, pred, matched true, true
        self.agree = torch.zeros(2, dtype=torch.float64)  # pixels equal to the teacher's, pixels compared

    def update(self, pred: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None = None) -> None:
        self.cm.update(pred, target)
        pb, tb = boundaries(pred), boundaries(target, self.ignore)
        pb &= target != self.ignore
        self.bf += torch.tensor([(pb & _dilate(tb, self.tol)).sum(), pb.sum(), (tb & _dilate(pb, self.tol)).sum(),
                                 tb.sum()], dtype=torch.float64)
        if teacher is not None:
            valid = target != self.ignore
            self.agree += torch.tensor([((pred == teacher) & valid).sum(), valid.sum()], dtype=torch.float64)

    def compute(self) -> dict[str, Any]:
        cm = self.cm.compute().double()  # rows: true class, columns: predicted
        tp, true, predicted = cm.diag(), cm.sum(1), cm.sum(0)
        union = true + predicted - tp
        iou = [float(100 * tp[c] / union[c]) if union[c] > 0 else None for c in range(self.k)]
        present = [v for v in iou if v is not None]
        p = float(self.bf[0] / self.bf[1]) if self.bf[1] else 0.0
        r = float(self.bf[2] / self.bf[3]) if self.bf[3] else 0.0
        out: dict[str, Any] = {
            "miou": sum(present) / len(present) if present else 0.0,
            "pixel_acc": float(100 * tp.sum() / cm.sum()) if cm.sum() else 0.0,
            "per_class_iou": iou,
            "boundary_f1": 100 * 2 * p * r / (p + r) if p + r else 0.0,
            "pixels": int(cm.sum()),
        }
        if self.agree[1]:
            out["teacher_agreement"] = float(100 * self.agree[0] / self.agree[1])
        return out


def per_image_iou(pred: torch.Tensor, masks: torch.Tensor, num_classes: int, ignore_index: int) -> list[float]:
    """Each image's mean IoU over the classes present in its mask or prediction (%): compare's paired unit."""
    out = []
    for p, t in zip(pred, masks, strict=True):
        valid = t != ignore_index
        p, t = p[valid], t[valid]
        ious = []
        for c in range(num_classes):
            a, b = p == c, t == c
            union = int((a | b).sum())
            if union:
                ious.append(int((a & b).sum()) / union)
        out.append(100 * sum(ious) / len(ious) if ious else 100.0)
    return out


@torch.no_grad()
def seg_evaluate(models: dict[str, nn.Module], loader: Any, device: torch.device, num_classes: int,
                 ignore_index: int, tolerance: int, teacher: str | None = "teacher") -> dict[str, dict[str, Any]]:
    """Every model on the same batches; each non-teacher also scored on agreement with `teacher`'s argmax."""
    scores = {n: SegScores(num_classes, ignore_index, tolerance) for n in models}
    per_image: dict[str, list[float]] = {n: [] for n in models}  # compare's paired unit (per_image.npz)
    for m in models.values():
        m.to(device).eval()
    n_images = 0
    for images, masks in loader:
        images = images.to(device)
        preds = {n: m(images).argmax(1).cpu() for n, m in models.items()}
        t = preds.get(teacher) if teacher else None
        for n, p in preds.items():
            scores[n].update(p, masks, t if n != teacher else None)
            per_image[n] += per_image_iou(p, masks, num_classes, ignore_index)
        n_images += len(images)
    return {n: {**s.compute(), "n": n_images, "per_image_iou": per_image[n]} for n, s in scores.items()}


def quick_miou(model: nn.Module, loader: Any, device: torch.device, num_classes: int, ignore_index: int
               ) -> dict[str, float]:
    """mIoU alone, for the per-epoch validation of training (boundaries skipped)."""
    s = SegScores(num_classes, ignore_index, 0)
    was = model.training
    model.eval()
    with torch.no_grad():
        for images, masks in loader:
            s.cm.update(model(images.to(device)).argmax(1).cpu(), masks)
    model.train(was)
    return {"miou": s.compute()["miou"]}


__all__ = ["PER_IMAGE", "SegScores", "boundaries", "load_per_image", "per_image_iou", "quick_miou", "save_per_image",
           "seg_evaluate"]
