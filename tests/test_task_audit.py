"""`edgedistill audit` of segmentation and detection runs: the task's own metric (mIoU, COCO mAP), its drop and
retention, agreement with the teacher and per-image Wilcoxon tests under each perturbation.

Hand-made models that read the image (a threshold on brightness) show that a perturbation which destroys the
image makes the metric fall; tiny trained runs (the seg/det chain tests' settings) go through the real CLI."""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch import nn

from edgedistill.analysis.dense_audit import check_perturbations, dense_summary, run_dense_audit
from edgedistill.errors import UserError
from edgedistill.tasks.det_audit import det_audit_task
from edgedistill.tasks.seg_audit import seg_audit_task
from tests.conftest import invoke
from tests.test_det_chain_e2e import TINY as DET_TINY
from tests.test_seg_chain_e2e import TINY as SEG_TINY

SIDE, N = 16, 8
RECIPE = SimpleNamespace(segmentation=SimpleNamespace(ignore_index=255, boundary_tolerance=1),
                         data=SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
                         detection=SimpleNamespace(score_threshold=0.05, agreement_score=0.3))


def _scenes() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """N dark noisy images in [0, 1], each with one bright square; its mask and its box."""
    g = torch.Generator().manual_seed(0)
    px = (0.1 + 0.05 * torch.rand(N, 3, SIDE, SIDE, generator=g))
    masks = torch.zeros(N, SIDE, SIDE, dtype=torch.long)
    boxes = []
    for i in range(N):
        y, x = (int(v) for v in torch.randint(0, SIDE - 6, (2,), generator=g))
        px[i, :, y:y + 6, x:x + 6] = 0.9
        masks[i, y:y + 6, x:x + 6] = 1
        boxes.append(torch.tensor([[x, y, x + 6, y + 6]], dtype=torch.float32))
    return px, masks, boxes


