"""OpenVINO rows: the fp32 ONNX file converted to OpenVINO IR, and int8 by NNCF's own post-training quantization.

int8 comes from `nncf.quantize` on the converted fp32 model (not from the ONNX Runtime QDQ file), so the
row shows what OpenVINO's own toolchain gives a user who ships to it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend, Runner, Source


@functools.lru_cache(maxsize=1)
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def _nncf_int8(model: Any, calib: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """nncf.quantize with its defaults and with minmax ranges without bias correction; keeps the one whose
    top-1 agrees more with the fp32 model on the calibration images (held-out images stay unseen).

    Both are tried because neither always wins: on a 16 px digits ResNet-8, NNCF's default fast bias
    correction left 79% held-out agreement where minmax without it kept 95% (ONNX Runtime's minmax QDQ: 97%).
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    data = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    variants = {"nncf defaults (fast bias correction)": {},
                "minmax ranges, no bias correction": {"advanced_parameters": AdvancedQuantizationParameters(
                    disable_bias_correction=True,
                    activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)}}
    ref = _predict(model, calib).argmax(1)
    tried = {}
    for name, kwargs in variants.items():
        q = nncf.quantize(model.clone(), data, subset_size=len(calib), **kwargs)
        tried[name] = (q, float(np.mean(_predict(q, calib).argmax(1) == ref)))
    best = max(tried, key=lambda k: tried[k][1])
    return tried[best][0], {"quantizer": f"nncf {nncf.__version__} quantize: {best}", "calib_images": len(calib),
                            "calib_agreement": {k: v[1] for k, v in tried.items()}}


def _predict(model: Any, images: np.ndarray) -> np.ndarray:
    """Logits of an in-memory OpenVINO model (fp32 precision), for choosing between quantized variants."""
    compiled = _core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.concatenate([np.asarray(compiled(images[i:i + 64])[0]) for i in range(0, len(images), 64)])


class OpenVino(Backend):
    """CPU plugin; fp32 inference precision forced, so bf16-capable CPUs do not silently change the fp32 row."""

    name, label, modules, extra, package = "openvino", "OpenVINO", ("openvino", "nncf"), "openvino", "openvino"
    run_modules = ("openvino",)

    def build(self, source: Source, precision: str, folder: Path) -> tuple[Path, dict[str, Any]]:
        """IR (.xml + .bin) with fp32 weights (save_model would halve them to fp16 by default)."""
        import openvino as ov

        folder.mkdir(parents=True, exist_ok=True)
        model = ov.convert_model(str(source.onnx()))
        if precision == "fp32":
            out = folder / "model.xml"
            ov.save_model(model, str(out), compress_to_fp16=False)
            return out, {}
        out = folder / "model.int8.xml"
        quantized, info = _nncf_int8(model, source.calib)
        ov.save_model(quantized, str(out), compress_to_fp16=False)
        return out, info

    def runner(self, path: Path, threads: int) -> Runner:
        """Compiled once per input shape with that shape fixed: the CPU plugin runs a dynamic batch through
        shape inference on every call, which a deployment with a known batch does not pay."""
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads)}
        requests: dict[tuple[int, ...], Any] = {}

        def run(x: Any) -> Any:
            request = requests.get(x.shape)
            if request is None:
                model = _core().read_model(str(path))
                model.reshape(list(x.shape))
                request = requests[x.shape] = _core().compile_model(model, "CPU", config).create_infer_request()
            request.infer({0: x})
            return request.get_output_tensor(0).data.copy()

        return run

    def files(self, path: Path) -> list[Path]:
        return [path, path.with_suffix(".bin")]
