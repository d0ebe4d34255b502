"""task=detection through the whole chain on a tiny run: run → compress (prune, export, int8) → deploy (ONNX
Runtime rows scored on mAP and box agreement) → eval; an impossible int8 gate rejects and ships nothing; stages
and options detection cannot do exit 2."""

import json

import pytest
import torch

from tests.conftest import invoke

TINY = ["detection.synthetic_images=20", "teacher.model=det:fcos_mobilenet_v3_small@0.25",
        "student.model=det:fcos_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
        "train.warmup_epochs=0", "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1",
        "eval.baseline=false", "distill.terms=[{name: pkd}]", "compress.latency_runs=5", "compress.warmup_runs=1"]
QUANT = "{name: quantize, calib_samples: 8, sensitivity_images: 8, choice_rounds: 1, mixed_precision: 'off'}"


@pytest.mark.slow
def test_detection_run_compress_deploy_eval(tmp_path, capsys):
    assert invoke("run", "recipes/det-demo.yaml", f"output.dir={tmp_path}", *TINY) == 0
    run = tmp_path / "det-demo"
    stages = f"compress.stages=[{{name: prune, ratio: 0.3, step_epochs: 1}}, {{name: export}}, {QUANT}]"
    assert invoke("compress", run, stages, "detection.int8_max_map_drop=100") == 0  # 1 epoch: ~1 mAP to lose
    res = json.loads((run / "compress" / "stages.json").read_text())
    assert [s["stage"] for s in res["stages"]] == ["student", "prune", "export", "quantize"]
    assert "outside the graph" in res["nms"] and res["decode"]["nms_thresh"] > 0
    prune, export, quant = res["stages"][1:]
    assert prune["params"] < res["stages"][0]["params"] and prune["latency"]["rounds"] == 5
    assert export["parity"]["passed"] and export["map"] == pytest.approx(prune["map"], abs=0.5)
    assert {"map", "agreement", "size_mb", "latency_ms", "gate"} <= set(quant) and quant["gate"]["passed"]
    assert quant["int8_choice"]["timed"] == "end to end (graph + decode)"  # chosen with decoding and NMS timed
    assert res["teacher"]["student_speedup"] > 0 and "| quantize |" in (run / "compress" / "report.md").read_text()
    # a compress killed after export: prune and export (files and decoded boxes) are reloaded, quantize reruns
    comp = run / "compress"
    (comp / "quantize" / "entry.json").unlink()
    (comp / "stages.json").unlink()
    kept = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in (comp / "prune" / "model.safetensors",
                                                              comp / "export" / "model.onnx", comp / "export" / "ref.pt")}
    capsys.readouterr()
    assert invoke("compress", run, "--resume", stages, "detection.int8_max_map_drop=100") == 0
    assert capsys.readouterr().out.count("finished earlier, reusing") == 2
    again = json.loads((comp / "stages.json").read_text())
    assert [s["stage"] for s in again["stages"]] == ["student", "prune", "export", "quantize"]
    assert again["stages"][1:3] == res["stages"][1:3] and again["stages"][3]["gate"]["passed"]
    boxes = torch.load(comp / "export" / "ref.pt", weights_only=True)  # export's boxes: quantize's reference
    assert len(boxes) == res["images"] and {"boxes", "labels", "scores"} <= set(boxes[0])
    assert all((f.stat().st_mtime_ns, f.read_bytes()) == v for f, v in kept.items())
    assert (comp / "quantize" / "entry.json").exists() and not (run / "compress-2").exists()
    assert invoke("compress", run, "--resume", "compress.stages=[{name: export}]") == 2  # another stage list
    out = tmp_path / "deploy"
    assert invoke("deploy", run, "--runtimes", "onnxruntime", "--images", "4", "--calib", "8", "--rounds", "1",
                  "--runs", "2", "--no-memory", "--out", out) == 0
    m = json.loads((out / "matrix.json").read_text())
    assert m["task"] == "detection" and m["agreement"] == "box" and "outside the graph" in m["nms"]
    assert [r["status"] for r in m["rows"]][0] == "pass" and all("map" in r for r in m["rows"])
    assert invoke("eval", run / "student" / "model.safetensors", "--json", tmp_path / "e.json") == 0
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["task"] == "detection" and e["map"] == pytest.approx(res["stages"][0]["map"])  # the run's scenes
    # every box of the fp32 file (agreement_score 0) must match: an int8 file never does, so nothing ships
    assert invoke("compress", run, f"compress.stages=[{QUANT}]", "compress.min_int8_agreement=1.0",
                  "detection.agreement_score=0.0") == 0
    rej = json.loads((run / "compress-2" / "stages.json").read_text())
    gate = rej["stages"][-1]["gate"]
    assert not gate["passed"] and "compress.min_int8_agreement" in gate["reasons"][-1]
    assert (run / "compress-2" / "quantize" / "model.int8.gate-failed.onnx").exists()
    assert not (run / "compress-2" / "quantize" / "model.int8.onnx").exists() and rej["final"].endswith("fp32.onnx")
    assert invoke("compress", run, "compress.stages=[{name: qat}]") == 2
    assert invoke("compress", run, "compress.stages=[{name: quantize, mode: dynamic}]") == 2
    assert invoke("compress", run, "detection.int8_max_map_drop=nan") == 2
    assert invoke("deploy", run, "--image-dir", tmp_path) == 2  # boxes are needed for mAP
