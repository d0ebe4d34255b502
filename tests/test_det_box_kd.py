"""box_kd: the teacher's box regression as a soft target, GIoU for FCOS and L1 for RetinaNet, weighted by the
teacher's class score; a student and teacher of different detector types are refused."""

import pytest
import torch

from edgedistill.distill import build_terms
from edgedistill.errors import UserError
from edgedistill.losses.detection import box_kd_loss
from edgedistill.models import create_model
from tests.test_det_methods import X, recipe


def test_fcos_giou_is_zero_for_equal_boxes_even_dead_points_and_follows_the_teacher_score():
    t = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])  # a 2×2 box and a dead point (all 0)
    confident = torch.tensor([[[5.0], [5.0]]])
    assert float(box_kd_loss(t.clone(), t, confident, giou=True)) == pytest.approx(0.0, abs=1e-4)
    s = torch.tensor([[[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]]])  # first box 4×4 holding the 2×2: IoU 1/4
    assert float(box_kd_loss(s, t, confident, giou=True)) == pytest.approx(0.75 / 2, rel=0.05)
    ignored = torch.tensor([[[-30.0], [5.0]]])  # the teacher sees nothing at the differing point
    assert float(box_kd_loss(s, t, ignored, giou=True)) == pytest.approx(0.0, abs=1e-5)


def test_retinanet_deltas_are_l1():
    t = torch.zeros(1, 3, 4)
    s = t.clone()
    s[0, 0] = torch.tensor([0.5, -0.5, 0.0, 1.0])
    assert float(box_kd_loss(s, t, torch.full((1, 3, 2), 30.0), giou=False)) == pytest.approx(2.0 / 3, rel=1e-4)


def test_box_kd_refuses_two_detector_types():
    def net(spec):
        m = create_model(spec, 2)
        m.set_image_size(32)
        return m

    with pytest.raises(UserError, match="student is a FCOS .* teacher a RetinaNet"):
        build_terms(recipe("box_kd").distill, net("det:fcos_mobilenet_v3_small@0.25"),
                    net("det:retinanet_mobilenet_v3_small"), X)
