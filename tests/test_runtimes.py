"""A second runtime (OpenVINO) beside ONNX Runtime, and how the stage tables show runtimes and refused rows."""

import sys

import numpy as np
import pytest
import torch
from rich.console import Console

from edgedistill.compress.quantize import quantize_static_onnx
from edgedistill.deploy.export import export_onnx
from edgedistill.deploy.openvino_runtime import NOT_INSTALLED, check_runtimes, openvino_summary
from edgedistill.models import create_model
from edgedistill.report.stages import stage_rows, stages_table


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """An fp32 resnet8 (16 px) ONNX file, its static int8 QDQ version, and images in the model's range."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("rt")
    model = create_model("cifar:resnet8", 10).eval()
    with torch.no_grad():  # a little spread in the BN statistics, so logits are not all ties
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    fp32 = export_onnx(model, d / "m.onnx", 16, [str(i) for i in range(10)], [0.5] * 3, [0.25] * 3)
    images = torch.randn(48, 3, 16, 16)
    int8 = quantize_static_onnx(fp32, d / "m.int8.onnx", images[:32])
    return fp32, int8, images.numpy()


def test_openvino_runs_fp32_and_int8_files_beside_onnx_runtime(onnx_files):
    pytest.importorskip("openvino")
    fp32, int8, images = onnx_files
    rt = check_runtimes(fp32, images)
    ort, ov = rt["onnxruntime"], rt["openvino"]
    assert ort["status"] == "measured" and ort["version"] and ort["images"] == 48
    assert ov["status"] == "checked" and ov["device"] == "CPU" and ov["images"] == 48 and ov["version"]
    assert ov["agreement"] == 1.0 and ov["max_abs_diff"] < 1e-4  # the same float graph, f32 precision forced
    q = check_runtimes(int8, images)["openvino"]
    assert q["status"] == "checked" and 0.0 <= q["agreement"] <= 1.0 and np.isfinite(q["max_abs_diff"])
    assert openvino_summary(rt) == "ORT + OpenVINO 100.0%"


def test_openvino_missing_is_recorded_not_an_error(onnx_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    rt = check_runtimes(onnx_files[0], onnx_files[2][:4])
    assert rt["openvino"] == {"status": NOT_INSTALLED} and rt["onnxruntime"]["status"] == "measured"
    assert openvino_summary(rt) == "ORT (OpenVINO not installed)"


def test_a_file_openvino_cannot_load_is_recorded_as_failed(onnx_files, tmp_path):
    pytest.importorskip("openvino")
    from edgedistill.deploy.openvino_runtime import openvino_check

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    r = openvino_check(bad, onnx_files[2][:4], np.zeros((4, 10), np.float32))
    assert r["status"] == "failed" and r["error"] and r["version"]


def _stage(index, stage, precision, top1, reported, runtimes=None):
    lat = {"latency_ms_median": 1.0, "latency_ms_p90": 1.2, "throughput_ips": 1000.0}
    return {"index": index, "stage": stage, "precision": precision, "top1": top1, "params": 1000, "flops": 2e6,
            "size_mb": 0.1, "ort_peak_rss_mb": 5.0, "latency": {"ort_b1_t1": lat, "ort_b32_t2": lat},
            "energy": {"j_per_image": None}, "reported": reported, "runtimes": runtimes}


def _result():
    ov = {"onnxruntime": {"version": "1.x", "status": "measured", "images": 64},
          "openvino": {"version": "2026.x", "status": "checked", "device": "CPU", "images": 64, "agreement": 0.984,
                       "max_abs_diff": 0.02}}
    return {"stages": [_stage(0, "input", "fp32", 91.25, True, ov),
                       _stage(1, "quantize", "int8", 47.5, False)], "budgets": []}


def test_terminal_stage_table_marks_a_refused_row():
    console = Console(record=True, width=260, force_terminal=True)
    table = stages_table(_result(), 2)
    console.print(table)
    text = console.export_text()
    good = next(line for line in text.splitlines() if "0-input" in line)
    bad = next(line for line in text.splitlines() if "1-quantize" in line)
    assert "yes" in good and "91.25" in good and "ORT + OpenVINO 98.4%" in good
    assert "no (failed check)" in bad and "(47.50)" in bad  # bracketed: measured, not a result
    assert [row.style for row in table.rows] == [None, "dim"]


def test_markdown_stage_table_says_which_runtimes_checked_a_file():
    header, body = stage_rows(_result(), 2)
    col = header.index("checked on")
    assert body[0][col] == "ORT + OpenVINO 98.4%" and body[1][col] == "–"
    assert body[1][header.index("reported")] == "no (failed check)"
