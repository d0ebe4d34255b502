"""Compress of detection models, piece by piece on tiny FCOS/RetinaNet at 64 px: the head graph exports with NMS
outside it and decodes to PyTorch's boxes (a decoder that differs fails the box parity), int8 gates reject what
they must, pruning keeps the head legal and the model trainable, a model without a one-stage head (Faster R-CNN)
is refused by name (SSDlite: tests/test_det_ssdlite.py)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edgedistill.errors import UserError

FCOS, RETINA = "det:fcos_mobilenet_v3_small@0.25", "det:retinanet_mobilenet_v3_small@0.25"
X = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
BASE = {"task": "detection", "data": {"source": "det-shapes", "image_size": 64}, "teacher": {"model": FCOS},
        "student": {"model": FCOS}, "distill": {"terms": [{"name": "pkd"}]}}


def _model(spec: str = FCOS, seed: int = 0):
    from edgedistill.tasks.detection import build_det_model

    torch.manual_seed(seed)
    m = build_det_model(spec, 3, 64, None, "student.model").eval()
    # scores that differ between anchors, as a trained head's do: an untrained one (weights std 0.01) scores every
    # anchor alike, and NMS then breaks its ties by float noise
    torch.nn.init.normal_(m.net.head.classification_head.cls_logits.weight, std=0.3)
    torch.nn.init.zeros_(m.net.head.classification_head.cls_logits.bias)  # not the 1% prior: boxes to compare
    return m


def _job(model, targets, agree_score: float = 0.3, min_score: float = 0.05, spec: str = "det:fcos_mobilenet_v3_small"):
    """What export_det reads of a compress job, on the images X (meta: the spec the ONNX file records)."""
    from edgedistill.recipe import build_recipe
    from edgedistill.tasks.det_graph import DetDecoder

    return SimpleNamespace(r=build_recipe(BASE), names=["a", "b", "c"], images=X.numpy(), targets=targets,
                           min_score=min_score, agree_score=agree_score, decoder=DetDecoder(model, 64),
                           meta={"model": spec})


def _own_boxes(dets, min_score=0.05):
    """A model's own detections (those with an area) as ground truth: it scores mAP 100 on them."""
    out = []
    for d in dets:
        b = d["boxes"]
        keep = (d["scores"] >= min_score) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        out.append({"boxes": b[keep], "labels": d["labels"][keep]})
    return out


@pytest.mark.parametrize("spec", [FCOS, RETINA])
def test_head_graph_exports_with_nms_outside_and_decodes_to_pytorch_boxes(tmp_path, spec):
    from edgedistill.compress.quantize import read_quant_meta
    from edgedistill.deploy.onnx_runtime import ort_predict, ort_session
    from edgedistill.tasks.det_chain import torch_predict
    from edgedistill.tasks.det_stages import export_det

    model = _model(spec)
    ref = torch_predict(model)(X.numpy())
    assert sum(len(d["boxes"]) for d in ref) > 0
    path, parity = export_det(_job(model, _own_boxes(ref), 0.0), model, tmp_path / "m.onnx")
    assert parity["passed"] and parity["box_agreement"] >= 99.0
    assert parity["map_onnx"] == pytest.approx(parity["map_pytorch"], abs=1e-6)
    meta = read_quant_meta(path)
    assert meta["task"] == "detection" and "outside the graph" in meta["nms"] and meta["image_size"] == "64"
    assert json.loads(meta["decode"])["nms_thresh"] == model.net.nms_thresh
    session = ort_session(path)
    k = 3 + 4 + (1 if spec == FCOS else 0)
    assert ort_predict(session, X.numpy()[:1]).shape[2] == k and ort_predict(session, X.numpy()).shape[0] == 6


