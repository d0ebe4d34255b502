"""edgedistill.data: sources, bad-file handling, sample caps and reproducible augmentation."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from edgedistill.data import DATA_SOURCES, build_data, class_names_of, make_loader
from edgedistill.errors import UserError
from edgedistill.recipe import DataConfig


def _img(path: Path, seed: int, mode: str = "RGB", size: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def _tree(root: Path, classes: dict[str, int], ext: str = "png") -> Path:
    for c, n in classes.items():
        for i in range(n):
            _img(root / c / f"{i}.{ext}", hash((c, i)) % 1000)
    return root


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(source="imagefolder", root=root, image_size=16, workers=0, **kw)


def test_sources_registered_with_descriptions():
    assert DATA_SOURCES.names() == ["det-coco", "det-shapes", "det-voc", "det-yolo", "digits", "hf-disk",
                                     "imagefolder", "seg-masks", "seg-shapes", "torchvision"]
    assert all(e.meta["description"] for e in DATA_SOURCES)


def test_digits_split_is_stratified():
    data = build_data(DataConfig(source="digits", image_size=16, val_ratio=0.2))
    assert data.class_names == [str(d) for d in range(10)] == class_names_of(DataConfig())
    assert len(data.train) + len(data.val) == 1797 and len(data.val) == 360 and data.test is None
    x, y = data.val[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and isinstance(y, int)
    val = Counter(data.val.base.labels)  # type: ignore[attr-defined]
    total = val + Counter(data.train.base.labels)  # type: ignore[attr-defined]
    assert all(abs(val[c] - 0.2 * total[c]) <= 1 for c in range(10))


def test_imagefolder_train_val_and_test(tmp_path):
    _tree(tmp_path / "train", {"cat": 3, "dog": 4})
    _tree(tmp_path / "val", {"cat": 2, "dog": 1}, ext="jpg")
    _tree(tmp_path / "test", {"dog": 2})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = build_data(_cfg(tmp_path))
    assert data.class_names == ["cat", "dog"] == class_names_of(_cfg(tmp_path))
    assert (len(data.train), len(data.val), len(data.held_out("test"))) == (7, 3, 2)
    assert [data.val[i][1] for i in range(3)] == [0, 0, 1]
    assert data.held_out("test")[0][0].shape == (3, 16, 16) and data.skipped == 0


def test_single_folder_is_split_stratified(tmp_path):
    _tree(tmp_path, {"a": 8, "b": 8, "c": 4})
    data = build_data(_cfg(tmp_path, val_ratio=0.25))
    assert data.class_names == ["a", "b", "c"] == class_names_of(_cfg(tmp_path))
    assert (len(data.train), len(data.val)) == (15, 5)
    assert Counter(data.val[i][1] for i in range(5)) == {0: 2, 1: 2, 2: 1}
    with pytest.raises(UserError, match="test split"):
        data.held_out("test")


def test_corrupt_image_fails_naming_it_or_is_skipped(tmp_path):
    _tree(tmp_path / "train", {"a": 3, "b": 3})
    _tree(tmp_path / "val", {"a": 1, "b": 1})
    bad = tmp_path / "train" / "b" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(UserError, match=str(bad)):
        build_data(_cfg(tmp_path))
    data = build_data(_cfg(tmp_path, bad_images="skip"))
    assert data.skipped == 1 and len(data.train) == 6


def test_empty_class_folder_is_named(tmp_path):
    _tree(tmp_path / "train", {"a": 2})
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "train" / "empty" / "readme.md").write_text("x")
    _tree(tmp_path / "val", {"a": 1})
    with pytest.raises(UserError, match=str(tmp_path / "train" / "empty")):
        build_data(_cfg(tmp_path))


def test_val_class_missing_from_train_is_named(tmp_path):
    _tree(tmp_path / "train", {"a": 2, "b": 2})
    _tree(tmp_path / "val", {"a": 1, "zebra": 1})
    with pytest.raises(UserError, match=str(tmp_path / "val" / "zebra")):
        build_data(_cfg(tmp_path))


def test_grayscale_becomes_three_channels(tmp_path):
    for split in ("train", "val"):
        for c in ("a", "b"):
            _img(tmp_path / split / c / "g.png", 1, mode="L")
    data = build_data(_cfg(tmp_path))
    assert data.train[0][0].shape == (3, 16, 16)
    x = data.val[0][0]
    assert torch.allclose(x[0] * 0.229 + 0.485, x[1] * 0.224 + 0.456, atol=1e-5)  # same gray in R and G


def test_max_samples_mixes_classes():
    data = build_data(DataConfig(source="digits", image_size=8, max_train_samples=100, max_val_samples=30))
    assert (len(data.train), len(data.val)) == (100, 30)
    assert len({data.train[i][1] for i in range(100)}) == 10  # not the first 100 of one class


def _first_batch(data, epoch: int, workers: int) -> torch.Tensor:
    loader = make_loader(data.train, 16, train=True, workers=workers, seed=7)
    loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
    x, _ = next(iter(loader))
    return x


def test_augmentation_is_a_function_of_seed_epoch_index():
    data = build_data(DataConfig(source="digits", image_size=16, max_train_samples=64, max_val_samples=8))
    a = _first_batch(data, 3, workers=0)
    torch.manual_seed(123)  # the global RNG must not matter
    b = _first_batch(data, 3, workers=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, _first_batch(data, 4, workers=0))
    loader = make_loader(data.train, 16, train=True, workers=0, seed=7)
    assert len(loader) == 4 and loader.drop_last


def test_eval_loader_keeps_order_and_last_batch():
    data = build_data(DataConfig(source="digits", image_size=8, max_val_samples=10))
    loader = make_loader(data.val, 4, train=False, workers=0)
    labels = torch.cat([y for _, y in loader])
    assert labels.tolist() == [data.val[i][1] for i in range(10)]


def test_unknown_torchvision_name_suggests(tmp_path):
    with pytest.raises(UserError, match="CIFAR10"):
        class_names_of(DataConfig(source="torchvision", name="cifar10", root=tmp_path))
    with pytest.raises(UserError, match="data.download=true"):
        build_data(DataConfig(source="torchvision", name="CIFAR10", root=tmp_path))


def test_hf_disk_without_datasets_package(tmp_path, monkeypatch):
    """Stand-in on purpose: the installed library cannot produce its own absence (real hf-disk tests: test_hf.py)."""
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install edgedistill\[hf\]"):
        class_names_of(DataConfig(source="hf-disk", root=tmp_path))


def test_item_augmentation_depends_on_epoch_not_on_call_order():
    data = build_data(DataConfig(source="digits", image_size=16, max_train_samples=8, max_val_samples=8))
    ds = make_loader(data.train, 4, train=True, workers=0, seed=1).dataset
    first = ds[(5, 3)][0]
    torch.rand(10)
    assert torch.equal(first, ds[(5, 3)][0])
    assert not all(torch.equal(ds[(i, 3)][0], ds[(i, 4)][0]) for i in range(8))


def test_batched_fetch_gives_the_same_images_and_leaves_the_callers_rng_alone():
    """__getitems__ (one RNG save/restore per batch) must equal per-item __getitem__ and not move the global RNG."""
    data = build_data(DataConfig(source="digits", image_size=16, max_train_samples=8, max_val_samples=8))
    ds = make_loader(data.train, 4, train=True, workers=0, seed=1).dataset
    keys = [(i, 2) for i in (7, 0, 3, 5)]
    torch.manual_seed(11)
    before = torch.get_rng_state()
    batch = ds.__getitems__(keys)
    assert torch.equal(torch.get_rng_state(), before)
    for (x, y), k in zip(batch, keys, strict=True):
        one = ds[k]
        assert torch.equal(x, one[0]) and y == one[1]
    assert ds.__getitems__([0, 1])[1][1] == ds[1][1]  # plain indices (eval) still work
