"""Sun et al. CVPR 2024, "Logit Standardization in Knowledge Distillation"."""

from __future__ import annotations

import torch


def zscore(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-sample z-score of the logits, so the student matches the teacher's logit *shape*, not its scale.

    Dividing the result by a base temperature T gives the paper's Z(z; τ) = (z − mean) / (σ·T).
    Uses the unbiased std, as the paper's code (torch's default) does.
    """
    z = logits.float()
    return (z - z.mean(dim=-1, keepdim=True)) / (z.std(dim=-1, keepdim=True) + eps)