def test_box_parity_fails_when_the_decoding_differs(tmp_path):
    """The raw outputs match, but decoding them with another NMS threshold gives other boxes: refused."""
    import copy

    from edgedistill.tasks.det_chain import torch_predict
    from edgedistill.tasks.det_graph import DetDecoder
    from edgedistill.tasks.det_stages import export_det

    model = _model()
    other = copy.deepcopy(model)
    other.net.nms_thresh, other.net.detections_per_img = 0.01, 5
    job = _job(model, _own_boxes(torch_predict(model)(X.numpy())), agree_score=0.0)
    with pytest.raises(UserError, match="box parity failed") as e:
        export_det(job, model, tmp_path / "m.onnx", DetDecoder(other, 64))
    assert e.value.key == "compress.atol" and (tmp_path / "m.parity-failed.onnx").exists()


def test_int8_gate_rejects_a_map_drop_and_low_box_agreement():
    from edgedistill.tasks.det_chain import int8_gate

    ok = int8_gate({"map": 30.0}, {"map": 29.5, "agreement": 97.0}, 1.0, 0.9)
    assert ok["passed"] and ok["map_drop"] == pytest.approx(0.5)
    drop = int8_gate({"map": 30.0}, {"map": 28.0, "agreement": 97.0}, 1.0, 0.9)
    assert not drop["passed"] and "detection.int8_max_map_drop" in drop["reasons"][0]
    agree = int8_gate({"map": 30.0}, {"map": 30.0, "agreement": 80.0}, 1.0, 0.9)
    assert not agree["passed"] and "compress.min_int8_agreement" in agree["reasons"][0]


def test_int8_files_scored_on_boxes_fail_the_gate_when_they_must(tmp_path):
    """A real int8 head graph agrees on most but not all boxes (min agreement 1.0 rejects it); the int8 file of
    other weights loses mAP and agreement (both reasons)."""
    from edgedistill.compress.cpu import detect_cpu, resolve
    from edgedistill.compress.quantize import quantize_static_onnx
    from edgedistill.deploy.export import export_onnx
    from edgedistill.tasks.det_chain import box_agreement, int8_gate, onnx_predict, score
    from edgedistill.tasks.det_graph import DetDecoder, HeadGraph

    model, x = _model(), X.numpy()
    dec = DetDecoder(model, 64)
    fp32 = export_onnx(HeadGraph(model).eval(), tmp_path / "m.onnx", 64, list("abc"), [0] * 3, [1] * 3)
    fp_dets = onnx_predict(fp32, dec)(x)
    targets = _own_boxes(fp_dets)
    fp = score(fp_dets, targets, 0.05, 0.0)
    assert fp["map"] > 90.0  # not exactly 100: COCO drops near-duplicate boxes of an untrained head
    fmt = resolve("auto", "auto", detect_cpu())["format"]  # correct on this CPU (u8s8 saturates without VNNI)
    good = quantize_static_onnx(fp32, tmp_path / "good.onnx", x, fmt=fmt)
    good_s = score(onnx_predict(good, dec)(x), targets, 0.05, 0.0, ref=fp_dets)
    assert 50.0 < good_s["agreement"] < 100.0
    assert int8_gate(fp, good_s, 100.0, 0.5)["passed"] and not int8_gate(fp, good_s, 100.0, 1.0)["passed"]
    other = export_onnx(HeadGraph(_model(seed=1)).eval(), tmp_path / "o.onnx", 64, list("abc"), [0] * 3, [1] * 3)
    bad = quantize_static_onnx(other, tmp_path / "bad.onnx", x, fmt=fmt)
    bad_s = score(onnx_predict(bad, dec)(x), targets, 0.05, 0.0, ref=fp_dets)
    gate = int8_gate(fp, bad_s, 1.0, 0.9)
    assert not gate["passed"] and len(gate["reasons"]) == 2
    agree = box_agreement(dec, 0.0)  # what the int8 selection compares: decoded boxes of raw outputs
    raw = HeadGraph(model).eval()(X).detach().numpy()
    assert agree(raw, raw) == 1.0 and agree(raw, raw + np.float32(3.0)) < 0.9


