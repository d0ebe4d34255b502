"""Hugging Face datasets saved with `save_to_disk`: for data prepared with the datasets library."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from torch.utils.data import Dataset

from ..errors import UserError
from .base import DATA_SOURCES, RawSplits, stratified_split, to_rgb

if TYPE_CHECKING:
    from ..recipe import DataConfig

IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels")
VAL_KEYS = ("validation", "val", "valid")


def is_saved_dataset(path: Path) -> bool:
    """A folder written by datasets' save_to_disk (a DatasetDict or a single Dataset)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def load_saved(path: Path, key: str, needed_by: str = "the hf-disk source") -> Any:
    """Imported lazily: `datasets` is an optional extra."""
    try:
        import datasets
    except ImportError:
        raise UserError(f"{needed_by} needs the datasets package: pip install edgedistill[hf]",
                        key="data.source" if key == "data.root" else key) from None
    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:
        raise UserError(f"{path} is not a dataset saved with save_to_disk ({e})", key=key) from None


def _load(cfg: DataConfig) -> Any:
    return load_saved(Path(cfg.root), "data.root")


def image_column(ds: Any) -> str | None:
    """The image column: one of IMAGE_COLUMNS, else the first column of the datasets Image feature."""
    feats = ds.features
    return next((c for c in IMAGE_COLUMNS if c in feats), None) or \
        next((c for c, f in feats.items() if type(f).__name__ == "Image"), None)


def splits_of(obj: Any) -> dict[str, Any]:
    """A DatasetDict's splits by name; a single Dataset is {'train': it}."""
    if hasattr(obj, "keys") and not hasattr(obj, "features"):
        return {str(k): obj[k] for k in obj.keys()}
    return {"train": obj}


def _columns(ds: Any) -> tuple[str, str]:
    feats = ds.features
    image = image_column(ds)
    label = next((c for c in LABEL_COLUMNS if c in feats), None)
    label = label or next((c for c, f in feats.items() if type(f).__name__ == "ClassLabel"), None)
    if image is None or label is None:
        raise UserError(f"cannot find the image and label columns among {', '.join(feats)} "
                        f"(expected one of {IMAGE_COLUMNS} and one of {LABEL_COLUMNS})", key="data.root")
    return image, label


def _names(ds: Any, label: str) -> list[str]:
    names = getattr(ds.features[label], "names", None)
    if names:
        return [str(n) for n in names]
    values = [int(v) for v in ds[label]]
    return [str(i) for i in range(max(values) + 1)]


class HFImages(Dataset):
    """Rows of a datasets.Dataset as (RGB PIL image, int label)."""

    def __init__(self, ds: Any, image: str, label: str, indices: list[int] | None = None):
        self.ds, self.image, self.label = ds, image, label
        self.indices = indices if indices is not None else list(range(len(ds)))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        row = self.ds[self.indices[i]]
        img = row[self.image]
        if isinstance(img, dict):  # undecoded Image feature: {'bytes': ..., 'path': ...}
            img = Image.open(io.BytesIO(img["bytes"])) if img.get("bytes") else Image.open(img["path"])
        return to_rgb(img), int(row[self.label])


def hf_classes(cfg: DataConfig) -> list[str]:
    train = splits_of(_load(cfg)).get("train")
    if train is None:
        raise UserError(f"{cfg.root} has no 'train' split", key="data.root")
    return _names(train, _columns(train)[1])


@DATA_SOURCES.register("hf-disk", description="a Hugging Face dataset saved with save_to_disk "
                       "(needs the optional hf extra)", class_names=hf_classes)
def hf_disk_source(cfg: DataConfig) -> RawSplits:
    """train + validation/val/valid (+ test); with no val split, train is split by data.val_ratio."""
    splits = splits_of(_load(cfg))
    if "train" not in splits:
        raise UserError(f"{cfg.root} has no 'train' split (has: {', '.join(splits)})", key="data.root")
    train = splits["train"]
    image, label = _columns(train)
    names = _names(train, label)
    val_key = next((k for k in VAL_KEYS if k in splits), None)
    test = HFImages(splits["test"], *_columns(splits["test"])) if "test" in splits else None
    if val_key is not None:
        val = HFImages(splits[val_key], *_columns(splits[val_key]))
        tr = HFImages(train, image, label)
    elif test is not None:
        val, test, tr = test, None, HFImages(train, image, label)
    else:
        tri, vai = stratified_split([int(v) for v in train[label]], cfg.val_ratio, cfg.split_seed)
        tr, val = HFImages(train, image, label, tri), HFImages(train, image, label, vai)
    return RawSplits(tr, val, test, names)
