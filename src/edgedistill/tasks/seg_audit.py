"""`edgedistill audit` of a task=segmentation run: mIoU, per-pixel teacher agreement and per-image IoU of the
teacher and students, clean and perturbed (analysis/dense_audit.py), scored by the run's own seg_evaluate."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..analysis.dense_audit import Batch, DenseAudit, audit_run
from ..analysis.perturb import Pixels, fgsm_pixels
from ..evaluate.segmentation import seg_evaluate


def seg_audit_task(r: Any, num_classes: int, device: torch.device) -> DenseAudit:
    """The segmentation side of the audit: seg_evaluate on the run's classes, FGSM on the per-pixel loss."""
    ignore, tol = r.segmentation.ignore_index, r.segmentation.boundary_tolerance

    def evaluate(models: dict[str, nn.Module], batches: Any) -> dict[str, dict[str, Any]]:
        return seg_evaluate(models, batches, device, num_classes, ignore, tol)

    def fgsm(teacher: nn.Module, px: torch.Tensor, batch: Batch, eps: float,
             normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """One step on the teacher's per-pixel cross-entropy; unlabelled pixels (ignore_index) left out of it."""
        masks = batch[1].to(px.device)
        return fgsm_pixels(teacher, px, masks.masked_fill(masks == ignore, -100), eps, normalize)

    return DenseAudit("segmentation", "miou", "mIoU", "per_image_iou", "per-pixel", evaluate,
                      Pixels(r.data.mean, r.data.std), fgsm, extra=("pixel_acc", "boundary_f1"), device=device)


def seg_audit(run_dir: Path, r: Any, metrics: dict[str, Any], chosen: dict[str, tuple[float, ...]],
              device: torch.device, **opts: Any) -> dict[str, Any]:
    """Audit a finished segmentation run (opts: named, max_images, batch_size, split, alone, say)."""
    from ..data.seg_transforms import seg_loader
    from ..models import load_model
    from .seg_chain import seg_data
    from .segmentation import build_seg_model

    k = len(metrics["class_names"])

    def teacher() -> nn.Module | None:
        f = run_dir / "teacher" / "model.safetensors"
        if f.is_file():
            return load_model(f)[0]
        return build_seg_model(r.teacher.model, k, r.teacher.weights, "teacher.weights") if r.teacher.weights else None

    return audit_run(seg_audit_task(r, k, device), run_dir, r, metrics, chosen, data=lambda: seg_data(r, metrics)[1],
                     teacher=teacher,
                     loader=lambda ds, b: seg_loader(ds, b, train=False, workers=r.data.workers, seed=0),
                     load=lambda p: load_model(p)[0], **opts)


__all__ = ["seg_audit", "seg_audit_task"]
