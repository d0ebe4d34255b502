"""Distillation: the Distiller and its methods, one file each, registered by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import kd  # noqa: F401  (registers)
from .base import Distiller, Outputs, Term
from .registry import METHODS

if TYPE_CHECKING:
    from torch import nn

    from ..recipe import DistillConfig


def build_terms(cfg: DistillConfig, student: nn.Module, teacher: nn.Module) -> dict[str, tuple[float, Term]]:
    """Recipe terms → {unique name: (weight, Term)}; a method used twice gets name, name_2, …"""
    terms: dict[str, tuple[float, Term]] = {}
    for tc in cfg.terms:
        cls = METHODS.get(tc.name, key="distill.terms")
        name, k = tc.name, 2
        while name in terms:
            name, k = f"{tc.name}_{k}", k + 1
        terms[name] = (tc.weight, cls(cls.Params(**tc.params), student, teacher))
    return terms


__all__ = ["METHODS", "Distiller", "Outputs", "Term", "build_terms"]
