"""`edgedistill audit` of a task=detection run, the task's side (evaluate/audit_spec.py): COCO mAP
(torchmetrics/pycocotools), box agreement with the teacher and per-image mAP by the run's own det_evaluate.
FGSM steps on the teacher's own training losses (classification, box regression and, for FCOS, centerness) for the
ground-truth boxes, as attacks on detectors do (Xie et al., 2017), with its normalization layers in eval mode."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..evaluate.audit_spec import AuditSpec, Batch
from ..evaluate.detection import det_evaluate



@contextmanager
def _losses_mode(model: nn.Module) -> Iterator[None]:
    """torchvision detectors return losses only in training mode; their batch norm and dropout stay in eval mode
    (running statistics untouched, the same function as at evaluation), and the model goes back to eval after."""
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    try:
        yield
    finally:
        model.eval()


def det_fgsm_loss(model: nn.Module, x: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The sum of the detector's training losses for the batch's ground-truth boxes and labels."""
    boxes, labels = ([t.to(x.device) for t in ts] for ts in batch[1:3])
    with _losses_mode(model):
        losses = model(x, boxes, labels)
    return sum(losses.values())  # type: ignore[return-value]


def det_audit_task(r: Any, device: torch.device) -> AuditSpec:
    """det_evaluate at the run's score thresholds; the loader's images are in [0, 1] already (the detector
    normalizes)."""
    d = r.detection

    def evaluate(models: dict[str, nn.Module], batches: Any) -> dict[str, dict[str, Any]]:
        return det_evaluate(models, batches, device, d.score_threshold, d.agreement_score, per_image=True)

    return AuditSpec("detection", "map", "mAP", "per_image_map", "box", evaluate, (0.0,) * 3, (1.0,) * 3,
                     det_fgsm_loss, extra=("map50",), device=device)


def det_audit(run_dir: Path, r: Any, metrics: dict[str, Any], device: torch.device) -> AuditSpec:
    """The audit of a finished detection run: its held-out data (classes checked), loader, teacher and models."""
    from ..data.det_base import det_loader
    from ..models import load_model
    from .det_chain import det_data
    from .detection import build_det_model

    size = r.data.image_size

    def load(path: Path) -> nn.Module:
        model = load_model(path)[0]
        model.set_image_size(size)  # type: ignore[operator]
        return model

    def teacher() -> nn.Module | None:
        f = run_dir / "teacher" / "model.safetensors"
        if f.is_file():
            return load(f)
        k = len(metrics["class_names"])
        return build_det_model(r.teacher.model, k, size, r.teacher.weights, "teacher.weights") \
            if r.teacher.weights else None

    return dataclasses.replace(
        det_audit_task(r, device), data=lambda: det_data(r, metrics)[1], teacher=teacher, load=load,
        loader=lambda ds, b: det_loader(ds, b, train=False, workers=r.data.workers, seed=0))


__all__ = ["det_audit", "det_audit_task", "det_fgsm_loss"]
