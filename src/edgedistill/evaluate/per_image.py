"""per_image.npz: each model's per-image score on the held-out split (segmentation IoU, detection mAP) and the
split's identity, for compare's paired per-image tests across runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PER_IMAGE = "per_image.npz"


def save_per_image(path: Path, per_image: dict[str, list[float]], images: str, unit: str = "iou") -> None:
    """Each model's per-image `unit` on the held-out split (float32; NaN where undefined) and the split's
    identity (held_out_id)."""
    import numpy as np

    from ..atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, images=np.array(images),
                            **{f"{unit}_{k}": np.asarray(v, dtype=np.float32) for k, v in per_image.items()})


def load_per_image(path: Path, unit: str = "iou") -> dict[str, Any]:
    """{'images': held-out id, 'models': {name: per-image `unit`}} from a run's per_image.npz."""
    import numpy as np

    with np.load(path) as z:
        return {"images": str(z["images"]), "models": {k.removeprefix(f"{unit}_"): z[k] for k in z.files
                                                        if k.startswith(f"{unit}_")}}


__all__ = ["PER_IMAGE", "load_per_image", "save_per_image"]
