"""Interleaved A/B latency of ONNX files: the only fair way to compare two models on a noisy shared CPU.

Timing A then B lets drift (other processes, frequency changes) land on one of them; alternating blocks of
runs in rounds spreads it over both. Each round yields one median per file; the figure quoted is the median
of the round medians, with their min and max as the spread, and the speed-up is computed per round so a
ratio never mixes two moments of the machine. Hand-written because timeit/pyperf time one callable at a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .onnx_runtime import ort_session


def interleaved_rounds(calls: dict[str, Callable[[], object]], rounds: int = 7, runs: int = 200,
                       warmup: int = 20, threads: int | None = None) -> dict[str, list[float]]:
    """Per name: the median ms of each round, the calls timed in alternating order (any runtime's callable).

    `threads`: PyTorch's thread count for the whole measurement (a PyTorch model or a detector's decoding timed at
    the deploy threads), set once, not in every timed call; the caller's count is restored after (also when a
    call sets its own), so a measurement never changes how the process trains or evaluates next."""
    import torch

    if rounds < 1 or runs < 1:
        raise ValueError(f"rounds and runs must be at least 1, got {rounds}, {runs}")
    previous = torch.get_num_threads()
    per: dict[str, list[float]] = {k: [] for k in calls}
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for call in calls.values():
            for _ in range(warmup):
                call()
        for r in range(rounds):
            order = list(calls) if r % 2 == 0 else list(reversed(calls))  # neither call always goes first
            for k in order:
                call, t = calls[k], []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    call()
                    t.append((time.perf_counter() - t0) * 1e3)
                per[k].append(statistics.median(t))
    finally:
        torch.set_num_threads(previous)
    return per


def interleaved_latency(files: dict[str, str | Path], shape: tuple[int, ...], rounds: int = 7, runs: int = 200,
                        threads: int = 1, warmup: int = 20, seed: int = 0, inputs: np.ndarray | None = None,
                        after: Callable[[np.ndarray], object] | None = None) -> dict[str, Any]:
    """Per file: round medians (ms), their median, min and max; per pair (first file vs each other): speed-up.

    `files` maps a name to an ONNX file; every file sees the same input: `inputs`, else random of `shape` (NCHW
    float32). after: what the deployed program does with the first output (a detector's box decoding and NMS),
    timed inside each call at `threads` PyTorch threads, so the figures are end to end (`end_to_end` says so).
    """

    sessions = {k: ort_session(p, threads) for k, p in files.items()}
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32) if inputs is None else inputs
    feeds = {k: {s.get_inputs()[0].name: x} for k, s in sessions.items()}

    def call(s: Any, f: dict[str, np.ndarray]) -> Callable[[], object]:
        if after is None:
            return lambda: s.run(None, f)
        return lambda: after(s.run(None, f)[0])

    calls = {k: call(s, feeds[k]) for k, s in sessions.items()}
    per = interleaved_rounds(calls, rounds, runs, warmup, threads=threads if after is not None else None)
    out: dict[str, Any] = {"rounds": rounds, "runs_per_round": runs, "threads": threads, "batch": x.shape[0],
                           "end_to_end": after is not None,
                           "files": {k: {"round_medians_ms": v, "median_ms": statistics.median(v), "min_ms": min(v),
                                         "max_ms": max(v)} for k, v in per.items()}}
    names = list(files)
    base = names[0]
    out["speedup_vs_" + base] = {
        k: {"round_ratios": [a / b for a, b in zip(per[base], per[k])],
            "median": statistics.median(a / b for a, b in zip(per[base], per[k])),
            "min": min(a / b for a, b in zip(per[base], per[k])), "max": max(a / b for a, b in zip(per[base], per[k])),
            "faster_in_rounds": sum(b < a for a, b in zip(per[base], per[k]))} for k in names[1:]}
    return out


def ab_text(ab: dict[str, Any]) -> str:
    """One line for the console and the report: 'ORT b1 1t 0.465 → 0.275 ms, 1.69× (1.60–1.72, 5/5 rounds)'."""
    return (f"ORT b{ab['batch']} {ab['threads']}t {ab['before_ms']:.3f} → {ab['after_ms']:.3f} ms, "
            f"{ab['speedup']:.2f}× ({ab['speedup_min']:.2f}–{ab['speedup_max']:.2f}, "
            f"faster in {ab['faster_in_rounds']}/{ab['rounds']} rounds)")
