"""What compress, deploy and eval share for a task=segmentation model: its recipe and data, held-out images with
their masks, calibration images, scores of any predictor (PyTorch or ONNX) and the int8 gate.

Scores are the run's own (evaluate/segmentation.py: mIoU over the split's confusion matrix, pixel accuracy,
boundary F1) plus the per-pixel agreement with a reference prediction (the stage's input, or the fp32 model):
the segmentation form of classification's top-1 agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluate.segmentation import SegScores, per_image_iou
from .chain_data import checked, items

Predict = Callable[[np.ndarray], np.ndarray]  # NCHW images → N×K×H×W logits


def seg_data(r: Any, meta: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str]]:
    """Train set, held-out sets and class names; the classes must be the model's."""
    from .seg_data import build_seg_data

    return checked(build_seg_data(r), meta)


def stack(ds: Any, n: int | None = None, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (float32 NCHW) and masks (int64 N×H×W) start..start+n of a SegDataset, as numpy."""
    pairs = items(ds, n, start)
    return (torch.stack([p[0] for p in pairs]).numpy().astype(np.float32),
            torch.stack([p[1] for p in pairs]).numpy().astype(np.int64))


def train_images(r: Any, train: Any, start: int, n: int) -> np.ndarray:
    """Train images with eval preprocessing (no flips), for calibration or the int8 selection: never the
    held-out split the gate scores."""
    from ..data.seg_transforms import SegDataset, joint_transform

    plain = SegDataset(train.pairs, joint_transform(r, train=False))
    return stack(plain, n, start % max(1, len(plain)))[0]


def torch_predict(model: nn.Module, batch: int = 32) -> Predict:
    m = model.cpu().float().eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([m(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)]).numpy()
    return run


def onnx_predict(path: Path, threads: int | None = None) -> Predict:
    from ..deploy.onnx_runtime import ort_predict, ort_session

    session = ort_session(path, threads)
    return lambda x: ort_predict(session, x, batch_size=32)


def score(pred: np.ndarray, masks: np.ndarray, num_classes: int, ignore_index: int, tolerance: int = 2,
          ref: np.ndarray | None = None) -> dict[str, Any]:
    """mIoU, pixel accuracy, per-class IoU, boundary F1 of argmax maps `pred` (N×H×W); with `ref`, the share of
    labelled pixels where pred equals ref (`agreement`, %) and per-image IoU for paired tests."""
    s = SegScores(num_classes, ignore_index, tolerance)
    p, t = torch.from_numpy(np.asarray(pred, np.int64)), torch.from_numpy(masks)
    s.update(p, t, torch.from_numpy(np.asarray(ref, np.int64)) if ref is not None else None)
    out = s.compute()
    out["agreement"] = out.pop("teacher_agreement", None)
    out["per_image_iou"] = per_image_iou(p, t, num_classes, ignore_index)
    return out


def int8_gate(fp32: dict[str, Any], int8: dict[str, Any], max_drop: float, min_agreement: float) -> dict[str, Any]:
    """The int8 file keeps the fp32 file's mIoU within `max_drop` points and agrees on ≥ min_agreement of the
    labelled pixels (both on the held-out split); `reasons` says what failed."""
    drop = float(fp32["miou"] - int8["miou"])
    agree = int8.get("agreement") or 0.0
    reasons = []
    if drop > max_drop:
        reasons.append(f"mIoU drop {drop:.2f} > {max_drop:g} points (segmentation.int8_max_miou_drop)")
    if agree < 100 * min_agreement:
        reasons.append(f"per-pixel agreement with fp32 {agree:.1f}% < {100 * min_agreement:.1f}% "
                       "(compress.min_int8_agreement)")
    return {"miou_fp32": fp32["miou"], "miou_int8": int8["miou"], "miou_drop": drop, "max_miou_drop": max_drop,
            "agreement": agree, "min_agreement": 100 * min_agreement, "passed": not reasons, "reasons": reasons}


__all__ = ["int8_gate", "onnx_predict", "score", "seg_data", "stack",
           "torch_predict", "train_images"]
