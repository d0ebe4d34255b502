"""Run a model over a loader once and keep everything a metric might need: the logits and labels."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..engine.distributed import gather_rows


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
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler) and sampler.num_replicas > 1:
        # Each rank saw its shard: gather every rank's rows, padding dropped, so metrics cover the whole split.
        idx, n = torch.tensor(list(iter(sampler)), dtype=torch.long), len(sampler.dataset)  # type: ignore[arg-type]
        return gather_rows(torch.cat(logits), idx, n), gather_rows(torch.cat(labels), idx, n)
    return torch.cat(logits), torch.cat(labels)
