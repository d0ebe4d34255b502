"""FGD (Yang et al. CVPR 2022, Focal and Global Knowledge Distillation for Detectors) on one FPN map pair: box
masks, the teacher's attention, the focal feature and attention losses, and the GcBlock global loss. Pure
functions and one small module; nothing here knows of models or training.

Reductions follow the authors' release (yzd-v/FGD): squared errors summed over C·H·W and averaged over the batch,
so the published weights (alpha_fgd 1e-3, beta_fgd 5e-4, gamma_fgd 5e-4, lambda_fgd 5e-6 for RetinaNet) keep their
meaning. One difference, a fix: a box covers the cells it overlaps (rows from y, columns from x; the release swaps
the two axes and takes one cell more on each side), so each box's foreground weights sum to 1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def box_masks(boxes: list[torch.Tensor], canvas: tuple[int, int], size: tuple[int, int]
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth boxes (x1y1x2y2 in pixels of a `canvas` H×W input) → foreground and background weights on an
    H'×W' map (`size`): a cell inside a box weighs 1/(cells of that box) (the smallest box where boxes overlap),
    every other cell 1/(background cells), so each box and the whole background count alike (N×H'×W' each)."""
    h, w = size
    sy, sx = h / canvas[0], w / canvas[1]
    fg = torch.zeros(len(boxes), h, w)
    for i, b in enumerate(boxes):
        for x1, y1, x2, y2 in b.detach().float().cpu().tolist():
            c0, c1 = _cells(x1 * sx, x2 * sx, w)
            r0, r1 = _cells(y1 * sy, y2 * sy, h)
            cell = fg[i, r0:r1, c0:c1]
            fg[i, r0:r1, c0:c1] = torch.maximum(cell, torch.full_like(cell, 1.0 / ((r1 - r0) * (c1 - c0))))
    bg = (fg == 0).float()
    bg = bg / bg.sum((1, 2), keepdim=True).clamp_min(1.0)
    return fg, bg


def _cells(lo: float, hi: float, n: int) -> tuple[int, int]:
    """The cells [a, b) a span [lo, hi] overlaps on a grid of n, at least one."""
    a = min(max(math.floor(lo), 0), n - 1)
    return a, max(min(math.ceil(hi), n), a + 1)


def attention(feat: torch.Tensor, T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """N×C×H×W → spatial (N×H×W) and channel (N×C) attention: softmax over H·W of the channel mean of |F| and over
    C of its spatial mean, at temperature T, scaled by H·W and by C (mean 1, so uniform attention weighs 1)."""
    n, c, h, w = feat.shape
    a = feat.abs()
    spatial = h * w * F.softmax(a.mean(1).reshape(n, -1) / T, dim=1)
    channel = c * F.softmax(a.mean((2, 3)) / T, dim=1)
    return spatial.reshape(n, h, w), channel


def focal_losses(student: torch.Tensor, teacher: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, T: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Foreground and background feature losses (squared error weighted by the teacher's spatial and channel
    attention and the box masks) and the attention loss (L1 between the student's and the teacher's spatial
    and channel attention), each summed over the map and averaged over the batch."""
    n = len(student)
    s_sp, s_ch = attention(student, T)
    t_sp, t_ch = attention(teacher, T)
    sq = (student - teacher).pow(2) * t_sp[:, None] * t_ch[:, :, None, None]
    fg_loss = (sq * fg[:, None]).sum() / n
    bg_loss = (sq * bg[:, None]).sum() / n
    att_loss = ((s_ch - t_ch).abs().sum() + (s_sp - t_sp).abs().sum()) / n
    return fg_loss, bg_loss, att_loss


class GlobalContext(nn.Module):
    """GcBlock (Cao et al. 2019) as FGD uses it: softmax(1×1 conv) pools the map to one context vector, a
    bottleneck (1×1 conv to C/2, LayerNorm, ReLU, 1×1 conv back) transforms it, and it is added to every cell.
    The last conv starts at zero, so the block starts as the identity."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 2, 1)
        self.mask = nn.Conv2d(channels, 1, 1)
        nn.init.kaiming_normal_(self.mask.weight, mode="fan_in")
        nn.init.zeros_(self.mask.bias)
        self.transform = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.LayerNorm([mid, 1, 1]), nn.ReLU(),
                                       nn.Conv2d(mid, channels, 1))
        nn.init.zeros_(self.transform[-1].weight)
        nn.init.zeros_(self.transform[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        weights = F.softmax(self.mask(x).reshape(n, 1, -1), dim=2)  # N×1×HW
        context = torch.bmm(x.reshape(n, c, -1), weights.transpose(1, 2)).reshape(n, c, 1, 1)
        return x + self.transform(context)


def global_loss(student: torch.Tensor, teacher: torch.Tensor, ctx_student: nn.Module, ctx_teacher: nn.Module
                ) -> torch.Tensor:
    """Squared error between the student's and the teacher's maps after each side's context block, summed over
    the map and averaged over the batch."""
    return (ctx_student(student) - ctx_teacher(teacher)).pow(2).sum() / len(student)


def fgd_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], boxes: list[torch.Tensor],
             canvas: tuple[int, int], contexts: list[tuple[nn.Module, nn.Module]], T: float = 0.5,
             alpha: float = 1e-3, beta: float = 5e-4, gamma: float = 5e-4, lam: float = 5e-6) -> torch.Tensor:
    """alpha·foreground + beta·background + gamma·attention + lam·global, summed over the paired FPN levels;
    `contexts` holds each level's (student, teacher) context blocks, `boxes` each image's ground truth."""
    total = torch.zeros(())
    for s, t, (cs, ct) in zip(student, teacher, contexts, strict=True):
        s, t = s.float(), t.float()
        fg, bg = (m.to(s.device) for m in box_masks(boxes, canvas, tuple(s.shape[-2:])))
        fg_l, bg_l, att_l = focal_losses(s, t, fg, bg, T)
        total = total + alpha * fg_l + beta * bg_l + gamma * att_l + lam * global_loss(s, t, cs, ct)
    return total


__all__ = ["GlobalContext", "attention", "box_masks", "fgd_loss", "focal_losses", "global_loss"]
