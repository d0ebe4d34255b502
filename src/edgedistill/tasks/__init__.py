"""The task layer: a recipe's `task:` picks the pipeline that runs it.

classification is the spine in pipeline.py; every other task registers its own run here (segmentation:
tasks/segmentation.py), on the same data/models/distill/engine/evaluate/report parts and their registries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TaskChain:
    """What compress, deploy and eval do for a task other than classification (whose chain is the spine's).

    recipe(base, overrides, meta): the command's recipe; compress(ckpt, meta, run_dir, recipe, out, console
    [, resume=True] where `resumable`); deploy_inputs(recipe, meta, model, opts) → held-out images, calibration
    and selection images, and the task's matrix settings; evaluate(ckpt, meta, recipe, split, json_out, console);
    audit(run_dir, recipe, metrics, device) → the task's side of `edgedistill audit` (evaluate/audit_spec.py).
    """

    recipe: Callable[..., Recipe]
    compress: Callable[..., dict[str, Any]]
    deploy_inputs: Callable[..., tuple[Any, Any, Any, dict[str, Any]]]
    evaluate: Callable[..., dict[str, Any]]
    audit: Callable[..., Any]
    resumable: bool = False  # compress --resume reloads its finished stages


CHAINS: Registry[TaskChain] = Registry("task chain")


def _seg_recipe(base: dict[str, Any], overrides: list[str], meta: dict[str, Any]) -> Recipe:
    from .chain_data import task_recipe

    spec = {"model": str(meta["model"]), "weights": None}  # a model file names no recipe: its own model stands in
    return task_recipe("segmentation", {"segmentation": meta.get("segmentation") or {}, "student": spec,
                                        "teacher": spec, "distill": {"terms": [{"name": "pixel_kd"}]}, **base},
                       overrides)


def _seg_compress(*a: Any, **kw: Any) -> dict[str, Any]:
    from .seg_compress import compress_seg

    return compress_seg(*a, **kw)


def _seg_deploy_inputs(*a: Any, **kw: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    from .seg_deploy import seg_deploy_inputs

    return seg_deploy_inputs(*a, **kw)


def _seg_evaluate(*a: Any, **kw: Any) -> dict[str, Any]:
    from .seg_deploy import seg_evaluate

    return seg_evaluate(*a, **kw)


def _seg_audit(*a: Any, **kw: Any) -> Any:
    from .seg_audit import seg_audit

    return seg_audit(*a, **kw)


CHAINS.register("segmentation", description="prune (Torch-Pruning), ONNX export, int8 gated on mIoU drop and "
                "per-pixel agreement; deploy matrix and eval on mIoU; audit on mIoU and per-pixel agreement under perturbations")(
    TaskChain(_seg_recipe, _seg_compress, _seg_deploy_inputs, _seg_evaluate, _seg_audit, resumable=True))


def _det_recipe(base: dict[str, Any], overrides: list[str], meta: dict[str, Any]) -> Recipe:
    from .chain_data import task_recipe

    spec = {"model": str(meta["model"]), "weights": None}  # a model file names no recipe: its own model stands in
    return task_recipe("detection", {"detection": meta.get("detection") or {}, "student": spec, "teacher": spec,
                                     "distill": {"terms": [{"name": "pkd"}]}, **base}, overrides)


def _det_compress(*a: Any, **kw: Any) -> dict[str, Any]:
    from .det_compress import compress_det

    return compress_det(*a, **kw)


def _det_deploy_inputs(*a: Any, **kw: Any) -> tuple[Any, Any, Any, dict[str, Any]]:
    from .det_deploy import det_deploy_inputs

    return det_deploy_inputs(*a, **kw)


def _det_evaluate(*a: Any, **kw: Any) -> dict[str, Any]:
    from .det_deploy import det_evaluate

    return det_evaluate(*a, **kw)


def _det_audit(*a: Any, **kw: Any) -> Any:
    from .det_audit import det_audit

    return det_audit(*a, **kw)


CHAINS.register("detection", description="FCOS/RetinaNet/SSDlite: prune (Torch-Pruning), ONNX export of the head "
                "graph (NMS outside it), int8 gated on mAP drop and box agreement; deploy matrix and eval on mAP; audit "
                "on mAP and box agreement under perturbations")(
    TaskChain(_det_recipe, _det_compress, _det_deploy_inputs, _det_evaluate, _det_audit, resumable=True))


def task_chain(meta: dict[str, Any], what: str) -> TaskChain | None:
    """None for a classification model (the spine's chain); the task's chain; a task without one is refused."""
    task = meta.get("task", "classification")
    if task == "classification":
        return None
    if task not in CHAINS:
        raise UserError(f"edgedistill {what} is not yet available for task={task}; allowed: a model of task "
                        f"{', '.join(['classification', *CHAINS.names()])} (a {task} run's metrics.json and report.md "
                        "hold its evaluation)", key="task")
    return CHAINS.get(task, key="task")


__all__ = ["CHAINS", "TASKS", "TaskChain", "task_chain"]
