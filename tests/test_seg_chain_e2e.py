"""task=segmentation through the whole chain on a tiny run: run → compress (prune, export, int8) → deploy (ONNX
Runtime rows with mIoU) → eval; every artifact and figure the README names."""

import json

import pytest

from tests.conftest import invoke

TINY = ["data.image_size=32", "segmentation.synthetic_images=24", "teacher.model=seg:lraspp_mobilenet_v3_small@0.25",
        "student.model=seg:lraspp_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
        "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1", "eval.baseline=false",
        "distill.terms=[{name: pixel_kd}]", "compress.latency_runs=5", "compress.warmup_runs=1"]


@pytest.mark.slow
def test_segmentation_run_compress_deploy_eval(tmp_path, capsys):
    stages = ("compress.stages=[{name: prune, ratio: 0.3, step_epochs: 1}, {name: export}, "
              "{name: quantize, calib_samples: 8, sensitivity_images: 8, choice_rounds: 1, mixed_precision: 'off'}]")
    assert invoke("run", "recipes/seg-demo.yaml", f"output.dir={tmp_path}", *TINY, stages) == 0
    run = tmp_path / "seg-demo"
    res = json.loads((run / "compress" / "stages.json").read_text())
    assert [s["stage"] for s in res["stages"]] == ["student", "prune", "export", "quantize"]
    q = res["stages"][-1]
    assert {"miou", "agreement", "size_mb", "latency_ms", "gate"} <= set(q) and q["latency"]["rounds"] == 5
    assert res["stages"][1]["params"] < res["stages"][0]["params"] and res["teacher"]["student_speedup"] > 0
    assert "| quantize |" in (run / "compress" / "report.md").read_text()
    assert (run / "per_image.npz").exists()
    out = tmp_path / "deploy"
    assert invoke("deploy", run, "--runtimes", "onnxruntime", "--images", "4", "--calib", "8", "--rounds", "1",
                  "--runs", "2", "--no-memory", "--out", out) == 0
    m = json.loads((out / "matrix.json").read_text())
    assert m["task"] == "segmentation" and all("miou" in r for r in m["rows"] if r["status"] != "failed")
    assert "per-pixel agree" in (out / "matrix.md").read_text()
    assert invoke("eval", run / "student" / "model.safetensors", "--json", tmp_path / "e.json") == 0
    assert "miou" in json.loads((tmp_path / "e.json").read_text())
    assert invoke("deploy", run, "--image-dir", tmp_path) == 2  # masks are needed for mIoU
    # a compress killed after export: prune and export are reloaded, quantize reruns, the rows are the same
    comp = run / "compress"
    (comp / "quantize" / "entry.json").unlink()
    (comp / "stages.json").unlink()
    pruned = (comp / "prune" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert invoke("compress", run, "--resume") == 0
    assert capsys.readouterr().out.count("finished earlier, reusing") == 2
    again = json.loads((comp / "stages.json").read_text())
    assert [s["stage"] for s in again["stages"]] == ["student", "prune", "export", "quantize"]
    assert again["stages"][1] == res["stages"][1] and again["stages"][2] == res["stages"][2]
    assert (comp / "prune" / "model.safetensors").stat().st_mtime_ns == pruned and not (run / "compress-2").exists()
    assert invoke("compress", run, "--resume", "compress.stages=[{name: export}]") == 2  # another stage list
