"""FGD (focal and global distillation for detectors): its box masks, attention and losses on hand-made maps, its
term on tiny detectors (gradient to the student and its own context blocks, never the teacher), bad parameters
and the refused `ld` exit 2, and a one-epoch run with fgd that writes per-image mAP for compare (and that audit
scores on mAP)."""

import copy
import json

import numpy as np
import pytest
import torch

from edgedistill.distill import build_terms
from edgedistill.distill.det_base import DetDistiller, probe
from edgedistill.errors import UserError
from edgedistill.evaluate.per_image import PER_IMAGE, load_per_image
from edgedistill.losses.fgd import GlobalContext, attention, box_masks, fgd_loss, focal_losses, global_loss
from edgedistill.recipe import build_recipe
from tests.conftest import invoke
from tests.test_det_methods import BOXES, LABELS, X, model

def fgd_recipe(**params):
    return build_recipe({"task": "detection", "data": {"source": "det-shapes"},
                         "teacher": {"model": "det:fcos_mobilenet_v3_small@0.5"},
                         "student": {"model": "det:fcos_mobilenet_v3_small@0.25"},
                         "distill": {"terms": [{"name": "fgd", **params}]}})


def test_box_masks_weigh_each_box_and_the_background_alike():
    # canvas 64 px onto an 8×8 map: 8 px a cell; a tall box (x 0..8, y 0..32) covers 1 column × 4 rows
    fg, bg = box_masks([torch.tensor([[0.0, 0.0, 8.0, 32.0], [40.0, 40.0, 56.0, 56.0]])], (64, 64), (8, 8))
    assert fg[0, :4, 0].tolist() == [0.25] * 4 and fg[0, 0, 1] == 0  # rows from y, columns from x
    assert fg[0, 5:7, 5:7].eq(0.25).all()
    assert float(fg.sum()) == pytest.approx(2.0)  # each box's weights sum to 1
    assert float(bg.sum()) == pytest.approx(1.0) and not (fg * bg).any()
    assert int((bg > 0).sum()) == 64 - 8
    # overlap: the smaller box's (larger) weight wins; a box past the canvas is clipped, a sliver keeps one cell
    fg, _ = box_masks([torch.tensor([[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 8.0, 8.0], [60.0, 60.0, 90.0, 61.0]])],
                      (64, 64), (8, 8))
    assert fg[0, 0, 0] == 1.0 and fg[0, 1, 1] == pytest.approx(1 / 16) and fg[0, 7, 7] == 1.0
    assert float(box_masks([torch.zeros(0, 4)], (64, 64), (8, 8))[1].sum()) == pytest.approx(1.0)


def test_attention_is_a_scaled_softmax_that_follows_magnitude():
    f = torch.zeros(1, 4, 3, 3)
    f[0, 2, 1, 1] = -5.0  # |F|: one hot cell, one hot channel
    sp, ch = attention(f, 0.5)
    assert float(sp.mean()) == pytest.approx(1.0) and float(ch.mean()) == pytest.approx(1.0)
    assert sp[0].argmax() == 4 and ch[0].argmax() == 2
    assert float(attention(f, 100.0)[0].max()) < float(sp.max())  # a higher temperature flattens it


def test_focal_losses_split_foreground_from_background():
    t = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    fg, bg = box_masks([torch.tensor([[0.0, 0.0, 16.0, 16.0]])] * 2, (64, 64), (8, 8))
    s = t.clone()
    s[:, :, :2, :2] += 1.0  # the student differs inside the box only
    fg_l, bg_l, att_l = focal_losses(s, t, fg, bg, 0.5)
    assert float(fg_l) > 0 and float(bg_l) == 0 and float(att_l) > 0
    s = t.clone()
    s[:, :, 5:, 5:] += 1.0  # outside only
    fg_l, bg_l, _ = focal_losses(s, t, fg, bg, 0.5)
    assert float(fg_l) == 0 and float(bg_l) > 0
    assert all(float(v) == 0 for v in focal_losses(t, t, fg, bg, 0.5))


def test_fgd_loss_vanishes_only_when_features_and_context_blocks_agree():
    torch.manual_seed(0)
    t = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    ctx = [(GlobalContext(8), GlobalContext(8)) for _ in t]
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 30.0]])] * 2
    # the context blocks start as the identity (last conv zero), so equal maps give zero even with two blocks
    assert float(fgd_loss(t, t, boxes, (64, 64), ctx).detach()) == 0.0
    assert float(fgd_loss([x * 1.5 for x in t], t, boxes, (64, 64), ctx).detach()) > 0
    cs, ct = ctx[0]
    torch.nn.init.normal_(cs.transform[-1].weight)  # trained apart, the two blocks no longer agree
    assert float(global_loss(t[0], t[0], cs, ct).detach()) > 0
    ct.load_state_dict(cs.state_dict())
    assert float(global_loss(t[0], t[0], cs, ct).detach()) == pytest.approx(0.0, abs=1e-6)


