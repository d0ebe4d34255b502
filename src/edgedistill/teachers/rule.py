"""The one answer to "is the teacher trained here?", read from the recipe alone.

Used by the pipeline (train or use as is), the memory estimate, the teacher lock of parallel runs and the search's
shared teacher, so they never disagree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..recipe import Recipe


def trains_teacher(recipe: Recipe) -> bool:
    """A single teacher without weights is trained here, and a probed one (its head); several teachers
    (teachers.models), zero-shot ones (hf-clip:), file: models and given weights are used as they are; a scheme
    without a teacher trains none."""
    from ..distill import SCHEMES

    tc = recipe.teacher
    if recipe.teachers.models or tc.model.startswith("hf-clip:"):
        return False
    if not SCHEMES.get(recipe.distill.scheme).needs_teacher(recipe):
        return False
    return tc.probe or (tc.weights is None and not tc.model.startswith("file:"))
