"""Feature-map losses (FitNets, attention transfer, NST, hidden-state alignment): pure tensor functions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F


def match_spatial(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Adaptive-average-pool whichever map is larger (per side) so both share H×W."""
    h, w = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])
    if a.shape[-2:] != (h, w):
        a = F.adaptive_avg_pool2d(a, (h, w))
    if b.shape[-2:] != (h, w):
        b = F.adaptive_avg_pool2d(b, (h, w))
    return a, b


def fitnet_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """Romero et al. 2015: MSE between the regressed student map and the teacher's."""
    s, t = match_spatial(student_hint.float(), teacher_hint.float())
    return F.mse_loss(s, t)


def attention_map(feat: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko & Komodakis 2017: channel-mean of |f|^p, flattened and L2-normalized → [B, H·W]."""
    return F.normalize(feat.float().abs().pow(p).mean(1).flatten(1), dim=1)


def at_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], p: float = 2.0) -> torch.Tensor:
    """Sum over layer pairs of the mean squared difference of attention maps (β is the term weight)."""
    total = torch.zeros((), device=student[0].device)
    for s, t in zip(student, teacher, strict=True):
        s, t = match_spatial(s.float(), t.float())
        total = total + (attention_map(s, p) - attention_map(t, p)).pow(2).mean()
    return total


def _poly_kernel(a: torch.Tensor, b: torch.Tensor, degree: int) -> torch.Tensor:
    """k(x, y) = (xᵀy)^d between every channel of a [B,C1,N] and of b [B,C2,N] → [B,C1,C2]."""
    return torch.bmm(a, b.transpose(1, 2)).pow(degree)


def nst_loss(student: torch.Tensor, teacher: torch.Tensor, degree: int = 2) -> torch.Tensor:
    """Huang & Wang 2017: squared MMD between channel distributions (channel = L2-normalized H·W vector).

    Channel counts may differ (MMD compares distributions, not channels one by one); averaged over samples.
    """
    s, t = match_spatial(student.float(), teacher.float())
    fs = F.normalize(s.flatten(2), dim=2)
    ft = F.normalize(t.flatten(2), dim=2)
    mmd = (_poly_kernel(fs, fs, degree).mean((1, 2)) + _poly_kernel(ft, ft, degree).mean((1, 2))
           - 2 * _poly_kernel(fs, ft, degree).mean((1, 2)))
    return mmd.mean()


def hidden_align_loss(student: torch.Tensor, teacher: torch.Tensor,
                      kind: Literal["mse", "cosine"] = "mse") -> torch.Tensor:
    """Per-position alignment of same-shape maps: MSE of channel-L2-normalized features, or 1 − cosine.

    Normalizing each position removes the scale gap between ViT tokens and CNN activations; the two kinds
    then differ only by a factor 2/C (mse = (2 − 2·cos)/C per element), kept for parity with the literature.
    """
    s, t = student.float(), teacher.float()
    if s.shape != t.shape:
        raise ValueError(f"hidden_align needs equal shapes, got {tuple(s.shape)} and {tuple(t.shape)}")
    if kind == "cosine":
        return (1 - F.cosine_similarity(s, t, dim=1)).mean()
    return F.mse_loss(F.normalize(s, dim=1), F.normalize(t, dim=1))


__all__ = ["at_loss", "attention_map", "fitnet_loss", "hidden_align_loss", "match_spatial", "nst_loss"]
