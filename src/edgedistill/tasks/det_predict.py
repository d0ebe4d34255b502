"""`edgedistill predict` on a task=detection ONNX file: the head graph in ONNX Runtime, then the boxes decoded and
NMS'd by the same DetDecoder as compress and deploy (the model's own torchvision postprocess_detections), so what
predict prints is what the chain scored. The decoder needs only the architecture (anchors and postprocess carry no
weights): an untrained model of the file's recorded spec, built without downloads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UserError


def detect_images(onnx_path: str | Path, images: Sequence[tuple[str, Image.Image]], meta: dict[str, Any],
                  min_score: float, threads: int | None = None) -> list[dict[str, Any]]:
    """Per image: path and its boxes at or above min_score (label, score, x1 y1 x2 y2 in the image's own pixels),
    best first."""
    from ..deploy.onnx_runtime import ort_predict, ort_session
    from ..deploy.onnx_segment import square_pixels
    from .det_graph import DetDecoder
    from .detection import build_det_model

    spec, size, names = meta.get("model"), int(meta["image_size"]), list(meta["class_names"])
    if not spec:
        raise UserError(f"{onnx_path} does not record its detector (an ONNX file from an earlier edgedistill); "
                        "allowed: a file `edgedistill compress` writes now (export it again)", key="MODEL")
    model = build_det_model(spec, len(names), size, None, "MODEL").eval()
    settings = json.loads(meta.get("decode", "{}"))
    for k in ("score_thresh", "nms_thresh", "detections_per_img", "topk_candidates"):  # the chain's decoding
        if k in settings:
            setattr(model.net, k, settings[k])
    decoder = DetDecoder(model, size)
    batch = np.stack([square_pixels(img, size).transpose(2, 0, 1) for _, img in images])  # 0..1: the graph normalizes
    dets = decoder(ort_predict(ort_session(onnx_path, threads), batch))
    out = []
    for (path, img), d in zip(images, dets, strict=True):
        sx, sy = img.size[0] / size, img.size[1] / size
        keep = (d["scores"] >= min_score).nonzero().flatten().tolist()
        boxes = [{"label": names[int(d["labels"][i])], "score": float(d["scores"][i]),
                  "box": [round(float(v) * s, 2) for v, s in zip(d["boxes"][i].tolist(), (sx, sy, sx, sy))]}
                 for i in keep]
        out.append({"path": path, "boxes": sorted(boxes, key=lambda b: -b["score"])})
    return out


def draw_boxes(img: Image.Image, boxes: list[dict[str, Any]], names: list[str], path: Path) -> None:
    """The image with its boxes drawn, a colour per class (matplotlib's tab10, the same in every image) and the
    label and score on a filled tag; tags of boxes at one place stack instead of overwriting each other."""
    from matplotlib.colors import TABLEAU_COLORS, to_rgb
    from PIL import ImageDraw

    colours = [tuple(int(255 * c) for c in to_rgb(v)) for v in TABLEAU_COLORS.values()]
    img = img.convert("RGB")
    pen = ImageDraw.Draw(img)
    width = max(1, min(img.size) // 128)
    tags: dict[tuple[int, ...], int] = {}
    for b in sorted(boxes, key=lambda b: b["score"]):  # the best drawn last, on top
        colour = colours[names.index(b["label"]) % len(colours)] if b["label"] in names else colours[0]
        pen.rectangle(b["box"], outline=colour, width=width)
        at = tuple(round(v) for v in b["box"])
        n = tags[at] = tags.get(at, -1) + 1
        text = f"{b['label']} {b['score']:.2f}"
        x0, y0, x1, y1 = pen.textbbox((0, 0), text)
        x, y = b["box"][0], b["box"][1] + n * (y1 - y0 + 2)
        pen.rectangle((x, y, x + x1 - x0 + 3, y + y1 - y0 + 2), fill=colour)
        pen.text((x + 1, y - y0 + 1), text, fill=(255, 255, 255))
    img.save(path)


__all__ = ["detect_images", "draw_boxes"]
