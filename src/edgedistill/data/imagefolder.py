"""Folders of images, one folder per class: the layout most users already have."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from torch.utils.data import Dataset

from ..errors import UserError
from .base import DATA_SOURCES, RawSplits, stratified_split, to_rgb

if TYPE_CHECKING:
    from ..recipe import DataConfig

# torchvision's IMG_EXTENSIONS: other files (README, .DS_Store, labels.csv) are ignored.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
Samples = list[tuple[str, int]]


class ImageList(Dataset):
    """(path, label) pairs decoded on access, so memory stays flat whatever the dataset size."""

    def __init__(self, samples: Samples):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        path, label = self.samples[i]
        try:
            with Image.open(path) as im:
                im.load()  # decode now: the file is closed on leaving the block
                return to_rgb(im), label
        except (OSError, ValueError, SyntaxError) as e:  # passed the header scan, failed to decode
            raise UserError(f"unreadable image {path}: {e}", key="data.root") from None


def find_classes(folder: Path) -> list[str]:
    """Sorted subfolder names as torchvision's ImageFolder, minus hidden ones (.ipynb_checkpoints)."""
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _layout(cfg: DataConfig) -> tuple[Path, bool]:
    root = Path(cfg.root) if cfg.root is not None else None
    if root is None or not root.is_dir():
        raise UserError(f"not a folder: {root}", key="data.root")
    return (root / "train", True) if (root / "train").is_dir() else (root, False)


def imagefolder_classes(cfg: DataConfig) -> list[str]:
    folder, _ = _layout(cfg)
    classes = find_classes(folder)
    if not classes:
        msg = f"{folder} has no class subfolders (expected {folder}/<class>/<image>)"
        raise UserError(msg, key="data.root")
    return classes


def _list_split(folder: Path, classes: list[str]) -> Samples:
    """Image files of each class folder (recursive, sorted); unknown and empty class folders are errors."""
    index = {c: i for i, c in enumerate(classes)}
    samples: Samples = []
    for name in find_classes(folder):
        if name not in index:
            raise UserError(f"class folder {folder / name} has no counterpart in the train split "
                            f"(train classes: {', '.join(classes[:10])}{'…' if len(classes) > 10 else ''})",
                            key="data.root")
        files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(folder / name, followlinks=True)
            for f in fs if f.lower().endswith(IMG_EXTENSIONS)
        )
        if not files:
            raise UserError(f"class folder {folder / name} contains no images ({', '.join(IMG_EXTENSIONS)})",
                            key="data.root")
        samples += [(f, index[name]) for f in files]
    return samples


def image_problem(path: str) -> str | None:
    """Header-only check (no pixel decoding): None when fine, else the reason."""
    try:
        with Image.open(path) as im:
            im.verify()
        return None
    except Exception as e:  # PIL raises many types for bad files
        return f"{type(e).__name__}: {e}"


def scan(samples: Samples, mode: str) -> tuple[Samples, list[str]]:
    """Find unreadable images before any training: fail naming the file, or drop and count them."""
    reasons = [image_problem(p) for p, _ in samples]  # sequential: threads only add GIL contention here
    bad = [(p, r) for (p, _), r in zip(samples, reasons) if r is not None]
    if bad and mode == "fail":
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"unreadable image {bad[0][0]} ({bad[0][1]}){more}; "
                        "set data.bad_images=skip to skip such files", key="data.root")
    kept = [s for s, r in zip(samples, reasons) if r is None]
    return kept, [p for p, _ in bad]


@DATA_SOURCES.register("imagefolder", class_names=imagefolder_classes,
                       description="root/{train,val[,test]}/<class>/*.jpg, or root/<class>/*.jpg (split)")
def imagefolder_source(cfg: DataConfig) -> RawSplits:
    """Read root/train, root/val (and root/test) or split root's class folders; scan every image first."""
    folder, has_splits = _layout(cfg)
    classes = imagefolder_classes(cfg)
    train = _list_split(folder, classes)
    test: Samples | None = None
    root = Path(cfg.root)  # type: ignore[arg-type]
    if has_splits:
        if not (root / "val").is_dir():
            raise UserError(f"{root} has train/ but no val/ folder", key="data.root")
        val = _list_split(root / "val", classes)
        if not val:
            raise UserError(f"{root / 'val'} holds no images (expected {root / 'val'}/<class>/<image> for some of "
                            f"the train classes)", key="data.root")
        test = _list_split(root / "test", classes) if (root / "test").is_dir() else None
        if test is not None and not test:
            raise UserError(f"{root / 'test'} holds no images (expected {root / 'test'}/<class>/<image>, or "
                            "no test/ folder)", key="data.root")
    else:
        tr, va = stratified_split([y for _, y in train], cfg.val_ratio, cfg.split_seed)
        train, val = [train[i] for i in tr], [train[i] for i in va]
    train, skipped = scan(train, cfg.bad_images)
    val, bad = scan(val, cfg.bad_images)
    skipped += bad
    if test is not None:
        test, bad = scan(test, cfg.bad_images)
        skipped += bad
    return RawSplits(ImageList(train), ImageList(val), ImageList(test) if test is not None else None,
                     classes, len(skipped), skipped)
