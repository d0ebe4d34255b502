"""task=segmentation data: synthetic shapes, mask folders, saved datasets, and the mask check (exit 2)."""

import numpy as np
import pytest
from PIL import Image

from edgedistill.data.seg_shapes import SHAPES, shape_scene
from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe
from edgedistill.tasks.segmentation import build_seg_data
from tests.conftest import invoke

SEG = {"task": "segmentation", "teacher": {"model": "seg:lraspp_mobilenet_v3_small@0.25"},
       "student": {"model": "seg:lraspp_mobilenet_v3_small@0.25"}, "distill": {"terms": [{"name": "pixel_kd"}]}}


def seg_recipe(**data):
    seg = data.pop("segmentation", {})
    return build_recipe({**SEG, "data": {"image_size": 32, "workers": 0, **data}, "segmentation": seg})


def test_shapes_masks_are_the_drawn_shapes():
    image, mask = shape_scene(48, 3)
    again = shape_scene(48, 3)
    assert image.shape == (48, 48, 3) and mask.shape == (48, 48)
    assert np.array_equal(image, again[0]) and np.array_equal(mask, again[1])  # fixed by the seed
    assert set(np.unique(mask)) <= set(range(len(SHAPES))) and mask.max() > 0
    assert not np.array_equal(shape_scene(48, 4)[1], mask)


def test_shapes_source_splits_and_transforms():
    r = seg_recipe(source="seg-shapes", val_ratio=0.25, segmentation={"synthetic_images": 16})
    train, evals, names = build_seg_data(r)
    assert names == list(SHAPES) and len(train) == 12 and len(evals["val"]) == 4
    x, y = evals["val"][0]
    assert tuple(x.shape) == (3, 32, 32) and tuple(y.shape) == (32, 32) and str(y.dtype) == "torch.int64"


def _folder(root, masks, palette=True):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, m in enumerate(masks):
        Image.fromarray(np.full((20, 24, 3), 40 * i, np.uint8)).save(root / "images" / f"im{i}.jpg")
        im = Image.fromarray(m.astype(np.uint8), mode="L")
        if palette:
            im = im.convert("P")
            im.putpalette([v for c in range(256) for v in (c, 255 - c, c // 2)])
        im.save(root / "masks" / f"im{i}.png")
    return root


def test_mask_folder_reads_palette_masks_and_the_ignore_index(tmp_path):
    m = np.zeros((20, 24), np.uint8)
    m[5:10, 5:12] = 2
    m[0, :] = 255  # the ignore index is allowed
    root = _folder(tmp_path / "d", [m] * 5)
    r = seg_recipe(source="seg-masks", root=str(root), segmentation={"num_classes": 3})
    train, evals, names = build_seg_data(r)
    assert names == ["0", "1", "2"] and len(train) + len(evals["val"]) == 5
    _, y = train[0]
    assert set(y.unique().tolist()) <= {0, 2, 255}


def test_a_mask_value_beyond_the_classes_is_refused_naming_the_file(tmp_path):
    good, bad = np.zeros((20, 24)), np.zeros((20, 24))
    bad[3, 3] = 7
    root = _folder(tmp_path / "d", [good, good, bad, good], palette=False)
    r = seg_recipe(source="seg-masks", root=str(root), segmentation={"num_classes": 3})
    with pytest.raises(UserError) as e:
        build_seg_data(r)
    assert "im2.png" in str(e.value) and "[7]" in str(e.value) and "0..2" in str(e.value)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"task: segmentation\ndata: {{source: seg-masks, root: {root}}}\nsegmentation: {{num_classes: 3}}\n"
                      "teacher: {model: 'seg:lraspp_mobilenet_v3_small@0.25'}\n"
                      "student: {model: 'seg:lraspp_mobilenet_v3_small@0.25'}\ndistill: {terms: [{name: cwd}]}\n")
    assert invoke("run", recipe, f"output.dir={tmp_path / 'runs'}") == 2
    assert not (tmp_path / "runs").exists()  # refused before any folder is made


def test_an_image_without_its_mask_is_named(tmp_path):
    root = _folder(tmp_path / "d", [np.zeros((20, 24))] * 3)
    (root / "masks" / "im1.png").unlink()
    with pytest.raises(UserError, match="im1.jpg has no mask"):
        build_seg_data(seg_recipe(source="seg-masks", root=str(root), segmentation={"num_classes": 2}))


def test_saved_dataset_with_image_and_mask_columns(tmp_path):
    datasets = pytest.importorskip("datasets")
    masks = [np.zeros((16, 16), np.uint8) for _ in range(6)]
    masks[4][2:5, 2:5] = 3
    ds = datasets.Dataset.from_dict({"image": [Image.fromarray(np.zeros((16, 16, 3), np.uint8))] * 6,
                                     "mask": [Image.fromarray(m) for m in masks]},
                                    features=datasets.Features({"image": datasets.Image(), "mask": datasets.Image()}))
    ds.save_to_disk(str(tmp_path / "hf"))
    train, evals, _ = build_seg_data(seg_recipe(source="hf-disk", root=str(tmp_path / "hf"),
                                                segmentation={"num_classes": 4}))
    assert len(train) + len(evals["val"]) == 6
    with pytest.raises(UserError, match="row 4 holds value"):
        build_seg_data(seg_recipe(source="hf-disk", root=str(tmp_path / "hf"), segmentation={"num_classes": 2}))


def test_saved_dataset_mask_of_another_size_is_refused_naming_the_row(tmp_path):
    datasets = pytest.importorskip("datasets")
    wide = Image.fromarray(np.zeros((16, 20, 3), np.uint8))
    images = [Image.fromarray(np.zeros((16, 16, 3), np.uint8))] * 5 + [wide]
    ds = datasets.Dataset.from_dict({"image": images, "mask": [Image.fromarray(np.zeros((16, 16), np.uint8))] * 6},
                                    features=datasets.Features({"image": datasets.Image(), "mask": datasets.Image()}))
    ds.save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(UserError, match=r"row 5: mask is 16×16 px but its image is 20×16"):
        build_seg_data(seg_recipe(source="hf-disk", root=str(tmp_path / "hf"), segmentation={"num_classes": 2}))
