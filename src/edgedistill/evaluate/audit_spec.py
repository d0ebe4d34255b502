"""What a task gives the audit of its runs (analysis/dense_audit.py): its metric and per-image unit, the evaluation
of every model on the same batches, the pixel mapping of its loader, the loss its FGSM steps on, and how to read a run.

Kept here, below both, so that the task layer (tasks/seg_audit.py, tasks/det_audit.py) fills it in without
importing analysis/, and analysis/ runs it without importing tasks/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

Batch = tuple[Any, ...]  # (images, *targets) as the task's loader yields them
Evaluate = Callable[[dict[str, nn.Module], Iterable[Batch]], dict[str, dict[str, Any]]]
FgsmLoss = Callable[[nn.Module, torch.Tensor, Batch], torch.Tensor]  # (model, normalized images on device, batch) → loss


def _none() -> None:
    return None


@dataclass
class AuditSpec:
    """A task's side of the audit; data, loader, teacher and load are only needed to audit a run folder."""

    task: str
    metric: str  # key of the headline metric in evaluate()'s scores: miou, map
    label: str  # its name in tables: mIoU, mAP
    per_image: str  # key of the per-image list in evaluate()'s scores
    agreement: str  # what teacher_agreement counts: per-pixel, box
    evaluate: Evaluate
    mean: Sequence[float]  # the loader's normalization (0 and 1: images in [0, 1])
    std: Sequence[float]
    fgsm_loss: FgsmLoss | None = None  # the teacher's loss FGSM steps on; None: no FGSM
    fgsm_skip: str = ""  # why fgsm is skipped when fgsm_loss is None
    extra: tuple[str, ...] = ()  # further scores kept per model and row (pixel_acc, map50, …)
    device: torch.device = torch.device("cpu")
    data: Callable[[], dict[str, Any]] = dict  # held-out splits by name
    loader: Callable[[Any, int], Iterable[Batch]] | None = None  # (dataset, batch size) → batches in a fixed order
    teacher: Callable[[], nn.Module | None] = _none  # the run's teacher, None when it has none
    load: Callable[[Path], nn.Module] | None = None  # a model file of the run


__all__ = ["AuditSpec", "Batch", "Evaluate", "FgsmLoss"]
