"""Deep mutual learning (Zhang et al. CVPR 2018): each peer matches the others' (detached) predictions."""

from __future__ import annotations

import torch

from .kd import kd_loss


def mutual_kl(logits: list[torch.Tensor], T: float = 1.0) -> list[torch.Tensor]:
    """Per peer i: mean over j≠i of KL(p_j || p_i)·T², with p_j detached.

    Detaching the targets means a peer's KL term moves only that peer, so summing the peers' losses and
    taking one step equals the paper's per-peer updates computed on the same batch (simultaneous, not
    alternating: peer 2 does not see peer 1's update within a step).
    """
    if len(logits) < 2:
        raise ValueError("mutual learning needs at least two peers")
    out = []
    for i, z in enumerate(logits):
        others = [kd_loss(z, o.detach(), T) for j, o in enumerate(logits) if j != i]
        out.append(torch.stack(others).mean())
    return out
