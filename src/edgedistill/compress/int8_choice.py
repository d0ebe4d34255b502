"""Pick the int8 file by measurement: every format correct on the target, gated on agreement, timed vs fp32.

No table says which int8 file is fastest: on an AVX2 CPU without VNNI, U8U8 (the saturation-free table
choice) ran 0.72× the speed of fp32 while U8S8 with reduce_range kept 97–98% agreement and ran 1.40× faster
than U8U8 (issue 23). So the quantize stage builds every (format, graph) pair `cpu.correct_int8` lists for the target
(QDQ and QOperator graphs), keeps those whose top-1 agreement with fp32 on seeded train images passes
compress.min_int8_agreement, and times them with fp32 in interleaved rounds (deploy/ab_latency.py) at the
deploy batch and threads. The fastest passing file is written; when it is not faster than fp32, the stage
says so and `ship: fastest` marks the fp32 file as the deployable. A target that is not this CPU cannot be
timed here: its table format is built and scored with exact int8 arithmetic, as before.

A task whose deployed program decodes the graph's outputs (detection: boxes and NMS in Python) passes `decode`:
every file is then timed end to end (session + decode, on the selection images) and the choice and the
"faster than fp32?" verdict use that figure, since a file faster on the graph alone can be slower end to end
(issue 25: 1.16× on the graph, 0.96× with decoding).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..deploy.ab_latency import interleaved_latency
from .cpu import correct_int8, in_format
from .int8 import Agree, build_int8, outputs, top1_agreement

GRAPH_NAMES = ("qdq", "qoperator")
QOPERATOR_MARGIN = 0.03  # a QOperator file (ORT's com.microsoft ops, unreadable by OpenVINO) must be 3% faster
TIMED_GRAPH = "graph"  # what the choice timed: the ONNX Runtime session alone
TIMED_END_TO_END = "end to end (graph + decode)"  # the session plus the task's decoding of its first output


def candidates(cfg: Any, resolved: dict[str, Any]) -> list[tuple[str, str]]:
    """(format, graph) pairs to try: the recipe's forced ones, or every pair correct on the target when measurable."""
    graph = getattr(cfg, "graph", "auto")
    graphs = list(GRAPH_NAMES) if graph == "auto" else [graph]
    if not resolved["measurable_here"]:
        return [(str(resolved["format"]), "qdq" if graph == "auto" else graph)]
    if getattr(cfg, "format", "auto") != "auto":
        return [(str(resolved["format"]), g) for g in graphs]
    pairs = correct_int8(str(resolved["target"]), str(resolved["host_machine"]))
    return [p for p in pairs if p[1] in graphs] or [(pairs[0][0], g) for g in graphs]


def _with(cfg: Any, **changes: Any) -> Any:
    """A copy of a stage config (pydantic model or namespace) with some keys changed."""
    if hasattr(cfg, "model_copy"):
        return cfg.model_copy(update=changes)
    out = copy.copy(cfg)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def _name(fmt: str, graph: str) -> str:
    return f"{fmt}/{graph}"


def choose_int8(fp32: Path, out: Path, calib: np.ndarray, select: np.ndarray, cfg: Any, resolved: dict[str, Any],
                gate: float, key: str, deploy: tuple[int, int], latency_runs: int, console: Any,
                agreement: Agree = top1_agreement, decode: Callable[[np.ndarray], Any] | None = None
                ) -> dict[str, Any]:
    """Write the fastest int8 file that passes the gate to `out`; the info says what was tried and what ships.

    Returns build_int8's info for the chosen file plus `int8_choice`: every candidate's agreement on the
    selection images and latency (median and spread of round medians), fp32's latency, the speed-up and
    `shipped` ("int8", or "fp32" when no int8 file beat fp32 and cfg.ship is "fastest"). agreement: how a
    candidate's outputs are compared with fp32's on `select` (default top-1; a detector's: matched boxes).
    decode: the task's step after the session (a detector's DetDecoder); given, every file is timed end to end
    on the selection images and `int8_choice.timed` says so.
    """
    pairs = candidates(cfg, resolved)
    batch, threads = deploy
    rounds = int(getattr(cfg, "choice_rounds", 5))
    tried: dict[str, dict[str, Any]] = {}
    ref = outputs(fp32, select, exact=False)  # fp32's outputs on the selection, once for every candidate
    with tempfile.TemporaryDirectory() as tmp:
        t, cache = Path(tmp), Path(tmp) / "calibration.json"
        quiet = _with(cfg, mixed_precision="off") if len(pairs) > 1 else cfg
        for fmt, graph in pairs:
            path = t / f"{fmt}-{graph}.onnx"
            try:
                info = build_int8(fp32, path, calib, select, quiet, in_format(resolved, fmt, graph=graph), gate, key,
                                  deploy, latency_runs, console, cache, ref, agreement)
            except Exception as e:  # noqa: BLE001 — one format the runtime cannot build must not stop the others
                tried[_name(fmt, graph)] = {"format": fmt, "graph": graph, "error": str(e).splitlines()[0][:200]}
                continue
            tried[_name(fmt, graph)] = {"format": fmt, "graph": graph, "path": path, "info": info,
                                        "agreement": info["mixed_precision"]["agreement"],
                                        "passed": info["mixed_precision"]["passed_on_selection"]}
        built = {k: v for k, v in tried.items() if "path" in v}
        if not built:
            first = next(iter(tried.values()))
            raise RuntimeError(f"no int8 format could be built: {first['error']}")
        if not any(v["passed"] for v in built.values()) and len(pairs) > 1 and cfg.mixed_precision == "auto":
            best = max(built.values(), key=lambda v: v["agreement"])  # mixed precision on the most faithful one
            path = t / "mixed.onnx"
            info = build_int8(fp32, path, calib, select, cfg, in_format(resolved, best["format"], graph=best["graph"]),
                              gate, key, deploy, latency_runs, console, cache, ref, agreement)
            best.update(path=path, info=info, agreement=info["mixed_precision"]["agreement"],
                        passed=info["mixed_precision"]["passed_on_selection"], mixed=True)
        pool = {k: v for k, v in built.items() if v["passed"]} or built
        timing = _time(fp32, built, select, batch, threads, rounds, latency_runs, decode) \
            if resolved["measurable_here"] else None  # every built file is timed; only passing ones may ship
        chosen = _pick(pool, timing)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pool[chosen]["path"], out)
    return _info(tried, chosen, timing, resolved, cfg, batch, threads, console)


