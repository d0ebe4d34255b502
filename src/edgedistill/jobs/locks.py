"""File locks that tell a live run from a dead one, and make one process train a seed's teacher."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..filelock import flock

if TYPE_CHECKING:
    from ..recipe import Recipe


@contextmanager
def teacher_lock(recipe: Recipe) -> Iterator[None]:
    """Held through a whole run when its teacher is not trained yet, so parallel runs of the same seed wait
    for that one teacher instead of each training (and half-copying) their own."""
    from ..run.identity import teacher_key
    from ..teachers.rule import trains_teacher

    if not trains_teacher(recipe):
        yield
        return
    key = teacher_key(recipe)
    store = recipe.output.dir / "teachers"
    with flock(store / f"{key}.lock"):
        if not (store / key / "model.safetensors").exists():
            yield  # train it under the lock
            return
    yield  # trained earlier: no need to hold others up
