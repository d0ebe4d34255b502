"""`edgedistill deploy`: one trained student built and run for real in ONNX Runtime, OpenVINO (NNCF int8),
ExecuTorch (XNNPACK) and LiteRT, fp32 and int8; a hidden runtime, a failing conversion and bad options."""

import json

import numpy as np
import pytest
import torch
from conftest import cli
from torch import nn

from edgedistill.deploy.backend import HIDE_ENV, Source
from edgedistill.deploy.matrix import MatrixConfig, run_matrix
from edgedistill.deploy.rss_probe import measure_peak_rss_mb
from edgedistill.deploy.runtimes import RUNTIMES

ALL = ["onnxruntime", "openvino", "executorch", "litert"]


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A ResNet-8 trained for two short epochs on 16 px digits, saved as an edgedistill model file."""
    from edgedistill.data import build_data, make_loader
    from edgedistill.models import create_model, save_model
    from edgedistill.recipe import build_recipe

    recipe = build_recipe({"data": {"source": "digits", "image_size": 16, "workers": 0, "max_train_samples": 512,
                                    "max_val_samples": 128}})
    data = build_data(recipe.data)
    torch.manual_seed(0)
    model = create_model("cifar:resnet8", data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(2):
        for x, y in make_loader(data.train, 64, train=True, workers=0, seed=epoch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    path = tmp_path_factory.mktemp("deploy") / "model.safetensors"
    save_model(path, model.eval(), {"model": "cifar:resnet8", "num_classes": data.num_classes,
                                    "class_names": data.class_names, "image_size": 16, "mean": list(recipe.data.mean),
                                    "std": list(recipe.data.std), "data": recipe.data.model_dump(mode="json")})
    return path


@pytest.mark.slow
def test_every_runtime_builds_agrees_and_is_timed(student, capsys):
    missing = [n for n in ALL if not RUNTIMES[n].available()]
    assert not missing, f"install the test extra: {missing} missing"
    code, out, err = cli(capsys, "deploy", student, "--images", "48", "--calib", "32", "--rounds", "1", "--runs",
                         "2", "--no-memory")  # memory below on two rows: an ExecuTorch probe pays a torch import
    assert code == 0, err
    folder = student.parent / "deploy"
    result = json.loads((folder / "matrix.json").read_text())
    rows = {r["id"]: r for r in result["rows"]}
    assert list(rows) == [f"{n}-{p}" for n in ALL for p in ("fp32", "int8")]
    for rid, r in rows.items():
        assert "path" in r and r["size_bytes"] > 0, (rid, r.get("reason"))
        assert set(r["latency"]) == set(result["settings"]) and r["latency"]["b1_t1"]["median_ms"] > 0
        if r["precision"] == "fp32":  # the same function in another runtime: same top-1, tiny logit drift
            assert r["status"] == "pass" and r["agreement"] >= 0.99 and r["max_abs_diff"] < 1e-3, rid
        else:  # int8 built by each runtime's own quantizer, and it still mostly agrees
            assert r["agreement"] >= 0.8 and r["size_bytes"] < rows[rid.replace("int8", "fp32")]["size_bytes"], rid
    assert {p.suffix for p in folder.rglob("model*.*")} >= {".onnx", ".xml", ".bin", ".pte", ".tflite"}
    assert rows["openvino-int8"]["info"]["quantizer"].startswith("nncf")
    rec = result["recommendation"]
    assert rows[rec["id"]]["status"] == "pass" and "recommendation:" in out
    if rec["id"] != "onnxruntime-fp32":  # never slower than fp32 ONNX Runtime in the deploy setting
        assert rec["speedup_vs_ort_fp32"] > 1.0
    for rid in ("onnxruntime-int8", "litert-int8"):  # the fresh-process probe every row gets by default
        r = rows[rid]
        rss = measure_peak_rss_mb(r["runtime"], r["path"], 1, 1, 16)
        assert rss is not None and 0 < rss < 500, (rid, rss)
    md = (folder / "matrix.md").read_text()
    assert "| ExecuTorch | int8 |" in md and "**Recommendation:**" in md


class Bucketed(nn.Module):
    """aten.bucketize: the ONNX exporter has it, ExecuTorch's core ATen set and litert-torch's lowerings do not."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)
        self.register_buffer("edges", torch.tensor([-0.5, 0.0, 0.5]))

    def forward(self, x):
        h = self.conv(x)
        return self.fc(h.mean((2, 3)) + torch.bucketize(h, self.edges).float().mean((2, 3)))


def test_a_failed_conversion_names_the_op_a_hidden_runtime_says_how_to_install(tmp_path, monkeypatch):
    from edgedistill.deploy.export import export_onnx

    monkeypatch.setenv(HIDE_ENV, "openvino")
    torch.manual_seed(0)
    model, images = Bucketed().eval(), np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32)
    source = Source(model, 8, images, lambda: export_onnx(model, tmp_path / "m.onnx", 8, ["a", "b", "c"], [0.5] * 3,
                                                          [0.25] * 3), lambda *a: {})
    with torch.no_grad():
        ref = model(torch.from_numpy(images)).numpy()
    cfg = MatrixConfig(["onnxruntime", "openvino", "executorch", "litert"], ["fp32"], rounds=1, runs=2, warmup=1,
                       memory=False, threads=[1], batches=(1,))
    rows = {r["runtime"]: r for r in run_matrix(source, images, ref, tmp_path, cfg)["rows"]}
    assert rows["onnxruntime"]["status"] == "pass" and rows["onnxruntime"]["latency"]["b1_t1"]["median_ms"] > 0
    assert rows["openvino"]["status"] == "not installed"
    assert "pip install 'edgedistill[openvino]'" in rows["openvino"]["reason"]
    for rt in ("executorch", "litert"):
        assert rows[rt]["status"] == "failed" and "aten.bucketize" in rows[rt]["reason"], rows[rt]["reason"]


@pytest.mark.parametrize("args, named", [
    (["--runtimes", "onnxruntime,tensorrt"], ["--runtimes", "'tensorrt'", "onnxruntime, openvino, executorch, litert"]),
    (["--precisions", "fp16"], ["--precisions", "'fp16'", "fp32, int8"]),
    (["--images", "0"], ["--images", "1 to 10000"]),
    (["--split", "train"], ["--split", "'train'", "val, test"]),
    (["--image-dir", "/no/such/folder"], ["--image-dir", "a folder of image files"]),
])
def test_bad_options_exit_2_naming_the_option_and_allowed_values(capsys, tmp_path, args, named):
    code, _, err = cli(capsys, "deploy", tmp_path / "nothing-here.safetensors", *args)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    for text in named:
        assert text in err


@pytest.mark.slow  # the trained `student` fixture: ~16 s on 2 idle cores (92 s setup in the loaded test-fast run)
def test_image_files_given_instead_of_the_split(student, capsys, tmp_path):
    from PIL import Image

    for i in range(5):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    code, _, err = cli(capsys, "deploy", student, "--runtimes", "onnxruntime", "--precisions", "fp32", "--image-dir",
                         tmp_path, "--rounds", "1", "--runs", "2", "--no-memory", "--out", tmp_path / "d")
    assert code == 0, err
    result = json.loads((tmp_path / "d" / "matrix.json").read_text())
    assert result["images"] == 5 and result["images_from"].startswith("files from")
    assert result["rows"][0]["status"] == "pass" and result["recommendation"]["id"] == "onnxruntime-fp32"
    assert "no row beats ONNX Runtime fp32" in result["recommendation"]["line"]
