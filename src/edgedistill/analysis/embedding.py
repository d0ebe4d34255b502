"""The teacher's penultimate embedding, reduced by PCA, with its head folded onto the components.

The tree's features are the first principal components of the teacher's penultimate embedding (the input of its
classifier head) on the train images; the teacher's own head applied to their PCA reconstruction labels a point,
so the teacher, not the dataset's labels, decides every pseudo-sample's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import UserError


def classifier_head(model: nn.Module, n_classes: int) -> tuple[str, nn.Linear]:
    """The teacher's last nn.Linear with one output per class: its input is the penultimate embedding."""
    for name, m in reversed(list(model.named_modules())):
        if isinstance(m, nn.Linear) and m.out_features == n_classes:
            return name, m
    raise UserError(f"the teacher ({type(model).__name__}) has no linear classifier with {n_classes} outputs; "
                    "explain reads the embedding that feeds it", key="RUN_DIR")


def embed(model: nn.Module, head: nn.Linear, ds: Any, batch_size: int,
          device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate embeddings [N, D], teacher logits [N, C]) of every image of ds, via a hook on the head."""
    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []

    def grab(_m: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        if inp[0].dim() != 2:
            raise UserError(f"the teacher's head reads a {inp[0].dim()}-D input; explain needs pooled [B, D] "
                            "embeddings", key="RUN_DIR")
        feats.append(inp[0].detach().float().cpu())

    model.to(device).eval()
    handle = head.register_forward_pre_hook(grab)
    try:
        with torch.inference_mode():
            for x, _ in DataLoader(ds, batch_size=batch_size, shuffle=False):
                logits.append(model(x.to(device)).float().cpu())
    finally:
        handle.remove()
    return torch.cat(feats).numpy().astype(np.float64), torch.cat(logits).numpy()


@dataclass
class Features:
    """PCA of the teacher's embeddings, and the teacher's head folded onto the components: logits = z·A + c."""

    pca: Any
    a: np.ndarray
    c: np.ndarray

    def label(self, z: np.ndarray) -> np.ndarray:
        """The teacher's class for PCA coordinates z (its head on their reconstruction)."""
        return (z @ self.a + self.c).argmax(1)

    def names(self, class_names: list[str]) -> list[str]:
        """'PC1 (+cat −truck)': the classes whose logit rises and falls most along each component."""
        return [f"PC{j + 1} (+{class_names[int(row.argmax())]} −{class_names[int(row.argmin())]})"
                for j, row in enumerate(self.a)]


def fit_features(emb: np.ndarray, head: nn.Linear, components: int, seed: int) -> Features:
    from sklearn.decomposition import PCA

    pca = PCA(components, random_state=seed).fit(emb)
    w = head.weight.detach().double().cpu().numpy()
    b = head.bias.detach().double().cpu().numpy() if head.bias is not None else np.zeros(w.shape[0])
    return Features(pca, pca.components_ @ w.T, pca.mean_ @ w.T + b)
