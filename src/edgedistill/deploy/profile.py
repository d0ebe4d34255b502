"""What a model costs to run on an edge CPU: parameters, FLOPs, file size, latency and peak activation memory."""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from safetensors.torch import save as safetensors_save
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Kineto (the profiler's C++ side) prints trace markers straight to fd 2; hide them from users."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)



def all_threads() -> int:
    """'All threads' on this machine: every CPU the process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

def _device(model: nn.Module) -> torch.device:
    """Where the model's weights live, so inputs are made next to them (CPU for a weightless model)."""
    t = next(model.parameters(), None)
    if t is None:
        t = next(model.buffers(), None)
    return t.device if t is not None else torch.device("cpu")


def count_params(model: nn.Module) -> int:
    """Number of parameter elements; tied parameters count once, as `parameters()` de-duplicates them."""
    return sum(p.numel() for p in model.parameters())


def _sdpa_mapping() -> dict[Any, Any]:
    """FLOP formulas for the attention kernels FlopCounterMode leaves at 0 FLOPs.

    torch (2.14 included) registers formulas for the CUDA flash/efficient/cuDNN kernels only; on the
    CPU `F.scaled_dot_product_attention` dispatches to `_scaled_dot_product_flash_attention_for_cpu`
    (or the fused "overrideable" kernel of other backends), which it skips, so a ViT lost ~20% of its
    FLOPs. torch's own `sdpa_flop_count` (QKᵀ plus attn·V as two batched matmuls, GQA aware) counts them.
    """
    aten = torch.ops.aten
    names = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable")
    return {getattr(aten, n): _sdpa_flops for n in names if hasattr(aten, n)}


def _sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None,
                **kwargs: Any) -> int:
    """FlopCounterMode passes tensor shapes here (its shape_wrapper); masks and dropout add no matmul FLOPs."""
    return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one eval forward as FlopCounterMode reports them: a multiply-add is 2 FLOPs.

    Only ops with a registered formula (matmul, conv, attention, …) count; BatchNorm, activations,
    pooling, softmax and elementwise ops are not counted. Scaled-dot-product attention counts on every
    device (see _sdpa_mapping), the same as the eager matmuls it replaces.
    """
    model.eval()
    x = torch.zeros(input_shape, device=_device(model))
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=_sdpa_mapping()) as counter:
        model(x)
    return int(counter.get_total_flops())


def weights_size_bytes(model: nn.Module) -> int:
    """Bytes of the state dict serialised as safetensors, i.e. the size of the file we would ship."""
    # Clone every tensor: safetensors refuses tensors that share storage (tied weights, views).
    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()
             if isinstance(v, torch.Tensor)}
    return len(safetensors_save(state))


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], runs: int = 50, warmup: int = 10,
                    threads: int | None = None) -> dict[str, Any]:
    """Wall-clock latency per forward on CPU (batch as in input_shape); median and p90 resist outliers.

    The model must already be on the CPU (profile_model sees to it). torch's intra-op thread count is set to `threads` if given and restored afterwards.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    previous = torch.get_num_threads()
    model = model.eval()
    x = torch.zeros(input_shape)
    times: list[float] = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        used = torch.get_num_threads()
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(runs):
                t0 = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(previous)
    p90 = statistics.quantiles(times, n=10, method="inclusive")[-1] if len(times) > 1 else times[0]
    return {"latency_ms_median": statistics.median(times), "latency_ms_p90": p90,
            "latency_ms_min": min(times), "runs": runs, "threads": used}


def _cpu_peak_bytes(model: nn.Module, x: torch.Tensor) -> int | None:
    """Peak of the running sum of the profiler's per-allocation "[memory]" records, in time order.

    The records come from the kineto results (each has a signed byte count); None where this torch
    build does not expose them or recorded none, since then there is nothing to measure.
    """
    with _quiet_stderr(), torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    results = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if results is None:
        return None
    records = sorted((e.start_ns(), e.nbytes()) for e in results.events()
                     if e.name() == "[memory]" and e.device_type().name == "CPU")
    if not records:
        return None
    current = peak = 0
    for _, nbytes in records:
        current += nbytes
        peak = max(peak, current)
    return peak


def peak_memory_mb(model: nn.Module, input_shape: tuple[int, ...]) -> float | None:
    """Peak memory (MB, 1e6 bytes) allocated during one inference forward: activations, workspace, output.

    Weights and the input exist before the pass starts and are excluded. CPU: from the profiler's
    allocation records; CUDA: max_memory_allocated above the pre-pass level. None when not measurable.
    """
    model = model.eval()
    device = _device(model)
    x = torch.zeros(input_shape, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 1e6
    if device.type != "cpu":
        return None
    peak = _cpu_peak_bytes(model, x)
    return None if peak is None else peak / 1e6


def profile_model(model: nn.Module, input_shape: tuple[int, ...], runs: int = 50, warmup: int = 10,
                  threads: int | None = None) -> dict[str, Any]:
    """Every cost measure of a float32 CPU copy of the model; the caller's model is left untouched."""
    m = copy.deepcopy(model).cpu().float().eval()
    return {
        "params": count_params(m),
        "flops": count_flops(m, input_shape),
        "size_mb": weights_size_bytes(m) / 1e6,
        **measure_latency(m, input_shape, runs=runs, warmup=warmup, threads=threads),
        "peak_mem_mb": peak_memory_mb(m, input_shape),
    }