def test_fgd_term_trains_the_student_and_its_own_blocks_never_the_teacher():
    teacher, student = model("det:fcos_mobilenet_v3_small@0.5"), model()
    terms = build_terms(fgd_recipe(lambda_fgd=1e-3).distill, student, teacher, X)
    term = terms["fgd"][1]
    assert len(term.ctx_student) == 5 and term.divisible == 32
    d = DetDistiller(student, teacher, terms, det_weight=0.0).train()
    out = d((X, BOXES, LABELS))
    assert set(out) == {"loss", "fgd"} and float(out["fgd"].detach()) > 0
    out["loss"].backward()
    assert sum(float(p.grad.abs().sum()) for p in student.net.backbone.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in term.ctx_teacher.parameters())
    assert not any("ctx_" in k for k in student.state_dict())  # the blocks are the distiller's, not exported


def test_fgd_term_is_zero_for_a_student_equal_to_the_teacher():
    teacher = model().eval()
    student = copy.deepcopy(teacher).eval()
    terms = build_terms(fgd_recipe(levels=2).distill, student, teacher, X)
    term = terms["fgd"][1]
    assert len(term.ctx_student) == 2
    assert float(term(probe(student, X), probe(teacher, X), (X, BOXES, LABELS))) == pytest.approx(0.0, abs=1e-6)
    assert float(term(probe(model("det:fcos_mobilenet_v3_small@0.5"), X), probe(teacher, X),
                      (X, BOXES, LABELS))) > 0


@pytest.mark.parametrize(("params", "needle"), [
    ({"alpha_fgd": -1}, "alpha_fgd"), ({"T": 0}, "T"), ({"lambda_fgd": float("inf")}, "lambda_fgd"),
    ({"alpha_fgd": 0, "beta_fgd": 0, "gamma_fgd": 0, "lambda_fgd": 0}, "all 0"), ({"temp": 0.5}, "temp"),
])
def test_bad_fgd_parameters_are_refused_naming_the_key(params, needle):
    with pytest.raises(UserError, match=needle) as e:
        build_recipe({**fgd_recipe().model_dump(mode="json"),
                      "distill": {"terms": [{"name": "fgd", **params}]}})
    assert "distill.terms" in str(e.value)


def test_bad_fgd_parameter_exits_2_and_ld_is_refused_with_why(tmp_path):
    assert invoke("run", "recipes/det-demo.yaml", f"output.dir={tmp_path}", "distill.terms=[{name: fgd, "
                  "beta_fgd: -0.5}]") == 2
    with pytest.raises(UserError, match="box edge.*allowed for det: models: box_kd .*pkd, fpn_cwd, fgd"):
        build_terms(build_recipe({**fgd_recipe().model_dump(mode="json"),
                                  "distill": {"terms": [{"name": "ld"}]}}).distill, model(), model(), X)
    assert not any(tmp_path.iterdir())


def test_one_epoch_run_with_fgd_writes_per_image_map(tmp_path):
    code = invoke("run", "recipes/det-demo.yaml", f"output.dir={tmp_path}", "data.image_size=32",
                  "detection.synthetic_images=16", "teacher.model=det:fcos_mobilenet_v3_small@0.25",
                  "student.model=det:fcos_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
                  "train.warmup_epochs=0", "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1",
                  "distill.terms=[{name: fgd, levels: 1}, {name: head_kd}]", "train.threads=1")
    assert code == 0
    run = tmp_path / "det-demo"
    m = json.loads((run / "metrics.json").read_text())
    assert m["terms"][0]["name"] == "fgd" and "per_image_map" not in m["models"]["student"]
    p = load_per_image(run / PER_IMAGE, unit="map")
    assert set(p["models"]) == {"teacher", "student_alone", "student"} and p["images"]
    scores = p["models"]["student"]
    assert len(scores) == m["n_images"] and np.all(np.isnan(scores) | ((scores >= 0) & (scores <= 100)))
    assert invoke("audit", run, "--max-images", "2", "--perturb", "blur", "--levels", "blur=1") == 0  # on mAP
    rows = json.loads((run / "audit" / "audit.json").read_text())["perturbations"]["blur"]["rows"]
    assert set(rows[0]["map"]) == {"teacher", "student_alone", "student"}
