"""Recipe terms → Term objects: the one place that turns `distill.terms` into losses to weigh."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import UserError
from .base import Term
from .ensemble import Ensemble, MemberTerm
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
    for i, tc in enumerate(cfg.terms):
        cls = METHODS.get(tc.name, key="distill.terms")
        name, k = tc.name, 2
        while name in terms:
            name, k = f"{tc.name}_{k}", k + 1
        member = _member(teacher, tc.teacher, cls.needs_teacher, i)
        if member is None:
            terms[name] = (tc.weight, cls(cls.Params(**tc.params), student, teacher, example))
        else:
            inner = cls(cls.Params(**tc.params), student, teacher.members[member], example)  # type: ignore[union-attr]
            terms[name] = (tc.weight, MemberTerm(inner, member))
    return terms


def _member(teacher: nn.Module | None, index: int | None, needs: bool, i: int) -> int | None:
    """The member a term learns from: its `teacher:` index; required under the per_term rule."""
    key = f"distill.terms.{i}.teacher"
    if not isinstance(teacher, Ensemble):
        if index is not None:
            raise UserError(f"distill.terms.{i} names teacher {index} but the run has one teacher; allowed: "
                            "teacher: only with teachers.models", key=key)
        return None
    n = len(teacher.members)
    if index is None and teacher.rule == "per_term" and needs:
        raise UserError(f"teachers.ensemble=per_term needs each distill.terms entry to name its teacher; allowed: "
                        f"teacher: 0..{n - 1}", key=key)
    if index is not None and index >= n:
        raise UserError(f"distill.terms.{i} names teacher {index} but teachers.models has {n}; allowed: 0..{n - 1}",
                        key=key)
    return index


def terms_need_teacher(cfg: DistillConfig) -> bool:
    """Whether any recipe term needs a teacher model (Tf-KD_reg, for one, makes its own targets)."""
    return any(METHODS.get(t.name).needs_teacher for t in cfg.terms)
