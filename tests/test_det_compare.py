"""compare on detection arms: per-image COCO mAP is the paired unit (Wilcoxon, images without ground truth left
out), through the task-keyed PAIRED_UNITS; `edgedistill compare` of two tiny detection arms end to end."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from edgedistill.analysis.compare import PAIRED_UNITS, analyze, collect
from edgedistill.analysis.plan import Cell, Plan
from edgedistill.evaluate.detection import per_image_map
from edgedistill.evaluate.per_image import PER_IMAGE, save_per_image
from edgedistill.recipe.compare import CompareConfig
from edgedistill.report.compare import verdict_rows
from tests.conftest import invoke


def _run(root, name: str, map_: float, per_image: np.ndarray):
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "detection", "primary": "student",
                                                  "models": {"student": {"map": map_}}}))
    save_per_image(run / PER_IMAGE, {"student": per_image.tolist()}, "abc123", unit="map")
    return SimpleNamespace(output=SimpleNamespace(dir=root, name=name), eval=SimpleNamespace(split="val"))


def test_per_image_map_is_coco_map_of_each_image_alone():
    gt = {"boxes": torch.tensor([[2.0, 2.0, 20.0, 20.0]]), "labels": torch.tensor([1])}
    hit = {"boxes": gt["boxes"].clone(), "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
    miss = {"boxes": torch.tensor([[40.0, 40.0, 60.0, 60.0]]), "labels": torch.tensor([1]),
            "scores": torch.tensor([0.9])}
    none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    out = per_image_map([hit, miss, hit], [gt, gt, none])
    assert out[0] == pytest.approx(100.0) and out[1] == 0.0 and np.isnan(out[2])


def test_detection_arms_pair_on_per_image_map(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(10, 50, size=30)
    base[:3] = np.nan  # three images without a box: no AP, left out of the test
    gain = {"alone": 0.0, "fgd": 4.0}  # fgd adds 4 mAP on every image with a box, in every seed
    cells = [Cell(a, s, 0, f"{a}{s}", _run(tmp_path, f"{a}{s}", 20.0 + s + g, base + g)) for a, g in gain.items()
             for s in range(3)]
    res = analyze(plan := Plan(CompareConfig(metric="map", seeds=3), list(gain), "alone", cells), collect(plan))
    c = res["comparisons"][0]
    assert res["per_image_test"] == "per_image_map" and "mcnemar" not in c and "per_image_iou" not in c
    assert c["per_image_map"]["n"] == 81 and c["per_image_map"]["left_out"] == 9
    assert c["per_image_map"]["better_a"] == 81 and c["per_image_map"]["p"] < 1e-6
    assert c["diff"] == 4.0 and "per_image_map_p_adj" in c
    head, rows = verdict_rows(res)
    assert "per-image mAP Wilcoxon p" in head and rows[0][7] != "–"
    assert set(PAIRED_UNITS.names()) >= {"classification", "segmentation", "detection"}


def test_identical_detection_arms_have_no_per_image_difference(tmp_path):
    base = np.linspace(0, 100, 12)
    cells = [Cell(a, s, 0, f"{a}{s}", _run(tmp_path, f"{a}{s}", 30.0, base)) for a in ("x", "y") for s in range(3)]
    plan = Plan(CompareConfig(metric="map", seeds=3), ["x", "y"], "x", cells)
    assert analyze(plan, collect(plan))["comparisons"][0]["per_image_map"]["p"] == 1.0


@pytest.mark.slow
def test_compare_of_two_detection_arms_end_to_end(tmp_path):
    recipe = {
        "task": "detection", "data": {"source": "det-shapes", "image_size": 32, "workers": 0},
        "detection": {"synthetic_images": 16},
        "teacher": {"model": "det:fcos_mobilenet_v3_small@0.25", "epochs": 1},
        "student": {"model": "det:fcos_mobilenet_v3_small@0.25"},
        "distill": {"terms": [{"name": "pkd", "levels": 1}]},
        "train": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0, "threads": 1},
        "eval": {"latency_runs": 2, "warmup_runs": 1, "baseline": False, "threads": 1},
        "output": {"dir": str(tmp_path / "runs"), "name": "cmp"},
        "compare": {"arms": {"alone": {"distill.terms": []}, "fgd": {"distill.terms": [{"name": "fgd", "levels": 1}]}},
                    "seeds": 2, "metric": "map"},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert invoke("compare", path) == 0
    folder = tmp_path / "runs" / "cmp"
    out = json.loads((folder / "compare.json").read_text())
    assert out["metric"] == "map" and out["per_image_test"] == "per_image_map"
    (c,) = out["comparisons"]
    n_images = sum(json.loads((folder / "runs" / f"fgd-s{s}" / "metrics.json").read_text())["n_images"]
                   for s in range(2))
    assert (c["arm"], c["vs"]) == ("fgd", "alone") and c["per_image_map"]["n"] + c["per_image_map"]["left_out"] \
        == n_images
    assert "per-image mAP Wilcoxon p" in (folder / "report.md").read_text()
