"""The task a recipe trains for, and the section only segmentation reads.

`task: classification` (the default) leaves every other section as it was; `task: segmentation` switches
data, models, distillation terms, metrics and the report to their dense versions (edgedistill/tasks/);
`task: detection` switches them to boxes (recipe/detection.py). Which names fit which task is checked here,
before any work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from .base import Section
from .dense import refuse_unsupported
from .detection import DET_SOURCES, check_detection

if TYPE_CHECKING:
    from .core import Recipe

MAX_SYNTHETIC_PIXELS = 100_000_000  # seg-shapes draws every scene up front: ~1.2 µs and 4 bytes a pixel
Task = Literal["classification", "segmentation", "detection"]
TASK_DESCRIPTION = ("what the models predict: classification (one label per image), segmentation (one label per "
                    "pixel, section segmentation), detection (boxes and classes, section detection)")
SEG_SOURCES = ("seg-shapes", "seg-masks", "hf-disk")  # data.source values task=segmentation reads
SEG_ONLY_SOURCES = ("seg-shapes", "seg-masks")
SEG_STAGES = ("prune", "export", "quantize")  # compress stages task=segmentation runs (tasks/seg_compress.py)


class SegmentationConfig(Section):
    """Keys read under task=segmentation (ignored otherwise)."""

    num_classes: int | None = Field(None, gt=1, le=1024, description="classes of the masks (background "
                                    "included); required for seg-masks and hf-disk, seg-shapes has 5")
    class_names: list[str] | None = Field(None, description="a name per class for the report (default: 0, 1, …)")
    ignore_index: int = Field(255, ge=0, description="mask value that is no class: no loss, no metric")
    image_dir: str = Field("images", description="seg-masks: subfolder of the images (VOC: JPEGImages)")
    mask_dir: str = Field("masks", description="seg-masks: subfolder of the masks, one PNG per image by file "
                          "stem, palette or index values (VOC: SegmentationClass)")
    image_column: str = Field("image", description="hf-disk: the image column")
    mask_column: str = Field("mask", description="hf-disk: the mask column (an image of class indices)")
    synthetic_images: int = Field(480, gt=1, le=100_000, description="seg-shapes: images generated "
                                  "(scikit-image random_shapes), split by data.val_ratio")
    boundary_tolerance: int = Field(2, ge=0, le=64, description="boundary F1: pixels a boundary may be off by")
    int8_max_miou_drop: float = Field(1.0, ge=0, le=100, description="int8 gate of compress and deploy: mIoU "
                                      "points the int8 file may lose against the fp32 file on the held-out split")


def _allowed_methods(task: str) -> list[str]:
    from ..distill import METHODS

    return [e.name for e in METHODS if task in e.meta.get("tasks", ("classification",))]


def _model_fits(spec: str, task: str) -> bool:
    return spec.startswith("seg:") == (task == "segmentation") and spec.startswith("det:") == (task == "detection")


def check_task(r: Recipe) -> None:
    """Every name fits the task: data source, model specs and distillation terms (ValueError otherwise)."""
    task = r.task
    methods = _allowed_methods(task)
    for i, t in enumerate(r.distill.terms):
        if t.name not in methods:
            raise ValueError(f"distill.terms.{i}: method {t.name!r} does not apply to task={task}; allowed: "
                             f"{', '.join(methods)}")
    roles: list[tuple[str, str]] = [("student.model", r.student.model)]
    if task == "classification":
        roles += [("teacher.model", r.teacher.model), *((f"online.peers.{i}", p) for i, p in enumerate(r.online.peers))]
        roles += [(f"teachers.models.{i}.model", m.model) for i, m in enumerate(r.teachers.models)]
    else:
        roles.append(("teacher.model", r.teacher.model))
    for key, spec in roles:
        if not _model_fits(spec, task):
            allowed = {"segmentation": "a seg: model (see `edgedistill list models --source seg`)",
                       "detection": "a det: model (see `edgedistill list models --source det`)"}.get(
                task, "a classification model (seg: models need task: segmentation, det: models task: detection)")
            raise ValueError(f"{key}={spec!r} does not fit task={task}; allowed: {allowed}")
    if task == "detection":
        return check_detection(r)
    if task == "classification":
        if r.data.source in DET_SOURCES:
            raise ValueError(f"data.source={r.data.source!r} is a detection source; allowed: task: detection, "
                             "or a classification source")
        if r.data.source in SEG_ONLY_SOURCES:
            raise ValueError(f"data.source={r.data.source!r} is a segmentation source; allowed: task: segmentation, "
                             "or a classification source")
        return
    _check_segmentation(r)


def _check_segmentation(r: Recipe) -> None:
    if r.data.source not in SEG_SOURCES:
        raise ValueError(f"data.source={r.data.source!r} does not fit task=segmentation; allowed: "
                         f"{', '.join(SEG_SOURCES)}")
    if r.data.source != "seg-shapes" and r.segmentation.num_classes is None:
        raise ValueError(f"segmentation.num_classes is required for data.source={r.data.source}; allowed: the "
                         "number of classes of the masks (background included)")
    pixels = r.segmentation.synthetic_images * r.data.image_size ** 2
    if r.data.source == "seg-shapes" and pixels > MAX_SYNTHETIC_PIXELS:
        raise ValueError(f"segmentation.synthetic_images={r.segmentation.synthetic_images:,} scenes of "
                         f"data.image_size={r.data.image_size} px are {pixels:,} pixels; allowed: at most "
                         f"{MAX_SYNTHETIC_PIXELS:,} (drawn in memory before training: about 2 min and 0.4 GB); "
                         "fewer scenes, a smaller size, or real data (data.source=seg-masks)")
    names = r.segmentation.class_names
    n = r.segmentation.num_classes or (5 if r.data.source == "seg-shapes" else None)
    if names is not None and len(names) != n:
        raise ValueError(f"segmentation.class_names has {len(names)} names for {n} classes; allowed: {n} names")
    refuse_unsupported(r, "segmentation", SEG_STAGES)


__all__ = ["SEG_SOURCES", "SEG_STAGES", "SegmentationConfig", "TASK_DESCRIPTION", "Task", "check_task"]
