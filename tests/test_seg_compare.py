"""compare on segmentation arms: per-image IoU is the paired unit (Wilcoxon), through the task-keyed PAIRED_UNITS."""

import json
from types import SimpleNamespace

import numpy as np

from edgedistill.analysis.compare import PAIRED_UNITS, analyze, collect
from edgedistill.analysis.plan import Cell, Plan
from edgedistill.evaluate.segmentation import PER_IMAGE, load_per_image, save_per_image
from edgedistill.recipe.compare import CompareConfig
from edgedistill.report.compare import verdict_rows


def _run(root, name: str, miou: float, per_image: np.ndarray):
    run = root / name
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"task": "segmentation", "primary": "student",
                                                  "models": {"student": {"miou": miou}}}))
    save_per_image(run / PER_IMAGE, {"student": per_image.tolist()}, "abc123")
    return SimpleNamespace(output=SimpleNamespace(dir=root, name=name), eval=SimpleNamespace(split="val"))


def test_segmentation_arms_pair_on_per_image_iou(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(20, 60, size=40)
    cells = []
    for seed in range(3):
        cells.append(Cell("alone", seed, 0, f"a{seed}", _run(tmp_path, f"a{seed}", 40.0 + seed, base)))
        cells.append(Cell("kd", seed, 0, f"k{seed}", _run(tmp_path, f"k{seed}", 45.0 + seed, base + 5)))
    plan = Plan(CompareConfig(metric="miou", seeds=3), ["alone", "kd"], "alone", cells)
    res = analyze(plan, collect(plan))
    c = res["comparisons"][0]
    assert res["per_image_test"] == "per_image_iou" and "mcnemar" not in c
    assert c["per_image_iou"]["better_a"] == 120 and c["per_image_iou"]["p"] < 1e-6
    assert c["diff"] == 5.0 and "per_image_iou_p_adj" in c
    head, rows = verdict_rows(res)
    assert "per-image IoU Wilcoxon p" in head and rows[0][7] != "–"
    assert set(PAIRED_UNITS.names()) >= {"classification", "segmentation"}
    assert load_per_image(tmp_path / "a0" / PER_IMAGE)["images"] == "abc123"


def test_identical_arms_have_no_per_image_difference(tmp_path):
    base = np.linspace(10, 90, 12)
    cells = [Cell(a, s, 0, f"{a}{s}", _run(tmp_path, f"{a}{s}", 50.0, base)) for a in ("x", "y") for s in range(3)]
    plan = Plan(CompareConfig(metric="miou", seeds=3), ["x", "y"], "x", cells)
    assert analyze(plan, collect(plan))["comparisons"][0]["per_image_iou"]["p"] == 1.0
