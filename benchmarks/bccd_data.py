"""Build the real-image detection data of benchmarks/det.py: BCCD blood cells as Pascal VOC folders (det-voc).

    python benchmarks/bccd_data.py --repo /path/to/BCCD_Dataset --out /work/shared/data/bccd

Source: the BCCD dataset (blood-cell smear photographs, 640×480 JPEG, boxes for RBC, WBC and Platelets) as
committed to the public repository github.com/Shenggan/BCCD_Dataset, folder BCCD/, commit
d272fb1 (full id in COMMIT below), MIT licence (Copyright (c) 2017 shenggan): 364 images with VOC XML
annotations and the split lists BCCD/ImageSets/Main/{train,val,test}.txt (205, 87, 72 images).

--repo is a git clone (or bare mirror) of that repository; files are read from its commit with `git show`, so no
work tree is needed. Written: OUT/{train,val,test}/{JPEGImages,Annotations}/ (images resized by --scale,
bilinear, default 0.5: 320×240, so that decoding costs little on 2 CPU cores; boxes scaled with them and written
1-based as VOC counts pixels) and OUT/SOURCE.md, which records every change made to the annotations.

The project's det-voc source refuses a box outside its image or with x2 <= x1 (exit 2, by design). BCCD has a
few: boxes are clipped to the image and a box that is empty after clipping is dropped; each clip and drop is
counted, named by file, printed and written to SOURCE.md and changes.json — never silent.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from xml.etree import ElementTree

from camvid_data import git, git_dir
from PIL import Image

COMMIT = "d272fb1"
REPO = "github.com/Shenggan/BCCD_Dataset"
CLASSES = ["RBC", "WBC", "Platelets"]
SPLITS = ("train", "val", "test")


def boxes_of(xml: bytes, stem: str, w: int, h: int, log: dict[str, list[str]]) -> list[tuple[str, list[float]]]:
    """(class, 0-based x1 y1 x2 y2) per object, clipped to w×h; every clip, drop and unknown name logged."""
    out = []
    for i, obj in enumerate(ElementTree.fromstring(xml).iter("object")):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        corners = ("xmin", "ymin", "xmax", "ymax")
        x1, y1, x2, y2 = (float(box.findtext(k)) for k in corners)  # type: ignore[union-attr,arg-type]
        x1, y1 = x1 - 1, y1 - 1  # VOC: 1-based, inclusive
        if name not in CLASSES:
            log["dropped_unknown_class"].append(f"{stem} object {i}: name {name!r}")
            continue
        c = [min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)]
        if c[2] <= c[0] or c[3] <= c[1]:
            log["dropped_empty"].append(f"{stem} object {i} {name}: ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
            continue
        if c != [x1, y1, x2, y2]:
            log["clipped"].append(f"{stem} object {i} {name}: ({x1:g}, {y1:g}, {x2:g}, {y2:g}) -> "
                                  f"({c[0]:g}, {c[1]:g}, {c[2]:g}, {c[3]:g})")
        out.append((name, c))
    return out


def voc_xml(name: str, w: int, h: int, objects: list[tuple[str, list[float]]], scale: float) -> str:
    rows = "".join(f"<object><name>{c}</name><bndbox><xmin>{b[0] * scale + 1:.2f}</xmin><ymin>{b[1] * scale + 1:.2f}"
                   f"</ymin><xmax>{b[2] * scale:.2f}</xmax><ymax>{b[3] * scale:.2f}</ymax></bndbox></object>"
                   for c, b in objects)
    size = f"<size><width>{w}</width><height>{h}</height></size>"
    return f"<annotation><filename>{name}</filename>{size}{rows}</annotation>\n"


def convert(repo: Path, out: Path, scale: float) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    log: dict[str, list[str]] = {"clipped": [], "dropped_empty": [], "dropped_unknown_class": [], "no_objects": []}
    counts = {}
    for split in SPLITS:
        stems = git(repo, "show", f"{COMMIT}:BCCD/ImageSets/Main/{split}.txt").decode().split()
        (out / split / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (out / split / "Annotations").mkdir(parents=True, exist_ok=True)
        n_boxes = {c: 0 for c in CLASSES}
        for stem in stems:
            image = Image.open(io.BytesIO(git(repo, "show", f"{COMMIT}:BCCD/JPEGImages/{stem}.jpg"))).convert("RGB")
            objects = boxes_of(git(repo, "show", f"{COMMIT}:BCCD/Annotations/{stem}.xml"), stem, *image.size, log)
            if not objects:
                log["no_objects"].append(stem)
            size = (round(image.width * scale), round(image.height * scale))
            image.resize(size, Image.BILINEAR).save(out / split / "JPEGImages" / f"{stem}.jpg", quality=95)
            (out / split / "Annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.jpg", *size, objects, scale))
            for c, _ in objects:
                n_boxes[c] += 1
        counts[split] = {"images": len(stems), **n_boxes}
    return counts, log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, required=True, help="clone or mirror of Shenggan/BCCD_Dataset")
    p.add_argument("--out", type=Path, default=Path("/work/shared/data/bccd"))
    p.add_argument("--scale", type=float, default=0.5, help="image side scale (0.5: 320×240)")
    a = p.parse_args()
    repo = git_dir(a.repo)
    full = git(repo, "rev-parse", COMMIT).decode().strip()
    counts, log = convert(repo, a.out, a.scale)
    changes = {k: len(v) for k, v in log.items()}
    (a.out / "changes.json").write_text(json.dumps(log, indent=1) + "\n")
    listed = "\n".join(f"- {k}: {len(v)}" + "".join(f"\n  - {e}" for e in v) for k, v in log.items())
    (a.out / "SOURCE.md").write_text(
        f"# BCCD blood cells, Pascal VOC folders for edgedistill's det-voc source\n\n"
        f"From {REPO} at commit {full}, folder BCCD/ (MIT licence, Copyright (c) 2017 shenggan), converted by "
        f"benchmarks/bccd_data.py (scale {a.scale}; splits from BCCD/ImageSets/Main).\n\n"
        f"Splits (images, boxes per class): {counts}. Classes (index order): {', '.join(CLASSES)}.\n\n"
        f"Changes to the annotations (boxes clipped to the image; empty boxes dropped; images left with no "
        f"object are kept as background images):\n{listed}\n")
    print(json.dumps({"counts": counts, "changes": changes}, indent=1))


if __name__ == "__main__":
    main()
