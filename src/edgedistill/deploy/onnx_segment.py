"""Segment image files with an exported task=segmentation ONNX model alone: ONNX Runtime, numpy and PIL (no torch,
as for classification's predict), so an edge device can run the student the way `predict` shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .onnx_runtime import ort_predict, ort_session


def square_pixels(img: Image.Image, size: int) -> np.ndarray:
    """The dense tasks' eval transform: the whole image resized to size×size (no crop), RGB in [0, 1], HWC."""
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def palette() -> list[int]:
    """A fixed colour per class (the PASCAL VOC colour map: bits of the class id spread over R, G, B), for masks a
    person can look at; the PNG's values are the class ids."""
    out = []
    for c in range(256):
        r = g = b = 0
        cid = c
        for j in range(8):
            r |= ((cid >> 0) & 1) << (7 - j)
            g |= ((cid >> 1) & 1) << (7 - j)
            b |= ((cid >> 2) & 1) << (7 - j)
            cid >>= 3
        out += [r, g, b]
    return out


def segment_images(onnx_path: str | Path, images: Sequence[tuple[str, Image.Image]], meta: dict[str, Any],
                   threads: int | None = None) -> list[dict[str, Any]]:
    """Per image: path, its class-id mask at the image's own size (nearest), and each class's share of it in %."""
    size, names = int(meta["image_size"]), list(meta["class_names"])
    mean, std = np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32)
    batch = np.stack([((square_pixels(img, size) - mean) / std).transpose(2, 0, 1) for _, img in images])
    logits = ort_predict(ort_session(onnx_path, threads), batch)  # N×K×S×S
    out = []
    for (path, img), z in zip(images, logits, strict=True):
        small = Image.fromarray(z.argmax(0).astype(np.uint8))
        mask = np.asarray(small.resize(img.size, Image.NEAREST))
        counts = np.bincount(mask.ravel(), minlength=len(names))
        shares = {names[i] if i < len(names) else str(i): 100.0 * float(c) / mask.size
                  for i, c in enumerate(counts) if c}
        out.append({"path": path, "mask": mask, "shares": dict(sorted(shares.items(), key=lambda kv: -kv[1]))})
    return out


def save_mask(mask: np.ndarray, path: Path) -> None:
    """A palette PNG: pixel values are class ids, shown in the fixed colours."""
    img = Image.fromarray(mask.astype(np.uint8))
    img.putpalette(palette())
    img.save(path)


__all__ = ["palette", "save_mask", "segment_images", "square_pixels"]
