"""Offline distillation: a frozen teacher teaches one student (the default scheme)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import Distiller
from ..terms import build_terms, terms_need_teacher
from .base import SCHEMES, Scheme, SchemeJob, SchemeResult

if TYPE_CHECKING:
    from ...recipe import Recipe


class Offline(Scheme):
    """Student = CE + distill.terms against the frozen teacher (no teacher when every term is teacher-free)."""

    stage = "student"

    def needs_teacher(self, recipe: Recipe) -> bool:
        return terms_need_teacher(recipe.distill)

    def run(self, job: SchemeJob) -> SchemeResult:
        r = job.recipe
        student = job.new_student()
        terms = build_terms(r.distill, student, job.teacher, job.example)
        module = Distiller(student, job.teacher, terms, ce_weight=r.distill.ce_weight,
                           label_smoothing=r.train.label_smoothing)
        trained = job.train("student", module, {"student": (r.student.model, student)})
        return SchemeResult({"student": (r.student.model, trained["student"])}, "student")


SCHEMES.register("offline", description="a frozen teacher teaches one student")(Offline())
