"""`seg-shapes`: synthetic scenes of rectangles, circles, triangles and ellipses with their masks, offline.

scikit-image's `draw.random_shapes` draws the shapes and names each one with its box; the mask is the shape's
own pixels inside its box (shapes are drawn apart, on a white canvas that no shape colour equals). The white is
then replaced by a random smooth background with noise, so colour alone does not give the class away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .base import DATA_SOURCES
from .seg_base import SEG_SOURCES, PairList, SegSplits, class_names_for, needs_task, split_indices

if TYPE_CHECKING:
    from ..recipe import Recipe

SHAPES = ("background", "rectangle", "circle", "triangle", "ellipse")


def shape_scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One size×size RGB scene (uint8) and its mask of SHAPES indices, fixed by `seed`."""
    from skimage.draw import random_shapes

    rng = np.random.default_rng(seed)
    image, labels = random_shapes((size, size), max_shapes=3, min_shapes=1, min_size=max(4, size // 4),
                                  max_size=max(6, size // 2), channel_axis=-1, allow_overlap=False,
                                  rng=int(rng.integers(2**31)))  # default intensities: 0..254, never the white
    drawn = (image != 255).any(-1)
    mask = np.zeros((size, size), np.uint8)
    for name, ((r0, r1), (c0, c1)) in labels:
        box = np.zeros_like(drawn)
        box[r0:r1 + 1, c0:c1 + 1] = True
        mask[box & drawn] = SHAPES.index(name)
    yy, xx = np.mgrid[0:size, 0:size] / max(1, size - 1)
    a, b = rng.uniform(0, 255, (2, 3))
    w = rng.uniform(0.2, 0.8)
    background = a * (w * yy + (1 - w) * xx)[..., None] + b * (1 - (w * yy + (1 - w) * xx))[..., None]
    background = background + rng.normal(0, 12, background.shape)
    scene = np.where(drawn[..., None], image.astype(np.float64) + rng.normal(0, 12, image.shape), background)
    return np.clip(scene, 0, 255).astype(np.uint8), mask


@SEG_SOURCES.register("seg-shapes")
def shapes_source(r: Recipe) -> SegSplits:
    """segmentation.synthetic_images scenes of data.image_size pixels, split by data.val_ratio/split_seed."""
    n, size, seed = r.segmentation.synthetic_images, r.data.image_size, r.data.split_seed
    scenes = [shape_scene(size, seed * 1_000_003 + i) for i in range(n)]
    images = np.stack([s[0] for s in scenes])
    masks = np.stack([s[1] for s in scenes])
    tr, va = split_indices(n, r.data.val_ratio, seed)

    def subset(idx: list[int]) -> PairList:
        return PairList(len(idx), lambda i: (Image.fromarray(images[idx[i]]), masks[idx[i]]))

    names = class_names_for(r, len(SHAPES)) if r.segmentation.class_names else list(SHAPES)
    return SegSplits(subset(tr), subset(va), None, names)


DATA_SOURCES.register("seg-shapes", class_names=lambda cfg: list(SHAPES), tasks=("segmentation",),
                      description="task=segmentation: synthetic shapes and their masks (scikit-image "
                      "random_shapes, no download)")(needs_task("seg-shapes"))
