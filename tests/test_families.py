"""`arch:` parametric families: the spec grammar round-trips, builds what it names, saves, loads and exports."""

import pytest
import torch

from conftest import invoke
from edgedistill.errors import UserError
from edgedistill.models import (FAMILIES, canonical_spec, create_model, family_spec, load_model,
                                parse_family_spec, save_model, weights_class_count)

# The smallest member of each family: a few thousand parameters, so builds, forwards and exports take ms.
TINY = {
    "cifar_resnet": {"blocks": (1, 1, 1), "widths": (4, 4, 8, 8)},
    "mobilenetv2": {"width": 0.1, "depth": 0.1, "exp": 2},
    "mobilenetv3": {"width": 0.1, "depth": 0.1, "exp": 2},
    "mobilenetv3_small": {"width": 0.1, "depth": 0.1, "exp": 2},
    "efficientnet": {"width": 0.1, "depth": 0.1, "exp": 2},
}
REFERENCE = {"cifar_resnet": "cifar:resnet8", "mobilenetv2": "timm:mobilenetv2_100",
             "mobilenetv3": "timm:mobilenetv3_large_100", "mobilenetv3_small": "timm:mobilenetv3_small_100",
             "efficientnet": "timm:efficientnet_b0"}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(spec: str, num_classes: int = 10) -> torch.nn.Module:
    with torch.device("meta"):  # shapes only: building a 5M-parameter reference costs no memory or init time
        return create_model(spec, num_classes)


def test_every_family_is_tested():
    assert set(FAMILIES.names()) == set(TINY) == set(REFERENCE)


@pytest.mark.parametrize("family", sorted(TINY))
def test_spec_round_trips(family):
    for knobs in ({}, TINY[family]):
        spec = family_spec(family, knobs)
        assert spec.startswith(f"arch:{family},")
        fam, values = parse_family_spec(spec)
        assert fam == family and family_spec(fam, values) == spec
        assert values == {**FAMILIES.get(family).default, **knobs}
        assert list(values) == list(FAMILIES.get(family).knobs)  # canonical order
        assert parse_family_spec(spec[len("arch:"):]) == (fam, values)  # the prefix is optional
    # A hand-written spelling (knobs missing, reordered, a float as '.5') has one canonical form.
    assert canonical_spec("arch:mobilenetv2,kernel=5,width=.5") == \
        "arch:mobilenetv2,width=0.5,depth=1.0,exp=6,kernel=5,stem_stride=2"
    assert family_spec("mobilenetv2", {"width": 0.7500000001}) == family_spec("mobilenetv2", {"width": 0.75})


@pytest.mark.parametrize("family", sorted(REFERENCE))
def test_defaults_equal_the_reference_net(family):
    ours, ref = on_meta(family_spec(family, {})), on_meta(REFERENCE[family])
    assert n_params(ours) == n_params(ref)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


def test_cifar_resnet_is_the_cifar_resnets_key_for_key_and_value_for_value():
    for blocks, name in [("1-1-1", "resnet8"), ("3-3-3", "resnet20")]:
        torch.manual_seed(0)
        ref = create_model(f"cifar:{name}", 10)
        torch.manual_seed(0)
        ours = create_model(f"arch:cifar_resnet,blocks={blocks},widths=16-16-32-64", 10)
        a, b = ref.state_dict(), ours.state_dict()
        assert list(a) == list(b) and n_params(ours) == n_params(ref)
        assert all(torch.equal(a[k], b[k]) for k in a)  # same init order: the generalisation changed no numerics
    uneven = create_model("arch:cifar_resnet,blocks=1-2-3,widths=8-8-16-32", 10)
    assert [len(uneven.layer1), len(uneven.layer2), len(uneven.layer3)] == [1, 2, 3]
    assert uneven.conv1.out_channels == 8 and uneven.fc.in_features == 32


@pytest.mark.parametrize("family", sorted(TINY))
def test_width_multiplier_grows_params(family):
    if family == "cifar_resnet":
        specs = [family_spec(family, {"widths": (w, w, 2 * w, 4 * w)}) for w in (4, 8, 16, 32)]
    else:
        specs = [family_spec(family, {"width": w}) for w in (0.25, 0.5, 1.0, 1.5)]
    counts = [n_params(on_meta(s)) for s in specs]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts


