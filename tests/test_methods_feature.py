"""Feature- and relation-based methods: loss math, default taps, gradients, one epoch each."""

import json
import math

import pytest
import timm
import torch
from conftest import demo_run, moved_by_the_terms
from torch import nn

from edgedistill.distill import Distiller, build_terms
from edgedistill.losses.feature import at_loss, attention_map, hidden_align_loss, nst_loss
from edgedistill.losses.relation import contrastive_loss, rkd_angle_loss, rkd_distance_loss, sp_loss
from edgedistill.models import create_model
from edgedistill.models.features import default_feature_layer, probe_features, to_spatial
from edgedistill.recipe import DistillConfig

METHODS = ["fitnet", "at", "nst", "hidden_align", "rkd", "sp", "crd"]


# ---------------------------------------------------------------- loss math on tiny inputs

def test_attention_map_by_hand():
    f = torch.zeros(1, 2, 1, 2)
    f[0, 0, 0, 0], f[0, 1, 0, 1] = 3.0, 4.0  # channel-mean of f²: (4.5, 8) → normalized
    expected = torch.tensor([4.5, 8.0]) / math.hypot(4.5, 8.0)
    assert torch.allclose(attention_map(f)[0], expected)


def test_at_zero_for_identical_and_invariant_to_positive_scaling():
    torch.manual_seed(0)
    s, t = torch.randn(3, 4, 5, 5), torch.randn(3, 8, 5, 5)
    assert at_loss([s], [s.clone()]).item() == pytest.approx(0.0, abs=1e-7)
    assert at_loss([s], [t]).item() > 0
    assert at_loss([3.0 * s], [t]).item() == pytest.approx(at_loss([s], [t]).item(), rel=1e-5)
    assert at_loss([s, s], [t, t]).item() == pytest.approx(2 * at_loss([s], [t]).item(), rel=1e-5)


def test_at_pools_the_larger_map():
    s, t = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)
    assert torch.isfinite(at_loss([s], [t]))


def test_sp_zero_for_identical_and_invariant_to_scaling():
    torch.manual_seed(0)
    s, t = torch.randn(4, 3, 2, 2), torch.randn(4, 6, 3, 3)  # widths and sizes may differ: b×b Grams
    assert sp_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-7)
    assert sp_loss(s, t).item() > 0
    assert sp_loss(5.0 * s, t).item() == pytest.approx(sp_loss(s, t).item(), rel=1e-5)


