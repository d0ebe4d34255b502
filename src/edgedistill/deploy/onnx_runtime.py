"""Running and timing ONNX files with ONNX Runtime on the CPU; no torch import, so deployment stays light."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import UserError


def ort_session(path: str | Path, threads: int | None = None, optimize: bool = True) -> ort.InferenceSession:
    """A CPU session; `threads` fixes intra-op threads and execution is sequential, so timings compare.

    optimize=False turns graph optimizations off: an int8 QDQ file then runs as written (Quantize/Dequantize
    in float around fp32 ops), the exact int8 arithmetic a CPU without saturating fused kernels computes.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"no such ONNX file: {p}")
    opts = ort.SessionOptions()
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 — a corrupt or unsupported file is the user's to fix
        raise UserError(f"ONNX Runtime cannot load {p}: {str(e).splitlines()[0][:300]}") from None


def ort_predict(session: ort.InferenceSession, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits for NCHW float32 images, run in batches to bound memory."""
    name = session.get_inputs()[0].name
    x = np.ascontiguousarray(images, dtype=np.float32)
    outs = [session.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, session.get_outputs()[0].shape[-1]), np.float32)


def ort_latency(path: str | Path, input_shape: tuple[int, ...], threads: int | None = 1, runs: int = 100,
                warmup: int = 10) -> dict[str, Any]:
    """Wall-clock ms per run of one batch of `input_shape` (median, p90) and images per second."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name
    x = np.zeros(input_shape, dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1e3)
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return {"latency_ms_median": median, "latency_ms_p90": p90, "throughput_ips": input_shape[0] * 1e3 / median,
            "threads": threads, "batch": int(input_shape[0])}


# Runs in a fresh interpreter: the high-water mark of resident memory (VmHWM) then holds only the runtime,
# read before the session exists, and the runtime plus this model, read after the timed runs.
_RSS_PROBE = """
import sys, numpy as np, onnxruntime as ort
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) * 1024
x = np.zeros(tuple(int(v) for v in sys.argv[2].split(',')), np.float32)
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[3]); o.inter_op_num_threads = 1
o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL; o.log_severity_level = 3
base = hwm()
s = ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])
for _ in range(5):
    s.run(None, {s.get_inputs()[0].name: x})
print(base, hwm())
"""


def ort_peak_rss_mb(path: str | Path, input_shape: tuple[int, ...], threads: int = 1) -> float | None:
    """Peak resident memory (MB) that loading and running this model adds to an ONNX Runtime process.

    ORT has no per-run allocation counter, so a fresh process measures what a deployment pays: the
    Linux high-water mark after the session ran, minus the mark with the runtime alone loaded (weights,
    optimized graph, arena and activations are in it). None where /proc is missing (not Linux).
    """
    if not Path("/proc/self/status").exists():
        return None
    shape = ",".join(str(int(v)) for v in input_shape)
    try:
        done = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(Path(path).expanduser()), shape, str(threads)],
                              capture_output=True, text=True, timeout=300, check=True)
        base, peak = (int(v) for v in done.stdout.split())
    except (subprocess.SubprocessError, ValueError):
        return None
    return max(peak - base, 0) / 1e6


def read_onnx_meta(path: str | Path) -> dict[str, Any]:
    """The preprocessing metadata export_onnx wrote: class_names, mean, std (lists), image_size (int)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"no such ONNX file: {p}")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        raw = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    except Exception as e:  # noqa: BLE001
        raise UserError(f"ONNX Runtime cannot load {p}: {str(e).splitlines()[0][:300]}") from None
    missing = [k for k in ("class_names", "mean", "std", "image_size") if k not in raw]
    if missing:
        raise UserError(f"{p} lacks edgedistill metadata ({', '.join(missing)}); allowed: an ONNX file that "
                        "edgedistill wrote: a model.onnx or model.int8.onnx from `edgedistill compress` (or a run with "
                        "compress.stages), in the compress folder's stage subfolders")
    meta: dict[str, Any] = {k: v for k, v in raw.items()}
    for k in ("class_names", "mean", "std"):
        meta[k] = json.loads(raw[k])
    meta["image_size"] = int(raw["image_size"])
    return meta
