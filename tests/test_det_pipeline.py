"""task=detection end to end on a few tiny synthetic scenes: the run folder, metrics.json and report.md."""

import json

import pytest
import yaml

from edgedistill.recipe import build_recipe, load_recipe
from tests.conftest import invoke


def test_detection_demo_validates_and_classification_is_written_as_before():
    demo = load_recipe("recipes/det-demo.yaml")
    assert demo.task == "detection" and demo.data.source == "det-shapes"
    written = yaml.safe_load(demo.to_yaml())
    assert written["task"] == "detection" and "detection" in written and "segmentation" not in written
    plain = yaml.safe_load(build_recipe({}).to_yaml())
    assert "detection" not in plain and "task" not in plain


@pytest.mark.slow
def test_detection_run_writes_metrics_and_report(tmp_path):
    code = invoke("run", "recipes/det-demo.yaml", f"output.dir={tmp_path}", "data.image_size=32",
                  "detection.synthetic_images=16", "teacher.model=det:fcos_mobilenet_v3_small@0.25",
                  "student.model=det:fcos_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
                  "train.warmup_epochs=0", "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1",
                  "distill.terms=[{name: pkd}, {name: fpn_cwd}, {name: head_kd}]")
    assert code == 0
    run = tmp_path / "det-demo"
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "detection" and set(m["models"]) == {"teacher", "student_alone", "student"}
    s = m["models"]["student"]
    assert {"map", "map50", "map_small", "map_medium", "map_large", "teacher_agreement", "latency_ms_median"} <= set(s)
    assert "gain_over_alone" in m["comparison"] and m["n_boxes"] > 0
    assert "mAP50" in (run / "report.md").read_text()
    assert (run / "student" / "model.safetensors").exists()
    assert invoke("compress", run, "compress.stages=[{name: qat}]") == 2  # a stage detection does not run
