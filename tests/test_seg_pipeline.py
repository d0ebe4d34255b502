"""task=segmentation end to end on a few tiny synthetic scenes: the run folder, metrics.json and report.md."""

import json

import pytest

from tests.conftest import invoke


@pytest.mark.slow
def test_segmentation_run_writes_metrics_and_report(tmp_path):
    code = invoke("run", "recipes/seg-demo.yaml", f"output.dir={tmp_path}", "data.image_size=32",
                  "segmentation.synthetic_images=24", "teacher.model=seg:lraspp_mobilenet_v3_small@0.25",
                  "student.model=seg:lraspp_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
                  "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1",
                  "distill.terms=[{name: pixel_kd}, {name: cwd}, {name: pairwise}, {name: fitnet}]")
    assert code == 0
    run = tmp_path / "seg-demo"
    m = json.loads((run / "metrics.json").read_text())
    assert m["task"] == "segmentation" and set(m["models"]) == {"teacher", "student_alone", "student"}
    s = m["models"]["student"]
    assert {"miou", "pixel_acc", "boundary_f1", "teacher_agreement", "latency_ms_median"} <= set(s)
    assert len(s["per_class_iou"]) == 5 and "gain_over_alone" in m["comparison"]
    assert "IoU per class" in (run / "report.md").read_text()
    assert (run / "student" / "model.safetensors").exists()
    assert invoke("compress", run, "compress.stages=[{name: finetune}]") == 2  # not a segmentation stage


@pytest.mark.slow
def test_timm_backbone_student_trains_distills_and_exports(tmp_path):
    """seg:lraspp_timm:NAME: a timm backbone under the LR-ASPP head runs the same chain, fitnet finds its decoder."""
    code = invoke("run", "recipes/seg-demo.yaml", f"output.dir={tmp_path}", "data.image_size=32",
                  "segmentation.synthetic_images=16", "teacher.model=seg:lraspp_mobilenet_v3_small@0.25",
                  "student.model=seg:lraspp_timm:mobilenetv3_small_050", "teacher.epochs=1", "train.epochs=1",
                  "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1", "eval.baseline=false",
                  "distill.terms=[{name: pixel_kd}, {name: fitnet}]")
    assert code == 0
    run = tmp_path / "seg-demo"
    m = json.loads((run / "metrics.json").read_text())
    assert m["models"]["student"]["model"] == "seg:lraspp_timm:mobilenetv3_small_050"
    assert invoke("compress", run, "compress.stages=[{name: export}]", "compress.latency_runs=2",
                  "compress.warmup_runs=1") == 0
    stages = json.loads((run / "compress" / "stages.json").read_text())
    assert "export" in json.dumps(stages) and list((run / "compress").glob("**/*.onnx"))


def test_unknown_timm_backbone_exits_2(tmp_path, capsys):
    assert invoke("run", "recipes/seg-demo.yaml", f"output.dir={tmp_path}",
                  "student.model=seg:lraspp_timm:resnet1888") == 2
    out = capsys.readouterr()
    assert "student.model" in out.err and "did you mean 'resnet18'" in out.err
    assert not list(tmp_path.iterdir())
