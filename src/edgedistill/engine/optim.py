"""Optimizers and per-step learning-rate schedules (warm-up then cosine/step/constant)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..recipe import TrainConfig


def build_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


def lr_factor(step: int, total: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr at `step` (0-based); a pure function, so resume needs only the step."""
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return (step + 1) / warm
    if cfg.schedule == "cosine":
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    return 1.0


def build_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, steps_per_epoch, cfg))
