"""task=detection metrics: COCO mAP through torchmetrics (perfect boxes score 100, shifted ones less) and the
box-level agreement with the teacher."""

import pytest
import torch

from edgedistill.evaluate.detection import Agreement, ap_scores, match_count, mean_ap

TRUTH = [{"boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0], [30.0, 30.0, 60.0, 62.0]]), "labels": torch.tensor([0, 1])}]


def _pred(shift=0.0, labels=(0, 1)):
    return [{"boxes": TRUTH[0]["boxes"] + shift, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor(labels)}]


def _map(pred):
    m = mean_ap()
    m.update(pred, TRUTH)
    return ap_scores(m)


def test_perfect_boxes_score_100_and_shifted_boxes_less():
    perfect = _map(_pred())
    assert perfect["map"] == pytest.approx(100) and perfect["map50"] == pytest.approx(100)
    shifted = _map(_pred(shift=2.0))
    assert shifted["map"] < 90 and shifted["map50"] == pytest.approx(100)  # still IoU ≥ 0.5
    assert _map(_pred(labels=(1, 0)))["map"] == pytest.approx(0)  # right boxes, wrong classes
    assert perfect["map_small"] == pytest.approx(100) and perfect["map_large"] is None  # no large objects


def test_agreement_matches_boxes_of_the_same_class_one_to_one():
    t = {**_pred()[0]}
    assert match_count(t, t) == 2
    assert match_count(_pred(labels=(1, 0))[0], t) == 0  # same places, other classes
    assert match_count(_pred(shift=15.0)[0], t) == 0  # IoU < 0.5
    a = Agreement(0.5)
    a.update(_pred()[0], t)
    a.update({**t, "scores": torch.tensor([0.9, 0.1])}, t)  # the student's second box is below the score
    assert a.compute() == pytest.approx(100 * 2 * 3 / (3 + 4))
    assert Agreement(0.5).compute() is None


def test_an_image_with_300_boxes_scores_its_100_best_as_coco_does():
    """SSDlite returns up to 300 boxes an image; COCO's mAP counts the 100 best-scored (maxDets). `scored` keeps
    those: the same mAP as torchmetrics given all 300 (which drops the rest itself, warning that it does)."""
    from edgedistill.evaluate.detection import scored

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 60
    pred = {"boxes": torch.cat([xy, xy + 4 + 20 * torch.rand(300, 2, generator=g)], 1),
            "scores": torch.rand(300, generator=g), "labels": torch.randint(0, 2, (300,), generator=g)}
    pred["boxes"][:2], pred["scores"][:2] = TRUTH[0]["boxes"], torch.tensor([0.05, 0.06])  # the true boxes rank low
    best = scored(pred, 0.0)
    assert len(best["boxes"]) == 100 and best["scores"].min() >= pred["scores"].sort().values[-100]
    assert _map([best]) == _map([pred]) and len(scored(_pred()[0], 0.85)["boxes"]) == 1