def test_rkd_distance_by_hand_and_scale_invariant():
    # points 0, 1, 3 on a line: distances (1, 3, 2), mean 2 → normalized (0.5, 1.5, 1)
    s = torch.tensor([[0.0], [1.0], [3.0]])
    t = torch.tensor([[0.0], [2.0], [3.0]])  # distances (2, 3, 1), mean 2 → (1, 1.5, 0.5)
    # off-diagonal differences: 0.5, 0, 0.5 (each twice), diagonal 0 → smooth-L1 mean over 9 entries
    expected = 2 * (0.5 * 0.5**2 + 0 + 0.5 * 0.5**2) / 9
    assert rkd_distance_loss(s, t).item() == pytest.approx(expected, rel=1e-4)
    torch.manual_seed(0)
    a, b = torch.randn(6, 5), torch.randn(6, 7)
    assert rkd_distance_loss(a, a.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert rkd_distance_loss(10.0 * a, b).item() == pytest.approx(rkd_distance_loss(a, b).item(), rel=1e-4)


def test_rkd_angle_invariant_to_scale_and_translation():
    torch.manual_seed(0)
    a, b = torch.randn(5, 4), torch.randn(5, 9)
    base = rkd_angle_loss(a, b).item()
    assert base > 0
    assert rkd_angle_loss(3.0 * a + 7.0, b).item() == pytest.approx(base, rel=1e-4)
    assert rkd_angle_loss(a, a.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_contrastive_by_hand_and_invariant_to_scale_and_batch_order():
    e = torch.eye(2)  # two orthogonal pairs, τ=1: each row's scores (1, 0) → CE = log(1 + e⁻¹)
    assert contrastive_loss(e, e, 1.0).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)
    torch.manual_seed(0)
    s, t = torch.randn(6, 5), torch.randn(6, 5)
    base = contrastive_loss(s, t, 0.1).item()
    assert contrastive_loss(4.0 * s, 0.5 * t, 0.1).item() == pytest.approx(base, rel=1e-5)
    perm = torch.randperm(6)
    assert contrastive_loss(s[perm], t[perm], 0.1).item() == pytest.approx(base, rel=1e-5)
    # matched pairs score lower than pairs shuffled against each other; colder τ separates them more
    assert contrastive_loss(s, s + 0.01 * t, 0.1).item() < contrastive_loss(s, t, 0.1).item()
    assert contrastive_loss(s, s.clone(), 0.05).item() < contrastive_loss(s, s.clone(), 1.0).item()


def test_nst_zero_for_identical_and_positive_otherwise():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 3, 3), torch.randn(2, 6, 3, 3)
    assert nst_loss(s, s.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert nst_loss(s, t).item() > 0
    assert nst_loss(2.0 * s, t).item() == pytest.approx(nst_loss(s, t).item(), rel=1e-5)


def test_hidden_align_kinds():
    torch.manual_seed(0)
    s, t = torch.randn(2, 8, 3, 3), torch.randn(2, 8, 3, 3)
    for kind in ("mse", "cosine"):
        assert hidden_align_loss(s, 2.0 * s, kind).item() == pytest.approx(0.0, abs=1e-6)
    cos = hidden_align_loss(s, t, "cosine").item()
    assert hidden_align_loss(s, t, "mse").item() == pytest.approx(2 / 8 * cos, rel=1e-5)


# ---------------------------------------------------------------- to_spatial and default layers

def test_to_spatial_drops_class_and_distillation_tokens():
    grid = torch.arange(2 * 16 * 3, dtype=torch.float).reshape(2, 16, 3)
    for prefix in (1, 2):
        tokens = torch.cat([torch.full((2, prefix, 3), -1.0), grid], 1)
        out = to_spatial(tokens)
        assert out.shape == (2, 3, 4, 4)
        assert torch.equal(out[:, :, 1, 2], grid[:, 1 * 4 + 2, :])  # token (row 1, col 2) lands at [1, 2]
    cnn = torch.randn(2, 5, 3, 3)
    assert to_spatial(cnn) is cnn


def test_to_spatial_reads_hf_tuple_outputs():
    tokens = torch.randn(2, 1 + 9, 6)
    out = to_spatial((tokens, None))  # a transformers layer returns (hidden_states, attentions?)
    assert out.shape == (2, 6, 3, 3) and torch.equal(out.flatten(2).transpose(1, 2), tokens[:, 1:])
    assert to_spatial({"last_hidden_state": tokens}).shape == (2, 6, 3, 3)  # a ModelOutput is a dict


@pytest.mark.parametrize("spec,expected", [
    ("cifar:resnet8", "layer3"),
    ("cifar:wrn_16_2", "block3"),
    ("timm:resnet18", "layer4"),
    ("timm:mobilenetv3_small_100", "blocks.5"),
    ("torchvision:mobilenet_v2", "features.18"),
])
def test_default_feature_layer(spec, expected):
    model = create_model(spec, 10)
    assert default_feature_layer(model) == expected
    x = torch.zeros(2, 3, 64, 64)
    f = probe_features(model, [expected], x)[expected]
    assert f.dim() == 4 and f.shape[0] == 2


def tiny_vit(**kw):
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=32,
                             patch_size=8, depth=2, **kw)


def test_default_feature_layer_timm_vit_and_fallback():
    vit = tiny_vit()
    assert default_feature_layer(vit) == "blocks.1"
    f = probe_features(vit, ["blocks.1"], torch.zeros(2, 3, 32, 32))["blocks.1"]
    assert f.shape == (2, 192, 4, 4)  # 1 + 16 tokens → class token dropped
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    assert default_feature_layer(plain, torch.zeros(2, 3, 8, 8)) == "1"


# The hf: ViT teacher (default layer, hidden_align into a CNN) is tested with real transformers in test_hf.py.


# ---------------------------------------------------------------- gradients through the Distiller