def test_depth_kernel_and_expansion_knobs_change_the_net():
    base = n_params(on_meta("arch:efficientnet"))
    assert n_params(on_meta("arch:efficientnet,depth=2.0")) > base
    assert n_params(on_meta("arch:efficientnet,kernel=7")) > base
    assert n_params(on_meta("arch:efficientnet,exp=3")) < base
    k5 = create_model("arch:mobilenetv2,width=0.1,depth=0.1,kernel=5", 10)
    assert k5.blocks[1][0].conv_dw.kernel_size == (5, 5)


@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_members_run_on_small_images(family):
    for stride in (1, 2):
        knobs = dict(TINY[family], **({} if family == "cifar_resnet" else {"stem_stride": stride}))
        model = create_model(family_spec(family, knobs), 10).eval()
        for side in (32, 16):
            with torch.no_grad():
                assert model(torch.randn(1, 3, side, side)).shape == (1, 10)
        if family != "cifar_resnet":
            with torch.no_grad():
                side = model.forward_features(torch.randn(1, 3, 32, 32)).shape[-1]
            assert side == (2 if stride == 1 else 1)  # stride 1 halves the net's downsampling (32 → 16)


@pytest.mark.parametrize("family", sorted(TINY))
def test_saved_model_loads_back_with_identical_outputs(family, tmp_path):
    spec = family_spec(family, dict(TINY[family], **({} if family == "cifar_resnet" else {"stem_stride": 1})))
    model = create_model(spec, 10).eval()
    x = torch.randn(2, 3, 16, 16)
    path = save_model(tmp_path / "m.safetensors", model, {"model": spec, "num_classes": 10})
    loaded, meta = load_model(path)
    again = create_model(spec, 10, weights=str(path)).eval()
    assert meta["model"] == spec and weights_class_count(spec, str(path)) == 10
    with torch.no_grad():
        assert torch.equal(model(x), loaded.eval()(x)) and torch.equal(model(x), again(x))


@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_members_export_to_onnx(family, tmp_path):
    from edgedistill.deploy.export import check_parity, export_onnx

    model = create_model(family_spec(family, TINY[family]), 3).eval()
    path = export_onnx(model, tmp_path / "m.onnx", 16, ["a", "b", "c"], [0.5] * 3, [0.5] * 3)
    assert check_parity(model, path, torch.randn(2, 3, 16, 16))["passed"]


@pytest.mark.parametrize("call, named", [
    (lambda: family_spec("resnet", {}), ["'resnet'", "cifar_resnet"]),
    (lambda: family_spec("mobilenetv2", {"widht": 0.5}), ["'widht'", "width"]),
    (lambda: family_spec("mobilenetv2", {"width": 3.0}), ["'width'", "3.0", "0.1..2"]),
    (lambda: family_spec("mobilenetv2", {"kernel": 4}), ["'kernel'", "'4'", "3, 5, 7"]),
    (lambda: family_spec("mobilenetv2", {"exp": True}), ["'exp'", "1..8"]),
    (lambda: family_spec("cifar_resnet", {"blocks": (1, 1)}), ["'blocks'", "3 values"]),
    (lambda: parse_family_spec("arch:cifar_resnet,blocks=0-1-1"), ["'blocks'", "'0-1-1'", "1..18"]),
    (lambda: parse_family_spec("arch:mobilenetv2,width=wide"), ["'width'", "'wide'", "0.1..2"]),
    (lambda: parse_family_spec("arch:mobilenetv2,exp=2.5"), ["'exp'", "'2.5'", "integer"]),
    (lambda: parse_family_spec("arch:mobilenetv2,width"), ["key=value", "'width'"]),
    (lambda: parse_family_spec("arch:mobilenetv2,width=0.5,width=1.0"), ["'width'", "twice"]),
    (lambda: create_model("arch:efficientnet,stem_stride=3", 10), ["'stem_stride'", "'3'", "1, 2"]),
    (lambda: create_model("arch:mobilenetv2", 10, weights="pretrained"), ["no pretrained weights"]),
])
def test_bad_family_knob_or_value_is_a_user_error_naming_it(call, named):
    with pytest.raises(UserError) as e:
        call()
    for text in named:
        assert text in str(e.value)


def test_cli_rejects_a_bad_arch_spec_with_exit_2(capsys):
    assert invoke("demo", "student.model=arch:nope") == 2
    assert "student.model" in capsys.readouterr().err
    assert invoke("demo", "student.model=arch:mobilenetv2,width=9") == 2
    assert "'width'" in capsys.readouterr().err


def test_list_models_shows_the_families_and_their_knobs(capsys):
    assert invoke("list", "models", "--source", "arch") == 0
    out = capsys.readouterr().out
    for name in [*FAMILIES.names(), "stem_stride", "blocks", "widths"]:
        assert name in out
