"""Input perturbations for the fidelity audit, applied to pixels in [0, 1] before normalization.

The eval transform ends in ToDtype(scale=True) then Normalize(mean, std), so x·std + mean gives back the
exact [0, 1] pixels the model's preprocessing produced; each perturbation works on those and the result is
normalized again. Labels are never touched: a perturbation maps images to images.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ..errors import UserError


def _noise(px: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Additive Gaussian noise of std `sigma` (pixels in [0, 1]), seeded so every model sees the same noise."""
    g = torch.Generator().manual_seed(seed)
    return (px + sigma * torch.randn(px.shape, generator=g).to(px)).clamp(0, 1)


def _blur(px: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """Gaussian blur of std `sigma` pixels; the kernel spans ±3σ (odd side), at most 2·side − 1 so its reflect
    padding fits inside a small image."""
    k = min(2 * math.ceil(3 * sigma) + 1, 2 * min(px.shape[-2:]) - 1)
    return TF.gaussian_blur(px, [k, k], [sigma, sigma])


def _jpeg(px: torch.Tensor, quality: float, seed: int) -> torch.Tensor:
    """Encode each image as a JPEG of this quality with PIL and decode it: real compression artefacts."""
    out = []
    for img in (px.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=max(1, round(quality)))
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(px).div(255)


def _brightness(px: torch.Tensor, factor: float, seed: int) -> torch.Tensor:
    """Pixels scaled by `factor` (< 1 darker, > 1 brighter), clipped to [0, 1]."""
    return TF.adjust_brightness(px, factor)


def _contrast(px: torch.Tensor, factor: float, seed: int) -> torch.Tensor:
    """Pixels blended towards each image's mean grey by 1 − `factor` (torchvision's adjust_contrast)."""
    return TF.adjust_contrast(px, factor)


Apply = Callable[[torch.Tensor, float, int], torch.Tensor]
# name → (function, default severities mild→strong, allowed (lo, hi), what the level means)
PERTURBATIONS: dict[str, tuple[Apply | None, tuple[float, ...], tuple[float, float], str]] = {
    "noise": (_noise, (0.04, 0.08, 0.16), (0.0, 1.0), "std of Gaussian noise, pixels in [0, 1]"),
    "blur": (_blur, (0.5, 1.0, 1.5), (0.0, 5.0), "std of the Gaussian blur kernel, pixels"),
    "jpeg": (_jpeg, (50, 20, 8), (0, 95), "JPEG quality (lower is stronger)"),
    "brightness": (_brightness, (0.8, 0.6, 0.4), (0.0, 3.0), "brightness factor (1 = unchanged)"),
    "contrast": (_contrast, (0.7, 0.5, 0.3), (0.0, 3.0), "contrast factor (1 = unchanged)"),
    "fgsm": (None, (1 / 255, 2 / 255, 4 / 255), (0.0, 0.25), "FGSM step ε on the teacher, pixels in [0, 1]"),
}


def parse_levels(names: str | None, levels: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """--perturb a,b and --levels name=v1,v2 → {name: severities}; unknown names or values out of range: exit 2."""
    chosen = list(PERTURBATIONS) if names is None else [n.strip() for n in names.split(",") if n.strip()]
    allowed = ", ".join(PERTURBATIONS)
    for n in chosen:
        if n not in PERTURBATIONS:
            raise UserError(f"unknown perturbation {n!r}; allowed: {allowed}", key="--perturb")
    out = {n: PERTURBATIONS[n][1] for n in chosen}
    for item in levels:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in PERTURBATIONS:
            raise UserError(f"{item!r} is not NAME=V1,V2 with NAME one of {allowed}", key="--levels")
        if name not in out:
            raise UserError(f"{item!r} sets severities of {name}, which --perturb {names} leaves out; allowed: "
                            f"--levels for {', '.join(out)}, or add {name} to --perturb", key="--levels")
        lo, hi = PERTURBATIONS[name][2]
        try:
            vals = tuple(float(v) for v in values.split(",") if v.strip())
        except ValueError:
            raise UserError(f"{item!r}: severities must be numbers", key="--levels") from None
        bad = [v for v in vals if not (lo < v <= hi) or not math.isfinite(v)]
        if not vals or bad or len(vals) > 5:
            raise UserError(f"{name} severities {values!r} out of range; allowed: 1 to 5 values in ({lo:g}, {hi:g}] "
                            f"({PERTURBATIONS[name][3]})", key="--levels")
        out[name] = vals
    return out


def perturb(name: str, px: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    """Apply perturbation `name` at `level` to pixels [B, 3, H, W] in [0, 1] (fgsm needs `fgsm_pixels`)."""
    fn = PERTURBATIONS[name][0]
    if fn is None:
        raise ValueError(f"{name} needs a model: use fgsm_pixels")
    return fn(px, level, seed)


def fgsm_pixels(model: nn.Module, px: torch.Tensor, labels: torch.Tensor, eps: float,
                normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One signed-gradient step of size eps on the model's cross-entropy, in pixel space (Goodfellow et al., 2015)."""
    model.eval()
    return fgsm_step(lambda x: F.cross_entropy(model(x), labels.to(px.device)), px, eps, normalize)


def fgsm_step(loss_of: Callable[[torch.Tensor], torch.Tensor], px: torch.Tensor, eps: float,
              normalize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """One signed-gradient step of size eps on any scalar loss of the normalized input, in pixel space: a task's
    own loss (a detector's training losses, a segmenter's per-pixel cross-entropy)."""
    x = px.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(normalize(x)), x)
    return (px + eps * grad.sign()).clamp(0, 1).detach()


class Pixels:
    """Between normalized model inputs and [0, 1] pixels, for the data's mean and std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.std.to(x) + self.mean.to(x)).clamp(0, 1)

    def normalize(self, px: torch.Tensor) -> torch.Tensor:
        return (px - self.mean.to(px)) / self.std.to(px)
