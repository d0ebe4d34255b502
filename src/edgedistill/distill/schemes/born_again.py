"""Born-again networks (Furlanello et al. ICML 2018): generation k teaches generation k+1, same architecture.

Generation 1's teacher is, as in the paper, the student trained alone (born_again.first=alone), or the
recipe's teacher (first=teacher). With generations=1 and first=alone this is Tf-KD_self (Yuan et al. CVPR
2020): a pretrained student teaches itself.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ..base import Distiller
from ..terms import build_terms
from .base import SCHEMES, Scheme, SchemeJob, SchemeResult

if TYPE_CHECKING:
    from ...recipe import Recipe


class BornAgain(Scheme):
    """gen1 … genN, each trained with CE + distill.terms against the previous one (frozen), each saved."""

    stage = "born_again"

    def needs_teacher(self, recipe: Recipe) -> bool:
        return recipe.born_again.first == "teacher"

    def run(self, job: SchemeJob) -> SchemeResult:
        r, bc = job.recipe, job.recipe.born_again
        spec = r.student.model
        models = {}
        if bc.first == "teacher":
            teacher = job.teacher
        else:
            teacher = job.student_alone()
            models["student_alone"] = (spec, teacher)
        for k in range(1, bc.generations + 1):
            # A copy: freezing the teacher must not freeze the model reported (and saved) as the previous one.
            teacher = copy.deepcopy(teacher)
            student = job.new_student()  # every generation starts from the same weights as the student alone
            terms = build_terms(r.distill, student, teacher, job.example)
            module = Distiller(student, teacher, terms, ce_weight=r.distill.ce_weight,
                               label_smoothing=r.train.label_smoothing)
            name = f"gen{k}"
            teacher = job.train(name, module, {name: (spec, student)})[name]
            models[name] = (spec, teacher)
        return SchemeResult(models, f"gen{bc.generations}")


SCHEMES.register("born_again", description="generation k teaches generation k+1 (born_again.generations)")(BornAgain())
