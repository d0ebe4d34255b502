"""Every segmentation method on tiny seg: models: finite, zero when the student is the teacher, trains the
student; the per-pixel cross-entropy skips the ignore index."""

import copy

import pytest
import torch

from edgedistill.distill import METHODS, build_terms
from edgedistill.distill.base import Outputs
from edgedistill.distill.dense import SegDistiller
from edgedistill.losses.dense import cwd_loss, pairwise_loss, pixel_dkd_loss, pixel_kd_loss
from edgedistill.losses.dkd import dkd_loss
from edgedistill.losses.standardize import zscore
from edgedistill.losses.kd import kd_loss
from edgedistill.models import create_model
from edgedistill.recipe import DistillConfig

SPEC = "seg:lraspp_mobilenet_v3_small@0.25"
SEG_METHODS = ("pixel_kd", "pixel_dkd", "cwd", "pairwise", "fitnet")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return create_model(SPEC, 3), create_model("seg:lraspp_mobilenet_v3_small@0.5", 3), torch.randn(2, 3, 32, 32)


def test_every_segmentation_method_is_registered_for_the_task():
    seg = [e.name for e in METHODS if "segmentation" in e.meta.get("tasks", ())]
    assert sorted(seg) == sorted(SEG_METHODS)


@pytest.mark.parametrize("name", SEG_METHODS)
def test_method_trains_the_student(nets, name):
    student, teacher, x = copy.deepcopy(nets[0]), nets[1], nets[2]
    terms = build_terms(DistillConfig(terms=[{"name": name, "weight": 1.0}]), student, teacher, x)
    module = SegDistiller(student, teacher, terms, ignore_index=255)
    module.train()
    y = torch.randint(0, 3, (2, 32, 32))
    out = module((x, y))
    assert torch.isfinite(out["loss"]) and out[name].item() > 0
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_dense_losses_vanish_on_the_teacher_itself():
    t = torch.randn(2, 4, 6, 6)
    assert pixel_kd_loss(t, t).item() == pytest.approx(0, abs=1e-6)
    assert cwd_loss(t, t).item() == pytest.approx(0, abs=1e-6)
    assert pairwise_loss(torch.randn(2, 8, 6, 6) * 0 + t[:, :1], t[:, :1]).item() == pytest.approx(0, abs=1e-6)
    s = torch.randn(2, 4, 6, 6)
    assert pixel_kd_loss(s, t).item() > 0 and cwd_loss(s, t).item() > 0 and pairwise_loss(s, t).item() > 0


def test_pixel_kd_and_cwd_are_kd_on_pixels_and_on_channels():
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    one_pixel = kd_loss(s[:, :, 1, 2], t[:, :, 1, 2], 2.0)
    assert pixel_kd_loss(s[:, :, 1:2, 2:3], t[:, :, 1:2, 2:3], 2.0).item() == pytest.approx(one_pixel.item(), rel=1e-5)
    channel = kd_loss(s[:1, 1].reshape(1, -1), t[:1, 1].reshape(1, -1), 4.0)
    assert cwd_loss(s[:1, 1:2], t[:1, 1:2], 4.0).item() == pytest.approx(channel.item(), rel=1e-5)


def test_cross_entropy_skips_the_ignore_index():
    logits = torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [255, 255]]])
    module = SegDistiller(torch.nn.Identity(), ignore_index=255)
    out = module((logits, labels))
    ref = torch.nn.functional.cross_entropy(logits[0, :, 0].T, labels[0, 0])
    assert out["ce"].item() == pytest.approx(ref.item(), rel=1e-5)
    assert module((logits, torch.full((1, 2, 2), 255)))["ce"].item() == 0.0


def test_decoder_features_are_the_default_layer(nets):
    from edgedistill.models.features import default_feature_layer

    assert default_feature_layer(nets[0]) == "net.classifier.cbr"
    assert default_feature_layer(create_model("seg:deeplabv3_mobilenet_v3_large@0.25", 3)) == "net.classifier.3"
    assert isinstance(Outputs(torch.zeros(1)).features, dict)


def test_pixel_dkd_is_dkd_on_the_labelled_pixels_only():
    torch.manual_seed(1)
    s, t = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    masks = torch.randint(0, 4, (2, 5, 5))
    masks[0, :2] = 255  # the ignore index: no target class, no DKD
    rows = lambda x: x.permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731
    keep = masks.reshape(-1) != 255
    want = dkd_loss(rows(s)[keep], rows(t)[keep], masks.reshape(-1)[keep], 1.0, 8.0, 4.0)
    assert pixel_dkd_loss(s, t, masks).item() == pytest.approx(want.item(), rel=1e-5)
    other = pixel_dkd_loss(s, t, masks * 0).item()  # other labels: another TCKD/NCKD split
    assert pixel_dkd_loss(s, t, masks).item() != pytest.approx(other, rel=1e-3)
    assert pixel_dkd_loss(s, t, torch.full_like(masks, 255)).item() == 0
    assert pixel_dkd_loss(t, t, masks).item() == pytest.approx(0, abs=1e-6)


def test_pixel_kd_standardize_matches_the_teachers_shape_not_its_scale():
    t = torch.randn(2, 4, 5, 5)
    assert pixel_kd_loss(3 * t + 1, t, standardize=True).item() == pytest.approx(0, abs=1e-5)
    assert pixel_kd_loss(3 * t + 1, t).item() > 0.01
    rows = t.permute(0, 2, 3, 1).reshape(-1, 4)
    want = kd_loss(zscore(rows * 2), zscore(rows), 2.0).item()
    assert pixel_kd_loss(t * 2, t, 2.0, True).item() == pytest.approx(want, abs=1e-6)
