"""Dense (per-pixel) distillation losses for segmentation: pixel-wise KD and DKD, channel-wise distillation,
pairwise affinity. Pixel KD, pixel DKD and CWD are the classification losses on rows re-cut from the N×K×H×W
logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dkd import dkd_loss
from .kd import kd_loss
from .standardize import zscore


def pixel_rows(logits: torch.Tensor) -> torch.Tensor:
    """N×K×H×W logits → (N·H·W)×K: one row per pixel, so the classification losses apply per pixel."""
    return logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])


def pixel_kd_loss(student: torch.Tensor, teacher: torch.Tensor, T: float = 1.0, standardize: bool = False
                  ) -> torch.Tensor:
    """KL(teacher_T || student_T) · T² of every pixel's class distribution, averaged over pixels;
    `standardize` z-scores each pixel's logits first (Sun et al. CVPR 2024)."""
    s, t = pixel_rows(student), pixel_rows(teacher)
    if standardize:
        s, t = zscore(s), zscore(t)
    return kd_loss(s, t, T)


def pixel_dkd_loss(student: torch.Tensor, teacher: torch.Tensor, masks: torch.Tensor, alpha: float = 1.0,
                   beta: float = 8.0, T: float = 4.0, standardize: bool = False) -> torch.Tensor:
    """DKD (Zhao et al. CVPR 2022) at every labelled pixel: TCKD needs the true class, so pixels whose mask
    value is no class (the ignore index) are left out; 0 when a batch has none."""
    k = student.shape[1]
    labels = masks.reshape(-1)
    keep = (labels >= 0) & (labels < k)
    if not bool(keep.any()):
        return student.sum() * 0
    s, t = pixel_rows(student)[keep], pixel_rows(teacher)[keep]
    if standardize:
        s, t = zscore(s), zscore(t)
    return dkd_loss(s, t, labels[keep], alpha, beta, T)


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
