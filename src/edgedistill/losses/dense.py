"""Dense (per-pixel) distillation losses for segmentation: pixel-wise KD, channel-wise distillation, pairwise
affinity. Pixel KD and CWD are Hinton's KL (kd_loss) on rows re-cut from the N×K×H×W logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kd import kd_loss


def pixel_kd_loss(student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """KL(teacher_T || student_T) · T² of every pixel's class distribution, averaged over pixels."""
    k = student.shape[1]
    return kd_loss(student.permute(0, 2, 3, 1).reshape(-1, k), teacher.permute(0, 2, 3, 1).reshape(-1, k), T)


def cwd_loss(student: torch.Tensor, teacher: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """Shu et al. ICCV 2021: each channel's map softened over its H·W locations, KL(teacher || student) · T²,
    averaged over images and channels (the paper's sum over locations / (N·C))."""
    n, c = student.shape[:2]
    return kd_loss(student.reshape(n * c, -1), teacher.reshape(n * c, -1), T)


def affinity(feat: torch.Tensor, grid: int) -> torch.Tensor:
    """N×HW×HW cosine similarities between locations, after average pooling to at most grid×grid."""
    h, w = feat.shape[-2:]
    if h > grid or w > grid:
        feat = F.adaptive_avg_pool2d(feat, (min(h, grid), min(w, grid)))
    f = F.normalize(feat.float().flatten(2), dim=1)  # N×C×HW, unit vector per location
    return f.transpose(1, 2) @ f


def pairwise_loss(student: torch.Tensor, teacher: torch.Tensor, grid: int = 16) -> torch.Tensor:
    """Liu et al. CVPR 2019 (structured KD), pair-wise term: squared difference of the student's and the
    teacher's location affinities, averaged over pairs; channel counts may differ."""
    return (affinity(student, grid) - affinity(teacher, grid)).pow(2).mean()


__all__ = ["affinity", "cwd_loss", "pairwise_loss", "pixel_kd_loss"]