def test_prune_keeps_the_head_legal_trains_and_reloads(tmp_path):
    from edgedistill.compress.prune import load_pruned, save_pruned
    from edgedistill.tasks.det_stages import prune_det

    model = _model()
    pruned = prune_det(model, 0.3, X[:2])
    head, fpn = pruned.net.head, pruned.net.backbone.fpn
    assert head.classification_head.cls_logits.out_channels == 3  # classes × 1 anchor per location
    assert head.regression_head.bbox_reg.out_channels == 4 and head.regression_head.bbox_ctrness.out_channels == 1
    widths = {c.out_channels for c in [*fpn.inner_blocks.modules(), *fpn.layer_blocks.modules()]
              if isinstance(c, torch.nn.Conv2d)}
    assert len(widths) == 1 and widths.pop() < 64  # every FPN level pruned alike
    assert sum(p.numel() for p in pruned.parameters()) < 0.8 * sum(p.numel() for p in model.parameters())
    pruned.train()
    losses = pruned(X[:2], [torch.tensor([[2.0, 2.0, 30.0, 30.0]])] * 2, [torch.tensor([1])] * 2)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    pruned.eval()
    save_pruned(tmp_path / "p.safetensors", pruned, {"model": FCOS, "num_classes": 3})
    again, _ = load_pruned(tmp_path / "p.safetensors")
    again.set_image_size(64)
    with torch.no_grad():
        a, b = again.eval()(X[:2]), pruned(X[:2])
    assert all(torch.allclose(p["boxes"], q["boxes"], atol=1e-4) for p, q in zip(a, b))


def test_stage_checks_and_models_without_a_dense_head_are_refused():
    from edgedistill.recipe import build_recipe
    from edgedistill.tasks.det_compress import check_det_stages
    from edgedistill.tasks.det_graph import check_exportable

    def refused(stages: str) -> str:
        with pytest.raises(UserError) as e:
            check_det_stages(build_recipe(BASE, [f"compress.stages={stages}"]))
        return str(e.value)

    assert "in that order" in refused("[{name: export}, {name: prune, ratio: 0.3}]")
    assert "static" in refused("[{name: quantize, mode: dynamic}]")
    assert "ratio" in refused("[{name: prune, target_params: 1000}]")
    for stage in ("qat", "unstructured"):
        with pytest.raises(UserError, match=f"stage '{stage}' is not available for task=detection"):
            build_recipe(BASE, [f"compress.stages=[{{name: {stage}}}]"])
    with pytest.raises(UserError, match="int8_max_map_drop"):
        build_recipe(BASE, ["detection.int8_max_map_drop=-1"])
    with pytest.raises(UserError, match="det:fcos_\\*, det:retinanet_\\* or det:ssdlite\\*"):
        check_exportable(SimpleNamespace(has_head=False))


def test_matrix_row_takes_the_task_agreement():
    """A row whose raw outputs match top-1 along axis 1 but whose boxes agree on half is below its gate."""
    from edgedistill.deploy import matrix

    backend = SimpleNamespace(label="fake", available=lambda: True, version=lambda: "0",
                              build=lambda s, p, d: (d / "f", {}), runner=lambda path, t: (lambda x: x),
                              files=lambda p: [])
    matrix.RUNTIMES["fake-det"] = backend
    try:
        raw = np.random.default_rng(0).standard_normal((2, 10, 8)).astype(np.float32)
        cfg = matrix.MatrixConfig(["fake-det"], ["fp32"], score=lambda r, p: {"map": 1.0, "agreement": 0.5})
        row = matrix.build_row(None, "fake-det", "fp32", raw, raw, Path("/nonexistent"), cfg)
    finally:
        del matrix.RUNTIMES["fake-det"]
    assert row["agreement"] == 0.5 and row["status"] == "below gate" and row["map"] == 1.0
