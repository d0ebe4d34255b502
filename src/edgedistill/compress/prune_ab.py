"""What a prune step did to latency, and which channel multiple (`round_to: auto`) the deploy CPU wants.

Each prune step's network is timed against the one it was cut from, interleaved (deploy/ab_latency.py) in
ONNX Runtime at the deploy batch and threads, so the stage table can say whether pruning bought speed or
only size; per-stage latency figures are timed at different moments and cannot say it on a shared CPU.

`round_to: auto` is the channel block of ONNX Runtime's NCHWc convolutions on the deploy CPU (MLAS
`MlasNchwcGetBlockSize`: 16 floats with AVX-512, 8 with AVX2). ORT's NchwcTransformer (core/optimizer/
nchwc_transformer.cc) pads a Conv's output channels up to that block (a 21-channel conv computes 32 here) and
leaves a Conv on the slower NCHW path when its input channels do not fit the blocked kernels (measured with
ORT 1.32 on AVX-512: 12, 20, 36 input channels convert, 18 does not). Measured in benchmarks/prune_latency.py.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..deploy.ab_latency import interleaved_latency
from ..deploy.export import export_onnx
from ..errors import UserError
from .cpu import detect_cpu, target_of
from .stage_job import Job

AB_ROUNDS = 5  # interleaved rounds per prune-step A/B
AB_RUNS = (20, 50)  # timed runs per file and round: compress.latency_runs, kept within these bounds (a round's
# median of 2 runs is one scheduler hiccup away from a 20x "speed-up": measured on a loaded 2-core machine)
NCHWC_BLOCK = {"x86-avx512": 16, "x86-vnni": 16, "x86-avx2": 8, "arm64": 8}


def auto_round_to(deploy_target: str) -> tuple[int, str]:
    """round_to for `auto`: ORT's NCHWc channel block on the deploy CPU, and why."""
    if deploy_target == "auto":
        cpu = detect_cpu()
        target = "x86-avx512" if "avx512f" in cpu.flags else target_of(cpu.machine, cpu.flags)
        where = f"this CPU ({target})"
    else:
        target, where = deploy_target, f"deploy.target {deploy_target}"
    block = NCHWC_BLOCK.get(target, 8)
    why = {16: "AVX-512: ONNX Runtime's NCHWc convolutions use blocks of 16 channels"
               + (" (a multiple of AVX2's 8 too)" if target == "x86-vnni" else ""),
           8: "ONNX Runtime's NCHWc convolutions use blocks of 8 channels on AVX2" if target == "x86-avx2"
           else "8 channels: two 128-bit vectors (not measured on this target)"}[block]
    return block, f"{where}: {why}"


def pick_round_to(value: int | str | None, deploy_target: str, lands: Callable[[int | None], bool]
                  ) -> tuple[int | None, str]:
    """The channel multiple a prune stage uses, and why: its `round_to` key, or for `auto` the deploy CPU's NCHWc
    block, else 8, else none: the first whose dry run `lands` on the stage's target.

    A 16/32/64-channel ResNet cannot lose half its FLOPs in multiples of 16 (its 16-channel layers cannot
    shrink), so auto steps down rather than refuse, or overshoot, a target the user never tied to a vector width.
    """
    if value is None or value == "off":
        return None, "off"
    if value != "auto":
        return int(value), "set in the recipe"
    block, why = auto_round_to(deploy_target)
    for r in dict.fromkeys((block, 8)):
        try:
            if lands(r):
                return r, why if r == block else f"{why}; multiples of {block} miss the target here, so {r}"
        except UserError:
            continue
    return None, f"{why}; multiples of {block} and 8 miss the target here, so off"


def _export(job: Job, model: nn.Module, path: Path) -> Path:
    r = job.ctx.recipe
    return export_onnx(model, path, r.data.image_size, job.meta["class_names"], r.data.mean, r.data.std,
                       opset=r.compress.opset)


def ab_latency(job: Job, before: nn.Module, after: nn.Module) -> dict[str, Any]:
    """Interleaved ONNX Runtime latency of `before` vs `after` at deploy.batch_size/threads (fp32 files).

    speedup = before ms / after ms per round (median, min, max over rounds); > 1 means the cut made it faster.
    """
    r = job.ctx.recipe
    s, b, t = r.data.image_size, r.deploy.batch_size, r.deploy.threads
    runs = min(max(r.compress.latency_runs, AB_RUNS[0]), AB_RUNS[1])
    with tempfile.TemporaryDirectory() as tmp:
        files = {"before": _export(job, before, Path(tmp) / "before.onnx"),
                 "after": _export(job, after, Path(tmp) / "after.onnx")}
        ab = interleaved_latency(files, (b, 3, s, s), rounds=AB_ROUNDS, runs=runs, threads=t,
                                 warmup=max(1, r.compress.warmup_runs))
    x, y, sp = ab["files"]["before"], ab["files"]["after"], ab["speedup_vs_before"]["after"]
    return {"runtime": "onnxruntime", "batch": b, "threads": t, "rounds": AB_ROUNDS, "runs": runs,
            "before_ms": x["median_ms"], "before_min_ms": x["min_ms"], "before_max_ms": x["max_ms"],
            "after_ms": y["median_ms"], "after_min_ms": y["min_ms"], "after_max_ms": y["max_ms"],
            "speedup": sp["median"], "speedup_min": sp["min"], "speedup_max": sp["max"],
            "faster_in_rounds": sp["faster_in_rounds"]}
