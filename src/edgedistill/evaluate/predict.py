"""Run a model over a loader once and keep everything a metric might need: the logits and labels."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def predict(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(logits float32 [N, C], labels long [N]) on CPU, in eval mode, so metrics never rerun the model.

    The model is moved to `device` in place (and left there), so callers need not place it first.
    """
    model.to(device).eval()
    logits, labels = [], []
    with torch.inference_mode():
        for images, y in loader:
            logits.append(model(images.to(device, non_blocking=True)).float().cpu())
            labels.append(torch.as_tensor(y).long().cpu())
    if not logits:
        raise ValueError("the loader yielded no batches")
    return torch.cat(logits), torch.cat(labels)
