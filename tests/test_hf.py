"""The Hugging Face paths with the real libraries (transformers, datasets; both in the `test` extra), no download:
a tiny ViT built from a config and saved with save_pretrained (`hf:DIR`, `hidden_align` into a CNN), and
DatasetDicts of generated images saved with save_to_disk in every layout the `hf-disk` source reads."""

import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

datasets = pytest.importorskip("datasets")  # in the test extra; skipped only outside it
transformers = pytest.importorskip("transformers")

from edgedistill.data import build_data, class_names_of  # noqa: E402
from edgedistill.distill import Distiller, build_terms  # noqa: E402
from edgedistill.errors import UserError  # noqa: E402
from edgedistill.models import HFClassifier, create_model, weights_class_count  # noqa: E402
from edgedistill.models.features import default_feature_layer  # noqa: E402
from edgedistill.recipe import DataConfig, DistillConfig  # noqa: E402

NAMES = ["zero", "one", "two"]


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    """A 2-layer ViT for 16 px images and 3 named classes, saved as a user's transformers folder."""
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=8, hidden_size=12, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=24, num_labels=3,
                                 id2label=dict(enumerate(NAMES)), label2id={n: i for i, n in enumerate(NAMES)})
    model = transformers.ViTForImageClassification(cfg).eval()
    folder = tmp_path_factory.mktemp("vit")
    model.save_pretrained(folder)
    return folder, model


def test_hf_dir_loads_saved_weights_and_class_count(vit_dir):
    folder, original = vit_dir
    assert weights_class_count(f"hf:{folder}", "pretrained") == 3
    model = create_model(f"hf:{folder}", 3, weights="pretrained").eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model(x), original(pixel_values=x).logits, atol=1e-6)  # the saved weights, not new


def test_hf_dir_resized_head_and_fresh_build(vit_dir):
    folder, original = vit_dir
    resized = create_model(f"hf:{folder}", 5, weights="pretrained").eval()
    assert resized(torch.zeros(1, 3, 16, 16)).shape == (1, 5)
    body = "hf.vit.embeddings.patch_embeddings.projection.weight"  # the body keeps its trained weights
    assert torch.equal(resized.state_dict()[body], original.state_dict()[body.removeprefix("hf.")])
    fresh = create_model(f"hf:{folder}", 4)  # no weights: the config's architecture, freshly initialised
    assert fresh(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
    assert not torch.equal(fresh.state_dict()[body], original.state_dict()[body.removeprefix("hf.")])


def test_hf_vit_teacher_default_layer_and_hidden_align_into_a_cnn(vit_dir):
    folder, _ = vit_dir
    torch.manual_seed(0)
    teacher = create_model(f"hf:{folder}", 3, weights="pretrained")
    assert isinstance(teacher, HFClassifier)
    layer = default_feature_layer(teacher)
    assert layer in ("hf.vit.layers.1", "hf.vit.encoder.layer.1")  # transformers 5.x / 4.x module names
    student = create_model("cifar:resnet8", 3)
    cfg = DistillConfig(terms=[{"name": "hidden_align", "weight": 1.0}])
    terms = build_terms(cfg, student, teacher, torch.zeros(2, 3, 16, 16))
    d = Distiller(student, teacher, terms, ce_weight=0.0)
    out = d((torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])))
    out["loss"].backward()
    assert torch.isfinite(out["hidden_align"]) and student.conv1.weight.grad is not None
    assert terms["hidden_align"][1].projector.out_channels == 12  # the ViT's hidden size
    assert all(p.grad is None for p in teacher.parameters())


def _images(n: int, offset: int = 0) -> "datasets.Dataset":
    """n generated RGB images of 3 classes (brightness encodes the class) with an Image and a ClassLabel column."""
    rng = np.random.default_rng(offset)
    labels = [(i + offset) % 3 for i in range(n)]
    imgs = [Image.fromarray((rng.random((10, 10, 3)) * 60 + 90 * y).astype(np.uint8)) for y in labels]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"image": imgs, "label": labels}, features=feats)


