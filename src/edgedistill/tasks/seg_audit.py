"""`edgedistill audit` of a task=segmentation run, the task's side (evaluate/audit_spec.py): mIoU, per-pixel
teacher agreement and per-image IoU by the run's own seg_evaluate; FGSM on the teacher's per-pixel cross-entropy."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..evaluate.audit_spec import AuditSpec, Batch
from ..evaluate.segmentation import seg_evaluate


def seg_audit_task(r: Any, num_classes: int, device: torch.device) -> AuditSpec:
    """seg_evaluate on the run's classes, ignore index and boundary tolerance; images normalized by data.mean/std."""
    ignore, tol = r.segmentation.ignore_index, r.segmentation.boundary_tolerance

    def evaluate(models: dict[str, nn.Module], batches: Any) -> dict[str, dict[str, Any]]:
        return seg_evaluate(models, batches, device, num_classes, ignore, tol)

    def fgsm_loss(model: nn.Module, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Per-pixel cross-entropy on the masks, unlabelled pixels (ignore_index) left out."""
        model.eval()
        return F.cross_entropy(model(x), batch[1].to(x.device), ignore_index=ignore)

    return AuditSpec("segmentation", "miou", "mIoU", "per_image_iou", "per-pixel", evaluate, r.data.mean, r.data.std,
                     fgsm_loss, extra=("pixel_acc", "boundary_f1"), device=device)


def seg_audit(run_dir: Path, r: Any, metrics: dict[str, Any], device: torch.device) -> AuditSpec:
    """The audit of a finished segmentation run: its held-out data (classes checked), loader, teacher and models."""
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

    return dataclasses.replace(
        seg_audit_task(r, k, device), data=lambda: seg_data(r, metrics)[1], teacher=teacher,
        loader=lambda ds, b: seg_loader(ds, b, train=False, workers=r.data.workers, seed=0),
        load=lambda p: load_model(p)[0])


__all__ = ["seg_audit", "seg_audit_task"]
