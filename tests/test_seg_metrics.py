"""Segmentation metrics against hand-computed cases: IoU, pixel accuracy, boundary F1, teacher agreement."""

import pytest
import torch

from edgedistill.evaluate.segmentation import SegScores, boundaries


def _scores(pred, target, teacher=None, k=3, tol=0):
    s = SegScores(k, 255, tol)
    s.update(torch.as_tensor(pred)[None], torch.as_tensor(target)[None],
             None if teacher is None else torch.as_tensor(teacher)[None])
    return s.compute()


def test_iou_and_pixel_accuracy_by_hand():
    target = [[0, 0, 1, 1], [0, 0, 1, 1]]
    pred = [[0, 1, 1, 1], [0, 0, 1, 2]]
    out = _scores(pred, target)
    # class 0: tp 3, union 4; class 1: tp 3, union 5; class 2: tp 0, union 1
    assert out["per_class_iou"] == pytest.approx([75.0, 60.0, 0.0])
    assert out["miou"] == pytest.approx(45.0) and out["pixel_acc"] == pytest.approx(75.0)


def test_ignore_pixels_count_nowhere_and_absent_classes_leave_the_mean():
    target = [[0, 255], [0, 0]]
    pred = [[0, 1], [0, 0]]  # the wrong pixel is unlabelled
    out = _scores(pred, target)
    assert out["pixels"] == 3 and out["pixel_acc"] == 100.0
    assert out["per_class_iou"][1:] == [None, None] and out["miou"] == 100.0


def test_boundary_f1_perfect_shifted_and_tolerated():
    target = torch.zeros(8, 8, dtype=torch.long)
    target[:, 4:] = 1
    assert _scores(target, target, k=2)["boundary_f1"] == pytest.approx(100.0)
    shifted = torch.zeros(8, 8, dtype=torch.long)
    shifted[:, 6:] = 1
    assert _scores(shifted, target, k=2)["boundary_f1"] == 0.0
    assert _scores(shifted, target, k=2, tol=2)["boundary_f1"] == pytest.approx(100.0)


def test_boundaries_skip_edges_against_unlabelled_pixels():
    lab = torch.tensor([[[0, 0, 255, 255], [0, 0, 255, 255]]])
    assert not boundaries(lab, 255).any() and boundaries(lab).any()


def test_teacher_agreement_is_the_share_of_equal_labelled_pixels():
    target = [[0, 0, 1, 255]]
    out = _scores([[0, 1, 1, 2]], target, teacher=[[0, 1, 0, 0]])
    assert out["teacher_agreement"] == pytest.approx(200 / 3)
