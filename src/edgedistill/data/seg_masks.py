"""`seg-masks` (image and mask folders, VOC/Cityscapes-style) and `hf-disk` under task=segmentation.

Folders: data.root/{train,val[,test]}/IMAGE_DIR + MASK_DIR, or data.root/IMAGE_DIR + MASK_DIR split by
data.val_ratio; a mask is the PNG with its image's file stem (VOC SegmentationClass palette PNGs and
Cityscapes *_labelIds-style index PNGs both read as class indices). Every mask is checked before any work.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import UserError
from .base import DATA_SOURCES, to_rgb
from .seg_base import (
    SEG_SOURCES,
    PairList,
    SegSplits,
    check_masks,
    class_names_for,
    mask_array,
    needs_task,
    split_indices,
)

if TYPE_CHECKING:
    from ..recipe import Recipe

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _pairs(folder: Path, r: Recipe) -> list[tuple[Path, Path]]:
    """(image, mask) file pairs of one folder; an image without its mask is named, never dropped."""
    s = r.segmentation
    images_dir, masks_dir = folder / s.image_dir, folder / s.mask_dir
    for d, key in ((images_dir, "segmentation.image_dir"), (masks_dir, "segmentation.mask_dir")):
        if not d.is_dir():
            raise UserError(f"no folder {d}; allowed: {key} naming a subfolder of {folder}", key=key)
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
    out = []
    for img in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        stem = img.stem.removesuffix("_leftImg8bit")  # Cityscapes names image and mask by a shared prefix
        mask = masks.get(img.stem) or next((m for k, m in masks.items() if k.startswith(stem + "_")), None)
        if mask is None:
            raise UserError(f"image {img} has no mask {masks_dir / (img.stem + '.png')}; allowed: one PNG mask "
                            "per image, named by its file stem", key="data.root")
        out.append((img, mask))
    return out


def _mask_file(path: Path) -> Any:
    try:
        with Image.open(path) as m:
            return mask_array(m)
    except (OSError, ValueError) as e:
        raise UserError(f"mask {path} {e}", key="data.root") from None


def check_sizes(pairs: list[tuple[Path, Path]]) -> None:
    """Every mask has its image's width and height (headers only): resized apart, they would no longer align."""
    for img, mask in pairs:
        try:
            with Image.open(img) as a, Image.open(mask) as b:
                if a.size != b.size:
                    raise UserError(f"mask {mask} is {b.size[0]}×{b.size[1]} px but its image {img} is "
                                    f"{a.size[0]}×{a.size[1]}; allowed: a mask of its image's size", key="data.root")
        except OSError as e:
            raise UserError(f"cannot read {img} or {mask}: {e}; allowed: image files PIL reads", key="data.root") from None


def _files(pairs: list[tuple[Path, Path]]) -> PairList:
    def get(i: int) -> tuple[Image.Image, Any]:
        img, mask = pairs[i]
        with Image.open(img) as im:
            im.load()
            return to_rgb(im), _mask_file(mask)
    return PairList(len(pairs), get)


@SEG_SOURCES.register("seg-masks")
def masks_source(r: Recipe) -> SegSplits:
    root, s = Path(r.data.root), r.segmentation  # type: ignore[arg-type]
    n = int(s.num_classes)  # type: ignore[arg-type]
    if (root / "train").is_dir():
        splits = {k: _pairs(root / k, r) for k in ("train", "val", "test") if (root / k).is_dir()}
        if "val" not in splits:
            raise UserError(f"{root} has train/ but no val/; allowed: both, or {s.image_dir}/ and {s.mask_dir}/ "
                            "split by data.val_ratio", key="data.root")
    else:
        every = _pairs(root, r)
        tr, va = split_indices(len(every), r.data.val_ratio, r.data.split_seed)
        splits = {"train": [every[i] for i in tr], "val": [every[i] for i in va]}
    for pairs in splits.values():
        check_sizes(pairs)
        check_masks(((str(m), _mask_file(m)) for _, m in pairs), n, s.ignore_index)
    return SegSplits(_files(splits["train"]), _files(splits["val"]),
                     _files(splits["test"]) if "test" in splits else None, class_names_for(r, n))


def _row_sizes(ds: Any, column: str, where: str) -> list[tuple[int, int]]:
    """(width, height) of every row's image: an Image column is read undecoded (file headers only)."""
    from datasets import Image as ImageFeature

    if not isinstance(ds.features[column], ImageFeature):
        return [to_rgb(v).size for v in ds[column]]
    sizes = []
    for i, raw in enumerate(ds.cast_column(column, ImageFeature(decode=False))[column]):
        try:
            with Image.open(io.BytesIO(raw["bytes"]) if raw.get("bytes") else raw["path"]) as im:
                sizes.append(im.size)
        except (OSError, TypeError) as e:
            raise UserError(f"{where} row {i}: cannot read its image ({e}); allowed: images PIL reads",
                            key="data.root") from None
    return sizes


def _same_size(mask: Any, size: tuple[int, int], where: str) -> Any:
    """The mask, once its height and width are its image's (stretched apart they would no longer align)."""
    h, w = np.asarray(mask).shape[:2]
    if (w, h) != tuple(size):
        raise UserError(f"{where}: mask is {w}×{h} px but its image is {size[0]}×{size[1]}; allowed: a mask of "
                        "its image's size", key="data.root")
    return mask


@SEG_SOURCES.register("hf-disk")
def hf_masks_source(r: Recipe) -> SegSplits:
    """A dataset saved with save_to_disk holding an image column and a mask column."""
    from .hf_disk import VAL_KEYS, load_saved, splits_of

    s = r.segmentation
    found = splits_of(load_saved(Path(r.data.root), "data.root"))  # type: ignore[arg-type]
    for name, ds in found.items():
        for col, key in ((s.image_column, "segmentation.image_column"), (s.mask_column, "segmentation.mask_column")):
            if col not in ds.features:
                raise UserError(f"{r.data.root} split {name} has no column {col!r}; allowed: "
                                f"{', '.join(ds.features)}", key=key)
    train = found.get("train") or next(iter(found.values()))
    val = next((found[k] for k in VAL_KEYS if k in found), None)
    n = int(s.num_classes)  # type: ignore[arg-type]
    for name, ds in found.items():
        where = f"{r.data.root} split {name}"
        sizes = _row_sizes(ds, s.image_column, where)
        check_masks(((f"{where} row {i}", _same_size(row, sizes[i], f"{where} row {i}"))
                     for i, row in enumerate(ds[s.mask_column])), n, s.ignore_index)

    def rows(ds: Any, idx: list[int] | None = None) -> PairList:
        idx = list(range(len(ds))) if idx is None else idx
        return PairList(len(idx), lambda i: (to_rgb(ds[idx[i]][s.image_column]), mask_array(ds[idx[i]][s.mask_column])))

    if val is None:
        tr, va = split_indices(len(train), r.data.val_ratio, r.data.split_seed)
        return SegSplits(rows(train, tr), rows(train, va), None, class_names_for(r, n))
    test = found.get("test")
    return SegSplits(rows(train), rows(val), rows(test) if test is not None else None, class_names_for(r, n))


DATA_SOURCES.register("seg-masks", class_names=lambda cfg: [], tasks=("segmentation",),
                      description="task=segmentation: image + mask folders (VOC/Cityscapes-style palette or "
                      "index PNGs)")(needs_task("seg-masks"))
