"""What the dense tasks (segmentation, detection) do not do yet, refused by name: one list for both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Recipe


def refuse_unsupported(r: Recipe, task: str, stages: Sequence[str], extra: dict[str, Any] | None = None) -> None:
    """ValueError naming the first classification-only key set in a dense-task recipe, or a compress stage the
    task has no implementation of; `extra`: the task's own (value, allowed) pairs."""
    unsupported: dict[str, Any] = {
        "distill.scheme": (r.distill.scheme, "offline"), "teachers.models": (bool(r.teachers.models), False),
        "distill.teacher_cache": (r.distill.teacher_cache, False),
        "distill.function_matching": (r.distill.function_matching, False),
        "data.device_resident": (r.data.device_resident, False), "data.unlabeled": (r.data.unlabeled, None),
        "teacher.probe": (r.teacher.probe, False), **(extra or {}),
    }
    for key, (value, ok) in unsupported.items():
        if value != ok:
            raise ValueError(f"{key} is not yet available for task={task} (got {value!r}); allowed: {ok!r}")
    for i, stage in enumerate(r.compress.stages):
        if stage.name not in stages:
            raise ValueError(f"compress.stages.{i}: stage {stage.name!r} is not available for task={task}; "
                             f"allowed: {', '.join(stages)}")
