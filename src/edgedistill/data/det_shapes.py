"""`det-shapes`: synthetic scenes of rectangles, circles, triangles and ellipses with their boxes, offline.

The scenes are segmentation's seg-shapes scenes (scikit-image `draw.random_shapes` on a noisy background,
shapes drawn apart); each shape's box is the tight box of its own pixels (scipy.ndimage connected components of
each class in the mask), so a shape cut by the image border gets the box of what is visible. Classes 0..3:
rectangle, circle, triangle, ellipse (detection has no background class).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .base import DATA_SOURCES
from .det_base import DET_SOURCES, DetSplits, SampleList, det_names, needs_detection
from .seg_base import split_indices
from .seg_shapes import SHAPES, shape_scene

if TYPE_CHECKING:
    from ..recipe import Recipe

CLASSES = SHAPES[1:]


def shape_boxes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mask of SHAPES indices → (N×4 x1,y1,x2,y2 boxes in pixels, N class ids 0..3), one per connected shape."""
    from scipy import ndimage

    boxes, labels = [], []
    for c in range(1, len(SHAPES)):
        parts, _ = ndimage.label(mask == c)
        for sl in ndimage.find_objects(parts):
            if sl is not None:
                ys, xs = sl
                boxes.append([xs.start, ys.start, xs.stop, ys.stop])
                labels.append(c - 1)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


@DET_SOURCES.register("det-shapes")
def det_shapes_source(r: Recipe) -> DetSplits:
    """detection.synthetic_images scenes of data.image_size pixels, split by data.val_ratio/split_seed."""
    n, size, seed = r.detection.synthetic_images, r.data.image_size, r.data.split_seed
    scenes = [shape_scene(size, seed * 1_000_003 + i) for i in range(n)]
    images = np.stack([s[0] for s in scenes])
    boxes = [shape_boxes(s[1]) for s in scenes]
    tr, va = split_indices(n, r.data.val_ratio, seed)

    def subset(idx: list[int]) -> SampleList:
        return SampleList(len(idx), lambda i: (Image.fromarray(images[idx[i]]), *boxes[idx[i]]))

    names = det_names(r, len(CLASSES)) if r.detection.class_names else list(CLASSES)
    return DetSplits(subset(tr), subset(va), None, names)


DATA_SOURCES.register("det-shapes", class_names=lambda cfg: list(CLASSES), tasks=("detection",),
                      description="task=detection: synthetic shapes and their boxes (scikit-image "
                      "random_shapes, no download)")(needs_detection("det-shapes"))
