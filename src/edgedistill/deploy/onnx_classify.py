"""Classify image files with an exported ONNX model using only onnxruntime, numpy and PIL (no torch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError
from .onnx_runtime import ort_predict, ort_session, read_onnx_meta

SMALL = 64  # same threshold as data.transforms: direct resize up to this side, resize+center-crop above


def _resize_short(img: Image.Image, side: int) -> Image.Image:
    """Shorter side to `side`, aspect kept, as torchvision's Resize(int) does (int() of the long side)."""
    w, h = img.size
    if w <= h:
        size = (side, int(side * h / w))
    else:
        size = (int(side * w / h), side)
    return img if size == (w, h) else img.resize(size, Image.BILINEAR)  # PIL antialiases when shrinking


def _center_crop(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    left, top = int(round((w - side) / 2.0)), int(round((h - side) / 2.0))
    return img.crop((left, top, left + side, top + side))


def preprocess(img: Image.Image, image_size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The eval transform in numpy: resize (then center-crop above 64 px), scale to [0,1], normalize; CHW."""
    img = img.convert("RGB")
    img = _resize_short(img, image_size if image_size <= SMALL else int(image_size / 0.875))
    img = _center_crop(img, image_size)
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def check_options(top_k: int, threads: int | None, min_score: float = 0.0) -> None:
    """predict's options, checked before a file is read."""
    if top_k < 1:
        raise UserError(f"--top-k {top_k}: allowed: 1 or more (classes, or boxes, shown per image)", key="--top-k")
    if threads is not None and threads < 1:
        raise UserError(f"--threads {threads}: allowed: 1 or more, or omit it for ONNX Runtime's choice",
                        key="--threads")
    if not 0.0 <= min_score < 1.0:
        raise UserError(f"--min-score {min_score}: allowed: 0 ≤ score < 1 (boxes shown at or above it)",
                        key="--min-score")


def open_images(paths: Sequence[str | Path]) -> list[tuple[str, Image.Image]]:
    """Each file as (its path as given, RGB image); an unreadable one exits 2 naming it."""
    out = []
    for p in paths:
        try:
            with Image.open(Path(p).expanduser()) as img:
                out.append((str(p), img.convert("RGB")))
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"cannot read image {p}: {e}", key="IMAGES") from None
    return out


def predict_images(onnx_path: str | Path, image_paths: Sequence[str | Path], top_k: int = 5,
                   threads: int | None = None, meta: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Per image: path, top-k [{label, index, prob}] from softmaxed logits, preprocessing from the file's meta
    (`meta`: read_onnx_meta's, when the caller has it already)."""
    check_options(top_k, threads)
    meta = meta or read_onnx_meta(onnx_path)
    task = meta.get("task", "classification")
    if task != "classification":  # its outputs are per pixel or per anchor: a softmax over them ranks nothing
        raise UserError(f"{onnx_path} is a task={task} model (outputs {meta.get('output', '?')}); predict classifies "
                        f"images; allowed: a classification model's ONNX file (a {task} model's files are scored "
                        "by `edgedistill eval` and `edgedistill deploy` on its run's images)", key="MODEL")
    names, size = meta["class_names"], meta["image_size"]
    batch = [preprocess(img, size, meta["mean"], meta["std"]) for _, img in open_images(image_paths)]
    if not batch:
        return []
    logits = ort_predict(ort_session(onnx_path, threads), np.stack(batch))
    if logits.ndim != 2:  # a file without a task (an older export) whose output is per pixel or per anchor
        raise UserError(f"{onnx_path} outputs {list(logits.shape)}, not one row of class scores per image; allowed: "
                        "a classification model's ONNX file, or a segmentation/detection file that records its task "
                        "(export it again)", key="MODEL")
    probs = _softmax(logits)
    k = max(1, min(top_k, probs.shape[1]))
    out = []
    for p, row in zip(image_paths, probs):
        top = np.argsort(-row)[:k]
        out.append({"path": str(p), "top": [{"label": names[i] if i < len(names) else str(i), "index": int(i),
                                            "prob": float(row[i])} for i in top]})
    return out
