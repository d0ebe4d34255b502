"""Distillation: the Distiller and its methods, one file each, registered by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import importlib
import pkgutil

from .base import Distiller, Outputs, Term
from .registry import METHODS

# A method is a new file in this package: importing every module registers them all.
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "registry", "schemes"):
        importlib.import_module(f"{__name__}.{_m.name}")

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


from .schemes import SCHEMES, Scheme, SchemeJob, SchemeResult  # noqa: E402  (schemes use build_terms)

__all__ = ["METHODS", "SCHEMES", "Distiller", "Outputs", "Scheme", "SchemeJob", "SchemeResult", "Term",
           "build_terms", "terms_need_teacher"]
