"""Data-parallel training on torch.distributed: process group from torchrun's env, DDP, gathers.

Nothing here is home-made parallelism: torchrun starts the processes (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT), torch.distributed runs the collectives (gloo on CPU, nccl on CUDA) and
DistributedDataParallel averages gradients. This module only decides when to use them.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def env_world_size() -> int:
    """WORLD_SIZE set by torchrun (1 when run plainly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 alone writes checkpoints, logs, progress and the report."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: str = "auto") -> bool:
    """Join the process group torchrun describes in the environment; False when not launched by torchrun."""
    if env_world_size() <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's value on every rank (e.g. the run folder it chose)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, in place.

    DDP averages gradients, so parameters agree on every rank, but each rank updates its BatchNorm
    statistics from its own shard (DDP broadcasts rank 0's buffers only at the start of the next forward).
    After an epoch's last step the ranks therefore hold different models: evaluation would gather logits of
    two models and a teacher's cache key (a hash of its weights) would differ per rank. Called after every
    epoch, so every rank evaluates, returns and checkpoints rank 0's model, the one rank 0 saves.
    """
    if not is_distributed():
        return
    for buf in module.buffers():
        if dist.get_backend() == "nccl" or buf.device.type == "cpu":
            dist.broadcast(buf.data, src=0)
        else:  # gloo with a non-CPU buffer: through a CPU copy
            tmp = buf.data.cpu()
            dist.broadcast(tmp, src=0)
            buf.data.copy_(tmp)


def all_reduce_sum(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Per-rank sums → global sums, so logged epoch losses cover every rank's images."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def wrap_ddp(module: nn.Module, device: torch.device, *, sync_bn: bool = False,
             find_unused: bool = False) -> nn.Module:
    """DistributedDataParallel over the trainable parameters only.

    DDP registers parameters with requires_grad=True, so a frozen teacher inside the module is neither
    all-reduced nor reported as unused; trainable extras (connectors, learnable temperatures) are
    parameters of the module and are synchronised like the student's.
    """
    if sync_bn:  # only parts that train: a frozen teacher's BatchNorm stays as it is (eval mode, no statistics)
        for name, child in module.named_children():
            if any(p.requires_grad for p in child.parameters()):
                setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    ids = [device.index if device.index is not None else local_rank()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def gather_rows(local: torch.Tensor, indices: torch.Tensor, total: int) -> torch.Tensor:
    """Rows computed on each rank for `indices` → all `total` rows in dataset order, on every rank.

    DistributedSampler pads the last shard by repeating indices; a repeated index writes the same
    row twice, so the result covers every sample exactly once and no padding is counted.
    """
    if not is_distributed():
        out = local.new_empty((total, *local.shape[1:]))
        out[indices] = local
        return out
    comm_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    local, idx = local.to(comm_device).contiguous(), indices.to(comm_device)
    chunks = [torch.empty_like(local) for _ in range(world_size())]
    ids = [torch.empty_like(idx) for _ in range(world_size())]
    dist.all_gather(chunks, local)  # DistributedSampler gives every rank the same count
    dist.all_gather(ids, idx)
    out = local.new_empty((total, *local.shape[1:]))
    out[torch.cat(ids)] = torch.cat(chunks)
    return out.cpu()
