"""int8 that is right on its CPU: format per CPU flags, forced formats' QDQ types, the agreement gate,
sensitivity-guided mixed precision, and a deploy.target this machine cannot time."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from conftest import cli as _cli
from int8_nets import NAMES
from onnx import numpy_helper

from edgedistill.compress.cpu import (
    Cpu,
    detect_cpu,
    format_for,
    not_measurable_reason,
    parse_cpuinfo,
    resolve,
    target_of,
)
from edgedistill.compress.chain import int8_gate
from edgedistill.compress.int8 import build_int8, module_of, predictions, resolve_layers
from edgedistill.compress.measure import agreement, measure
from edgedistill.compress.quantize import quantize_static_onnx, read_quant_meta
from edgedistill.deploy.export import export_onnx
from edgedistill.errors import UserError

AVX2 = {"avx2", "avx512f", "avx512bw"}


@pytest.mark.parametrize("machine, flags, target, fmt", [
    ("x86_64", AVX2 | {"avx512_vnni"}, "x86-vnni", "u8s8"),   # Cascade Lake … Sapphire Rapids, Zen 4
    ("x86_64", {"avx2", "avx_vnni"}, "x86-vnni", "u8s8"),     # Alder Lake: AVX-VNNI without AVX-512
    ("AMD64", {"avx2", "amx_int8"}, "x86-vnni", "u8s8"),
    ("x86_64", {"avx2"}, "x86-avx2", "u8u8"),                 # AMD EPYC Zen 2/3: U8S8 saturates
    ("x86_64", AVX2, "x86-avx2", "u8u8"),                     # Skylake-SP AVX-512 without VNNI
    ("aarch64", {"asimd", "asimddp"}, "arm64", "s8s8"),
    ("arm64", set(), "arm64", "s8s8"),                        # macOS: no /proc/cpuinfo, arch is enough
    ("x86_64", set(), "unknown", "u8u8"),                     # flags unknown: the format right on any x86
    ("riscv64", set(), "unknown", "s8s8"),                    # other CPUs: ORT's default S8S8
])
def test_format_choice_for_every_cpu(machine, flags, target, fmt):
    assert target_of(machine, frozenset(flags)) == target
    assert format_for(target, machine)[0] == fmt
    r = resolve("auto", "auto", Cpu(machine, frozenset(flags)))
    assert (r["format"], r["target"], r["measurable_here"], r["reduce_range"]) == (fmt, target, True, False)


def test_forced_format_and_foreign_target():
    avx2 = Cpu("x86_64", frozenset({"avx2"}))
    r = resolve("auto", "x86-vnni", avx2)
    assert (r["format"], r["target"], r["host"], r["measurable_here"]) == ("u8s8", "x86-vnni", "x86-avx2", False)
    assert "x86-vnni" in not_measurable_reason("x86-vnni", avx2) and not_measurable_reason("x86-avx2", avx2) is None
    assert not_measurable_reason("arm64", Cpu("aarch64", frozenset({"asimd"}))) is None
    assert not_measurable_reason("arm64", avx2) is not None
    r = resolve("u8s8_reduce_range", "arm64", avx2)
    assert r["format"] == "u8s8_reduce_range" and r["reduce_range"] and "forced" in r["format_reason"]


def test_cpu_detection_reads_cpuinfo_and_degrades(tmp_path, monkeypatch):
    intel = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert parse_cpuinfo(intel) == {"fpu", "sse2", "avx2", "avx512f", "avx512_vnni"}
    assert parse_cpuinfo("Features\t: fp asimd asimddp\n") == {"fp", "asimd", "asimddp"}
    (tmp_path / "cpuinfo").write_text(intel)
    assert detect_cpu(tmp_path / "cpuinfo").flags == {"avx2", "avx512f", "avx512_vnni"}  # only int8-relevant ones
    missing = detect_cpu(tmp_path / "nope")
    assert missing.flags == frozenset() and missing.source.startswith("unknown")
    (tmp_path / "haswell").write_text("processor\t: 0\nflags\t\t: fpu avx2 fma\n")  # an emulated CPU's flags
    monkeypatch.setenv("EDGEDISTILL_CPUINFO", str(tmp_path / "haswell"))
    assert detect_cpu().flags == {"avx2"} and detect_cpu().source == str(tmp_path / "haswell")


def _qdq_types(path):
    """(activation zero-point dtype, weight zero-point dtype, largest |int8 weight|) of a QDQ file."""
    g = onnx.load(str(path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    act = inits[next(n for n in g.node if n.op_type == "QuantizeLinear").input[2]].dtype
    conv = next(n for n in g.node if n.op_type == "Conv")
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == conv.input[1])
    w = inits[dq.input[0]]
    zp = inits[dq.input[2]].astype(np.int32).reshape(-1, *[1] * (w.ndim - 1))  # per output channel
    return act, w.dtype, int(np.abs(w.astype(np.int32) - zp).max())


@pytest.mark.parametrize("fmt, act, weight, wmax", [
    ("u8s8", np.uint8, np.int8, 127), ("u8s8_reduce_range", np.uint8, np.int8, 64),
    ("u8u8", np.uint8, np.uint8, 128), ("s8s8", np.int8, np.int8, 127)])
def test_forced_formats_write_their_qdq_types(net, tmp_path, fmt, act, weight, wmax):
    _, path = net
    meta = {"int8_format": fmt}
    q = quantize_static_onnx(path, tmp_path / f"{fmt}.onnx", torch.randn(32, 3, 8, 8), fmt=fmt, metadata=meta)
    a, w, biggest = _qdq_types(q)
    assert (a, w) == (act, weight)
    assert wmax - 2 <= biggest <= wmax  # reduce_range: 7-bit weights, |w| <= 64
    m = read_quant_meta(q)
    assert m["int8_format"] == fmt and json.loads(m["class_names"]) == NAMES and m["image_size"] == "8"


def test_agreement_gate_rejects_a_broken_file_and_keeps_a_good_one(net, tmp_path):
    """The pipeline's own check (measure → agreement → int8_gate) on a good file and one with a wrong scale."""
    model, path = net
    images = torch.randn(128, 3, 8, 8)
    kw = {"images": images, "labels": torch.zeros(128, dtype=torch.long), "num_classes": 10, "runs": 1,
          "warmup": 0, "deploy_batch": 1, "deploy_threads": 1}
    ref = measure(onnx_path=None, model=model, **kw)["logits_argmax"]
    assert len(set(ref.tolist())) >= 3
    fmt = resolve("auto", "auto", detect_cpu())["format"]  # the good file is in the format this CPU runs correctly
    good = quantize_static_onnx(path, tmp_path / "good.onnx", torch.randn(256, 3, 8, 8), fmt=fmt)
    proto = onnx.load(str(good))
    for init in proto.graph.initializer:  # one activation's scale 1000× too large: its values collapse to 0
        if init.name == "/Relu_output_0_scale":
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1000, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(proto, str(broken))
    results = {}
    for p in (good, broken):
        results[p.name] = 100 * agreement(measure(onnx_path=p, model=None, **kw)["logits_argmax"], ref)
    assert results["good.onnx"] >= 97 and results["broken.onnx"] < 90, results
    assert int8_gate(good, results["good.onnx"], 0.9) is None and good.is_file()
    kept = int8_gate(broken, results["broken.onnx"], 0.9)
    assert kept.name == "broken.agreement-failed.onnx" and kept.is_file() and not broken.exists()


