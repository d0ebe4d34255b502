"""task=segmentation: recipe → mask data and seg: models → teacher, student alone, distilled student → mIoU,
boundary F1 and teacher agreement → metrics.json and report.md. The engine (fit) and the Distiller are the
classification ones; only data, models, the cross-entropy, the terms and the metrics are dense. The run's
structure is tasks/dense_run.py's; SegTask says what is segmentation's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from ..recipe import Recipe
from ..report.segmentation import print_seg_summary, write_seg_report
from .dense_run import DenseRun, DenseTask, build_model, compare, run_dense
from .seg_data import build_seg_data


class SegTask(DenseTask):
    """Segmentation's data, SegDistiller (cross-entropy with ignore_index), mIoU and report."""

    name, monitor = "segmentation", "miou"
    write_report, print_summary = staticmethod(write_seg_report), staticmethod(print_seg_summary)

    def check_stages(self, r: Recipe) -> None:
        from .seg_compress import check_seg_stages

        check_seg_stages(r)

    def build_data(self, r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]:
        return build_seg_data(r)

    def distiller(self, r: Recipe, student: nn.Module, teacher: nn.Module | None = None, terms: Any = None
                  ) -> nn.Module:
        from ..distill.dense import SegDistiller

        s = r.segmentation
        if teacher is None:
            return SegDistiller(student, ignore_index=s.ignore_index, label_smoothing=r.train.label_smoothing)
        return SegDistiller(student, teacher, terms, ce_weight=r.distill.ce_weight, ignore_index=s.ignore_index,
                            label_smoothing=r.train.label_smoothing)

    def loader(self, ds: Dataset, batch: int, train: bool, workers: int, seed: int) -> Any:
        from ..data.seg_transforms import seg_loader

        return seg_loader(ds, batch, train=train, workers=workers, seed=seed)

    def quick(self, run: DenseRun, student: nn.Module) -> Callable[[], float]:
        from ..evaluate.segmentation import quick_miou

        k, ignore = len(run.names), run.r.segmentation.ignore_index
        return lambda: quick_miou(student, run.val, run.device, k, ignore)

    def meta(self, r: Recipe) -> dict[str, Any]:
        d = r.data
        return {"ignore_index": r.segmentation.ignore_index, "image_size": d.image_size, "mean": list(d.mean),
                "std": list(d.std)}

    def evaluate(self, run: DenseRun, nets: dict[str, nn.Module]) -> dict[str, dict[str, Any]]:
        from ..evaluate.predictions import held_out_id
        from ..evaluate.segmentation import PER_IMAGE, save_per_image, seg_evaluate

        r = run.r
        scores = seg_evaluate(nets, run.held, run.device, len(run.names), r.segmentation.ignore_index,
                              r.segmentation.boundary_tolerance)
        per_image = {n: s.pop("per_image_iou") for n, s in scores.items()}
        save_per_image(run.run_dir / PER_IMAGE, per_image, held_out_id(r.data.model_dump(mode="json"), r.eval.split))
        return scores

    def head(self, r: Recipe, entries: dict[str, Any], names: list[str]) -> dict[str, Any]:
        return {"class_names": names, "ignore_index": r.segmentation.ignore_index}

    def compare(self, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return compare(models, "miou")

    def compress(self, ckpt: Path, meta: dict[str, Any], run_dir: Path, r: Recipe, out: Path,
                 console: Console) -> dict[str, Any]:
        from .seg_compress import compress_seg

        return compress_seg(ckpt, meta, run_dir, r, out, console)


SEG = SegTask()


def build_seg_model(spec: str, k: int, weights: str | None, key: str) -> nn.Module:
    """A seg: model with `k` classes; a weights file (safetensors or .pth, weights_only) is loaded strictly."""
    return build_model(spec, k, weights, key)


def run_segmentation(r: Recipe, console: Console) -> Path:
    """Every stage of a task=segmentation recipe; returns the run folder."""
    return run_dense(SEG, r, console)


__all__ = ["SEG", "SegTask", "build_seg_data", "build_seg_model", "run_segmentation"]  # build_seg_data: seg_data.py
