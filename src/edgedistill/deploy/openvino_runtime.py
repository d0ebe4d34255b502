"""A second runtime for every reported ONNX file: does OpenVINO (CPU) predict what ONNX Runtime predicts?

ONNX Runtime is the runtime every figure is measured in; OpenVINO is a cross-check, so an artifact is
known to run, with the same top-1, on a second widely deployed CPU runtime. OpenVINO is optional
(`pip install edgedistill[openvino]`) and imported lazily: without it the check records
"not installed", never an error. A file OpenVINO cannot load, or a low agreement, is recorded and warned
about, not refused: the artifact was checked (parity or int8 agreement gate) in the runtime it is
measured in, and int8 QDQ graphs run on each runtime's own int8 kernels, so some disagreement there
says as much about the runtimes as about the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NOT_INSTALLED = "not installed"


def openvino_version() -> str | None:
    """OpenVINO's version, or None where it is not installed."""
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__)


def openvino_predict(path: str | Path, images: np.ndarray, batch_size: int = 64, threads: int = 1) -> np.ndarray:
    """Logits from OpenVINO's CPU plugin, in fp32 inference precision.

    INFERENCE_PRECISION_HINT=f32 stops the plugin from running float layers in bf16 on CPUs that have it:
    the check is about the file, not about a precision OpenVINO would pick for speed.
    """
    import openvino as ov

    compiled = ov.Core().compile_model(str(Path(path).expanduser()), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads)})
    x = np.ascontiguousarray(images, dtype=np.float32)
    return np.concatenate([np.asarray(compiled(x[i:i + batch_size])[0]) for i in range(0, len(x), batch_size)])


def openvino_error(e: Exception) -> str:
    """The informative line of an OpenVINO error: the ops it lacks, not 'Exception from core.cpp:132:'."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    lacks = [ln.removeprefix("-- ") for ln in lines if "No conversion rule found" in ln]
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check 'false'"))]
    return (lacks or useful or lines or [type(e).__name__])[0][:300]


def openvino_check(path: str | Path, images: np.ndarray, ort_logits: np.ndarray) -> dict[str, Any]:
    """OpenVINO vs ONNX Runtime on the same images: top-1 agreement (share) and max |Δlogit|.

    {"status": "not installed"} without OpenVINO; {"version", "status": "failed", "error"} when it cannot
    load or run the file; else {"version", "status": "checked", "device", "images", "agreement", "max_abs_diff"}.
    """
    version = openvino_version()
    if version is None:
        return {"status": NOT_INSTALLED}
    try:
        got = openvino_predict(path, images)
    except Exception as e:  # noqa: BLE001 — an op OpenVINO lacks is a finding to record, not a crash
        return {"version": version, "status": "failed", "error": openvino_error(e)}
    return {"version": version, "status": "checked", "device": "CPU", "images": len(images),
            "agreement": float(np.mean(got.argmax(1) == ort_logits.argmax(1))) if len(images) else 1.0,
            "max_abs_diff": float(np.max(np.abs(got - ort_logits))) if len(images) else 0.0}


def check_runtimes(path: str | Path, images: np.ndarray) -> dict[str, Any]:
    """The runtimes an ONNX file was run in: ONNX Runtime (where every figure is measured) and OpenVINO."""
    import onnxruntime as ort

    from .onnx_runtime import ort_predict, ort_session

    ort_logits = ort_predict(ort_session(path, threads=1), images)
    return {"onnxruntime": {"version": ort.__version__, "status": "measured", "images": len(images)},
            "openvino": openvino_check(path, images, ort_logits)}


def openvino_summary(runtimes: dict[str, Any] | None) -> str:
    """A short cell for a stage table: which runtimes ran the file, and how OpenVINO agreed."""
    if not runtimes:
        return "–"
    ov = runtimes.get("openvino", {})
    if ov.get("status") == "checked":
        return f"ORT + OpenVINO {100 * ov['agreement']:.1f}%"
    if ov.get("status") == "failed":
        return "ORT (OpenVINO failed)"
    return "ORT (OpenVINO not installed)"
