"""The deploy matrix: one student built for each runtime × precision, checked against PyTorch and timed here.

Each row is built, run on the held-out images (top-1 agreement and max |Δlogit| against the PyTorch student),
gated (fp32: FP32_MIN_AGREEMENT; int8: the recipe's compress.min_int8_agreement), then timed with every
other built row in interleaved rounds per (batch, threads) setting, and its peak memory is probed in a fresh
process. The recommendation is the fastest row that passes its gate and beats ONNX Runtime fp32 in the
deploy setting; when none does, ONNX Runtime fp32 is recommended and the matrix says so.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .ab_latency import interleaved_rounds
from .backend import Source, failure_reason, predict_batches, quiet
from .profile import all_threads
from .rss_probe import measure_peak_rss_mb
from .runtimes import RUNTIMES

FP32_MIN_AGREEMENT = 0.99  # an fp32 file computes the same function: only float rounding may flip a top-1
BASELINE = "onnxruntime-fp32"
Progress = Callable[[str], None]


@dataclass
class MatrixConfig:
    """What to build and how to time it; `deploy` is the (batch, threads) setting the recommendation uses."""

    runtimes: list[str]
    precisions: list[str]
    int8_min_agreement: float = 0.9
    deploy: tuple[int, int] = (1, 1)
    batches: tuple[int, ...] = (1, 32)
    rounds: int = 5
    runs: int = 50
    warmup: int = 5
    memory: bool = True
    threads: list[int] = field(default_factory=lambda: sorted({1, all_threads()}))
    # A task's own figures per row (segmentation: mIoU and its drop from PyTorch's on the held-out masks): logits,
    # precision → fields; a "gate_reason" field fails the row, an "agreement" field (0..1) replaces top-1's.
    # `columns`: (header, field) pairs the tables add;
    # `agreement`: what agreement counts (top-1 per image, or per pixel).
    score: Callable[[np.ndarray, str], dict[str, Any]] | None = None
    columns: tuple[tuple[str, str], ...] = ()
    agreement: str = "top-1"

    def settings(self) -> list[tuple[int, int]]:
        """(batch, threads) pairs timed: batch 1 and 32 × 1 and all threads, plus the deploy setting."""
        return sorted({(b, t) for b in self.batches for t in self.threads} | {self.deploy})


def setting_key(batch: int, threads: int) -> str:
    return f"b{batch}_t{threads}"


def _gate(precision: str, cfg: MatrixConfig) -> float:
    return FP32_MIN_AGREEMENT if precision == "fp32" else cfg.int8_min_agreement


def build_row(source: Source, runtime: str, precision: str, images: np.ndarray, ref: np.ndarray, out: Path,
              cfg: MatrixConfig) -> dict[str, Any]:
    """Build one runtime × precision artifact and check it; a missing runtime or a failure is a row, not a raise."""
    backend = RUNTIMES[runtime]
    row: dict[str, Any] = {"id": f"{runtime}-{precision}", "runtime": runtime, "label": backend.label,
                           "precision": precision, "gate": _gate(precision, cfg)}
    if not backend.available():
        return {**row, "status": "not installed", "reason": f"not installed: {backend.install_hint}"}
    row["version"] = backend.version()
    t0 = time.perf_counter()
    try:
        with quiet():  # converters print op counts, progress bars and C++ logs; the row holds what matters
            path, info = backend.build(source, precision, out / runtime)
        row["build_s"] = time.perf_counter() - t0
        logits = predict_batches(backend.runner(path, all_threads()), images)
    except Exception as e:  # noqa: BLE001 — an op the runtime lacks is that row's finding; the others still run
        return {**row, "status": "failed", "reason": failure_reason(e), "build_s": time.perf_counter() - t0}
    extra = cfg.score(logits, precision) if cfg.score is not None else {}
    reason = extra.pop("gate_reason", None)
    agree = extra.pop("agreement", None)  # a task's own agreement (detection: boxes), else top-1 along axis 1
    if agree is None:
        agree = float(np.mean(logits.argmax(1) == ref.argmax(1))) if len(ref) else 1.0
    row.update(path=str(path), info=info, images=len(images), agreement=agree,
               max_abs_diff=float(np.max(np.abs(logits - ref))) if len(ref) else 0.0,
               size_bytes=sum(f.stat().st_size for f in backend.files(path)), **extra)
    row["status"] = "pass" if agree >= row["gate"] else "below gate"
    if row["status"] != "pass":
        row["reason"] = f"agreement {100 * agree:.1f}% < gate {100 * row['gate']:.1f}%"
    elif reason:
        row.update(status="below gate", reason=reason)
    return row


def time_rows(rows: list[dict[str, Any]], images: np.ndarray, cfg: MatrixConfig, progress: Progress) -> None:
    """Latency of every built row in each setting, all rows of a setting interleaved round by round."""
    built = [r for r in rows if "path" in r]
    for batch, threads in cfg.settings():
        key = setting_key(batch, threads)
        progress(f"timing batch {batch}, {threads} thread(s)")
        x = np.ascontiguousarray(np.resize(images, (batch, *images.shape[1:])), np.float32)
        calls = {}
        for r in built:
            try:  # a runtime may refuse a setting (a batch over its planned maximum): that cell says why
                run = RUNTIMES[r["runtime"]].runner(Path(r["path"]), threads)
                run(x)
                calls[r["id"]] = lambda run=run, x=x: run(x)
            except Exception as e:  # noqa: BLE001
                r.setdefault("latency", {})[key] = {"error": failure_reason(e)}
        runs = cfg.runs if batch == 1 else max(3, cfg.runs // 8)
        per = interleaved_rounds(calls, cfg.rounds, runs, cfg.warmup) if calls else {}
        base = per.get(BASELINE)
        for r in built:
            if r["id"] not in per:
                continue
            v = per[r["id"]]
            lat = {"median_ms": statistics.median(v), "min_ms": min(v), "max_ms": max(v), "round_medians_ms": v,
                   "rounds": cfg.rounds, "runs_per_round": runs}
            if base is not None:
                ratios = [a / b for a, b in zip(base, v)]
                lat.update(speedup_vs_ort_fp32=statistics.median(ratios),
                           faster_rounds=sum(b < a for a, b in zip(base, v)))
            r.setdefault("latency", {})[key] = lat


def probe_memory(rows: list[dict[str, Any]], side: int, cfg: MatrixConfig, progress: Progress) -> None:
    """Peak RSS each built artifact adds to a fresh process of its runtime, at the deploy batch and threads."""
    batch, threads = cfg.deploy
    for r in rows:
        if "path" in r:
            progress(f"memory {r['id']}")
            r["rss_mb"] = measure_peak_rss_mb(r["runtime"], Path(r["path"]), batch, threads, side)


def recommend(rows: list[dict[str, Any]], cfg: MatrixConfig) -> dict[str, Any]:
    """The fastest passing row in the deploy setting that beats ONNX Runtime fp32 (median of per-round ratios
    above 1 and faster in most rounds); else ONNX Runtime fp32, saying nothing beat it."""
    key = setting_key(*cfg.deploy)
    ok = [r for r in rows if r.get("status") == "pass" and "median_ms" in r.get("latency", {}).get(key, {})]
    base = next((r for r in ok if r["id"] == BASELINE), None)
    where = f"batch {cfg.deploy[0]}, {cfg.deploy[1]} thread(s)"
    if not ok:
        return {"id": None, "setting": key, "line": f"no row passed its gate at {where}: nothing to recommend"}
    if base is None:
        best = min(ok, key=lambda r: r["latency"][key]["median_ms"])
        return {"id": best["id"], "setting": key, "line": f"{best['label']} {best['precision']} is the fastest "
                f"passing row at {where} (no passing ONNX Runtime fp32 row to compare with)"}
    faster = [r for r in ok if r is not base and r["latency"][key]["speedup_vs_ort_fp32"] > 1.0
              and 2 * r["latency"][key]["faster_rounds"] > r["latency"][key]["rounds"]]
    if not faster:
        return {"id": base["id"], "setting": key, "line": f"no row beats ONNX Runtime fp32 at {where} on this CPU: "
                "ship the fp32 ONNX file"}
    best = max(faster, key=lambda r: r["latency"][key]["speedup_vs_ort_fp32"])
    lat = best["latency"][key]
    return {"id": best["id"], "setting": key, "speedup_vs_ort_fp32": lat["speedup_vs_ort_fp32"],
            "line": f"{best['label']} {best['precision']}: {lat['speedup_vs_ort_fp32']:.2f}x ONNX Runtime fp32 at "
                    f"{where} ({100 * best['agreement']:.1f}% {cfg.agreement} agreement with PyTorch)"}


def run_matrix(source: Source, images: np.ndarray, ref: np.ndarray, out: Path, cfg: MatrixConfig,
               progress: Progress = lambda _: None) -> dict[str, Any]:
    """Every row of the matrix, its latency and memory, and the recommendation, as one JSON-ready dict."""
    rows = []
    for runtime in cfg.runtimes:
        for precision in cfg.precisions:
            progress(f"building {runtime} {precision}")
            rows.append(build_row(source, runtime, precision, images, ref, out, cfg))
    time_rows(rows, images, cfg, progress)
    if cfg.memory:
        probe_memory(rows, int(images.shape[-1]), cfg, progress)
    return {"rows": rows, "recommendation": recommend(rows, cfg), "deploy_setting": setting_key(*cfg.deploy),
            "settings": [setting_key(*s) for s in cfg.settings()], "images": len(images),
            "fp32_min_agreement": FP32_MIN_AGREEMENT, "int8_min_agreement": cfg.int8_min_agreement,
            "agreement": cfg.agreement, "columns": [list(c) for c in cfg.columns]}
