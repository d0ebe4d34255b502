"""Huang et al. NeurIPS 2022, "Knowledge Distillation from A Stronger Teacher" (DIST)."""

from __future__ import annotations

from typing import Literal

import torch

Correlation = Literal["pearson", "spearman"]


def pearson(a: torch.Tensor, b: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation along `dim` (cosine of the centred vectors, as the DIST code)."""
    a = a - a.mean(dim=dim, keepdim=True)
    b = b - b.mean(dim=dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


def soft_rank(x: torch.Tensor, tau: float = 0.1, dim: int = -1) -> torch.Tensor:
    """Differentiable ranks 1..n along `dim`: rank_i = 0.5 + Σ_j sigmoid((x_i − x_j)/τ).

    Hand-written because torchsort does not build here; O(n²) memory per row, fine for n ≤ ~1000.
    As τ → 0 it gives hard ranks, ties averaged as scipy's spearmanr does.
    """
    x = x.movedim(dim, -1)
    r = 0.5 + torch.sigmoid((x.unsqueeze(-1) - x.unsqueeze(-2)) / tau).sum(-1)
    return r.movedim(-1, dim)


def spearman(a: torch.Tensor, b: torch.Tensor, dim: int = -1, tau: float = 0.1,
             eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of soft ranks; values are z-scored first so τ is in units of their std."""

    def z(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(dim, keepdim=True)) / (x.std(dim, keepdim=True) + eps)

    return pearson(soft_rank(z(a), tau, dim), soft_rank(z(b), tau, dim), dim, eps)


def dist_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float = 1.0,
              gamma: float = 1.0, T: float = 1.0, correlation: Correlation = "pearson",
              rank_tau: float = 0.1) -> torch.Tensor:
    """T²·(β·inter + γ·intra), each 1 − mean correlation.

    Inter: across classes, per sample; intra: across the batch, per class.

    Spearman ranks log-probabilities (same hard ranks as probabilities, but evenly spread for soft ranking).
    """
    s, t = student_logits.float() / T, teacher_logits.float() / T
    if correlation == "pearson":
        ys, yt = s.softmax(1), t.softmax(1)

        def corr(a: torch.Tensor, b: torch.Tensor, d: int) -> torch.Tensor:
            return pearson(a, b, d)
    else:
        ys, yt = s.log_softmax(1), t.log_softmax(1)

        def corr(a: torch.Tensor, b: torch.Tensor, d: int) -> torch.Tensor:
            return spearman(a, b, d, rank_tau)

    inter = 1 - corr(ys, yt, 1).mean()
    intra = 1 - corr(ys, yt, 0).mean()
    return (beta * inter + gamma * intra) * (T * T)
