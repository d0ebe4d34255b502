"""Distillation: the Distiller and its methods, one file each, registered by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import importlib
import pkgutil

from .base import Distiller, Outputs, Term
from .registry import METHODS

# A method is a new file in this package: importing every module registers them all.
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_m.name}")

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..recipe import DistillConfig


def build_terms(
    cfg: DistillConfig, student: nn.Module, teacher: nn.Module, example: torch.Tensor | None = None
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


__all__ = ["METHODS", "Distiller", "Outputs", "Term", "build_terms"]
