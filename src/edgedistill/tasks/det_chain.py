"""What compress, deploy and eval share for a task=detection model: its recipe and data, held-out images with
their boxes, train images for calibration, detections of any predictor (PyTorch DetNet, or an ONNX head graph
plus DetDecoder) and the int8 gate.

Scores are the run's own (evaluate/detection.py: COCO mAP through torchmetrics/pycocotools) plus box agreement
with a reference (the stage's input, or the fp32 file): boxes matched one to one at IoU ≥ 0.5 with the same
class (Agreement), the detection form of classification's top-1 agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluate.detection import Agreement, ap_scores, mean_ap, scored
from .chain_data import checked, items
from .det_graph import DetDecoder

Dets = list[dict[str, torch.Tensor]]
Predict = Callable[[np.ndarray], Dets]  # NCHW images in 0..1 → one dict of boxes, labels, scores per image
Targets = list[dict[str, torch.Tensor]]


def det_data(r: Any, meta: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str]]:
    """Train set, held-out sets and class names; the classes must be the model's."""
    from .det_data import build_det_data

    return checked(build_det_data(r), meta)


def stack(ds: Any, n: int | None = None, start: int = 0) -> tuple[np.ndarray, Targets]:
    """Images (float32 NCHW in 0..1) and their boxes and labels, items start..start+n of a DetDataset."""
    got = items(ds, n, start)
    return (torch.stack([it[0] for it in got]).numpy().astype(np.float32),
            [{"boxes": it[1], "labels": it[2]} for it in got])


def train_images(train: Any, start: int, n: int) -> np.ndarray:
    """Train images without flips, for calibration or the int8 selection: never the held-out split."""
    from ..data.det_base import DetDataset

    plain = DetDataset(train.samples, train.size, False)
    return stack(plain, n, start % max(1, len(plain)))[0]


def torch_predict(model: nn.Module, batch: int = 32) -> Predict:
    """The PyTorch DetNet end to end (its own decoding and NMS)."""
    m = model.cpu().float().eval()

    def run(x: np.ndarray) -> Dets:
        out: Dets = []
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                out += [{k: v.cpu() for k, v in d.items()} for d in m(torch.from_numpy(x[i:i + batch]))]
        return out
    return run


def onnx_predict(path: Path, decoder: DetDecoder, threads: int | None = None) -> Predict:
    """An exported head graph through ONNX Runtime, then decoding and NMS in Python (DetDecoder)."""
    from ..deploy.onnx_runtime import ort_predict, ort_session

    session = ort_session(path, threads)
    return lambda x: decoder(ort_predict(session, x, batch_size=32))


def agreement(a: Dets, b: Dets, min_score: float) -> float | None:
    """Box agreement of two predictions of the same images (%; None when neither has a box ≥ min_score)."""
    agree = Agreement(min_score)
    for x, y in zip(a, b, strict=True):
        agree.update(x, y)
    return agree.compute()


def score(dets: Dets, targets: Targets, min_score: float, agreement_score: float, ref: Dets | None = None
          ) -> dict[str, Any]:
    """COCO mAP numbers (%) of `dets` on the targets; with `ref`, the box agreement with it (`agreement`, %)."""
    metric = mean_ap()
    metric.update([scored(d, min_score) for d in dets], targets)
    out: dict[str, Any] = {**ap_scores(metric), "images": len(dets), "boxes": sum(len(t["boxes"]) for t in targets)}
    out["map"] = out["map"] or 0.0
    out["agreement"] = agreement(dets, ref, agreement_score) if ref is not None else None
    return out


def box_agreement(decoder: DetDecoder, min_score: float) -> Callable[[np.ndarray, np.ndarray], float]:
    """The int8 selection's agreement for a detector: raw head outputs decoded, boxes matched (0..1; 1 when
    neither output has a box ≥ min_score: nothing disagrees)."""
    def agree(ref: np.ndarray, got: np.ndarray) -> float:
        a = agreement(decoder(got), decoder(ref), min_score)
        return 1.0 if a is None else a / 100
    return agree


def int8_gate(fp32: dict[str, Any], int8: dict[str, Any], max_drop: float, min_agreement: float) -> dict[str, Any]:
    """The int8 file keeps the fp32 file's mAP within `max_drop` points and agrees on ≥ min_agreement of the
    boxes (both on the held-out split); `reasons` says what failed."""
    drop = float(fp32["map"] - int8["map"])
    agree = int8.get("agreement")
    agree = 100.0 if agree is None else agree  # neither file found a box: they agree
    reasons = []
    if drop > max_drop:
        reasons.append(f"mAP drop {drop:.2f} > {max_drop:g} points (detection.int8_max_map_drop)")
    if agree < 100 * min_agreement:
        reasons.append(f"box agreement with fp32 {agree:.1f}% < {100 * min_agreement:.1f}% "
                       "(compress.min_int8_agreement)")
    return {"map_fp32": fp32["map"], "map_int8": int8["map"], "map_drop": drop, "max_map_drop": max_drop,
            "agreement": agree, "min_agreement": 100 * min_agreement, "passed": not reasons, "reasons": reasons}


__all__ = ["agreement", "box_agreement", "det_data", "int8_gate", "onnx_predict", "score", "stack",
           "torch_predict", "train_images"]
