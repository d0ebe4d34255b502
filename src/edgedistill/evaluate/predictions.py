"""predictions.npz: each model's per-image prediction on the held-out split, for per-image tests across runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path

# The data keys that choose which images are held out (and how they look to the model).
HELD_OUT_KEYS = ("source", "root", "name", "val_ratio", "split_seed", "max_val_samples", "image_size", "mean", "std")


def held_out_id(data: dict[str, Any], split: str) -> str:
    """Identity of the held-out images: same id, same images in the same order."""
    ident = {k: data.get(k) for k in HELD_OUT_KEYS} | {"split": split}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_predictions(path: Path, preds: dict[str, Any], labels: Any, images: str) -> None:
    """Argmax per model (int16) plus the labels; a few kB for thousands of images."""
    arrays = {f"pred_{k}": np.asarray(v, dtype=np.int16) for k, v in preds.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, labels=np.asarray(labels, dtype=np.int16), images=np.array(images), **arrays)


def load_predictions(path: Path) -> dict[str, Any]:
    """{'labels', 'images' (held-out id), 'models': {name: preds}} from a run's predictions.npz."""
    with np.load(path) as z:
        return {"labels": z["labels"], "images": str(z["images"]),
                "models": {k.removeprefix("pred_"): z[k] for k in z.files if k.startswith("pred_")}}
