"""The detection head graph (an FCOS head shared by five FPN levels, GroupNorm in its towers) in the deploy matrix's
ExecuTorch (int8) and LiteRT (fp32, int8) rows: each builds, loads, runs at batch 1 and 32 and is scored on boxes and
mAP against PyTorch. Before: ExecuTorch int8 failed to load (levels 2-5 left unquantized, see
deploy/shared_weights.py), LiteRT failed to resize its batch-1 reshapes (now a batch runs image by image), and
LiteRT int8 saturated every head output to one concatenation scale (now the output convs and cats stay float)."""

import json

import numpy as np
import pytest

from tests.conftest import invoke

TINY = ["detection.synthetic_images=20", "teacher.model=det:fcos_mobilenet_v3_small@0.25",
        "student.model=det:fcos_mobilenet_v3_small@0.25", "teacher.epochs=1", "train.epochs=1",
        "train.warmup_epochs=0", "train.batch_size=8", "eval.latency_runs=2", "eval.warmup_runs=1",
        "eval.baseline=false", "distill.terms=[{name: pkd}]"]


@pytest.mark.slow  # a 1-epoch run and three conversions: 160 s alone on 2 idle cores
def test_executorch_and_litert_rows_build_run_and_score_the_detection_head(tmp_path):
    """ExecuTorch int8 (its fp32 row converts the same exported graph without PT2E: 43 s more, left to the generic
    deploy matrix test) and both LiteRT rows."""
    pytest.importorskip("executorch")
    pytest.importorskip("litert_torch")
    assert invoke("run", "recipes/det-demo.yaml", f"output.dir={tmp_path}", *TINY) == 0  # a random head ties in NMS
    rows = {}
    for runtimes, precisions in (("executorch", "int8"), ("litert", "fp32,int8")):
        out = tmp_path / f"deploy-{runtimes}"
        assert invoke("deploy", tmp_path / "det-demo", "--runtimes", runtimes, "--precisions", precisions, "--images",
                      "8", "--calib", "8", "--rounds", "1", "--runs", "2", "--no-memory", "--out", out,
                      "detection.int8_max_map_drop=100") == 0  # a 1-epoch model: mAP ~0, its drop is noise
        rows.update({r["id"]: r for r in json.loads((out / "matrix.json").read_text())["rows"]})
    assert set(rows) == {"executorch-int8", "litert-fp32", "litert-int8"}
    for r in rows.values():  # every row built, ran and was scored
        assert np.isfinite(r["map"]) and 0.0 <= r["agreement"] <= 1.0, (r["id"], r.get("reason"))
        assert all("median_ms" in v for v in r["latency"].values()), r["latency"]  # batch 1 and 32 both ran
    for rid, r in rows.items():
        assert r["status"] == "pass", (rid, r.get("reason"))
    assert "cls_logits" in rows["litert-int8"]["info"]["float"]  # the head's output convs and cat stay float
    assert rows["litert-fp32"]["max_abs_diff"] < 1e-3
    assert rows["litert-fp32"]["map_drop"] == pytest.approx(0.0, abs=1e-6)
    # LiteRT's batch-1 reshapes: a batch runs image by image, and the matrix says so
    assert "N invokes" in rows["litert-fp32"]["info"]["note"]
    assert "LiteRT fp32: converted at batch 1" in (tmp_path / "deploy-litert" / "matrix.md").read_text()
