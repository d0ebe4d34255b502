"""Exclusive file locks that die with their process: a held lock means a live holder (runs, caches, builds)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
