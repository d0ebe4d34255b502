"""Seconds per stage of a run: one timer shared by the classification pipeline and the task runs (tasks/)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StageTimes(dict[str, float]):
    """stage → wall seconds (2 decimals); calling it runs a stage and records its time under that name."""

    def __call__(self, stage: str, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        s = time.perf_counter()
        result = fn(*a, **kw)
        self[stage] = round(time.perf_counter() - s, 2)
        return result


__all__ = ["StageTimes"]
