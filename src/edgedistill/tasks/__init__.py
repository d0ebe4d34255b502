"""The task layer: a recipe's `task:` picks the pipeline that runs it.

classification is the spine in pipeline.py; every other task registers its own run here (segmentation:
tasks/segmentation.py), on the same data/models/distill/engine/evaluate/report parts and their registries.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from rich.console import Console

    from ..recipe import Recipe

TaskRun = Callable[["Recipe", "Console"], Path]
TASKS: Registry[TaskRun] = Registry("task")


@TASKS.register("segmentation", description="one label per pixel: mIoU, boundary F1, teacher agreement")
def _segmentation(recipe: Recipe, console: Console) -> Path:
    from .segmentation import run_segmentation

    return run_segmentation(recipe, console)


@TASKS.register("detection", description="boxes and classes: COCO mAP, mAP50, mAP by size, teacher agreement")
def _detection(recipe: Recipe, console: Console) -> Path:
    from .detection import run_detection

    return run_detection(recipe, console)


def check_meta_task(meta: dict[str, Any], what: str) -> None:
    """Commands that read a checkpoint (compress, deploy, eval) refuse a task they do not handle yet."""
    task = meta.get("task", "classification")
    if task != "classification":
        raise UserError(f"edgedistill {what} is not yet available for task={task}; allowed: a classification "
                        "model (a segmentation or detection run's metrics.json and report.md hold its evaluation)",
                        key="task")


__all__ = ["TASKS", "check_meta_task"]
