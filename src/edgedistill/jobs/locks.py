"""File locks that tell a live run from a dead one, and make one process train a seed's teacher."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..recipe import Recipe


@contextmanager
def flock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive fcntl lock on `path` (created); yields False when not blocking and another process holds it.

    The kernel drops the lock when its process dies, so a held lock means a live run: the signal
    Optuna's journal storage lacks (it has no heartbeat).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True while some live process holds the lock on `path`."""
    if not path.exists():
        return False
    with flock(path, blocking=False) as got:
        return not got


@contextmanager
def teacher_lock(recipe: Recipe) -> Iterator[None]:
    """Held through a whole run when its teacher is not trained yet, so parallel runs of the same seed wait
    for that one teacher instead of each training (and half-copying) their own."""
    from ..distill import SCHEMES
    from ..resume import teacher_key

    tc = recipe.teacher
    if tc.weights is not None or tc.model.startswith("file:") or not SCHEMES.get(recipe.distill.scheme).needs_teacher(recipe):
        yield
        return
    key = teacher_key(recipe)
    store = recipe.output.dir / "teachers"
    with flock(store / f"{key}.lock"):
        if not (store / key / "model.safetensors").exists():
            yield  # train it under the lock
            return
    yield  # trained earlier: no need to hold others up
