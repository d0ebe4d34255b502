"""Teacher-free KD, Tf-KD_reg (Yuan et al. CVPR 2020): a hand-designed virtual teacher instead of a model."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def virtual_teacher(labels: torch.Tensor, num_classes: int, a: float, T: float) -> torch.Tensor:
    """Softened virtual-teacher distribution, one row per label.

    p_d(k) = a for the correct class, (1 − a)/(K − 1) for the others, then softmax(p_d / T) as in the
    authors' released code (the probabilities themselves are divided by T and soft-maxed); a large T makes
    it nearly uniform (a confidence penalty), T → 0 makes it one-hot.
    """
    if num_classes < 2:
        raise ValueError("a virtual teacher needs at least 2 classes")
    p = torch.full((len(labels), num_classes), (1.0 - a) / (num_classes - 1), device=labels.device)
    p.scatter_(1, labels.view(-1, 1), a)
    return F.softmax(p / T, dim=1)


def tf_kd_reg_loss(student_logits: torch.Tensor, labels: torch.Tensor, a: float, T: float) -> torch.Tensor:
    """KL(virtual teacher || student at T = 1), averaged over the batch (batchmean; the authors' code
    averages over batch × classes and multiplies by a `multiplier`, i.e. its weight is ours × K / multiplier)."""
    q = virtual_teacher(labels, student_logits.shape[1], a, T)
    log_p = F.log_softmax(student_logits.float(), dim=1)
    return F.kl_div(log_p, q, reduction="batchmean")