@pytest.mark.parametrize("layout,sizes", [
    ("train+validation+test", (12, 6, 3)),   # every split given
    ("train+test", (12, 3, None)),            # test serves as the held-out split
    ("train", (9, 3, None)),                  # split by data.val_ratio (0.25, stratified)
    ("dataset", (9, 3, None)),                # a bare Dataset saved alone is its train split
])
def test_hf_disk_layouts(tmp_path, layout, sizes):
    train, val, test = _images(12), _images(6, 1), _images(3, 2)
    obj = {"train+validation+test": datasets.DatasetDict(train=train, validation=val, test=test),
           "train+test": datasets.DatasetDict(train=train, test=test),
           "train": datasets.DatasetDict(train=train),
           "dataset": train}[layout]
    obj.save_to_disk(str(tmp_path / "ds"))
    cfg = DataConfig(source="hf-disk", root=tmp_path / "ds", image_size=8, val_ratio=0.25)
    data = build_data(cfg)
    assert data.class_names == NAMES == class_names_of(cfg)
    got = (len(data.train), len(data.val), None if data.test is None else len(data.test))
    assert got == sizes
    x, y = data.val[0]
    assert x.shape == (3, 8, 8) and y in (0, 1, 2)


def test_hf_disk_other_column_names_and_undecoded_images(tmp_path):
    ds = _images(6).rename_columns({"image": "img", "label": "labels"}).cast_column("img", datasets.Image(decode=False))
    datasets.DatasetDict(train=ds, val=_images(3).rename_columns({"image": "img", "label": "labels"})).save_to_disk(
        str(tmp_path / "ds"))
    data = build_data(DataConfig(source="hf-disk", root=tmp_path / "ds", image_size=8))
    assert (len(data.train), len(data.val)) == (6, 3) and data.train[0][0].shape == (3, 8, 8)


def test_hf_disk_errors_name_the_key(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="save_to_disk") as e:
        class_names_of(DataConfig(source="hf-disk", root=tmp_path / "empty"))
    assert e.value.key == "data.root"
    datasets.DatasetDict(validation=_images(3)).save_to_disk(str(tmp_path / "noval"))
    with pytest.raises(UserError, match="no 'train' split"):
        build_data(DataConfig(source="hf-disk", root=tmp_path / "noval"))
    datasets.Dataset.from_dict({"x": [1, 2]}).save_to_disk(str(tmp_path / "nocols"))
    with pytest.raises(UserError, match="image and label columns"):
        class_names_of(DataConfig(source="hf-disk", root=tmp_path / "nocols"))


def test_hf_without_transformers_says_how_to_install(tmp_path, monkeypatch):
    """Stand-in on purpose: the installed library cannot produce its own absence, so the import is made to fail."""
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "a", "1": "b"}}))
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert weights_class_count(f"hf:{tmp_path}", "pretrained") == 2  # read from config.json, no import needed
    with pytest.raises(UserError, match=r"pip install edgedistill\[hf\]"):
        create_model(f"hf:{tmp_path}", 3, weights="pretrained")


@pytest.mark.slow
def test_run_with_hf_teacher_and_hf_disk_data(tmp_path, vit_dir):
    """A user's run end to end: hf-disk data, the saved ViT as teacher, hidden_align into a CNN student."""
    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe

    folder, _ = vit_dir
    datasets.DatasetDict(train=_images(48), validation=_images(12, 1)).save_to_disk(str(tmp_path / "ds"))
    recipe = load_recipe(None, [
        "data.source=hf-disk", f"data.root={tmp_path / 'ds'}", "data.image_size=16", "data.workers=0",
        f"teacher.model=hf:{folder}", "teacher.weights=pretrained", "student.model=cifar:resnet8",
        "distill.terms=[{name: kd}, {name: hidden_align}]", "train.epochs=1", "train.batch_size=16",
        "eval.baseline=false", "eval.latency_runs=2", "eval.warmup_runs=0", "track.tensorboard=false",
        f"output.dir={tmp_path / 'runs'}"])
    run_dir = run(recipe, Console(file=open(os.devnull, "w")))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == NAMES and metrics["n_images"] == 12
    assert set(metrics["models"]) == {"teacher", "student"}
    history = [json.loads(x) for x in (run_dir / "student" / "metrics.jsonl").read_text().splitlines()]
    assert np.isfinite(history[0]["hidden_align"]) and history[0]["hidden_align"] > 0


