"""`edgedistill deploy` and `edgedistill eval` of a task=segmentation model: its held-out images and masks, and the
matrix's per-row figures (mIoU and its drop from the PyTorch student; an int8 row losing more than
segmentation.int8_max_miou_drop fails its gate). Agreement in the matrix is per pixel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from torch import nn

from ..atomic import atomic_write_text
from ..errors import UserError
from .seg_chain import score, seg_data, stack, torch_predict, train_images

COLUMNS = (("mIoU", "miou"), ("mIoU drop", "miou_drop"))


def seg_deploy_inputs(r: Any, meta: dict[str, Any], model: nn.Module, opts: dict[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Held-out images, calibration and selection images (train split), and the matrix settings of the task."""
    if opts.get("image_dir"):
        raise UserError("--image-dir is not available for task=segmentation: mIoU needs the masks; allowed: "
                        "--split val or test of the run's data", key="--image-dir")
    train, evals, names = seg_data(r, meta)
    if opts["split"] not in evals:
        raise UserError(f"this dataset has no {opts['split']} split; allowed: {', '.join(evals)}", key="--split")
    images, masks = stack(evals[opts["split"]], opts["images"])
    calib = train_images(r, train, 0, opts["calib"])
    select = train_images(r, train, opts["calib"], opts["calib"])
    k, ignore, tol, limit = len(names), r.segmentation.ignore_index, r.segmentation.boundary_tolerance, \
        r.segmentation.int8_max_miou_drop
    base = score(torch_predict(model)(images).argmax(1), masks, k, ignore, tol)

    def row_score(logits: np.ndarray, precision: str) -> dict[str, Any]:
        s = score(logits.argmax(1), masks, k, ignore, tol)
        out: dict[str, Any] = {"miou": s["miou"], "miou_drop": base["miou"] - s["miou"],
                               "per_image_iou": s["per_image_iou"]}
        if precision == "int8" and out["miou_drop"] > limit:
            out["gate_reason"] = (f"mIoU drop {out['miou_drop']:.2f} > {limit:g} points from PyTorch's "
                                  f"{base['miou']:.2f} (segmentation.int8_max_miou_drop)")
        return out

    return images, calib, select, {
        "matrix": {"score": row_score, "columns": COLUMNS, "agreement": "per-pixel"},
        "onnx_meta": {"task": "segmentation", "ignore_index": str(ignore)},
        "result": {"task": "segmentation", "pytorch_miou": base["miou"], "int8_max_miou_drop": limit}}


def seg_evaluate(ckpt: Path, meta: dict[str, Any], r: Any, split: str, json_out: Path | None,
                 console: Console) -> dict[str, Any]:
    """mIoU, pixel accuracy, per-class IoU and boundary F1 of a segmentation checkpoint on a held-out split."""
    from ..compress.prune import load_pruned

    _, evals, names = seg_data(r, meta)
    if split not in evals:
        raise UserError(f"this dataset has no {split} split; allowed: {', '.join(evals)}", key="--split")
    images, masks = stack(evals[split])
    model, _ = load_pruned(ckpt)
    s = score(torch_predict(model)(images).argmax(1), masks, len(names), r.segmentation.ignore_index,
              r.segmentation.boundary_tolerance)
    metrics = {k: s[k] for k in ("miou", "pixel_acc", "boundary_f1", "per_class_iou", "pixels")}
    console.print(f"{ckpt} — {split} split, {len(images)} images (segmentation)",
                  markup=False, highlight=False)  # a line: a title would wrap to the narrow table
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in ("miou", "pixel_acc", "boundary_f1"):
        table.add_row(k, f"{metrics[k]:.2f}")
    for name, v in zip(names, metrics["per_class_iou"], strict=True):
        table.add_row(f"IoU {name}", "–" if v is None else f"{v:.2f}")
    console.print(table)
    if json_out:
        atomic_write_text(json_out, json.dumps({"checkpoint": str(ckpt), "split": split, "task": "segmentation",
                                                "images": len(images), **metrics}, indent=2))
    return metrics


__all__ = ["seg_deploy_inputs", "seg_evaluate"]
