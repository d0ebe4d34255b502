"""What compression stages share: the job (model, ancestors, data) and the artifact a stage returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass
class Job:
    """What stages share: the model being compressed, its ancestors, data and settings."""

    ctx: Any  # run.Context (recipe, data, loaders, console); deploy passes only its data and recipe
    model: nn.Module | None  # current PyTorch model (None after quantization: only ONNX remains)
    unpruned: nn.Module  # the model compression started from
    teacher: nn.Module | None
    spec: str  # architecture spec for checkpoint meta
    meta: dict[str, Any]
    images: torch.Tensor  # held-out images (preprocessed)
    labels: torch.Tensor
    onnx_path: Path | None = None  # the latest fp32 ONNX export that passed parity
    extras: dict[str, Any] = field(default_factory=dict)
    resume: bool = False  # a training stage continues from its stage folder's last.pt (compress --resume)


@dataclass
class Artifact:
    """A stage's outcome: its PyTorch model and/or ONNX file, and stage-specific facts for the report."""

    model: nn.Module | None
    onnx_path: Path | None
    info: dict[str, Any] = field(default_factory=dict)
    precision: str = "fp32"
    gate_on_source: bool = True  # int8 PTQ must agree with its fp32 source; QAT retrains, so it checks itself
    not_measurable: str | None = None  # why this file's latency cannot be timed here (built for another CPU)


def example(job: Job, n: int = 1) -> torch.Tensor:
    s = job.ctx.recipe.data.image_size
    return torch.zeros(n, 3, s, s)