# ---------------------------------------------------------------- an HF dataset column as unlabeled images


def test_hf_dataset_column_as_unlabeled_images_never_reads_a_label(tmp_path):
    from edgedistill.data.unlabeled import NO_LABEL, HFUnlabeled, open_unlabeled

    cams = _images(7).rename_columns({"image": "frame"}).cast_column("frame", datasets.Image(decode=False))
    datasets.DatasetDict(train=_images(5), cams=cams).save_to_disk(str(tmp_path / "ds"))
    cfg = DataConfig(source="digits", unlabeled=tmp_path / "ds", unlabeled_split="cams", unlabeled_column="frame")
    ds = open_unlabeled(cfg)
    assert isinstance(ds, HFUnlabeled) and len(ds) == 7
    assert list(ds.ds.features) == ["frame"]  # the label column is not even selected
    img, label = ds[3]
    assert label == NO_LABEL and img.mode == "RGB" and img.size == (10, 10)
    # defaults: the train split's image column; a split without an 'image' column: its first Image column
    assert len(open_unlabeled(DataConfig(source="digits", unlabeled=tmp_path / "ds"))) == 5
    assert open_unlabeled(DataConfig(source="digits", unlabeled=tmp_path / "ds", unlabeled_split="cams")).column == "frame"
    bad = [({"unlabeled_split": "nope"}, "data.unlabeled_split", "cams"),
           ({"unlabeled_split": "cams", "unlabeled_column": "image"}, "data.unlabeled_column", "frame"),
           ({"unlabeled_column": "label"}, "data.unlabeled_column", "ClassLabel")]
    for over, key, says in bad:
        with pytest.raises(UserError, match=says) as e:
            open_unlabeled(DataConfig(source="digits", unlabeled=tmp_path / "ds", **over))
        assert e.value.key == key


@pytest.mark.slow  # ~20 s on 2 idle cores (107 s in make test-fast on the loaded machine)
def test_hf_dataset_column_unlabeled_end_to_end_and_folder_keys_refused(tmp_path, capsys):
    from conftest import cli

    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)) for _ in range(40)]
    datasets.Dataset.from_dict({"img": imgs}, features=datasets.Features({"img": datasets.Image()})).save_to_disk(
        str(tmp_path / "u"))
    fast = ["data.image_size=16", "data.max_train_samples=128", "data.max_val_samples=64", "data.workers=0",
            "data.hflip=false", "student.model=cifar:resnet8", "teacher.model=cifar:resnet8", "teacher.epochs=1",
            "train.epochs=1", "train.batch_size=32", "eval.latency_runs=2", "eval.warmup_runs=0",
            "eval.baseline=false", f"output.dir={tmp_path}/runs"]
    # the distilled student's batches carry the dataset's 40 images: 32 labelled + 32 unlabeled per step
    from conftest import pipeline_context

    from edgedistill.data.unlabeled import NO_LABEL
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path
    from edgedistill.teachers.student_loader import student_loader

    ctx = pipeline_context(load_recipe(recipe_path("demo"), [*fast, f"data.unlabeled={tmp_path / 'u'}"]), tmp_path)
    for images, labels in student_loader(ctx, ctx.loader("train")):
        assert images.shape[0] == 64 and labels[:32].ge(0).all() and (labels[32:] == NO_LABEL).all()
    code, out, err = cli(capsys, "run", "recipes/demo.yaml", *fast, f"data.unlabeled={tmp_path / 'u'}")
    assert code == 0, out + err
    run = next((tmp_path / "runs").iterdir())
    hist = [json.loads(x) for x in (run / "student" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["ce"] > 0 and hist[-1]["kd"] > 0
    folder = tmp_path / "files"
    folder.mkdir()
    imgs[0].save(folder / "a.png")
    code, out, err = cli(capsys, "run", "recipes/demo.yaml", *fast, f"data.unlabeled={folder}",
                         "data.unlabeled_column=image")
    assert code == 2 and "data.unlabeled_column" in out + err and "save_to_disk" in out + err
