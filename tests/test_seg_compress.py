"""Compress of segmentation models, piece by piece on a tiny LR-ASPP: pruning keeps the head legal, the fp32 ONNX
file says its task, each int8 gate rejects what it must (a broken int8 file fails the mIoU gate), per-image IoU."""

import json

import numpy as np
import pytest
import torch

from edgedistill.errors import UserError

SPEC = "seg:lraspp_mobilenet_v3_small@0.25"


def _model(seed: int = 0, k: int = 5):
    from edgedistill.models import create_model

    torch.manual_seed(seed)
    return create_model(SPEC, k, key="student.model").eval()


def test_int8_gate_rejects_a_large_miou_drop_and_low_pixel_agreement():
    from edgedistill.tasks.seg_chain import int8_gate

    ok = int8_gate({"miou": 60.0}, {"miou": 59.5, "agreement": 97.0}, 1.0, 0.9)
    assert ok["passed"] and ok["miou_drop"] == pytest.approx(0.5)
    drop = int8_gate({"miou": 60.0}, {"miou": 58.0, "agreement": 97.0}, 1.0, 0.9)
    assert not drop["passed"] and "segmentation.int8_max_miou_drop" in drop["reasons"][0]
    agree = int8_gate({"miou": 60.0}, {"miou": 60.0, "agreement": 80.0}, 1.0, 0.9)
    assert not agree["passed"] and "compress.min_int8_agreement" in agree["reasons"][0]


def test_per_image_iou_by_hand():
    from edgedistill.tasks.seg_chain import per_image_iou

    masks = torch.tensor([[[0, 0], [1, 1]], [[0, 0], [0, 255]]])
    pred = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [0, 1]]])
    # image 0: class 0 IoU 1/2, class 1 IoU 2/3; image 1: the ignored pixel does not count, class 0 IoU 1
    assert per_image_iou(pred, masks, 2, 255) == pytest.approx([100 * (0.5 + 2 / 3) / 2, 100.0])


def test_prune_keeps_the_lraspp_head_legal_and_reloads(tmp_path):
    from edgedistill.compress.prune import load_pruned, save_pruned
    from edgedistill.tasks.seg_compress import prune_seg

    model, x = _model(), torch.randn(2, 3, 32, 32)
    pruned = prune_seg(model, 0.3, x)
    head = pruned.net.classifier
    assert head.low_classifier.out_channels == head.high_classifier.out_channels == 5  # the classes are kept
    assert head.cbr[0].out_channels == head.scale[1].out_channels == head.high_classifier.in_channels
    assert sum(p.numel() for p in pruned.parameters()) < 0.8 * sum(p.numel() for p in model.parameters())
    save_pruned(tmp_path / "p.safetensors", pruned, {"model": SPEC, "num_classes": 5})
    again, _ = load_pruned(tmp_path / "p.safetensors")
    with torch.no_grad():
        assert torch.allclose(again.eval()(x), pruned(x), atol=1e-5) and pruned(x).shape == (2, 5, 32, 32)


def test_stage_list_checks_refuse_before_any_work():
    from edgedistill.recipe import build_recipe
    from edgedistill.tasks.seg_compress import check_seg_stages

    base = {"task": "segmentation", "data": {"source": "seg-shapes"}, "teacher": {"model": SPEC},
            "student": {"model": SPEC}, "distill": {"terms": [{"name": "pixel_kd"}]}}

    def refused(stages: str) -> str:
        with pytest.raises(UserError) as e:
            check_seg_stages(build_recipe(base, [f"compress.stages={stages}"]))
        return str(e.value)

    assert "in that order" in refused("[{name: export}, {name: prune, ratio: 0.3}]")
    assert "static" in refused("[{name: quantize, mode: dynamic}]")
    assert "ratio" in refused("[{name: prune, target_params: 1000}]")
    with pytest.raises(UserError, match="not available for task=segmentation"):
        build_recipe(base, ["compress.stages=[{name: qat}]"])


def test_export_metadata_and_a_broken_int8_file_fails_the_miou_gate(tmp_path):
    from edgedistill.compress.quantize import quantize_static_onnx, read_quant_meta
    from edgedistill.deploy.export import check_parity, export_onnx
    from edgedistill.tasks.seg_chain import int8_gate, onnx_predict, score

    model, images = _model(), torch.randn(8, 3, 32, 32)
    extra = {"task": "segmentation", "ignore_index": "255"}
    fp32 = export_onnx(model, tmp_path / "m.onnx", 32, list("abcde"), [0.5] * 3, [0.25] * 3, extra=extra)
    assert check_parity(model, fp32, images)["passed"]
    meta = read_quant_meta(fp32)
    assert meta["task"] == "segmentation" and meta["image_size"] == "32" and json.loads(meta["class_names"])[0] == "a"
    x = images.numpy()
    masks = onnx_predict(fp32)(x).argmax(1)  # the fp32 file scores 100 mIoU on its own maps
    fp = score(masks, masks, 5, 255)
    good = quantize_static_onnx(fp32, tmp_path / "good.onnx", x, fmt="u8u8")
    broken = export_onnx(_model(seed=1), tmp_path / "other.onnx", 32, list("abcde"), [0.5] * 3, [0.25] * 3)
    broken = quantize_static_onnx(broken, tmp_path / "broken.onnx", x, fmt="u8u8")  # int8 of other weights
    bad = score(onnx_predict(broken)(x).argmax(1), masks, 5, 255, ref=masks)
    gate = int8_gate(fp, bad, 1.0, 0.9)
    assert not gate["passed"] and gate["miou_drop"] > 1.0 and len(gate["reasons"]) == 2
    kept = score(onnx_predict(good)(x).argmax(1), masks, 5, 255, ref=masks)
    assert kept["agreement"] > bad["agreement"]


def test_model_file_of_another_task_is_still_refused():
    from edgedistill.tasks import task_chain

    assert task_chain({"task": "classification"}, "compress") is None
    assert task_chain({"task": "segmentation"}, "compress") is not None
    assert task_chain({"task": "detection"}, "deploy") is not None
    with pytest.raises(UserError, match="task=keypoints"):
        task_chain({"task": "keypoints"}, "deploy")


def test_matrix_row_fails_its_gate_on_a_task_score():
    """A row that passes per-pixel agreement but loses too much mIoU is below its gate (the score hook)."""
    from types import SimpleNamespace

    from edgedistill.deploy import matrix

    backend = SimpleNamespace(label="fake", available=lambda: True, version=lambda: "0",
                              build=lambda s, p, d: (d / "f", {}), runner=lambda path, t: (lambda x: x),
                              files=lambda p: [])
    matrix.RUNTIMES["fake-test"] = backend
    try:
        logits = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
        cfg = matrix.MatrixConfig(["fake-test"], ["int8"], score=lambda lg, p: {"miou": 1.0, "gate_reason": "drop"})
        from pathlib import Path

        row = matrix.build_row(None, "fake-test", "int8", logits, logits, Path("/nonexistent"), cfg)
    finally:
        del matrix.RUNTIMES["fake-test"]
    assert row["agreement"] == 1.0 and row["status"] == "below gate" and row["reason"] == "drop"
