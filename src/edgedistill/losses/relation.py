"""Relation losses (RKD, similarity-preserving): how samples relate within a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between rows of [B,D]; clamped before the sqrt: finite grads at 0."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=eps).sqrt()
    return d * (1 - torch.eye(len(e), device=e.device, dtype=d.dtype))


def rkd_distance_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019 (RKD-D): smooth-L1 of distance matrices, each over its mean nonzero distance."""
    def normed(e: torch.Tensor) -> torch.Tensor:
        d = pairwise_distances(e.float().flatten(1))
        return d / d[d > 0].mean().clamp(min=1e-12)

    return F.smooth_l1_loss(normed(student), normed(teacher))


def _angles(e: torch.Tensor) -> torch.Tensor:
    """cos∠(e_i − e_j, e_k − e_j) for every triple: Gram of unit differences per anchor j."""
    diff = F.normalize(e[None, :, :] - e[:, None, :], dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


def rkd_angle_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Park et al. 2019 (RKD-A): smooth-L1 of the angle cosines of all triples."""
    return F.smooth_l1_loss(_angles(student.float().flatten(1)), _angles(teacher.float().flatten(1)))


def sp_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Tung & Mori 2019: ‖G_s − G_t‖²_F / b² of row-L2-normalized batch Gram matrices of flattened maps."""
    def gram(f: torch.Tensor) -> torch.Tensor:
        f = f.float().flatten(1)
        return F.normalize(f @ f.t(), dim=1)

    b = student.shape[0]
    return (gram(student) - gram(teacher)).pow(2).sum() / (b * b)


__all__ = ["pairwise_distances", "rkd_angle_loss", "rkd_distance_loss", "sp_loss"]


def contrastive_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired embeddings: sample i's teacher is its positive, the batch's others negatives.

    Embeddings are L2-normalized first, so the loss ignores their scale; the score matrix is s·tᵀ/τ.
    """
    s, t = F.normalize(student.float(), dim=1), F.normalize(teacher.float(), dim=1)
    scores = s @ t.T / tau
    target = torch.arange(len(s), device=s.device)
    return 0.5 * (F.cross_entropy(scores, target) + F.cross_entropy(scores.T, target))
