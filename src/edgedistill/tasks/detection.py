"""task=detection: recipe → box data and det: models → teacher, student alone, distilled student → COCO mAP,
mAP50, mAP small/medium/large and teacher agreement → metrics.json and report.md. The engine (fit) is the
classification one; data, models, the detection losses (torchvision's own), the terms and the metrics are
the detection ones. The run's structure is tasks/dense_run.py's; DetTask says what is detection's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from ..recipe import Recipe
from ..report.detection import print_det_summary, write_det_report
from .dense_run import DenseRun, DenseTask, build_model, compare, run_dense
from .det_data import build_det_data


class DetTask(DenseTask):
    """Detection's data, DetDistiller (torchvision's detection losses), COCO mAP, input size and report."""

    name, monitor = "detection", "map"
    write_report, print_summary = staticmethod(write_det_report), staticmethod(print_det_summary)

    def check_stages(self, r: Recipe) -> None:
        from .det_compress import check_det_stages

        check_det_stages(r)

    def build_data(self, r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]:
        return build_det_data(r)

    def prepare(self, r: Recipe, model: nn.Module) -> nn.Module:
        from .det_graph import check_input_size

        check_input_size(model, r.data.image_size)  # teacher or student: an SSDlite too small to learn, before training
        return _sized(model, r.data.image_size)

    def check_student(self, r: Recipe, student: nn.Module) -> None:
        from .det_graph import check_exportable

        check_exportable(student)  # Faster R-CNN: refused before training, not after

    def distiller(self, r: Recipe, student: nn.Module, teacher: nn.Module | None = None, terms: Any = None
                  ) -> nn.Module:
        from ..distill.det_base import DetDistiller

        if teacher is None:
            return DetDistiller(student)
        return DetDistiller(student, teacher, terms, det_weight=r.distill.ce_weight)

    def loader(self, ds: Dataset, batch: int, train: bool, workers: int, seed: int) -> Any:
        from ..data.det_base import det_loader

        return det_loader(ds, batch, train=train, workers=workers, seed=seed)

    def quick(self, run: DenseRun, student: nn.Module) -> Callable[[], float]:
        from ..evaluate.detection import quick_map

        min_score = run.r.detection.score_threshold
        return lambda: quick_map(student, run.val, run.device, min_score)

    def meta(self, r: Recipe) -> dict[str, Any]:
        return {"image_size": r.data.image_size}

    def evaluate(self, run: DenseRun, nets: dict[str, nn.Module]) -> dict[str, dict[str, Any]]:
        from ..evaluate.detection import det_evaluate
        from ..evaluate.per_image import PER_IMAGE, save_per_image
        from ..evaluate.predictions import held_out_id

        r = run.r
        scores = det_evaluate(nets, run.held, run.device, r.detection.score_threshold, r.detection.agreement_score,
                              per_image=True)
        per_image = {n: s.pop("per_image_map") for n, s in scores.items()}  # compare's paired unit
        save_per_image(run.run_dir / PER_IMAGE, per_image, held_out_id(r.data.model_dump(mode="json"), r.eval.split),
                       unit="map")
        return scores

    def head(self, r: Recipe, entries: dict[str, Any], names: list[str]) -> dict[str, Any]:
        return {"n_boxes": entries["student"]["boxes"], "class_names": names, "image_size": r.data.image_size}

    def compare(self, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return compare(models, "map", also=("map50",))

    def compress(self, ckpt: Path, meta: dict[str, Any], run_dir: Path, r: Recipe, out: Path,
                 console: Console) -> dict[str, Any]:
        from .det_compress import compress_det

        return compress_det(ckpt, meta, run_dir, r, out, console)


DET = DetTask()


def build_det_model(spec: str, k: int, size: int, weights: str | None, key: str) -> nn.Module:
    """A det: model for `k` classes at `size` px; a weights file (safetensors or .pth, weights_only) is loaded
    strictly."""
    return build_model(spec, k, weights, key, lambda m: _sized(m, size))


def _sized(model: nn.Module, size: int) -> nn.Module:
    model.set_image_size(size)  # type: ignore[operator]
    return model


def run_detection(r: Recipe, console: Console) -> Path:
    """Every stage of a task=detection recipe; returns the run folder."""
    return run_dense(DET, r, console)


__all__ = ["DET", "DetTask", "build_det_model", "run_detection"]