def _cfg(**kw):
    base = {"calibration": "minmax", "per_channel": True, "mixed_precision": "auto", "fp32_layers": [],
            "sensitivity_layers": 64, "sensitivity_seconds": 600.0, "max_fp32_layers": 8}
    return SimpleNamespace(**{**base, **kw})


def _outlier_images(n):
    """Channel 2 spans ±1000 but conv1 ignores it: quantizing conv1's input crushes channels 0 and 1."""
    x = torch.randn(n, 3, 8, 8)
    x[:, 2] *= 1000
    return x.numpy()


def _quantized_inputs(path):
    g = onnx.load(str(path)).graph
    dq_out = {n.output[0] for n in g.node if n.op_type == "DequantizeLinear"}
    return {n.name for n in g.node if n.op_type in ("Conv", "Gemm") and any(i in dq_out for i in n.input)}


def test_mixed_precision_keeps_the_sensitive_layer_fp32_and_passes(net, tmp_path):
    model, _ = net
    with torch.no_grad():
        model.conv1.weight[:, 2] = 0
    path = export_onnx(model, tmp_path / "outlier.onnx", 8, NAMES, [0.0] * 3, [1.0] * 3)
    calib, select = _outlier_images(256), _outlier_images(128)
    resolved = resolve("u8s8", "auto", detect_cpu())
    args = (calib, select)
    out = tmp_path / "off.onnx"
    off = build_int8(path, out, *args, _cfg(mixed_precision="off"), resolved, 0.9, "k", (1, 1), 3, _Quiet())
    assert off["mixed_precision"]["agreement"] < 90 and off["mixed_precision"]["fp32_layers"] == []
    out = tmp_path / "auto.onnx"
    info = build_int8(path, out, *args, _cfg(), resolved, 0.9, "k", (1, 1), 3, _Quiet())
    mp = info["mixed_precision"]
    assert mp["fp32_layers"] == ["conv1"] and mp["passed_on_selection"] and mp["agreement"] >= 90
    assert max(mp["sensitivity"], key=mp["sensitivity"].get) == "conv1"
    assert mp["latency"]["all_int8_ms"] > 0 and mp["latency"]["mixed_ms"] > 0
    assert _quantized_inputs(out) == {"/conv2/Conv", "/fc/Gemm"}  # conv1 runs in fp32: no DequantizeLinear feeds it
    assert json.loads(read_quant_meta(out)["int8_fp32_layers"]) == ["conv1"]
    assert np.mean(predictions(out, select, exact=False) == predictions(path, select, exact=False)) >= 0.9


