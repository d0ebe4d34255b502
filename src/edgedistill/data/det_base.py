"""Detection data: what every box source returns, its registry, the one check every annotation passes, and the
loader that batches (images, boxes, labels).

A source yields (RGB PIL image, N×4 float boxes in pixels as x1,y1,x2,y2, N int class ids 0..K-1). The loader
resizes each image to data.image_size square (boxes scaled with it) and returns (N×3×S×S float tensor in 0..1,
list of boxes tensors, list of labels tensors): the detector's own transform normalizes (torchvision detection
models do), and lists of tensors move to the training device with the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from ..recipe import Recipe

Sample = tuple[Image.Image, np.ndarray, np.ndarray]


@dataclass
class DetSplits:
    """Untransformed splits of (RGB image, boxes, labels) samples, and the class names."""

    train: Dataset
    val: Dataset
    test: Dataset | None
    class_names: list[str]


DetSourceFn = Callable[["Recipe"], DetSplits]
DET_SOURCES: Registry[DetSourceFn] = Registry("detection dataset source")


def check_boxes(where: str, boxes: Any, labels: Any, width: int, height: int, num_classes: int) -> None:
    """Every box lies inside its image with x1 < x2 and y1 < y2, and every class id is 0..num_classes-1: the
    first one that does not is named (file, line or image), before any training — never dropped silently."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lab = np.asarray(labels).reshape(-1)
    if len(b) != len(lab):
        raise UserError(f"{where}: {len(b)} boxes but {len(lab)} labels; allowed: one class id per box",
                        key="data.root")
    for i, ((x1, y1, x2, y2), c) in enumerate(zip(b, lab, strict=True)):
        if not np.isfinite([x1, y1, x2, y2]).all() or x2 <= x1 or y2 <= y1:
            raise UserError(f"{where}: box {i} (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}) has x2<=x1 or y2<=y1; "
                            "allowed: x1 < x2 and y1 < y2", key="data.root")
        if x1 < -0.5 or y1 < -0.5 or x2 > width + 0.5 or y2 > height + 0.5:
            raise UserError(f"{where}: box {i} (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}) lies outside the "
                            f"{width}×{height} image; allowed: 0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height}",
                            key="data.root")
        if int(c) != c or not 0 <= int(c) < num_classes:
            raise UserError(f"{where}: box {i} has class id {c}; allowed: 0..{num_classes - 1} "
                            "(detection.num_classes)", key="detection.num_classes")


class SampleList(Dataset):
    """(image, boxes, labels) samples from a callable per index: in-memory arrays or files alike."""

    def __init__(self, n: int, get: Callable[[int], Sample]):
        self.n, self.get = n, get

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        return self.get(i)


class DetDataset(Dataset):
    """Samples → (3×S×S float tensor in 0..1, boxes scaled to S×S, int64 labels); train: random horizontal flip."""

    def __init__(self, samples: Dataset, size: int, hflip: bool, seed: int = 0):
        self.samples, self.size, self.hflip = samples, size, hflip
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, boxes, labels = self.samples[i]
        w, h = image.size
        s = self.size
        if (w, h) != (s, s):
            image = image.resize((s, s), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
        b = torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)) * torch.tensor([s / w, s / h] * 2)
        if self.hflip and self.rng.random() < 0.5:
            x = x.flip(-1)
            b = torch.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], 1)
        return x, b, torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))


def collate(items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list, list]:
    return torch.stack([it[0] for it in items]), [it[1] for it in items], [it[2] for it in items]


def det_loader(ds: Dataset, batch: int, *, train: bool, workers: int, seed: int) -> DataLoader:
    """Train: seeded shuffle and full batches; eval: fixed order, every image."""
    g = torch.Generator().manual_seed(seed)
    n = len(ds)  # type: ignore[arg-type]
    return DataLoader(ds, batch, shuffle=train, generator=g if train else None, drop_last=train and n > batch,
                      num_workers=workers, persistent_workers=workers > 0, collate_fn=collate)


def det_names(r: Recipe, n: int) -> list[str]:
    return list(r.detection.class_names or [str(i) for i in range(n)])


def needs_detection(name: str) -> Callable[..., Any]:
    """The classification entry of a detection source: check_task refuses it first; this is the backstop."""
    def refuse(cfg: Any) -> Any:
        raise UserError(f"data.source={name} is a detection source; allowed: task: detection", key="data.source")
    return refuse


__all__ = ["DET_SOURCES", "DetDataset", "DetSplits", "SampleList", "check_boxes", "det_loader"]
