"""task=detection data: synthetic shapes with boxes, COCO-JSON and YOLO folders, and the box check (exit 2
through the CLI, naming the file and the annotation or line)."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from edgedistill.data.det_shapes import CLASSES, shape_boxes
from edgedistill.data.seg_shapes import shape_scene
from edgedistill.recipe import build_recipe
from edgedistill.tasks.det_data import build_det_data
from tests.conftest import invoke

DET = {"task": "detection", "teacher": {"model": "det:fcos_mobilenet_v3_small@0.25"},
       "student": {"model": "det:fcos_mobilenet_v3_small@0.25"}, "distill": {"terms": [{"name": "pkd"}]}}


def det_recipe(detection=None, **data):
    return build_recipe({**DET, "data": {"image_size": 32, "workers": 0, **data}, "detection": detection or {}})


def test_shape_boxes_are_the_tight_boxes_of_the_shapes():
    _, mask = shape_scene(48, 3)
    boxes, labels = shape_boxes(mask)
    assert len(boxes) == len(labels) >= 1 and set(labels) <= set(range(len(CLASSES)))
    for (x1, y1, x2, y2), c in zip(boxes.astype(int), labels):
        inside = mask[y1:y2, x1:x2] == c + 1
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # tight
    assert (mask == 0).sum() < mask.size


def test_shapes_source_splits_and_scales():
    r = det_recipe(source="det-shapes", val_ratio=0.25, detection={"synthetic_images": 8})
    train, evals, names = build_det_data(r)
    assert names == list(CLASSES) and len(train) == 6 and len(evals["val"]) == 2
    x, b, c = evals["val"][0]
    assert tuple(x.shape) == (3, 32, 32) and b.shape[1] == 4 and len(b) == len(c) and float(x.max()) <= 1


def _images(folder, names, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(folder / n)


def _coco(root, anns, images=("a.png", "b.png")):
    _images(root / "images", images)
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 40, "height": 30} for i, n in enumerate(images)],
           "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}], "annotations": anns}
    (root / "annotations.json").write_text(json.dumps(doc))


def test_coco_folder_maps_categories_and_scales_boxes(tmp_path):
    _coco(tmp_path, [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [4, 3, 20, 12]},
                     {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 40, 30]}])
    train, evals, names = build_det_data(det_recipe(source="det-coco", root=str(tmp_path), val_ratio=0.5))
    assert names == ["cat", "dog"]
    got = {int(c[0]): b[0].tolist() for _, b, c in (train[0], evals["val"][0])}
    assert got[1] == pytest.approx([4 * 32 / 40, 3 * 32 / 30, 24 * 32 / 40, 15 * 32 / 30])  # dog, scaled to 32 px
    assert got[0] == pytest.approx([0, 0, 32, 32])


def test_yolo_folder_reads_normalized_boxes(tmp_path):
    _images(tmp_path / "images", ["a.png", "b.png"])
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")  # b.png: no label file, no objects
    train, evals, names = build_det_data(det_recipe({"num_classes": 2}, source="det-yolo", root=str(tmp_path),
                                                    val_ratio=0.5))
    boxes = sorted((b.tolist(), c.tolist()) for _, b, c in (train[0], evals["val"][0]))
    assert boxes[0] == ([], []) and boxes[1][1] == [1]
    assert boxes[1][0][0] == pytest.approx([8, 8, 24, 24])


def _run(tmp_path, data, detection):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({**DET, "data": {"image_size": 32, "workers": 0, "root": str(tmp_path / "d"),
                                                      **data}, "detection": detection}))
    return invoke("run", recipe, f"output.dir={tmp_path / 'runs'}")


@pytest.mark.parametrize("ann, said", [
    ({"id": 9, "image_id": 1, "category_id": 7, "bbox": [30, 3, 20, 12]}, "lies outside the 40×30 image"),
    ({"id": 9, "image_id": 1, "category_id": 7, "bbox": [4, 3, -2, 12]}, "x2<=x1"),
    ({"id": 9, "image_id": 1, "category_id": 5, "bbox": [4, 3, 2, 2]}, "category_id 5"),
    ({"id": 9, "image_id": 42, "category_id": 7, "bbox": [4, 3, 2, 2]}, "image_id 42"),
])
def test_bad_coco_annotations_exit_2_naming_them(tmp_path, capsys, ann, said):
    _coco(tmp_path / "d", [ann])
    assert _run(tmp_path, {"source": "det-coco"}, {}) == 2
    err = capsys.readouterr().err
    assert said in err and "annotations.json" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # refused before any work


def test_coco_image_missing_exits_2(tmp_path, capsys):
    _coco(tmp_path / "d", [])
    (tmp_path / "d" / "images" / "b.png").unlink()
    assert _run(tmp_path, {"source": "det-coco"}, {}) == 2
    assert "b.png, which does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("line, said", [("2 0.5 0.5 0.2 0.2", "class id 2; allowed: 0..1"),
                                        ("0 0.9 0.5 0.5 0.2", "lies outside"), ("0 0.5 0.5", "is no YOLO box")])
def test_bad_yolo_lines_exit_2_naming_file_and_line(tmp_path, capsys, line, said):
    _images(tmp_path / "d" / "images", ["a.png", "b.png"])
    (tmp_path / "d" / "labels").mkdir()
    (tmp_path / "d" / "labels" / "a.txt").write_text(f"0 0.5 0.5 0.2 0.2\n{line}\n")
    assert _run(tmp_path, {"source": "det-yolo"}, {"num_classes": 2}) == 2
    err = capsys.readouterr().err
    assert said in err and "a.txt:2" in err


def test_yolo_label_without_image_exits_2(tmp_path, capsys):
    _images(tmp_path / "d" / "images", ["a.png", "b.png"])
    (tmp_path / "d" / "labels").mkdir()
    (tmp_path / "d" / "labels" / "c.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert _run(tmp_path, {"source": "det-yolo"}, {"num_classes": 2}) == 2
    assert "c.txt has no image" in capsys.readouterr().err


def _voc(root, objects):
    _images(root / "JPEGImages", ["a.png", "b.png"])
    (root / "Annotations").mkdir()
    body = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    (root / "Annotations" / "a.xml").write_text(f"<annotation><size><width>40</width><height>30</height></size>"
                                                f"{body}</annotation>")


VOC = {"image_dir": "JPEGImages", "class_names": ["cat", "dog"]}


def test_voc_folder_reads_named_objects(tmp_path):
    _voc(tmp_path, [("dog", (5, 4, 24, 15))])
    train, evals, names = build_det_data(det_recipe(VOC, source="det-voc", root=str(tmp_path), val_ratio=0.5))
    got = sorted((b.tolist(), c.tolist()) for _, b, c in (train[0], evals["val"][0]))
    assert names == ["cat", "dog"] and got[0] == ([], []) and got[1][1] == [1]
    assert got[1][0][0] == pytest.approx([4 * 32 / 40, 3 * 32 / 30, 24 * 32 / 40, 15 * 32 / 30])


@pytest.mark.parametrize("obj, said", [(("cow", (5, 4, 24, 15)), "object 0 is named 'cow'"),
                                       (("cat", (5, 4, 44, 15)), "lies outside the 40×30 image")])
def test_bad_voc_objects_exit_2_naming_them(tmp_path, capsys, obj, said):
    _voc(tmp_path / "d", [obj])
    assert _run(tmp_path, {"source": "det-voc"}, VOC) == 2
    err = capsys.readouterr().err
    assert said in err and "a.xml" in err
