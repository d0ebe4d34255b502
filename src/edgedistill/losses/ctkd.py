"""Li et al. AAAI 2023, "Curriculum Temperature for Knowledge Distillation" (CTKD): its pure pieces."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Identity forward, gradient × −λ backward: the temperature ascends the loss the student descends."""
    return _Reverse.apply(x, lam)


def cosine_curriculum(epoch: int, epochs: int, start: float = 0.0, end: float = 1.0) -> float:
    """start → end along a half cosine over `epochs` epochs (0-based), then held at end."""
    if epochs <= 0:
        return end
    frac = min(max(epoch, 0), epochs) / epochs
    return start + (end - start) * 0.5 * (1 - math.cos(math.pi * frac))


def kl_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  T: float | torch.Tensor) -> torch.Tensor:
    """KL(teacher_T || student_T) per sample, without T²; `T` is a float or broadcastable to (B, 1)."""
    ls = F.log_softmax(student_logits.float() / T, dim=1)
    lt = F.log_softmax(teacher_logits.float() / T, dim=1)
    return (lt.exp() * (lt - ls)).sum(1)
