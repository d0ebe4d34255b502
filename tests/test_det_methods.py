"""task=detection methods on tiny detectors: each term is zero when the student equals the teacher, positive
otherwise, and its gradient reaches the student; pairings the methods cannot use are refused (exit 2)."""

import copy

import pytest
import torch

from edgedistill.distill import METHODS, build_terms
from edgedistill.distill.det_base import DetDistiller
from edgedistill.errors import UserError
from edgedistill.losses.detection import head_kd_loss, pearson_normalize, pkd_loss
from edgedistill.models import create_model
from edgedistill.recipe import build_recipe

X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
BOXES = [torch.tensor([[2.0, 2.0, 20.0, 20.0]]), torch.tensor([[8.0, 4.0, 30.0, 24.0]])]
LABELS = [torch.tensor([1]), torch.tensor([0])]


def model(spec="det:fcos_mobilenet_v3_small@0.25"):
    torch.manual_seed(0)
    m = create_model(spec, 2)
    m.set_image_size(32)
    return m


def recipe(*terms):
    return build_recipe({"task": "detection", "data": {"source": "det-shapes"},
                         "teacher": {"model": "det:fcos_mobilenet_v3_small@0.25"},
                         "student": {"model": "det:fcos_mobilenet_v3_small@0.25"},
                         "distill": {"terms": [{"name": t} for t in terms]}})


def test_detection_methods_are_registered_for_detection_only():
    det = {e.name for e in METHODS if "detection" in e.meta.get("tasks", ())}
    assert det == {"pkd", "fpn_cwd", "head_kd", "fgd", "ld", "box_kd"}


@pytest.mark.parametrize("name", ["pkd", "fpn_cwd", "head_kd", "box_kd"])
def test_term_gradient_reaches_the_student(name):
    teacher, student = model("det:fcos_mobilenet_v3_small@0.5"), model()
    terms = build_terms(recipe(name).distill, student, teacher, X)
    d = DetDistiller(student, teacher, terms, det_weight=0.0).train()
    out = d((X, BOXES, LABELS))
    assert set(out) == {"loss", name} and float(out[name].detach()) > 0
    out["loss"].backward()
    grads = [p.grad for p in student.net.backbone.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen


def test_terms_vanish_when_student_is_the_teacher():
    teacher = model().eval()
    student = copy.deepcopy(teacher).eval()
    terms = build_terms(recipe("pkd", "fpn_cwd", "head_kd", "box_kd").distill, student, teacher, X)
    from edgedistill.distill.det_base import probe

    s, t = probe(student, X), probe(teacher, X)
    for name, (_, term) in terms.items():
        assert float(term(s, t, None)) == pytest.approx(0.0, abs=1e-4), name


def test_pkd_is_pearson_normalized_and_head_kd_is_a_divergence():
    f = torch.randn(2, 4, 5, 5)
    n = pearson_normalize(f)
    assert n.transpose(0, 1).reshape(4, -1).mean(1).abs().max() < 1e-5
    assert float(pkd_loss([f * 3 + 1], [f])) == pytest.approx(0.0, abs=1e-5)  # scale and shift do not count
    assert float(pkd_loss([-f], [f])) > 1.5
    logits = torch.randn(2, 10, 3)
    assert float(head_kd_loss(logits, logits)) == pytest.approx(0.0, abs=1e-5)
    assert float(head_kd_loss(-logits, logits)) > 0


def test_head_kd_refuses_a_head_without_dense_scores():
    ssd = create_model("det:ssdlite320_mobilenet_v3_large", 2)
    ssd.set_image_size(64)
    with pytest.raises(UserError, match="head_kd needs a teacher and a student with a dense class head"):
        build_terms(recipe("head_kd").distill, ssd, model(), torch.rand(1, 3, 64, 64))


def test_detection_recipe_refuses_a_classification_method():
    with pytest.raises(UserError) as e:
        build_recipe({"task": "detection", "data": {"source": "det-shapes"},
                      "teacher": {"model": "det:fcos_mobilenet_v3_small"},
                      "student": {"model": "det:fcos_mobilenet_v3_small"}, "distill": {"terms": [{"name": "kd"}]}})
    msg = str(e.value)
    assert "method 'kd' does not apply to task=detection" in msg and "pkd" in msg and "head_kd" in msg


def test_fpn_terms_keep_the_finest_levels_only_and_refuse_more_than_there_are():
    teacher, student = model("det:fcos_mobilenet_v3_small@0.5"), model()
    from edgedistill.distill.det_base import probe

    s, t = probe(student, X), probe(teacher, X)
    for name in ("pkd", "fpn_cwd"):
        def term(**p):
            r = build_recipe({**recipe(name).model_dump(mode="json"), "distill": {"terms": [{"name": name, **p}]}})
            return build_terms(r.distill, student, teacher, X)[name][1]

        assert len(term(levels=1).pairs(s, t)[0]) == 1 and len(term().pairs(s, t)[0]) == 5
        with pytest.raises(UserError, match="levels=9 but the models have 5 FPN levels"):
            term(levels=9)
