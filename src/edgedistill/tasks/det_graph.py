"""The exportable part of a one-stage detector (FCOS / RetinaNet / SSDlite) and the Python half that finishes it.

HeadGraph: normalized input → backbone/FPN (SSD: its feature extractor) → head, one tensor out (N×A×C: per-anchor
class logits, the 4 box regression values, and FCOS's centerness), a fixed input size, dynamic batch. Box
decoding and NMS stay outside the graph (data-dependent shapes, ops runtimes differ on): DetDecoder hands the
ONNX outputs to the model's own torchvision postprocess_detections (its box coder, score_thresh, topk,
batched_nms, nms_thresh, detections_per_img) on the anchors the model's own generator makes for that image size
(AnchorGenerator; SSD's DefaultBoxGenerator). SSD's transform resizes to a fixed size: the graph takes that size
(data.image_size, the identity resize), so the resize stays outside it, said in the metadata as NMS is.
Faster R-CNN (two stages, RoI ops between them) has no such cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError

NMS_NOTE = "outside the graph (torchvision batched_nms after the session)"
RESIZE_NOTE = "outside the graph: inputs are data.image_size squares (the model's own resize is the identity there)"
KEYS = ("cls_logits", "bbox_regression", "bbox_ctrness")


def is_ssd(model: nn.Module) -> bool:
    """An SSD / SSDlite DetNet: one anchor list over all levels, softmax scores with a background class."""
    from torchvision.models.detection.ssd import SSD

    return isinstance(getattr(model, "net", None), SSD)


def exportable(model: nn.Module) -> bool:
    """FCOS/RetinaNet (`has_head`) and SSD/SSDlite: a head with raw per-anchor outputs, one stage."""
    return bool(getattr(model, "has_head", False)) or is_ssd(model)


def check_exportable(model: nn.Module, key: str = "student.model") -> None:
    """Only one-stage detectors (a head with raw per-anchor outputs) have an exportable head graph."""
    if not exportable(model):
        raise UserError("compress/deploy of task=detection exports the head of a one-stage detector (NMS outside "
                        "the graph); a two-stage one (Faster R-CNN: RoI ops between its stages) has none; allowed: "
                        "det:fcos_*, det:retinanet_* or det:ssdlite* models", key=key)


SSD_MIN_SIZE = 64  # SSDlite's six levels at 64 px: 4, 2, 1, 1, 1, 1 cells a side; at 32 px: 2, 1, 1, 1, 1, 1


def check_input_size(model: nn.Module, size: int, key: str = "data.image_size") -> None:
    """SSDlite halves its input five times after stride 16: below 64 px it has one level finer than 1×1 and
    trains to ~0 mAP (it runs, so without this check nothing says why). FCOS/RetinaNet pad to their stride."""
    if is_ssd(model) and size < SSD_MIN_SIZE:
        import torch

        backbone, was = model.net.backbone, model.training
        with torch.no_grad():
            cells = [int(f.shape[-1]) for f in backbone.eval()(torch.zeros(1, 3, size, size)).values()]
        backbone.train(was)
        raise UserError(f"SSDlite at {size} px sees its six feature levels at {cells} cells a side: too small to "
                        f"learn; allowed: ≥ {SSD_MIN_SIZE} (128 or more learns well), or det:fcos_*/det:retinanet_*",
                        key=key)


class HeadGraph(nn.Module):
    """A DetNet's forward up to its head's raw outputs, on N×3×S×S images in 0..1 (its own normalization and
    stride padding inside, as torchvision's transform does them; SSD's size_divisible is 1: no padding),
    concatenated on the last axis."""

    def __init__(self, det: nn.Module):
        super().__init__()
        check_exportable(det)
        self.det = det
        t = det.net.transform
        self.register_buffer("mean", torch.tensor(t.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(t.image_std).view(1, 3, 1, 1), persistent=False)
        self.stride = int(t.size_divisible)
        # LiteRT int8 keeps these output convs float: its converter gives all concatenated outputs one scale
        self.float_outputs = () if is_ssd(det) else ("cls_logits", "bbox_reg", "bbox_ctrness")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        h, w = x.shape[-2:]
        pad_h, pad_w = -int(h) % self.stride, -int(w) % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        net = self.det.net
        out = net.head(list(net.backbone(x).values()))
        return torch.cat([out[k] for k in KEYS if k in out], dim=2)


class DetDecoder:
    """Raw head outputs (N×A×C, numpy or torch) → one dict per image (boxes x1y1x2y2 px, labels 0..K-1, scores),
    through the model's own postprocess_detections; anchors are made once for the input size. FCOS/RetinaNet's
    postprocess takes outputs and anchors split by level; SSD's takes them whole."""

    def __init__(self, det: nn.Module, size: int):
        check_exportable(det)
        self.net, self.offset, self.size = det.net, int(det.offset), (int(size), int(size))
        self.ssd = is_ssd(det)
        fixed = getattr(self.net.transform, "fixed_size", None)
        if fixed is not None and tuple(fixed) != self.size:
            raise UserError(f"the model resizes to {tuple(fixed)}, the graph takes {self.size}; allowed: the "
                            "model's image size (set_image_size)", key="data.image_size")
        was = det.training
        det.eval()
        with torch.no_grad():
            images, _ = self.net.transform([torch.zeros(3, size, size)])
            feats = list(self.net.backbone(images.tensors).values())
            anchors = self.net.anchor_generator(images, feats)[0]
            out = self.net.head(feats)
        det.train(was)
        hw = [f.shape[2] * f.shape[3] for f in feats]
        gen = self.net.anchor_generator
        per = gen.num_anchors_per_location() if self.ssd else [anchors.shape[0] // sum(hw)] * len(hw)
        self.per_level = [n * a for n, a in zip(hw, per, strict=True)]
        self.anchors = anchors if self.ssd else list(anchors.split(self.per_level))
        self.widths = {k: int(out[k].shape[2]) for k in KEYS if k in out}

    def __call__(self, raw: np.ndarray | torch.Tensor) -> list[dict[str, torch.Tensor]]:
        t = torch.as_tensor(np.asarray(raw, np.float32)) if not isinstance(raw, torch.Tensor) else raw.float()
        parts = t.split(list(self.widths.values()), dim=2)
        head = {k: (p if self.ssd else list(p.split(self.per_level, dim=1)))
                for k, p in zip(self.widths, parts, strict=True)}
        with torch.no_grad():
            dets = self.net.postprocess_detections(head, [self.anchors] * len(t), [self.size] * len(t))
        return [{**d, "labels": d["labels"] - self.offset} for d in dets]

    def settings(self) -> dict[str, Any]:
        """What the decoding applies, for the ONNX metadata and compress.json."""
        n = self.net
        return {"nms": NMS_NOTE, "score_thresh": float(n.score_thresh), "nms_thresh": float(n.nms_thresh),
                "detections_per_img": int(n.detections_per_img), "topk_candidates": int(n.topk_candidates),
                "outputs": "N×A×C: " + ", ".join(f"{k} ({w})" for k, w in self.widths.items()),
                "anchors": int(sum(self.per_level)), "resize": RESIZE_NOTE,
                "scores": "softmax over background + classes (SSD)" if self.ssd else "sigmoid per class"}


__all__ = ["DetDecoder", "HeadGraph", "NMS_NOTE", "RESIZE_NOTE", "check_exportable", "exportable", "is_ssd"]
