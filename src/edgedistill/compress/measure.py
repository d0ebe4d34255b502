"""The same accuracy and cost measurement after every compression stage, so stages compare on one footing."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..deploy.energy import NOT_MEASURABLE, energy_meter
from ..deploy.onnx_runtime import ort_latency, ort_peak_rss_mb, ort_predict, ort_session
from ..deploy.profile import all_threads, count_flops, count_params, measure_latency, peak_memory_mb
from ..evaluate import classification_metrics


def latency_grid(deploy_batch: int, deploy_threads: int) -> list[tuple[int, int]]:
    """(batch, threads) pairs timed per stage: batch 1 and 32, 1 thread and all, plus the deploy target."""
    grid = {(b, t) for b in (1, 32) for t in (1, all_threads())}
    grid.add((deploy_batch, deploy_threads))
    return sorted(grid)


def file_sizes(path: Path) -> dict[str, float]:
    """File size and its gzip size (MB): zeros from unstructured pruning show up only in the latter."""
    raw = path.read_bytes()
    return {"size_mb": len(raw) / 1e6, "size_gz_mb": len(gzip.compress(raw, 6)) / 1e6}


def torch_logits(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    m = model.eval()
    with torch.inference_mode():
        return torch.cat([m(images[i:i + batch]) for i in range(0, len(images), batch)])


def measure(*, images: torch.Tensor, labels: torch.Tensor, num_classes: int, onnx_path: Path | None,
            model: nn.Module | None, runs: int, warmup: int, deploy_batch: int, deploy_threads: int,
            inherited: dict[str, Any] | None = None, not_measurable: str | None = None) -> dict[str, Any]:
    """Metric suite on the held-out images plus params, FLOPs, size, memory, latency grid and energy.

    Memory is two figures: `peak_mem_mb`, torch's allocations during one batch-1 forward (activations,
    no weights), and `ort_peak_rss_mb`, the resident memory an ONNX Runtime process adds to load and run
    the artifact at the deploy batch and threads (weights included): what an edge device must have free.

    Accuracy comes from the PyTorch model when there is one (the ONNX file matches it, by the parity
    check), otherwise from the ONNX file. Params/FLOPs of an ONNX-only stage (int8) are `inherited`
    from the model it was made from: quantization changes bytes, not the count of weights or MACs.
    not_measurable: the file is built for another CPU (deploy.target); its accuracy comes from exact int8
    arithmetic (graph optimizations off) and no latency or energy is timed on this one.
    """
    out: dict[str, Any] = dict(inherited or {})
    if model is None and onnx_path is None:  # the stage's file failed its check: nothing left to run
        return {**out, "top1": None, "logits_argmax": None, "latency": {}, "latency_ms_median": None,
                "latency_ms_p90": None, "deploy_latency_ms": None, "peak_mem_mb": None, "ort_peak_rss_mb": None,
                "energy": {"j_per_image": None, "reason": NOT_MEASURABLE + " (no artifact passed its checks)"}}
    shape1 = (1, *images.shape[1:])
    if model is not None:
        model = model.cpu().float().eval()
        logits = torch_logits(model, images)
        out.update(params=count_params(model), flops=count_flops(model, shape1),
                   peak_mem_mb=peak_memory_mb(model, shape1))
    else:
        logits = torch.from_numpy(ort_predict(ort_session(onnx_path, optimize=not_measurable is None), images.numpy()))
        out.setdefault("peak_mem_mb", None)  # torch's allocation peak: there is no torch model to run
    out.update(classification_metrics(logits, labels, num_classes))
    out["logits_argmax"] = logits.argmax(1)
    if onnx_path is not None:
        out.update(file_sizes(onnx_path))
        out["ort_peak_rss_mb"] = ort_peak_rss_mb(onnx_path, (deploy_batch, *images.shape[1:]), deploy_threads)
    latency: dict[str, dict[str, Any]] = {}
    if not_measurable:
        out.update(latency=latency, latency_ms_median=None, latency_ms_p90=None, deploy_latency_ms=None,
                   latency_note=f"{NOT_MEASURABLE} ({not_measurable})",
                   energy={"j_per_image": None, "reason": f"{NOT_MEASURABLE} ({not_measurable})"})
        return out
    for b, t in latency_grid(deploy_batch, deploy_threads):
        shape = (b, *images.shape[1:])
        if onnx_path is not None:
            latency[f"ort_b{b}_t{t}"] = ort_latency(onnx_path, shape, threads=t, runs=runs, warmup=warmup)
        if model is not None:
            r = measure_latency(model, shape, runs=runs, warmup=warmup, threads=t)
            latency[f"torch_b{b}_t{t}"] = {**r, "throughput_ips": b * 1e3 / r["latency_ms_median"], "batch": b}
    out["latency"] = latency
    head = latency.get("ort_b1_t1") or latency.get("torch_b1_t1") or {}
    out["latency_ms_median"], out["latency_ms_p90"] = head.get("latency_ms_median"), head.get("latency_ms_p90")
    target = latency.get(f"ort_b{deploy_batch}_t{deploy_threads}")
    out["deploy_latency_ms"] = target["latency_ms_median"] if target else None
    out["energy"] = _energy(onnx_path, (deploy_batch, *images.shape[1:]), deploy_threads, runs, warmup)
    return out


def _energy(onnx_path: Path | None, shape: tuple[int, ...], threads: int, runs: int, warmup: int
            ) -> dict[str, Any]:
    """Joules per image over the deploy-target ORT loop, or the reason it is not measurable here."""
    if onnx_path is None:
        return {"j_per_image": None, "reason": NOT_MEASURABLE + " (no ONNX artifact)"}
    with energy_meter() as e:
        ort_latency(onnx_path, shape, threads=threads, runs=runs, warmup=0)
    res = e.result()
    per = None if res["joules"] is None else res["joules"] / (runs * shape[0])
    return {"j_per_image": per, "source": res["source"], "reason": res["reason"]}


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of images on which two models' top-1 predictions agree."""
    return float(np.mean(a.numpy() == b.numpy())) if len(a) else 1.0