class Threshold(nn.Module):
    """Segmenter: a pixel brighter than `cut` is the square (inputs normalized with mean = std = 0.5)."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = (x * 0.5 + 0.5).mean(1)
        return torch.stack([self.cut - b, b - self.cut], 1) * 10


class BoxFinder(nn.Module):
    """Detector: the box around the pixels brighter than `cut` (inputs in [0, 1]), class 0, score 1; none if none."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = cut

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        out = []
        for img in x:
            ys, xs = torch.nonzero(img.mean(0) > self.cut, as_tuple=True)
            box = torch.tensor([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=torch.float32) \
                if len(xs) else torch.zeros(0, 4)
            out.append({"boxes": box, "labels": torch.zeros(len(box), dtype=torch.long),
                        "scores": torch.ones(len(box))})
        return out


CHOSEN = {"brightness": (1.0, 0.05), "noise": (0.02,)}


def _check_rows(audit: dict, metric: str) -> None:
    assert set(audit["perturbations"]) == set(CHOSEN)
    same, dark = audit["perturbations"]["brightness"]["rows"]
    assert same[metric] == {m: audit["clean"][m][metric] for m in audit["clean"]}  # factor 1 changes nothing
    assert audit["clean"]["teacher"][metric] > 90
    assert dark["drop"]["teacher"] > 30 and dark["retention"]["teacher"] < 70  # a black image has no square
    test = dark["clean_vs_perturbed"]["teacher"]
    assert test["better_a"] == N and test["p"] < 0.05 and test["p_holm"] >= test["p"]
    assert dark["drop_vs_teacher"]["student"]["p_holm"] is not None
    assert dense_summary(audit)["student"]["agreement"] == audit["fidelity"]["student"]["agreement"]


def test_seg_audit_metric_falls_when_the_image_is_destroyed():
    px, masks, _ = _scenes()
    batches = [((px[:4] - 0.5) / 0.5, masks[:4]), ((px[4:] - 0.5) / 0.5, masks[4:])]
    audit = run_dense_audit(seg_audit_task(RECIPE, 2, torch.device("cpu")),
                            {"teacher": Threshold(0.5), "student": Threshold(0.3)}, batches, CHOSEN)
    _check_rows(audit, "miou")
    assert audit["fidelity"]["student"]["agreement"] == 100.0  # both thresholds split 0.1 from 0.9 alike
    assert {"pixel_acc", "boundary_f1"} <= set(audit["clean"]["student"])


def test_det_audit_metric_falls_when_the_image_is_destroyed():
    px, _, boxes = _scenes()
    labels = [torch.zeros(1, dtype=torch.long)] * N
    batches = [(px[:4], boxes[:4], labels[:4]), (px[4:], boxes[4:], labels[4:])]
    audit = run_dense_audit(det_audit_task(RECIPE, torch.device("cpu")),
                            {"teacher": BoxFinder(0.5), "student": BoxFinder(0.3)}, batches, CHOSEN)
    _check_rows(audit, "map")
    assert audit["clean"]["teacher"]["map"] == pytest.approx(100.0)
    assert audit["perturbations"]["brightness"]["rows"][1]["agreement"]["student"] is None  # no box on either side


def test_fgsm_is_skipped_for_a_task_without_a_loss_and_refused_when_named():
    import dataclasses

    task = dataclasses.replace(det_audit_task(RECIPE, torch.device("cpu")), fgsm_loss=None, fgsm_skip="no loss here")
    kept, skipped = check_perturbations(task, {"noise": (0.1,), "fgsm": (0.01,)}, None)
    assert list(kept) == ["noise"] and skipped == {"fgsm": "no loss here"}
    with pytest.raises(UserError, match="fgsm") as e:
        check_perturbations(task, {"fgsm": (0.01,)}, "fgsm")
    assert e.value.key == "--perturb"
    for real in (det_audit_task(RECIPE, torch.device("cpu")), seg_audit_task(RECIPE, 2, torch.device("cpu"))):
        assert check_perturbations(real, {"fgsm": (0.01,)}, "fgsm") == ({"fgsm": (0.01,)}, {})


@pytest.mark.parametrize("spec", ["det:fcos_mobilenet_v3_small@0.25", "det:retinanet_mobilenet_v3_small@0.25",
                                  "det:ssdlite320_mobilenet_v3_large"])
def test_det_fgsm_raises_the_detectors_own_loss_and_leaves_it_untouched(spec):
    """FGSM on a detector steps on its training losses for the true boxes: the loss rises, while its batch-norm
    statistics and weights stay as they were and it is back in eval mode (a detector answers with boxes again).
    An untrained SSDlite's losses barely depend on its input (gradient ~1e-16, below float precision after a step):
    for it only the step's bounds and the untouched model are checked."""
    from edgedistill.analysis.perturb import fgsm_step
    from edgedistill.tasks.det_audit import det_fgsm_loss
    from edgedistill.tasks.detection import build_det_model

    torch.manual_seed(0)
    model = build_det_model(spec, 2, 64, None, "teacher.model").eval()
    px, _, boxes = _scenes()
    px = torch.nn.functional.interpolate(px[:2], size=64)
    batch = (px, [b * 4 for b in boxes[:2]], [torch.zeros(1, dtype=torch.long)] * 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        clean = det_fgsm_loss(model, px, batch).item()
    adv = fgsm_step(lambda x: det_fgsm_loss(model, x, batch), px, 4 / 255, lambda x: x)
    with torch.no_grad():
        attacked = det_fgsm_loss(model, adv, batch).item()
    assert (adv - px).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    if "ssdlite" not in spec:
        assert attacked > clean
    assert not model.training and isinstance(model(px), list)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_keys_on_a_detection_run_exit_2_before_any_model_is_read(tmp_path, capsys):
    """A run folder with no model at all: every refusal comes from the options, the recipe or the data."""
    from edgedistill.recipe import load_recipe

    run = tmp_path / "run"
    run.mkdir()
    r = load_recipe("recipes/det-demo.yaml", ["detection.synthetic_images=12", "data.image_size=32"])
    (run / "recipe.yaml").write_text(r.to_yaml())
    (run / "metrics.json").write_text(json.dumps({"task": "detection", "class_names": ["rectangle", "circle", "triangle", "ellipse"]}))
    for args, key in ((["--perturb", "fgsm,bogus"], "--perturb"), (["--max-images", "0"], "--max-images"),
                      (["--split", "test"], "--split"), (["--levels", "noise=7"], "--levels")):
        assert invoke("audit", run, *args) == 2, key
        assert key in capsys.readouterr().err
    assert invoke("audit", run, "--perturb", "noise") == 2  # the options pass; no student file: said, not crashed
    assert "no distilled student" in capsys.readouterr().err and not (run / "audit").exists()


# --- through the CLI on tiny trained runs ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg_audit")
    assert invoke("run", "recipes/seg-demo.yaml", f"output.dir={out}", *SEG_TINY, "train.threads=1") == 0
    return out / "seg-demo"


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("det_audit")
    assert invoke("run", "recipes/det-demo.yaml", f"output.dir={out}", *DET_TINY, "train.threads=1") == 0
    return out / "det-demo"


def _audited(run, metric: str, *extra: str) -> dict:
    assert invoke("audit", run, "--max-images", "4", "--batch-size", "3", "--perturb", "noise,brightness",
                  "--levels", "noise=0.1", "--levels", "brightness=1,0.05", *extra) == 0
    audit = json.loads((run / "audit" / "audit.json").read_text())
    assert audit["n_images"] == 4 and audit["metric"] == metric and set(audit["perturbations"]) == {"noise",
                                                                                                   "brightness"}
    same = audit["perturbations"]["brightness"]["rows"][0]
    assert same[metric] == {m: audit["clean"][m][metric] for m in audit["clean"]}
    assert json.loads((run / "metrics.json").read_text())["fidelity"]["metric"] == metric
    assert "data:image/png;base64" in (run / "audit" / "report.html").read_text()
    return audit


@pytest.mark.slow  # trains the tiny run and audits it 5 times
def test_audit_of_a_segmentation_run(seg_run, tmp_path):
    audit = _audited(seg_run, "miou")
    assert "per-pixel agreement" in (seg_run / "audit" / "report.md").read_text()
    assert audit["skipped"] == {}
    for args, key in ((["--max-images", "0"], "--max-images"), (["--split", "test"], "--split"),
                      (["--batch-size", "5000"], "--batch-size")):
        assert invoke("audit", seg_run, *args) == 2, key
    same, other = tmp_path / "same", tmp_path / "other"  # --alone: another run's student as the baseline
    shutil.copytree(seg_run, same)
    assert invoke("audit", seg_run, "--alone", same, "--max-images", "2", "--perturb", "blur") == 0
    assert set(json.loads((seg_run / "audit" / "audit.json").read_text())["clean"]) == {"teacher", "student",
                                                                                        "student_alone"}
    shutil.copytree(seg_run, other)
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["segmentation"]["synthetic_images"] += 8  # other scenes, same data section
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert invoke("audit", seg_run, "--alone", other) == 2


@pytest.mark.slow  # trains the tiny run: ~14 s on 2 busy cores
def test_audit_of_a_detection_run(det_run, capsys):
    _audited(det_run, "map")
    assert invoke("audit", det_run, "--max-images", "2") == 0  # every perturbation, fgsm on the detector's losses
    audit = json.loads((det_run / "audit" / "audit.json").read_text())
    assert audit["n_images"] == 2 and len(audit["perturbations"]) == 6 and audit["skipped"] == {}
    fgsm = audit["perturbations"]["fgsm"]["rows"]
    assert [r["level"] for r in fgsm] == [1 / 255, 2 / 255, 4 / 255] and all(r["map"]["teacher"] is not None
                                                                          for r in fgsm)
