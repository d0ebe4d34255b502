"""Zhao et al. CVPR 2022, "Decoupled Knowledge Distillation" (DKD)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p || q) from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def tckd_nckd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              T: float | torch.Tensor = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample TCKD and NCKD (no T² factor), computed in log space.

    Hand-written rather than the paper's `log(softmax)` and `−1000·mask` tricks: those give log 0 → NaN at
    small T (a learnable T reaches small values), while logsumexp over the non-target classes stays finite.
    `T` is a float or a tensor broadcastable to (B, 1).
    """
    s, t = student_logits.float() / T, teacher_logits.float() / T
    gt = F.one_hot(target, s.shape[1]).bool()
    b = s.shape[0]

    def parts(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_all = torch.logsumexp(z, dim=1, keepdim=True)
        rest = z[~gt].view(b, -1)  # non-target logits
        binary = torch.cat([z[gt].view(b, 1), torch.logsumexp(rest, dim=1, keepdim=True)], 1) - log_all
        return binary, F.log_softmax(rest, dim=1)

    (bs, ns), (bt, nt) = parts(s), parts(t)
    return _kl(bt, bs), _kl(nt, ns)


def dkd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
             alpha: float = 1.0, beta: float = 8.0, T: float = 4.0) -> torch.Tensor:
    """(α·TCKD + β·NCKD)·T², averaged over the batch; KD is α = 1, β = 1 − p_t."""
    tckd, nckd = tckd_nckd(student_logits, teacher_logits, target, T)
    return ((alpha * tckd + beta * nckd) * (T * T)).mean()
