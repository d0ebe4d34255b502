"""The one training loop: teacher training, distillation and fine-tuning all run through `fit`.

It trains any module whose forward(batch) returns a dict with "loss" (other entries are logged by
name) and knows nothing of distillation methods.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import DataLoader

from ..atomic import atomic_write_text
from ..errors import TrainingError, UserError  # TrainingError re-exported: engine users import it here
from ..recipe import TrainConfig
from . import distributed as ddp
from .checkpoint import atomic_save, load_checkpoint, rng_state, seed_everything, set_rng_state
from .optim import build_optimizer, build_scheduler
from .progress import TrainProgress

Evaluate = Callable[[], dict[str, float]]
Callback = Callable[[int, dict[str, Any]], None]


@dataclass
class FitResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    resumed_from: int = 0
    seconds: float = 0.0

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def resolve_device(name: str) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK (auto/cuda); cuda:N is kept as asked."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"train.device={name} but CUDA is not available here; use train.device=cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and ddp.env_world_size() > 1:
        return torch.device("cuda", ddp.local_rank())
    return torch.device(name)


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    if isinstance(batch, torch.Tensor):
        fmt = torch.channels_last if channels_last and batch.dim() == 4 else torch.contiguous_format
        return batch.to(device, non_blocking=True, memory_format=fmt)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device, channels_last) for b in batch)
    return batch


def _autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise TrainingError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16 or off")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _nonfinite_message(module: nn.Module, out: dict[str, Any], batch: Any, name: str, epoch: int, step: int,
                       last_path: Path) -> str:
    """Name the non-finite terms, and why when the module can tell (which weight, output or loss setting)."""
    bad = [k for k, v in out.items() if k != "loss" and not torch.isfinite(v.detach()).all()]
    if hasattr(module, "diagnose_nonfinite"):
        why = module.diagnose_nonfinite(batch)
    else:
        why = "try a lower train.lr or train.grad_clip"
    return (f"{name}: non-finite loss at epoch {epoch + 1}, step {step + 1} (term{'s' if len(bad) != 1 else ''}: "
            f"{', '.join(bad) or 'loss'}): {why}; last good checkpoint kept at "
            f"{last_path if last_path.exists() else 'none yet'}")


def fit(
    module: nn.Module,
    train_loader: DataLoader,
    cfg: TrainConfig,
    out_dir: Path,
    *,
    evaluate: Evaluate | None = None,
    monitor: str = "top1",
    epochs: int | None = None,
    lr: float | None = None,
    resume: bool = False,
    name: str = "train",
    console: Console | None = None,
    on_epoch_end: Callback | None = None,
    tag: str | None = None,
) -> FitResult:
    """Train `module` for `epochs` (default cfg.epochs); checkpoints in out_dir/{last,best}.pt.

    `tag` names the settings this training runs under; last.pt records it for every epoch ("tags"), a resume
    under another tag is refused, and `epoch_tags` tells a caller whether every epoch ran under one tag.
    """
    console = console or Console()
    if not ddp.is_main():  # rank 0 alone prints, logs and checkpoints
        console = Console(quiet=True, force_terminal=False)
    epochs = epochs or cfg.epochs
    lr = lr or cfg.lr
    if ddp.is_main():  # the one writer: other ranks create nothing (on another node it would be an empty tree)
        out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    channels_last = cfg.channels_last and device.type == "cuda"
    module.to(device)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    # `net` is what steps run (DDP and/or compiled); `module` stays the plain one for hooks and checkpoints.
    net = ddp.wrap_ddp(module, device, sync_bn=cfg.sync_bn and device.type == "cuda") if ddp.is_distributed() \
        else module
    if cfg.compile:
        net.compile()  # in place: state_dict keys stay unprefixed
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise TrainingError(f"{name}: the train split yields no batch (fewer images than train.batch_size?)")
    opt = build_optimizer(module.parameters(), cfg, lr)
    sched = build_scheduler(opt, cfg, epochs, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    result = FitResult()
    last_path, best_path, log_path = out_dir / "last.pt", out_dir / "best.pt", out_dir / "metrics.jsonl"

    start, tags = 0, []
    if resume and last_path.exists():
        ck = load_checkpoint(last_path)
        tags = list(ck.get("tags") or [None] * int(ck["epoch"]))  # None: written before tags were recorded
        other = next((t for t in tags if t not in (None, tag)), None)
        if tag is not None and other is not None:
            raise UserError(f"{last_path} was trained under other settings (tag {other}, now {tag}); allowed: "
                            "resume with the settings it started with, or start a new run", key="train.resume")
        module.load_state_dict(ck["module"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"])
        start = int(ck["epoch"])
        result.history = list(ck["history"])
        result.best, result.best_epoch = ck["best"], ck["best_epoch"]
        result.resumed_from = start
        console.print(f"[cyan]{name}[/]: resuming from epoch {start}/{epochs} ({last_path})")
    if ddp.is_main():
        atomic_write_text(log_path, "".join(json.dumps(h) + "\n" for h in result.history))

    t_start = time.perf_counter()
    with TrainProgress(console, name, epochs, steps_per_epoch, start) as bar:
        for epoch in range(start, epochs):
            # Seeded per epoch: shuffling, augmentation and dropout do not depend on where a run resumed.
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            if hasattr(module, "on_epoch_start"):  # e.g. warm-ups and curricula that depend on the epoch
                module.on_epoch_start(epoch, epochs)
            module.train()
            sums: dict[str, float] = {}
            seen, t0 = 0, time.perf_counter()
            for step, batch in enumerate(train_loader):
                batch = _to_device(batch, device, channels_last)
                with _autocast(device, cfg.amp):
                    out = net(batch)
                loss = out["loss"]
                if not torch.isfinite(loss.detach()):
                    raise TrainingError(_nonfinite_message(module, out, batch, name, epoch, step, last_path))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                n = len(batch[0])
                seen += n
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * n
                bar.step(loss=sums["loss"] / seen, lr=opt.param_groups[0]["lr"],
                         ips=seen / (time.perf_counter() - t0))
            ddp.broadcast_buffers(module)  # every rank evaluates and keeps rank 0's model (BatchNorm statistics)
            sums = ddp.all_reduce_sum({**sums, "_seen": float(seen)}, device)  # every rank's images
            seen = int(sums.pop("_seen"))
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"]}
            record.update({k: v / seen for k, v in sums.items()})
            record["images_per_s"] = seen / (time.perf_counter() - t0)
            if hasattr(module, "epoch_log"):  # values a module wants on record, e.g. a learned temperature
                record.update(module.epoch_log())
            if evaluate is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs):
                record.update({f"val_{k}": v for k, v in evaluate().items()})
            result.history.append(record)
            tags.append(tag)
            metric = record.get(f"val_{monitor}")
            improved = metric is not None and (result.best is None or metric > result.best)
            if improved:
                result.best, result.best_epoch = metric, epoch + 1
            if improved and ddp.is_main():
                atomic_save({"module": module.state_dict(), "epoch": epoch + 1, monitor: metric}, best_path)
            if ddp.is_main():
                atomic_save(
                    {
                        "module": module.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                        "epoch": epoch + 1, "history": result.history, "best": result.best,
                        "best_epoch": result.best_epoch, "tags": tags,
                    },
                    last_path,
                )
                atomic_write_text(log_path, "".join(json.dumps(h) + "\n" for h in result.history))
            ddp.barrier()  # no rank runs ahead of the checkpoint it would resume from
            bar.epoch_done(record, monitor)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record)
    result.seconds = time.perf_counter() - t_start
    return result


def epoch_tags(out_dir: Path) -> list[str | None]:
    """The settings tag of every epoch recorded in out_dir/last.pt ([] when there is none)."""
    path = out_dir / "last.pt"
    if not path.exists():
        return []
    ck = load_checkpoint(path)
    return list(ck.get("tags") or [None] * int(ck["epoch"]))
