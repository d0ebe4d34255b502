"""Post-training int8 quantization of ONNX files with ONNX Runtime: static QDQ (calibrated) or dynamic."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..errors import UserError

if TYPE_CHECKING:
    import torch

Method = Literal["minmax", "entropy", "percentile"]
# format → (activation type, weight type, reduce_range); which CPU needs which: compress/cpu.py
_FORMATS = {"u8s8": (QuantType.QUInt8, QuantType.QInt8, False),
            "u8s8_reduce_range": (QuantType.QUInt8, QuantType.QInt8, True),
            "u8u8": (QuantType.QUInt8, QuantType.QUInt8, False), "s8s8": (QuantType.QInt8, QuantType.QInt8, False)}
DYNAMIC_FORMATS = ("u8s8", "u8s8_reduce_range", "u8u8")
GRAPHS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}  # QDQ pairs vs fused QLinear* ops
_HAS_CACHE = "calibration_cache_path" in inspect.signature(quantize_static).parameters  # onnxruntime >= 1.2x
_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}


class _Batches(CalibrationDataReader):
    """Feeds calibration images to ONNX Runtime's calibrator one batch at a time."""

    def __init__(self, input_name: str, images: np.ndarray, batch_size: int):
        self.feeds = iter([{input_name: images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _check(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise UserError(f"no such ONNX file: {path}")
    return onnx.load(str(path), load_external_data=False)


def _copy_metadata(src: onnx.ModelProto, out_path: Path, extra: dict[str, str] | None = None) -> None:
    """The quantizer drops metadata_props; put class names, mean, std, image size back (plus `extra`)."""
    proto = onnx.load(str(out_path))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in src.metadata_props}, **(extra or {})})
    onnx.save(proto, str(out_path))


@contextlib.contextmanager
def _quiet_root_log() -> Iterator[None]:
    """ORT's quantizer logs advice on the root logger ("Please use QuantFormat.QDQ for … QInt8"): the s8s8
    QOperator candidate is built on purpose (it does not saturate without VNNI) and timed, so the console
    would only carry noise."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_static_onnx(fp32_path: str | Path, out_path: str | Path, calib_images: torch.Tensor | np.ndarray,
                         method: Method = "minmax", per_channel: bool = True, batch_size: int = 32,
                         fmt: str = "u8s8", fp32_nodes: list[str] | None = None,
                         calibration_cache: str | Path | None = None,
                         metadata: dict[str, str] | None = None, graph: str = "qdq") -> Path:
    """int8 QDQ weights/activations in `fmt` (see compress/cpu.py), ranges calibrated on `calib_images` (NCHW).

    u8s8 is what x86 ORT fuses into QLinearConv/QLinearAdd; s8s8 on x86 leaves many Convs as float Conv
    between Dequantize/Quantize nodes and runs slower than fp32 (measured: resnet20 at 32 px, 1 thread,
    1.98 ms S8S8 vs 1.39 ms fp32 vs 0.99 ms U8S8), but it is ORT's recommendation on ARM64.
    fp32_nodes: ONNX node names left unquantized (mixed precision). calibration_cache: a JSON file of
    tensor ranges written on the first call and reused by later ones, so variants skip recalibration.
    metadata: extra metadata_props written into the file (format, target, …). graph: "qdq" (Quantize/
    Dequantize pairs the runtime fuses) or "qoperator" (QLinearConv/QLinearMatMul written out).
    """
    src, out = Path(fp32_path).expanduser(), Path(out_path).expanduser()
    proto = _check(src)
    if method not in _METHODS:
        raise UserError(f"unknown calibration method {method!r}; allowed: {', '.join(_METHODS)}")
    if fmt not in _FORMATS:
        raise UserError(f"unknown int8 format {fmt!r}; allowed: {', '.join(_FORMATS)}")
    if graph not in GRAPHS:
        raise UserError(f"unknown int8 graph {graph!r}; allowed: {', '.join(GRAPHS)}")
    images = np.ascontiguousarray(calib_images.detach().cpu().numpy() if hasattr(calib_images, "detach")
                                  else calib_images, dtype=np.float32)
    if len(images) == 0:
        raise UserError("static quantization needs at least one calibration image")
    act, weight, reduce_range = _FORMATS[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    cache = {"calibration_cache_path": str(calibration_cache)} if calibration_cache and _HAS_CACHE else {}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # fold, infer shapes: better QDQ placement
        with contextlib.redirect_stdout(io.StringIO()), _quiet_root_log():  # calibrators print progress
            quantize_static(str(pre), str(out), _Batches(proto.graph.input[0].name, images, batch_size),
                            quant_format=GRAPHS[graph], per_channel=per_channel, reduce_range=reduce_range,
                            activation_type=act, weight_type=weight, calibrate_method=_METHODS[method],
                            nodes_to_exclude=list(fp32_nodes or []),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True}, **cache)
    _copy_metadata(proto, out, metadata)
    return out


def quantizable_nodes(path: str | Path) -> list[str]:
    """Names of the compute nodes (Conv, Gemm, MatMul, ConvTranspose) int8 quantization acts on, in graph order."""
    proto = onnx.load(str(path), load_external_data=False)
    return [n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose")]


def read_quant_meta(path: str | Path) -> dict[str, str]:
    """The metadata_props of an ONNX file (class names, normalization, int8 format, target, fp32 layers)."""
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def quant_metadata(info: dict, fp32_layers: list[str]) -> dict[str, str]:
    """What an int8 file says about itself: format, reduce_range, target, the CPU it was built on, fp32 layers."""
    return {"int8_format": str(info["format"]), "int8_graph": str(info.get("graph", "qdq")), "int8_reduce_range": json.dumps(bool(info["reduce_range"])),
            "int8_target": str(info["target"]), "int8_build_cpu": f"{info['host']} {info['host_machine']}",
            "int8_build_cpu_flags": json.dumps(info["cpu_flags"]), "int8_fp32_layers": json.dumps(fp32_layers)}


def quantize_dynamic_onnx(fp32_path: str | Path, out_path: str | Path, fmt: str = "u8s8",
                          metadata: dict[str, str] | None = None) -> Path:
    """int8 weights with activations quantized on the fly: no calibration data, mostly helps Linear/MatMul.

    ORT quantizes dynamic activations to uint8 only, so `fmt` picks the weights: u8s8, u8s8_reduce_range
    (7-bit, no saturation without VNNI) or u8u8; s8s8 has no dynamic form (a UserError names the others).
    """
    src, out = Path(fp32_path).expanduser(), Path(out_path).expanduser()
    proto = _check(src)
    if fmt not in DYNAMIC_FORMATS:
        raise UserError(f"int8 format {fmt!r} has no dynamic form (ONNX Runtime quantizes dynamic activations to "
                        f"uint8); allowed: {', '.join(DYNAMIC_FORMATS)}")
    _, weight, reduce_range = _FORMATS[fmt]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(out), weight_type=weight, reduce_range=reduce_range)
    _copy_metadata(proto, out, metadata)
    return out
