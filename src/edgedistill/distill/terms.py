"""Recipe terms → Term objects: the one place that turns `distill.terms` into losses to weigh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Term
from .registry import METHODS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..recipe import DistillConfig


def build_terms(
    cfg: DistillConfig, student: nn.Module, teacher: nn.Module | None, example: torch.Tensor | None = None
) -> dict[str, tuple[float, Term]]:
    """Recipe terms → {unique name: (weight, Term)}; a method used twice gets name, name_2, …"""
    terms: dict[str, tuple[float, Term]] = {}
    for tc in cfg.terms:
        cls = METHODS.get(tc.name, key="distill.terms")
        name, k = tc.name, 2
        while name in terms:
            name, k = f"{tc.name}_{k}", k + 1
        terms[name] = (tc.weight, cls(cls.Params(**tc.params), student, teacher, example))
    return terms


def terms_need_teacher(cfg: DistillConfig) -> bool:
    """Whether any recipe term needs a teacher model (Tf-KD_reg, for one, makes its own targets)."""
    return any(METHODS.get(t.name).needs_teacher for t in cfg.terms)