def distiller(method, params=None, student="cifar:resnet8", teacher="cifar:resnet14"):
    torch.manual_seed(0)
    s, t = create_model(student, 10), create_model(teacher, 10)
    example = torch.zeros(2, 3, 16, 16)
    cfg = DistillConfig(terms=[{"name": method, "weight": 1.0, **(params or {})}])
    terms = build_terms(cfg, s, t, example)
    return Distiller(s, t, terms, ce_weight=0.0), s, t


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_student_and_connector_not_teacher(method):
    d, s, t = distiller(method)
    d.train()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    out = d((x, y))
    assert set(out) == {"loss", method} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is None for p in t.parameters())
    assert s.conv1.weight.grad is not None and s.conv1.weight.grad.abs().sum() > 0
    term = d.terms[method]
    extra = list(term.parameters())
    assert all(p.grad is not None for p in extra)
    sd = d.state_dict()
    assert not any(k.startswith("teacher.") for k in sd)
    assert all(f"terms.{method}.{k}" in sd for k, _ in term.named_parameters())
    if method in ("fitnet", "hidden_align"):
        assert extra  # a learned connector, saved with the training checkpoint


def test_at_several_layer_pairs():
    d, s, _ = distiller("at", {"student_layers": ["layer2", "layer3"], "teacher_layers": ["layer2", "auto"]})
    assert d._student_taps == ["layer2", "layer3"] and d.teacher_taps == ["layer2", "layer3"]
    d((torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])))["loss"].backward()
    assert s.layer1[0].conv1.weight.grad is not None


def test_at_unpaired_layers_are_rejected():
    with pytest.raises(ValueError, match="same length"):
        DistillConfig(terms=[{"name": "at", "student_layers": ["layer2", "layer3"],
                              "teacher_layers": ["auto"]}])


def test_hidden_align_timm_vit_teacher_to_mobilenet_student():
    torch.manual_seed(0)
    teacher = tiny_vit()
    student = timm.create_model("mobilenetv2_050", pretrained=False, num_classes=10)
    example = torch.zeros(2, 3, 32, 32)
    cfg = DistillConfig(terms=[{"name": "hidden_align", "weight": 1.0, "loss": "cosine"}])
    terms = build_terms(cfg, student, teacher, example)
    term = terms["hidden_align"][1]
    assert (term.s_layer, term.t_layer) == ("blocks.6", "blocks.1")
    d = Distiller(student, teacher, terms)
    out = d((torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])))
    out["loss"].backward()
    assert torch.isfinite(out["hidden_align"])
    assert all(p.grad is None for p in teacher.parameters())
    assert term.projector.weight.grad is not None and student.conv_stem.weight.grad is not None


# ---------------------------------------------------------------- one epoch through the pipeline

TINY = [  # conftest's tiny_overrides (function-scoped) without output.dir, for a module-scoped run folder
    "data.image_size=16",
    "data.max_train_samples=256",
    "data.max_val_samples=128",
    "teacher.model=cifar:resnet14",
    "teacher.epochs=2",
    "train.epochs=2",
    "train.batch_size=32",
    "eval.latency_runs=3",
    "eval.warmup_runs=1",
]
FASTER = [  # six runs must fit the 60 s budget on 2 busy cores: smaller splits, a 1-epoch teacher
    "data.max_train_samples=64", "data.max_val_samples=32", "teacher.epochs=1", "eval.latency_runs=1",
    "eval.warmup_runs=0",
]


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature_runs")  # shared: the teacher is trained once, then reused


ONE_EPOCH = TINY + FASTER + ["eval.baseline=false", "train.epochs=1"]


@pytest.fixture(scope="module")
def ce_alone(runs_dir):
    """The same run with its one term at weight 0: what ce alone does to the student, same data, same seed."""
    return demo_run(ONE_EPOCH, runs_dir, "ce-alone", "{name: kd, weight: 0.0}")


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_pipeline(method, runs_dir, ce_alone):
    run_dir = demo_run(ONE_EPOCH, runs_dir, method, f"{{name: {method}, weight: 1.0}}")
    assert moved_by_the_terms(run_dir, ce_alone) > 1e-4  # the term changed the student, not ce alone
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0 <= metrics["models"]["student"]["top1"] <= 100
    lines = (run_dir / "student" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert method in rec and "loss" in rec
    losses = {k: v for k, v in rec.items() if k in ("loss", "ce", method)}
    assert all(math.isfinite(v) for v in losses.values()), losses


def test_unknown_layer_is_a_user_error_at_build_time():
    from edgedistill.errors import UserError

    with pytest.raises(UserError, match="layer3"):
        distiller("sp", {"student_layer": "layer33"})
