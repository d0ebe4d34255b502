"""`edgedistill deploy` and `edgedistill eval` of a task=detection model.

deploy: every runtime runs the head graph (tasks/det_graph.py; NMS outside it), and each row's raw outputs are
decoded by the model's own torchvision postprocess: its figures are COCO mAP and its drop from the PyTorch
student, and its agreement is box agreement with PyTorch (boxes matched one to one, IoU ≥ 0.5, same class); an
int8 row losing more than detection.int8_max_map_drop fails its gate. eval: the held-out COCO numbers of a
detection model file (any det: model, PyTorch end to end).
"""

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
from .det_chain import box_agreement, det_data, score, stack, torch_predict, train_images
from .det_graph import DetDecoder, HeadGraph, check_exportable

COLUMNS = (("mAP", "map"), ("mAP drop", "map_drop"))
EVAL_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar100")


def det_deploy_inputs(r: Any, meta: dict[str, Any], model: nn.Module, opts: dict[str, Any]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Held-out images, calibration and selection images (train split), and the matrix settings of the task:
    the head graph every runtime builds from, its row score and the int8 selection's box agreement."""
    if opts.get("image_dir"):
        raise UserError("--image-dir is not available for task=detection: mAP needs the boxes; allowed: --split "
                        "val or test of the run's data", key="--image-dir")
    check_exportable(model)
    size = r.data.image_size
    model.set_image_size(size)  # type: ignore[operator]
    train, evals, _ = det_data(r, meta)
    if opts["split"] not in evals:
        raise UserError(f"this dataset has no {opts['split']} split; allowed: {', '.join(evals)}", key="--split")
    images, targets = stack(evals[opts["split"]], opts["images"])
    calib = train_images(train, 0, opts["calib"])
    select = train_images(train, opts["calib"], opts["calib"])
    d, limit, decoder = r.detection, r.detection.int8_max_map_drop, DetDecoder(model, size)
    base_dets = torch_predict(model)(images)
    base = score(base_dets, targets, d.score_threshold, d.agreement_score)

    def row_score(raw: np.ndarray, precision: str) -> dict[str, Any]:
        s = score(decoder(raw), targets, d.score_threshold, d.agreement_score, ref=base_dets)
        agree = 1.0 if s["agreement"] is None else s["agreement"] / 100
        out: dict[str, Any] = {"map": s["map"], "map_drop": base["map"] - s["map"], "agreement": agree}
        if precision == "int8" and out["map_drop"] > limit:
            out["gate_reason"] = (f"mAP drop {out['map_drop']:.2f} > {limit:g} points from PyTorch's "
                                  f"{base['map']:.2f} (detection.int8_max_map_drop)")
        return out

    settings = decoder.settings()
    return images, calib, select, {
        "model": HeadGraph(model).eval(), "meta": {"mean": [0.0] * 3, "std": [1.0] * 3, "image_size": size},
        "int8_agreement": box_agreement(decoder, d.agreement_score),
        "matrix": {"score": row_score, "columns": COLUMNS, "agreement": "box"},
        "onnx_meta": {"task": "detection", "input": "N×3×S×S RGB in 0..1 (the graph normalizes)",
                      "output": settings["outputs"], "nms": settings["nms"], "resize": settings["resize"],
                      "decode": json.dumps(settings)},
        "result": {"task": "detection", "pytorch_map": base["map"], "int8_max_map_drop": limit,
                   "nms": settings["nms"], "decode": settings}}


def det_evaluate(ckpt: Path, meta: dict[str, Any], r: Any, split: str, json_out: Path | None,
                 console: Console) -> dict[str, Any]:
    """COCO mAP, mAP50, mAP75, mAP by size and mAR100 of a detection checkpoint on a held-out split."""
    from ..compress.prune import load_pruned

    _, evals, _ = det_data(r, meta)
    if split not in evals:
        raise UserError(f"this dataset has no {split} split; allowed: {', '.join(evals)}", key="--split")
    images, targets = stack(evals[split])
    model, _ = load_pruned(ckpt)
    model.set_image_size(r.data.image_size)  # type: ignore[operator]
    s = score(torch_predict(model)(images), targets, r.detection.score_threshold, r.detection.agreement_score)
    metrics = {k: s[k] for k in (*EVAL_KEYS, "boxes")}
    console.print(f"{ckpt} — {split} split, {len(images)} images, {s['boxes']} boxes (detection)",
                  markup=False, highlight=False)  # a line: a title would wrap to the narrow table
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in EVAL_KEYS:
        table.add_row(k, "–" if metrics[k] is None else f"{metrics[k]:.2f}")
    console.print(table)
    if json_out:
        atomic_write_text(json_out, json.dumps({"checkpoint": str(ckpt), "split": split, "task": "detection",
                                                "images": len(images), **metrics}, indent=2))
    return metrics


__all__ = ["det_deploy_inputs", "det_evaluate"]
