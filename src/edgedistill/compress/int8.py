"""The quantize stage's work: an int8 file in the target's format, with sensitivity-guided mixed precision.

When the all-int8 file misses the agreement gate on a seeded sample of *train* images (eval
preprocessing; never the held-out split the report uses, so the choice does not peek at it), each
quantizable layer is scored by how much agreement returns when that layer alone stays fp32 (ORT's
`nodes_to_exclude`), and the most sensitive layers are kept in fp32 one by one until the gate passes.
Calibration runs once: ORT's calibration cache hands the same tensor ranges to every variant.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..deploy.energy import NOT_MEASURABLE
from ..deploy.onnx_runtime import ort_latency, ort_predict, ort_session
from ..errors import UserError
from .quantize import quant_metadata, quantizable_nodes, quantize_static_onnx


def module_of(node: str) -> str:
    """The PyTorch module path of a TorchScript-exported node: '/layer2/layer2.0/conv1/Conv' → 'layer2.0.conv1'."""
    parts = [p for p in node.split("/") if p][:-1]
    return ".".join(p.rsplit(".", 1)[-1] for p in parts)


def resolve_layers(names: list[str], nodes: list[str], key: str) -> list[str]:
    """ONNX node names for each requested layer (a node name or a module name); an unknown one is a UserError."""
    out: list[str] = []
    for name in names:
        hit = [n for n in nodes if name in (n, module_of(n))]
        if not hit:
            valid = list(dict.fromkeys(module_of(n) or n for n in nodes))
            raise UserError(f"fp32 layer {name!r} matches no quantizable layer; allowed: module or ONNX node names "
                            f"of Conv/Gemm/MatMul layers, e.g. {', '.join(valid[:6])}"
                            f"{' …' if len(valid) > 6 else ''}", key=key)
        out += [n for n in hit if n not in out]
    return out


Agree = Callable[[np.ndarray, np.ndarray], float]  # fp32's raw outputs, a candidate's → share that agrees (0..1)


def outputs(path: Path, images: np.ndarray, exact: bool) -> np.ndarray:
    """Raw ORT outputs; exact=True runs the QDQ graph unfused (what a non-saturating CPU computes)."""
    return ort_predict(ort_session(path, optimize=not exact), images)


def predictions(path: Path, images: np.ndarray, exact: bool) -> np.ndarray:
    """Top-1 classes (per image, or per pixel for N×K×H×W logits) from ORT."""
    return outputs(path, images, exact).argmax(1)


def top1_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """The default agreement: the share of argmax-over-axis-1 readings (classes, or pixel classes) that match."""
    return float(np.mean(ref.argmax(1) == got.argmax(1)))


def _latency(path: Path, shape: tuple[int, ...], threads: int, runs: int) -> float:
    return ort_latency(path, shape, threads=threads, runs=runs, warmup=min(5, runs))["latency_ms_median"]


def build_int8(fp32: Path, out: Path, calib: np.ndarray, select: np.ndarray, cfg: Any, resolved: dict[str, Any],
               gate: float, key: str, deploy: tuple[int, int], latency_runs: int, console: Any,
               cache: Path | None = None, ref: np.ndarray | None = None, agreement: Agree = top1_agreement
               ) -> dict[str, Any]:
    """Write `out` in resolved['format'] and resolved['graph'] (fp32 layers forced by cfg.fp32_layers, or found
    by sensitivity). cache: a calibration-range file shared by several builds of the same fp32 file; ref:
    fp32's raw outputs on `select` when the caller already has them; agreement: how a candidate's outputs are
    compared with fp32's (a detector's: matched boxes after decoding).

    Returns the stage info: format facts, agreement on the selection images and, when layers stay fp32,
    which ones, their sensitivity and the latency of all-int8 vs mixed at the deploy batch and threads.
    """
    nodes = quantizable_nodes(fp32)
    forced = resolve_layers(list(cfg.fp32_layers), nodes, key)
    exact = not resolved["measurable_here"]  # the target's kernels are not this CPU's: score exact int8
    ref = outputs(fp32, select, exact=False) if ref is None else ref

    def agree(path: Path) -> float:
        return agreement(ref, outputs(path, select, exact))

    graph = str(resolved.get("graph", "qdq"))
    with tempfile.TemporaryDirectory() as tmp:
        ranges = cache or Path(tmp) / "calibration.json"

        def build(path: Path, fp32_nodes: list[str]) -> Path:
            meta = quant_metadata(resolved, [module_of(n) or n for n in fp32_nodes])
            return quantize_static_onnx(fp32, path, calib, method=cfg.calibration, per_channel=cfg.per_channel,
                                        fmt=str(resolved["format"]), fp32_nodes=fp32_nodes,
                                        calibration_cache=ranges, metadata=meta, graph=graph)

        base = build(Path(tmp) / "all.onnx", forced)
        first = agree(base)
        mp: dict[str, Any] = {"mode": cfg.mixed_precision, "selection_images": len(select),
                              "selection": "seeded train images, eval preprocessing (not the held-out split)",
                              "agreement_all_int8": 100 * first, "forced_fp32": [module_of(n) or n for n in forced]}
        fp32_nodes = list(forced)
        if first < gate and cfg.mixed_precision == "auto":
            fp32_nodes = _greedy(build, agree, nodes, forced, gate, cfg, mp, Path(tmp), console)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base if fp32_nodes == forced else build(Path(tmp) / "mixed.onnx", fp32_nodes), out)
        mp["fp32_layers"] = [module_of(n) or n for n in fp32_nodes]
        mp["fp32_nodes"] = fp32_nodes
        mp["agreement"] = 100 * (first if fp32_nodes == forced else agree(out))
        mp["passed_on_selection"] = mp["agreement"] >= 100 * gate
        if fp32_nodes != forced:
            mp["latency"] = _cost(base, out, select.shape[1:], deploy, latency_runs, resolved)
    return {"graph": graph, **{k: resolved[k] for k in ("format", "reduce_range", "format_reason", "target", "host", "host_machine",
                                        "cpu_flags", "cpu_source", "measurable_here")},
            "quantizable_layers": len(nodes), "mixed_precision": mp}


def _greedy(build: Any, agree: Any, nodes: list[str], forced: list[str], gate: float, cfg: Any, mp: dict[str, Any],
            tmp: Path, console: Any) -> list[str]:
    """Score layers (fp32 one at a time), then keep the most sensitive in fp32 until the gate passes."""
    t0, scores = time.monotonic(), {}
    todo = [n for n in nodes if n not in forced]
    console.print(f"[yellow]int8 agreement {mp['agreement_all_int8']:.1f}% < {100 * gate:.0f}% on "
                  f"{mp['selection_images']} train images[/]: scoring up to {min(len(todo), cfg.sensitivity_layers)} "
                  "layers for mixed precision …")
    for k, node in enumerate(todo[:cfg.sensitivity_layers]):
        if time.monotonic() - t0 > cfg.sensitivity_seconds:
            break
        scores[node] = 100 * agree(build(tmp / f"s{k}.onnx", forced + [node])) - mp["agreement_all_int8"]
    ranked = sorted(scores, key=lambda n: -scores[n])
    mp["scored_layers"], mp["scoring_seconds"] = len(scores), round(time.monotonic() - t0, 2)
    mp["sensitivity"] = {module_of(n) or n: round(scores[n], 2) for n in ranked[:10]}  # agreement points regained
    mp["unscored_layers"] = len(todo) - len(scores)
    chosen, trail = list(forced), []
    for node in ranked[:cfg.max_fp32_layers]:
        chosen.append(node)
        a = agree(build(tmp / "try.onnx", chosen))
        trail.append({"fp32_layers": len(chosen), "agreement": 100 * a})
        if a >= gate:
            break
    mp["greedy"] = trail
    names = ", ".join(module_of(n) or n for n in chosen[len(forced):])
    last = trail[-1]["agreement"] if trail else 0.0
    console.print(f"mixed precision: fp32 {names or 'nothing'} → agreement {last:.1f}% on the train sample")
    return chosen


def _cost(all_int8: Path, mixed: Path, image_shape: tuple[int, ...], deploy: tuple[int, int], runs: int,
          resolved: dict[str, Any]) -> dict[str, Any]:
    """ORT latency (median ms) of all-int8 vs mixed at the deploy batch and threads, or why not measurable."""
    batch, threads = deploy
    where = {"batch": batch, "threads": threads, "runtime": "onnxruntime CPU"}
    if not resolved["measurable_here"]:
        return {**where, "all_int8_ms": None, "mixed_ms": None, "note": NOT_MEASURABLE}
    shape = (batch, *image_shape)
    a, m = _latency(all_int8, shape, threads, runs), _latency(mixed, shape, threads, runs)
    return {**where, "all_int8_ms": a, "mixed_ms": m, "mixed_over_all_int8": m / a}
