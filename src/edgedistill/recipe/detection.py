"""The section only task=detection reads, and the check that a detection recipe's names fit it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from .base import Section
from .dense import refuse_unsupported

if TYPE_CHECKING:
    from .core import Recipe

DET_SOURCES = ("det-shapes", "det-coco", "det-yolo", "det-voc")  # data.source values task=detection reads
DET_STAGES = ("prune", "export", "quantize")  # compress stages task=detection runs (tasks/det_compress.py)


class DetectionConfig(Section):
    """Keys read under task=detection (ignored otherwise)."""

    num_classes: int | None = Field(None, gt=0, le=1024, description="object classes (no background); required "
                                    "for det-yolo, det-coco reads its categories, det-shapes has 4")
    class_names: list[str] | None = Field(None, description="a name per class for the report (default: the COCO "
                                          "categories, or 0, 1, …)")
    image_dir: str = Field("images", description="det-coco/det-yolo: subfolder of the images")
    label_dir: str = Field("labels", description="det-yolo: subfolder of the STEM.txt label files")
    xml_dir: str = Field("Annotations", description="det-voc: subfolder of the STEM.xml annotations")
    coco_file: str = Field("annotations.json", description="det-coco: the COCO instances JSON in each folder")
    synthetic_images: int = Field(400, gt=1, le=100_000, description="det-shapes: images generated "
                                  "(scikit-image random_shapes), split by data.val_ratio")
    score_threshold: float = Field(0.05, ge=0, lt=1, description="detections kept for the metrics (mAP wants "
                                   "low-score boxes too)")
    agreement_score: float = Field(0.3, ge=0, lt=1, description="teacher agreement: boxes of at least this "
                                   "score are compared")
    int8_max_map_drop: float = Field(1.0, ge=0, le=100, description="int8 gate of compress and deploy: mAP "
                                     "points the int8 file may lose against the fp32 file on the held-out split")


def check_detection(r: Recipe) -> None:
    """data.source fits, the classes are known, and what detection does not do yet is refused (ValueError)."""
    if r.data.source not in DET_SOURCES:
        raise ValueError(f"data.source={r.data.source!r} does not fit task=detection; allowed: "
                         f"{', '.join(DET_SOURCES)}")
    d = r.detection
    if r.data.source == "det-yolo" and d.num_classes is None:
        raise ValueError("detection.num_classes is required for data.source=det-yolo; allowed: the number of "
                         "object classes of the label files")
    if r.data.source == "det-voc" and not d.class_names:
        raise ValueError("detection.class_names is required for data.source=det-voc; allowed: the object names "
                         "of the XML files, in class-id order")
    n = 4 if r.data.source == "det-shapes" else d.num_classes
    if d.class_names is not None and n is not None and len(d.class_names) != n:
        raise ValueError(f"detection.class_names has {len(d.class_names)} names for {n} classes; allowed: {n} names")
    refuse_unsupported(r, "detection", DET_STAGES, {"train.amp": (r.train.amp, "off")})


__all__ = ["DET_SOURCES", "DET_STAGES", "DetectionConfig", "check_detection"]
