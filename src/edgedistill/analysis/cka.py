"""Linear CKA: how alike two models' representations of the same images are, whatever their widths."""

from __future__ import annotations

import numpy as np


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centered kernel alignment of features x [N, p] and y [N, q] (Kornblith et al., 2019), in [0, 1].

    Hand-written because it is one formula, ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F ‖Yᶜᵀ Yᶜ‖_F) on column-centred
    features, and no installed library ships it. It is invariant to orthogonal transforms and isotropic
    scaling of either side (not to arbitrary invertible maps), which is what lets a 64-wide student be
    compared with a 256-wide teacher. In float64, so the small-N case is not lost to rounding.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"need features [N, p] and [N, q] with the same N ≥ 2, got {x.shape} and {y.shape}")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else float("nan")
