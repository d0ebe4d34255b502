"""Detection metrics: COCO mAP, mAP50, mAP small/medium/large (torchmetrics MeanAveragePrecision, pycocotools
backend: the COCO evaluation itself, not a re-implementation), and box-level agreement with the teacher.

Teacher agreement: in each image the student's and the teacher's boxes of at least `min_score` are matched one
to one (scipy's linear_sum_assignment on IoU, same class only, IoU ≥ 0.5); agreement = 2·matches /
(student boxes + teacher boxes) over the split, in % (an F1 of the student against the teacher's boxes; 100
when both find the same boxes; None when neither finds any). Written here: no library scores two detectors against each other.

Per-image mAP (compare's paired unit): COCO mAP@[.5:.95] of each image on its own, by the same MeanAveragePrecision
— the headline metric, image by image, so a paired test speaks of what the table reports; NaN for an image with no
ground-truth box (COCO has no AP there), which the paired test leaves out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

KEYS = {"map": "map", "map50": "map_50", "map75": "map_75", "map_small": "map_small", "map_medium": "map_medium",
        "map_large": "map_large", "mar100": "mar_100"}


def mean_ap() -> Any:
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")


def ap_scores(metric: Any) -> dict[str, float | None]:
    """COCO numbers in % (None where COCO has none: −1, e.g. no large objects in the split)."""
    out = metric.compute()
    return {k: (100 * float(out[v]) if float(out[v]) >= 0 else None) for k, v in KEYS.items()}


def match_count(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], iou: float = 0.5) -> int:
    """One-to-one matches between two sets of boxes of the same class with IoU ≥ `iou`."""
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    if len(a["boxes"]) == 0 or len(b["boxes"]) == 0:
        return 0
    m = box_iou(a["boxes"].float(), b["boxes"].float())
    same = (a["boxes"][:, None] == b["boxes"][None]).all(-1)
    m = torch.where(m.isnan(), same.float(), m)  # two zero-area boxes: 0/0; the same box still matches itself
    m = m * (a["labels"][:, None] == b["labels"][None, :])
    rows, cols = linear_sum_assignment(m.numpy(), maximize=True)
    return int((m[rows, cols] >= iou).sum())


def kept(d: dict[str, torch.Tensor], min_score: float) -> dict[str, torch.Tensor]:
    """The boxes of at least min_score (what the metrics and the agreement count)."""
    keep = d["scores"] >= min_score
    return {k: v[keep] for k, v in d.items()}


COCO_MAX_DETS = 100  # COCO's maxDets: its mAP counts an image's 100 best-scored boxes


def scored(d: dict[str, torch.Tensor], min_score: float) -> dict[str, torch.Tensor]:
    """The boxes COCO's mAP counts: at least min_score, the 100 best (SSDlite returns up to 300: torchmetrics would
    drop the rest itself, with a warning per run)."""
    d = kept(d, min_score)
    if len(d["scores"]) <= COCO_MAX_DETS:
        return d
    top = d["scores"].topk(COCO_MAX_DETS).indices
    return {k: v[top] for k, v in d.items()}


class Agreement:
    def __init__(self, min_score: float):
        self.min_score, self.sums = min_score, np.zeros(3)  # matches, student boxes, teacher boxes

    def update(self, student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> None:
        s, t = kept(student, self.min_score), kept(teacher, self.min_score)
        self.sums += [match_count(s, t), len(s["boxes"]), len(t["boxes"])]

    def compute(self) -> float | None:
        both = self.sums[1] + self.sums[2]
        return float(100 * 2 * self.sums[0] / both) if both else None  # neither found a box: nothing to compare


def per_image_map(preds: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> list[float]:
    """Each image's COCO mAP in % scored alone (NaN where it has no ground-truth box)."""
    metric, out = mean_ap(), []
    for p, t in zip(preds, targets, strict=True):
        if len(t["boxes"]) == 0:
            out.append(float("nan"))
            continue
        metric.reset()
        metric.update([p], [t])
        out.append(100 * max(float(metric.compute()["map"]), 0.0))
    return out


def _targets(boxes: list[torch.Tensor], labels: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    return [{"boxes": b, "labels": c} for b, c in zip(boxes, labels, strict=True)]


@torch.no_grad()
def det_evaluate(models: dict[str, nn.Module], loader: Any, device: torch.device, min_score: float = 0.05,
                 agreement_score: float = 0.3, teacher: str | None = "teacher", per_image: bool = False
                 ) -> dict[str, dict[str, Any]]:
    """Every model on the same batches: COCO AP numbers, and for each non-teacher its agreement with `teacher`;
    with `per_image`, each image's mAP too (`per_image_map`, a list in image order)."""
    maps = {n: mean_ap() for n in models}
    images_map: dict[str, list[float]] = {n: [] for n in models}
    agree = {n: Agreement(agreement_score) for n in models if n != teacher and teacher in models}
    for m in models.values():
        m.to(device).eval()
    n_images = n_boxes = 0
    for images, boxes, labels in loader:
        preds = {n: [{k: v.cpu() for k, v in d.items()} for d in m(images.to(device))] for n, m in models.items()}
        target = _targets(boxes, labels)
        for n, p in preds.items():
            shown = [scored(d, min_score) for d in p]
            maps[n].update(shown, target)
            if per_image:
                images_map[n] += per_image_map(shown, target)
            if n in agree:
                for s, t in zip(p, preds[teacher], strict=True):  # type: ignore[index]
                    agree[n].update(s, t)
        n_images += len(images)
        n_boxes += sum(len(b) for b in boxes)
    out = {n: {**ap_scores(maps[n]), "n": n_images, "boxes": n_boxes,
               **({"per_image_map": images_map[n]} if per_image else {})} for n in models}
    for n, a in agree.items():
        out[n]["teacher_agreement"] = a.compute()
    return out


def quick_map(model: nn.Module, loader: Any, device: torch.device, min_score: float = 0.05) -> dict[str, float]:
    """mAP alone, for the per-epoch validation of training."""
    was = model.training
    scores = det_evaluate({"m": model}, loader, device, min_score, teacher=None)["m"]
    model.train(was)
    return {"map": scores["map"] or 0.0}


__all__ = ["Agreement", "ap_scores", "det_evaluate", "kept", "match_count", "mean_ap", "per_image_map", "quick_map"]
