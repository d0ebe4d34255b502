"""Model sources, weights, heads, checkpoints and feature taps: real behaviour, no downloads."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from edgedistill.errors import UserError
from edgedistill.models import (
    MODEL_SOURCES,
    FeatureTaps,
    create_model,
    list_models,
    load_model,
    read_meta,
    reset_head,
    save_model,
    weights_class_count,
)

CIFAR = ["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
         "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"]


def n_params(m: nn.Module) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e6


def same_backbone(a: nn.Module, b: nn.Module, head: str = "fc") -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in sa.items() if not k.startswith(head + "."))


def test_sources_registered():
    assert MODEL_SOURCES.names() == ["arch", "cifar", "det", "file", "hf", "hf-clip", "seg", "timm",
                                       "torchvision"]
    assert all(e.meta.get("description") for e in MODEL_SOURCES)
    listed = list_models()
    assert set(CIFAR) == set(listed["cifar"]) and "resnet18" in listed["timm"]
    assert "mobilenet_v2" in listed["torchvision"] and "fasterrcnn_resnet50_fpn" not in listed["torchvision"]
    assert list_models("cifar", "wrn_*") == {"cifar": ["wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"]}
    with pytest.raises(UserError, match="timm"):
        list_models("tim")


@pytest.mark.parametrize("name", CIFAR)
@pytest.mark.parametrize("size", [32, 16])
def test_cifar_output_shape(name, size):
    torch.manual_seed(0)
    model = create_model(f"cifar:{name}", 100 if size == 32 else 7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, 100 if size == 32 else 7)


@pytest.mark.parametrize("name,classes,millions", [
    # the mdistiller/CRD architectures at 100 classes …
    ("resnet8", 100, 0.0839), ("resnet20", 100, 0.278), ("resnet56", 100, 0.862), ("resnet110", 100, 1.74),
    ("resnet8x4", 100, 1.23), ("resnet32x4", 100, 7.43), ("wrn_40_2", 100, 2.26), ("wrn_16_2", 100, 0.70),
    # … and He et al.'s CIFAR-10 figures for the same nets (the commonly quoted 0.078M / 0.27M / 0.85M)
    ("resnet8", 10, 0.078), ("resnet20", 10, 0.27), ("resnet56", 10, 0.85), ("wrn_40_2", 10, 2.24),
])
def test_cifar_param_counts_match_literature(name, classes, millions):
    assert n_params(create_model(f"cifar:{name}", classes)) == pytest.approx(millions, rel=0.03)


def test_cifar_module_names_for_taps():
    names = dict(create_model("cifar:resnet8").named_modules())
    assert {"conv1", "bn1", "layer1", "layer2", "layer3", "fc"} <= set(names)
    names = dict(create_model("cifar:wrn_16_1").named_modules())
    assert {"conv1", "block1", "block2", "block3", "bn1", "fc"} <= set(names)
    assert create_model("cifar:resnet8").fc.out_features == 100


@pytest.mark.parametrize("spec", ["timm:resnet18", "torchvision:mobilenet_v2"])
def test_hub_models_with_new_class_count(spec):
    model = create_model(spec, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    reset_head(model, 3)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("spec,close", [
    ("cifar:resnet9", "resnet8"), ("timm:resnet19", "resnet18"), ("torchvision:mobilenetv2", "mobilenet_v2"),
    ("cifr:resnet8", "cifar"),
])
def test_unknown_name_suggests_close_match(spec, close):
    with pytest.raises(UserError, match=close) as err:
        create_model(spec, key="student.model")
    assert err.value.key == "student.model"


def test_bad_spec_and_missing_files():
    with pytest.raises(UserError, match="SOURCE:NAME"):
        create_model("resnet8")
    with pytest.raises(UserError, match="does not exist"):
        create_model("cifar:resnet8", weights="/no/such/file.pth")
    with pytest.raises(UserError, match="no such model file"):
        create_model("file:/no/such/model.safetensors")
    with pytest.raises(UserError, match="cifar:resnet8 has no pretrained"):
        create_model("cifar:resnet8", weights="pretrained")


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_round_trip(tmp_path, suffix):
    torch.manual_seed(0)
    src = create_model("cifar:resnet8", 10).eval()
    path = tmp_path / f"w{suffix}"
    if suffix == ".pth":  # wrapped and DataParallel-prefixed, as other tools save them
        torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    else:
        save_file(src.state_dict(), path)
    assert weights_class_count("cifar:resnet8", str(path)) == 10
    torch.manual_seed(1)
    dst = create_model("cifar:resnet8", 10, weights=str(path)).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_class_count_mismatch(tmp_path):
    src = create_model("cifar:resnet8", 10)
    path = tmp_path / "ten.pth"
    torch.save(src.state_dict(), path)
    with pytest.raises(UserError, match="10 classes but 7") as err:
        create_model("cifar:resnet8", 7, weights=str(path), resize_head=False, key="student.model")
    assert "resize_head=true" in str(err.value) and err.value.key == "student.model"
    model = create_model("cifar:resnet8", 7, weights=str(path), resize_head=True).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert same_backbone(src, model)
    assert weights_class_count("cifar:resnet8", str(path)) == 10
    assert create_model("cifar:resnet8", weights=str(path)).fc.out_features == 10  # no count: the file's


def test_missing_and_unexpected_keys(tmp_path):
    state = create_model("cifar:resnet8", 10).state_dict()
    state.pop("layer1.0.conv1.weight")
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UserError, match=r"missing keys: layer1\.0\.conv1\.weight.*unexpected keys: extra"):
        create_model("cifar:resnet8", 10, weights=str(path))
    torch.save(create_model("cifar:resnet20", 10).state_dict(), path)
    with pytest.raises(UserError, match="unexpected keys"):
        create_model("cifar:resnet8", 10, weights=str(path))


def test_save_load_round_trip_and_file_source(tmp_path):
    torch.manual_seed(0)
    model = create_model("cifar:resnet8", 5).eval()
    meta = {"model": "cifar:resnet8", "num_classes": 5, "class_names": list("abcde"), "image_size": 32,
            "mean": [0.5] * 3, "std": [0.25] * 3}
    path = save_model(tmp_path / "sub" / "model.safetensors", model, meta)
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temp left
    assert read_meta(path) == meta
    loaded, got = load_model(path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x))
    assert got == meta
    spec = f"file:{path}"
    assert weights_class_count(spec, None) == 5
    with torch.no_grad():
        assert torch.equal(model(x), create_model(spec, 5).eval()(x))
    with pytest.raises(UserError, match="5 classes but 3"):
        create_model(spec, 3, resize_head=False)
    resized = create_model(spec, 3).eval()
    with torch.no_grad():
        assert resized(x).shape == (3, 3)
    assert same_backbone(model, resized)
    # a model built from file: is saved as its architecture, so it does not depend on the old file
    again = save_model(tmp_path / "again.safetensors", resized, {**meta, "model": spec, "num_classes": 3})
    path.unlink()
    assert read_meta(again)["model"] == "cifar:resnet8"
    assert load_model(again)[0].fc.out_features == 3


def test_save_model_with_tied_weights(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.fc = nn.Linear(4, 4)
            self.fc.weight = self.a.weight

    path = save_model(tmp_path / "t.safetensors", Tied(), {"model": "cifar:resnet8", "num_classes": 4})
    assert {"a.weight", "fc.weight"} <= set(load_file(path))


def test_read_meta_rejects_foreign_files(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="no edgedistill metadata"):
        read_meta(path)
    (tmp_path / "junk.safetensors").write_bytes(b"no")
    with pytest.raises(UserError, match="not a safetensors"):
        read_meta(tmp_path / "junk.safetensors")


def test_weights_class_count_from_safetensors_header(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file(create_model("timm:resnet18", 12).state_dict(), path)
    assert weights_class_count("timm:resnet18", str(path)) == 12
    assert weights_class_count("cifar:resnet8", None) is None


def test_feature_taps_shapes_and_removal():
    model = create_model("cifar:resnet8", 10).eval()
    with FeatureTaps(model, ["layer2", "layer3", "layer3.0.conv1"]) as taps:
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert taps.features["layer2"].shape == (2, 32, 16, 16)
    assert taps.features["layer3"].shape == (2, 64, 8, 8)
    assert taps.features["layer3.0.conv1"].shape == (2, 64, 8, 8)
    assert all(not m._forward_hooks for m in model.modules())
    taps.features.clear()
    model(torch.randn(2, 3, 32, 32))
    assert taps.features == {}


def test_feature_taps_tuple_outputs():
    class TupleBlock(nn.Module):
        def forward(self, x):
            return x * 2, "aux"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = TupleBlock()

        def forward(self, x):
            return self.block(x)[0]

    net = Net()
    with FeatureTaps(net, ["block"]) as taps:
        net(torch.ones(1, 2))
    assert torch.equal(taps.features["block"], torch.full((1, 2), 2.0))


def test_feature_taps_bad_name_suggests_close_match():
    model = create_model("cifar:resnet8")
    with pytest.raises(UserError, match="'layer3'"):
        FeatureTaps(model, ["layer33"])
    assert all(not m._forward_hooks for m in model.modules())


def test_hf_needs_a_model_folder(tmp_path):
    with pytest.raises(UserError, match="config.json"):
        create_model(f"hf:{tmp_path}", 3)


def test_pretrained_class_counts_without_download():
    assert weights_class_count("timm:resnet18", "pretrained") == 1000
    assert weights_class_count("torchvision:resnet18", "pretrained") == 1000
