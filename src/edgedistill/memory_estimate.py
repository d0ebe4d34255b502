"""Memory a recipe needs, estimated before anything is allocated, so a run that cannot fit fails in seconds
instead of swapping the machine to death hours in.

The estimate: input batches (the one being trained plus the loader's prefetched ones), for each trained model
its weights, gradients and optimizer state plus the activations one batch keeps for backward (every tensor the forward's ops create, measured on
the meta device: shapes only, no memory), a frozen teacher's weights and its largest output, and the
device-resident train split. It counts tensors autograd frees early too, and not the allocator's own
overhead; it refuses only a recipe whose estimate exceeds the memory available now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode

from .errors import UserError
from .teachers.rule import trains_teacher

if TYPE_CHECKING:
    from .recipe import Recipe

GB = 1024**3


class _OutputBytes(TorchDispatchMode):
    """Bytes of every tensor an aten op creates (views and in-place ops create none). Module hooks would miss
    functional ops (F.relu, the residual add), about half of a ResNet's activations; torch's own
    FlopCounterMode is built on this same dispatch mode."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not func.is_view and not func._schema.is_mutable:
            outs = out if isinstance(out, (tuple, list)) else (out,)
            self.sizes.extend(o.numel() * o.element_size() for o in outs if isinstance(o, torch.Tensor))
        return out


def activation_bytes(model: nn.Module, image_size: int) -> tuple[int, int] | None:
    """(sum, max) of the bytes a training-mode forward creates per image, from a forward of 2 images on the
    meta device (shapes only, no memory; 2: batch norm refuses 1); None if the model cannot run there (then
    only weights and inputs are counted)."""
    tensors = {k: t.to("meta") for k, t in [*model.named_parameters(), *model.named_buffers()]}
    x = torch.empty(2, 3, image_size, image_size, device="meta")
    modes = {m: m.training for m in model.modules()}
    model.train()
    counter = _OutputBytes()
    try:
        with torch.no_grad(), counter:
            functional_call(model, tensors, (x,))
    except Exception:  # an op without a meta kernel: the estimate falls back to weights and inputs
        return None
    finally:
        for m, t in modes.items():
            m.training = t
    sizes = counter.sizes
    return (sum(sizes) // 2, max(sizes) // 2) if sizes else (0, 0)


def weight_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


@dataclass
class Estimate:
    """Bytes per part of a run's peak, and on which memory they live (host RAM or the training device)."""

    parts: dict[str, int]
    host: int
    device: int

    def describe(self) -> str:
        return ", ".join(f"{k} {v / GB:.2f} GB" for k, v in self.parts.items() if v)


def estimate(recipe: Recipe, teacher: nn.Module | None, student: nn.Module, n_train: int, on_cuda: bool,
             world: int = 1) -> Estimate:
    """The peak of one training process: the heavier of teacher training and (distilled) student training."""
    d, t = recipe.data, recipe.train
    batch, pixels = max(1, t.batch_size // world), 3 * d.image_size**2
    states = 4 if t.optimizer == "adamw" else 3  # weights, gradients, momentum (+ second moment)
    input_batch = batch * pixels * 4
    prefetched = input_batch * (1 + 2 * d.workers)  # the DataLoader's default prefetch_factor is 2
    resident = n_train * pixels if d.device_resident else 0

    def trained(model: nn.Module) -> int:
        acts = activation_bytes(model, d.image_size) or (0, 0)
        return states * weight_bytes(model) + batch * (acts[0] + 2 * acts[1])  # + backward's largest temporaries

    peers = len(recipe.online.peers) if recipe.distill.scheme == "online" else 1
    student_step = peers * trained(student)
    teacher_step = 0
    if teacher is not None:
        acts = activation_bytes(teacher, d.image_size) or (0, 0)
        frozen = weight_bytes(teacher) + 2 * batch * 2 * acts[1]  # no_grad; the cache builds at 2 × batch
        student_step += frozen
        if trains_teacher(recipe) and not recipe.teacher.probe:  # a probe trains its head alone
            teacher_step = trained(teacher)
    training = max(student_step, teacher_step)
    parts = {"input batches": prefetched, "training step": training, "device-resident data": resident}
    if on_cuda:  # batches wait in host RAM; one at a time is on the GPU
        return Estimate(parts, host=prefetched + resident, device=training + input_batch + resident)
    return Estimate(parts, host=prefetched + training + resident, device=0)


def available_host() -> int:
    """MemAvailable, capped by a cgroup (container) limit when one is set."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(recipe: Recipe, teacher: nn.Module | None, student: nn.Module, n_train: int,
                 device: torch.device, world: int = 1) -> Estimate:
    """Refuse, before any allocation, a recipe whose estimated peak exceeds the memory available now."""
    on_cuda = device.type == "cuda"
    est = estimate(recipe, teacher, student, n_train, on_cuda, world)
    budgets = [("host RAM", est.host, available_host())]
    if on_cuda:
        budgets.append((f"{device} memory", est.device, torch.cuda.mem_get_info(device)[0]))
    for where, need, have in budgets:
        if need > have:
            d, t = recipe.data, recipe.train
            raise UserError(
                f"data.image_size={d.image_size} with train.batch_size={t.batch_size} needs about "
                f"{need / GB:.1f} GB of {where} ({est.describe()}) but {have / GB:.1f} GB are available; "
                "allowed: a smaller data.image_size or train.batch_size (or data.workers, "
                "data.device_resident=false) that fits", key="train.batch_size")
    return est


PROCESS_BYTES = GB // 2  # a worker's own interpreter with torch imported (8 compare workers measured 3.5 GB)


def check_workers(per_run: Estimate, workers: int, runs: int, key: str) -> None:
    """Refuse, before any process starts, `workers` runs at once that cannot fit the host RAM available now:
    each worker is its own process, so the one-run estimate is multiplied by the workers that would run."""
    busy = min(workers, runs)
    need = busy * (per_run.host + PROCESS_BYTES)
    have = available_host()
    if busy > 1 and need > have:
        fits = max(1, int(have // (per_run.host + PROCESS_BYTES)))
        raise UserError(f"{workers} workers run {busy} runs at once, about {need / GB:.1f} GB of host RAM "
                        f"({busy} × ({per_run.host / GB:.2f} GB a run + {PROCESS_BYTES / GB:.1f} GB a process)) "
                        f"but {have / GB:.1f} GB are available; allowed: at most {fits} workers here",
                        key=key)