def test_fp32_layers_forced_by_module_or_node_name(net, tmp_path):
    _, path = net
    nodes = ["/conv1/Conv", "/layer2/layer2.0/downsample/downsample.0/Conv", "/fc/Gemm"]
    assert module_of(nodes[1]) == "layer2.0.downsample.0"
    assert resolve_layers(["fc", "/conv1/Conv"], nodes, "k") == ["/fc/Gemm", "/conv1/Conv"]
    with pytest.raises(UserError, match=r"compress.stages.3.fp32_layers: .*'conv9'.*conv1, layer2.0.downsample.0, fc"):
        resolve_layers(["conv9"], nodes, "compress.stages.3.fp32_layers")
    out = tmp_path / "forced.onnx"
    info = build_int8(path, out, torch.randn(64, 3, 8, 8).numpy(), torch.randn(32, 3, 8, 8).numpy(),
                      _cfg(fp32_layers=["fc"]), resolve("auto", "auto", detect_cpu()), 0.0, "k", (1, 1), 3, _Quiet())
    assert info["mixed_precision"]["fp32_layers"] == ["fc"] and _quantized_inputs(out) == {"/conv1/Conv", "/conv2/Conv"}


class _Quiet:
    def print(self, *a, **k):
        pass




FAST = ["compress.latency_runs=2", "compress.warmup_runs=0", "compress.parity_images=16", "data.max_val_samples=64"]


def test_fp32_layers_naming_no_layer_exits_2_before_work(digits_model, tmp_path, capsys):
    code, out, err = _cli(capsys, "compress", str(digits_model), f"output.dir={tmp_path / 'runs'}",
                          "compress.stages=[{name: quantize, fp32_layers: [layer1.0.conv1, conv9]}]", *FAST)
    text = out + err
    assert code == 2 and "compress.stages.0.fp32_layers" in text and "'conv9'" in text and "layer1.0.conv1" in text
    assert "Traceback" not in text and not (tmp_path / "runs").exists()


def test_target_this_cpu_cannot_time_builds_the_file_and_marks_latency(digits_model, tmp_path, capsys):
    host = target_of(detect_cpu().machine, detect_cpu().flags)
    foreign = "arm64" if host != "arm64" else "x86-vnni"
    code, out, err = _cli(capsys, "compress", str(digits_model), f"output.dir={tmp_path / 'runs'}",
                          f"deploy.target={foreign}", "deploy.budget.latency_ms=1000",
                          "compress.stages=[{name: quantize, calib_samples: 32, sensitivity_images: 32}]", *FAST)
    assert code == 0, err
    assert "is not this CPU" in out  # said on the console
    run = Path(tmp_path / "runs" / "run")
    stages = json.loads((run / "stages.json").read_text())
    q = stages["stages"][-1]
    assert q["reported"] and q["latency"] == {} and q["deploy_latency_ms"] is None
    assert "not measurable here" in q["latency_note"] and q["energy"]["j_per_image"] is None
    assert q["info"]["target"] == foreign and q["info"]["format"] == format_for(foreign)[0]
    assert q["info"]["measurable_here"] is False and q["top1"] is not None
    assert read_quant_meta(run / "1-quantize" / "model.int8.onnx")["int8_target"] == foreign
    lat = next(b for b in stages["budgets"] if b["budget"] == "latency_ms")
    assert lat["passed"] is None and lat["measured"] is None and "not measurable here" in lat["note"]
    assert stages["stages"][0]["latency"]  # the fp32 input is still timed here, for comparison
    report = (run / "report.md").read_text()
    assert f"for target {foreign}" in report and "not measurable here" in report