def _time(fp32: Path, pool: dict[str, dict[str, Any]], select: np.ndarray, batch: int, threads: int,
          rounds: int, runs: int, decode: Callable[[np.ndarray], Any] | None = None) -> dict[str, Any]:
    """fp32 and every candidate in interleaved rounds: one machine moment per ratio; with `decode`, end to end on
    the selection images (decoding cost depends on what the outputs hold, so not on random input)."""
    files = {"fp32": fp32, **{k: v["path"] for k, v in pool.items()}}
    shape = (batch, *select.shape[1:])
    x = np.ascontiguousarray(np.resize(select, shape), np.float32) if decode is not None else None
    out = interleaved_latency(files, shape, rounds=rounds, runs=runs, threads=threads, warmup=min(5, runs),
                              inputs=x, after=decode)
    out["timed"] = TIMED_END_TO_END if decode is not None else TIMED_GRAPH
    return out


def _pick(pool: dict[str, dict[str, Any]], timing: dict[str, Any] | None) -> str:
    """The fastest passing candidate (median of round medians); untimed: the first (the target's table format)."""
    if timing is None or not any(v["passed"] for v in pool.values()):  # nothing passed: the most faithful
        return max(pool, key=lambda k: (pool[k]["passed"], pool[k]["agreement"], -list(pool).index(k)))
    ms = {k: timing["files"][k]["median_ms"] for k in pool}
    fastest = min(pool, key=ms.__getitem__)
    qdq = [k for k in pool if pool[k]["graph"] == "qdq"]
    best_qdq = min(qdq, key=ms.__getitem__) if qdq else None
    if best_qdq and pool[fastest]["graph"] != "qdq" and ms[fastest] > (1 - QOPERATOR_MARGIN) * ms[best_qdq]:
        return best_qdq  # QDQ is the form OpenVINO and TensorRT read; QOperator ships only when clearly faster
    return fastest


def _info(tried: dict[str, dict[str, Any]], chosen: str, timing: dict[str, Any] | None, resolved: dict[str, Any],
          cfg: Any, batch: int, threads: int, console: Any) -> dict[str, Any]:
    """The chosen build's info with every candidate's figures and the ship decision; one console line each."""
    rows = []
    for k, v in tried.items():
        row = {"candidate": k, "format": v["format"], "graph": v["graph"], "agreement": v.get("agreement"),
               "passed_gate": v.get("passed", False), "mixed": v.get("mixed", False), "error": v.get("error")}
        if timing and k in timing["files"]:
            f = timing["files"][k]
            row.update(latency_ms=f["median_ms"], latency_min_ms=f["min_ms"], latency_max_ms=f["max_ms"],
                       speedup_vs_fp32=timing["speedup_vs_fp32"][k]["median"])
        rows.append(row)
    info = dict(tried[chosen]["info"])
    info["mixed_precision"] = {**info["mixed_precision"], "mode": cfg.mixed_precision}
    choice: dict[str, Any] = {"candidates": rows, "chosen": chosen, "batch": batch, "threads": threads,
                              "runtime": "onnxruntime CPU", "by": "measured" if timing else "table"}
    shipped, speedup = "int8", None
    if timing:
        fp = timing["files"]["fp32"]
        speedup = timing["speedup_vs_fp32"][chosen]["median"]
        choice.update(fp32_ms=fp["median_ms"], fp32_min_ms=fp["min_ms"], fp32_max_ms=fp["max_ms"],
                      int8_ms=timing["files"][chosen]["median_ms"], speedup_vs_fp32=speedup,
                      rounds=timing["rounds"], runs_per_round=timing["runs_per_round"],
                      timed=timing.get("timed", TIMED_GRAPH))
        e2e = f" {TIMED_END_TO_END}" if choice["timed"] == TIMED_END_TO_END else ""
        passed = sum(r["passed_gate"] for r in rows)
        info["format_reason"] = (f"fastest of {passed} passing / {len(rows)} candidates correct on "
                                 f"{resolved['target']} (interleaved ORT timing{e2e}, b{batch} {threads}t)")
        if speedup <= 1.0:
            shipped = "fp32" if getattr(cfg, "ship", "fastest") == "fastest" else "int8"
            choice["note"] = (f"no int8 file is faster than fp32{e2e} on this CPU ({resolved['host']}): fastest "
                              f"{chosen} {choice['int8_ms']:.3f} ms vs fp32 {choice['fp32_ms']:.3f} ms "
                              f"({speedup:.2f}×); the deployable is the {shipped} file")
            console.print(f"[yellow]{choice['note']}[/]")
    choice["shipped"] = shipped
    info["int8_choice"] = choice
    tail = f", {speedup:.2f}× fp32 at b{batch} {threads}t" if speedup is not None else ""
    console.print(f"int8: {chosen} of {len(rows)} candidates ({choice['by']}{tail})")
    return info
