"""`det-coco` (COCO-JSON) and `det-yolo` (YOLO txt labels) folders under task=detection.

Both read data.root/{train,val[,test]}/ when data.root/train exists, else data.root itself split by
data.val_ratio. Every annotation is checked before any work (check_boxes); a bad one is named by its file and
annotation id or line, never dropped.

- det-coco: each folder holds detection.image_dir/ and detection.coco_file (COCO "instances" JSON: images,
  annotations with bbox = [x, y, width, height] in pixels, categories). Category ids are mapped to 0..K-1 in
  ascending id order and named by the categories (every split must list the same categories).
- det-yolo: each folder holds detection.image_dir/ and detection.label_dir/ with one STEM.txt per image, a line
  per box "class cx cy w h" (normalized to 0..1, Ultralytics' format). An image without a label file has no
  objects (the YOLO convention for background images); a label file without its image is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ..errors import UserError
from .base import DATA_SOURCES, to_rgb
from .det_base import DET_SOURCES, DetSplits, SampleList, check_boxes, det_names, needs_detection
from .seg_base import split_indices
from .seg_masks import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from ..recipe import Recipe

Entry = tuple[Path, np.ndarray, np.ndarray]  # image file, boxes x1y1x2y2, class ids


def _folders(r: Recipe) -> dict[str, Path] | None:
    root = Path(r.data.root)  # type: ignore[arg-type]
    if not (root / "train").is_dir():
        return None
    if not (root / "val").is_dir():
        raise UserError(f"{root} has train/ but no val/; allowed: both, or one folder split by data.val_ratio",
                        key="data.root")
    return {k: root / k for k in ("train", "val", "test") if (root / k).is_dir()}


def image_dir(folder: Path, r: Recipe) -> Path:
    d = folder / r.detection.image_dir
    if not d.is_dir():
        raise UserError(f"no folder {d}; allowed: detection.image_dir naming a subfolder of {folder}",
                        key="detection.image_dir")
    return d


def _splits(r: Recipe, read: Any) -> tuple[dict[str, list[Entry]], list[str]]:
    folders = _folders(r)
    if folders is not None:
        found = {k: read(f, r) for k, f in folders.items()}
        names = {k: v[1] for k, v in found.items()}
        first = names["train"]
        for k, n in names.items():
            if n != first:
                raise UserError(f"split {k} lists classes {n[:8]} but train lists {first[:8]}; allowed: the same "
                                "categories in every split", key="data.root")
        return {k: v[0] for k, v in found.items()}, first
    every, names = read(Path(r.data.root), r)  # type: ignore[arg-type]
    tr, va = split_indices(len(every), r.data.val_ratio, r.data.split_seed)
    return {"train": [every[i] for i in tr], "val": [every[i] for i in va]}, names


def _samples(entries: list[Entry]) -> SampleList:
    def get(i: int) -> tuple[Image.Image, np.ndarray, np.ndarray]:
        path, boxes, labels = entries[i]
        with Image.open(path) as im:
            im.load()
            return to_rgb(im), boxes, labels
    return SampleList(len(entries), get)


def result(r: Recipe, read: Any) -> DetSplits:
    splits, names = _splits(r, read)
    test = splits.get("test")
    return DetSplits(_samples(splits["train"]), _samples(splits["val"]), _samples(test) if test else None,
                     det_names(r, len(names)) if r.detection.class_names else names)


def read_coco(folder: Path, r: Recipe) -> tuple[list[Entry], list[str]]:
    """One COCO-JSON folder → its entries (every image listed, with its boxes) and the category names."""
    path = folder / r.detection.coco_file
    images_dir = image_dir(folder, r)
    try:
        doc = json.loads(path.read_text())
        cats = sorted(doc["categories"], key=lambda c: c["id"])
        images, anns = doc["images"], doc.get("annotations", [])
    except FileNotFoundError:
        raise UserError(f"no annotation file {path}; allowed: detection.coco_file naming a COCO JSON in {folder}",
                        key="detection.coco_file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is no COCO instances JSON ({type(e).__name__}: {e}); allowed: images, "
                        "annotations and categories lists", key="detection.coco_file") from None
    index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[Any, list[tuple[list[float], Any, Any]]] = {im["id"]: [] for im in images}
    for a in anns:
        if a.get("image_id") not in per_image:
            raise UserError(f"{path}: annotation id {a.get('id')} names image_id {a.get('image_id')!r}, which the "
                            "images list does not hold; allowed: an id of the images list", key="data.root")
        if a.get("category_id") not in index:
            raise UserError(f"{path}: annotation id {a.get('id')} has category_id {a.get('category_id')!r}; "
                            f"allowed: {sorted(index)[:20]} (the categories list)", key="detection.num_classes")
        per_image[a["image_id"]].append((a["bbox"], index[a["category_id"]], a.get("id")))
    out = []
    for im in images:
        file = images_dir / im["file_name"]
        if not file.is_file():
            raise UserError(f"{path}: image id {im['id']} names {file}, which does not exist; allowed: files in "
                            f"{images_dir}", key="data.root")
        rows = per_image[im["id"]]
        boxes = np.asarray([[x, y, x + w, y + h] for (x, y, w, h), _, _ in rows], np.float32).reshape(-1, 4)
        labels = np.asarray([c for _, c, _ in rows], np.int64)
        ids = ", ".join(str(a) for _, _, a in rows[:4])
        check_boxes(f"{path} image {im['file_name']} (annotation ids {ids})", boxes, labels,
                    int(im.get("width") or Image.open(file).size[0]), int(im.get("height") or Image.open(file).size[1]),
                    len(cats))
        out.append((file, boxes, labels))
    return out, [str(c.get("name", c["id"])) for c in cats]


def read_yolo(folder: Path, r: Recipe) -> tuple[list[Entry], list[str]]:
    """One YOLO folder → its entries; every line of every label file checked and named by file:line."""
    k = int(r.detection.num_classes)  # type: ignore[arg-type]
    images_dir, labels_dir = image_dir(folder, r), folder / r.detection.label_dir
    if not labels_dir.is_dir():
        raise UserError(f"no folder {labels_dir}; allowed: detection.label_dir naming a subfolder of {folder}",
                        key="detection.label_dir")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    for txt in sorted(labels_dir.glob("*.txt")):
        if txt.stem not in images:
            raise UserError(f"label file {txt} has no image {images_dir / txt.stem}.*; allowed: one label file per "
                            "image, named by its file stem", key="data.root")
    out = []
    for stem, file in images.items():
        txt = labels_dir / f"{stem}.txt"
        rows = []
        lines = txt.read_text().splitlines() if txt.is_file() else []
        with Image.open(file) as im:
            w, h = im.size
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                c, cx, cy, bw, bh = int(parts[0]), *(float(v) for v in parts[1:5])
                if len(parts) != 5:
                    raise ValueError
            except (ValueError, IndexError):
                raise UserError(f"{txt}:{n}: {line.strip()!r} is no YOLO box; allowed: 'class cx cy w h' with "
                                "coordinates normalized to 0..1", key="data.root") from None
            rows.append((c, [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h], n))
        for c, box, n in rows:
            check_boxes(f"{txt}:{n}", [box], [c], w, h, k)
        out.append((file, np.asarray([b for _, b, _ in rows], np.float32).reshape(-1, 4),
                    np.asarray([c for c, _, _ in rows], np.int64)))
    return out, [str(i) for i in range(k)]


@DET_SOURCES.register("det-coco")
def coco_source(r: Recipe) -> DetSplits:
    return result(r, read_coco)


@DET_SOURCES.register("det-yolo")
def yolo_source(r: Recipe) -> DetSplits:
    return result(r, read_yolo)


DATA_SOURCES.register("det-coco", class_names=lambda cfg: [], tasks=("detection",),
                      description="task=detection: image folder + COCO instances JSON")(needs_detection("det-coco"))
DATA_SOURCES.register("det-yolo", class_names=lambda cfg: [], tasks=("detection",),
                      description="task=detection: images/ + labels/ YOLO txt (class cx cy w h, "
                      "normalized)")(needs_detection("det-yolo"))
