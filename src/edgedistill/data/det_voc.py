"""`det-voc`: Pascal VOC folders under task=detection: detection.image_dir/ (VOC: JPEGImages) and
detection.xml_dir/ (VOC: Annotations) with one STEM.xml per image; each <object> has a <name> that must be one of
detection.class_names (its index is the class id) and a <bndbox> of 1-based pixel xmin/ymin/xmax/ymax.

Read with the standard library's ElementTree; every box is checked (check_boxes) and named by file and object.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import numpy as np

from ..errors import UserError
from .base import DATA_SOURCES
from .det_base import DET_SOURCES, DetSplits, check_boxes, needs_detection
from .det_folders import Entry, image_dir, result
from .seg_masks import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from ..recipe import Recipe


def _object(xml: Path, i: int, obj: ElementTree.Element, names: list[str]) -> tuple[list[float], int]:
    name = (obj.findtext("name") or "").strip()
    if name not in names:
        raise UserError(f"{xml}: object {i} is named {name!r}; allowed: {', '.join(names[:20])} "
                        "(detection.class_names)", key="detection.class_names")
    try:
        box = obj.find("bndbox")
        x1, y1, x2, y2 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr,arg-type]
    except (AttributeError, TypeError, ValueError):
        raise UserError(f"{xml}: object {i} has no numeric bndbox xmin/ymin/xmax/ymax; allowed: a VOC "
                        "annotation", key="data.root") from None
    return [x1 - 1, y1 - 1, x2, y2], names.index(name)  # VOC counts pixels from 1, inclusive


def read_voc(folder: Path, r: Recipe) -> tuple[list[Entry], list[str]]:
    names = list(r.detection.class_names or [])
    images_dir, xml_dir = image_dir(folder, r), folder / r.detection.xml_dir
    if not xml_dir.is_dir():
        raise UserError(f"no folder {xml_dir}; allowed: detection.xml_dir naming a subfolder of {folder}",
                        key="detection.xml_dir")
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    out = []
    for xml in sorted(xml_dir.glob("*.xml")):
        if xml.stem not in images:
            raise UserError(f"annotation {xml} has no image {images_dir / xml.stem}.*; allowed: one annotation per "
                            "image, named by its file stem", key="data.root")
        try:
            root = ElementTree.parse(xml).getroot()
            w, h = (int(float(root.findtext(f"size/{k}"))) for k in ("width", "height"))  # type: ignore[arg-type]
        except (ElementTree.ParseError, TypeError, ValueError):
            raise UserError(f"{xml} is no VOC annotation with size/width and size/height", key="data.root") from None
        rows = [_object(xml, i, o, names) for i, o in enumerate(root.iter("object"))]
        boxes = np.asarray([b for b, _ in rows], np.float32).reshape(-1, 4)
        labels = np.asarray([c for _, c in rows], np.int64)
        check_boxes(str(xml), boxes, labels, w, h, len(names))
        out.append((images.pop(xml.stem), boxes, labels))
    out += [(p, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) for p in images.values()]  # no objects
    return sorted(out, key=lambda e: e[0].name), names


@DET_SOURCES.register("det-voc")
def voc_source(r: Recipe) -> DetSplits:
    return result(r, read_voc)


DATA_SOURCES.register("det-voc", class_names=lambda cfg: [], tasks=("detection",),
                      description="task=detection: Pascal VOC JPEGImages/ + Annotations/ XML")(needs_detection("det-voc"))
