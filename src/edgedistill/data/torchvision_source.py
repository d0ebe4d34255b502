"""torchvision's dataset classes (CIFAR10, MNIST, SVHN, …): standard benchmarks by name."""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torchvision.datasets as tvd
from torch.utils.data import Dataset

from ..errors import UserError
from .base import DATA_SOURCES, RawSplits

if TYPE_CHECKING:
    from ..recipe import DataConfig

COMMON = ("CIFAR10", "CIFAR100", "MNIST", "FashionMNIST", "KMNIST", "SVHN", "STL10")
DEFAULT_ROOT = Path.home() / ".cache" / "edgedistill" / "datasets"


def known_names() -> list[str]:
    return sorted(n for n in tvd.__all__ if isinstance(getattr(tvd, n, None), type)
                  and issubclass(getattr(tvd, n), Dataset) and n not in ("ImageFolder", "DatasetFolder",
                                                                        "VisionDataset", "FakeData"))


def _dataset_class(name: str) -> type:
    known = known_names()
    if name in known:
        return getattr(tvd, name)
    by_lower = {n.lower(): n for n in known}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=5, cutoff=0.5)]
    if close:  # compared case-insensitively: 'cifar100' → 'CIFAR100'
        raise UserError(f"unknown torchvision dataset {name!r}; did you mean {', '.join(map(repr, close))}?",
                        key="data.name")
    raise UserError(f"unknown torchvision dataset {name!r}; e.g. {', '.join(COMMON)} "
                    f"({len(known)} classes in torchvision.datasets)", key="data.name")


def _open(cfg: DataConfig, train: bool) -> Dataset:
    """One split; train=True/False for CIFAR/MNIST-style classes, split='train'/'test' for the others."""
    cls = _dataset_class(str(cfg.name))
    root = Path(cfg.root) if cfg.root is not None else DEFAULT_ROOT
    params = inspect.signature(cls).parameters
    kw: dict[str, Any] = {"root": str(root), "download": cfg.download}
    if "train" in params:
        kw["train"] = train
    elif "split" in params:
        kw["split"] = "train" if train else "test"
    try:
        return cls(**kw)
    except TypeError as e:
        raise UserError(f"torchvision dataset {cfg.name} needs arguments edgedistill does not pass ({e}); "
                        "use data.source=imagefolder instead", key="data.name") from None
    except (RuntimeError, FileNotFoundError, OSError) as e:
        hint = ("the download failed (is the network reachable?)" if cfg.download
                else "set data.download=true to download it, or point data.root at the folder holding it")
        raise UserError(f"{cfg.name} not found in {root} ({e}); {hint}", key="data.root") from None


def torchvision_classes(cfg: DataConfig) -> list[str]:
    """From the dataset object's `classes`, else its label values (SVHN); nothing downloaded or decoded."""
    return _class_names(_open(cfg, train=True))


def _class_names(ds: Any) -> list[str]:
    classes = getattr(ds, "classes", None)
    if classes:
        return [str(c) for c in classes]
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = getattr(ds, "labels", None)
    if labels is None:
        raise UserError(f"cannot tell the classes of {type(ds).__name__}", key="data.name")
    return [str(i) for i in range(int(max(int(y) for y in labels)) + 1)]


@DATA_SOURCES.register("torchvision", class_names=torchvision_classes,
                       description="torchvision dataset data.name (CIFAR10, MNIST, …); test split as val")
def torchvision_source(cfg: DataConfig) -> RawSplits:
    """Train split for training; the dataset's official test split serves as val (no separate test split)."""
    train = _open(cfg, train=True)
    return RawSplits(train, _open(cfg, train=False), None, _class_names(train))
