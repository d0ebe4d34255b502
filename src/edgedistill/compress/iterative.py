"""Pruning in k steps of prune → distill: each step removes its share of the stage's target, then the network
recovers through the engine before the next step ranks its channels again.

Torch-Pruning's own `iterative_steps` advances a channel schedule with no training in between (prune.py
uses it to land on a params/FLOPs target); here every step ends on that target's i/k share and trains.
The last step is not trained: recovering the final network is the `finetune` stage's job.

Resume: OUT/<k>-prune/step-<i>/ holds the step's pruned network (pruned.safetensors, written before any
training), its recovery's last.pt, and once the step is done its model.safetensors and step.json.
A resumed stage reloads the last finished step and continues the next one where it stopped.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write_text
from ..deploy.ab_latency import ab_text
from ..deploy.profile import count_flops, count_params
from ..errors import UserError
from ..models.heads import head_name
from .prune import prunable_layers, layer_width, load_pruned, min_channels, prune_structured, save_pruned
from .prune_ab import ab_latency, pick_round_to
from .recover import distill_fit, resolve_epochs, resolve_lr, val_top1
from .stage_job import Job, example

STEP_FRACTION = 0.1  # step_epochs: auto = this × train.epochs per step
STEP_JSON, PRUNED = "step.json", "pruned.safetensors"
AUTO_TOL = 0.1  # round_to: auto skips a multiple that lands further than this share of the input from the target


def final_target(cfg: Any, params: int, flops: int) -> tuple[str, float]:
    """The stage's one target as (kind, value): ratio (channels), params or flops (absolute counts)."""
    if cfg.ratio is not None:
        return "ratio", float(cfg.ratio)
    if cfg.flops_ratio is not None:
        return "flops", int(flops * (1 - cfg.flops_ratio))
    if cfg.target_flops is not None:
        return "flops", int(cfg.target_flops)
    return "params", int(cfg.target_params)


def step_kwargs(kind: str, value: float, start: int, i: int, k: int) -> dict[str, Any]:
    """prune_structured's target for step i of k: an i/k share of the way from `start` (the stage input's
    count) to `value`; a channel ratio is converted to the share of the channels step i-1 left."""
    if kind == "ratio":
        return {"ratio": 1 - (1 - value * i / k) / (1 - value * (i - 1) / k)}
    goal = int(start - (start - value) * i / k) if i < k else int(value)
    return {"target_flops" if kind == "flops" else "target_params": goal}


def _calib(job: Job, cfg: Any) -> list[Any] | None:
    if cfg.importance != "taylor":
        return None
    loader = job.ctx.loader("train")
    it = iter(loader)
    return [next(it) for _ in range(min(cfg.calib_batches, len(loader)))]


def dry_run(cfg: Any, model: nn.Module, example_input: torch.Tensor, round_to: int | None, kind: str,
            value: float, steps: int = 1) -> nn.Module:
    """The stage's target in `steps` steps on a copy, no training (magnitude standing in for taylor, which needs
    gradients): the dry-run check and what `round_to: auto` tries. Uniform widths do not depend on weights."""
    m, x = copy.deepcopy(model).eval(), example_input
    start = count_flops(m, (1, *x.shape[1:])) if kind == "flops" else count_params(m)
    floors = min_channels(m, cfg.max_layer_ratio) if cfg.scope == "global" else None
    for i in range(1, steps + 1):
        prune_structured(m, x, global_pruning=cfg.scope == "global", min_channels=floors,
                         importance="magnitude" if cfg.importance == "taylor" else cfg.importance,
                         round_to=round_to, max_layer_ratio=cfg.max_layer_ratio, **step_kwargs(kind, value, start, i, steps))
    return m


def channels(model: nn.Module) -> int:
    """Output channels of every prunable layer but the classifier: what a channel ratio is a share of."""
    head = model.get_submodule(head_name(model))
    return sum(layer_width(m) for _, m in prunable_layers(model) if m is not head)


def lands(cfg: Any, model: nn.Module, example_input: torch.Tensor, round_to: int | None) -> bool:
    """Whether the stage's steps reach its target with `round_to` and land within AUTO_TOL of it (of the input's
    params/FLOPs, or of its channels for a ratio): uniform pruning of a narrow net in multiples of 8 can halve
    every 16-channel layer in one tick, and no multiple of 16 fits a 97% cut of a 16-channel layer."""
    shape = (1, *example_input.shape[1:])
    kind, value = final_target(cfg, count_params(model), count_flops(copy.deepcopy(model), shape))
    m = dry_run(cfg, model, example_input, round_to, kind, value, cfg.steps)
    if kind == "ratio":  # the share of channels kept, against the share asked
        return abs(channels(m) / channels(model) - (1 - value)) <= AUTO_TOL
    start, reached = (count_flops(model, shape), count_flops(m, shape)) if kind == "flops" else \
        (count_params(model), count_params(m))
    return value - reached <= AUTO_TOL * start


def prune_in_steps(job: Job, cfg: Any, stage_dir: Path, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """Prune `model` (a copy the stage owns) in cfg.steps steps; returns it and the stage's info."""
    r = job.ctx.recipe
    s, k = r.data.image_size, cfg.steps
    params0, flops0 = count_params(model), count_flops(model, (1, 3, s, s))
    kind, value = final_target(cfg, params0, flops0)
    start = flops0 if kind == "flops" else params0
    floors = min_channels(model, cfg.max_layer_ratio) if cfg.scope == "global" else None
    epochs = resolve_epochs(cfg.step_epochs, STEP_FRACTION, r.train.epochs) if k > 1 else 0
    lr = resolve_lr(cfg.lr, r.train.lr)
    meta = {**job.meta, "model": job.spec}
    round_to, round_why = pick_round_to(cfg.round_to, r.deploy.target, lambda v: lands(
        cfg, model, example(job, 2), v))
    stage_input = copy.deepcopy(model)
    records: list[dict[str, Any]] = []
    if not job.resume:  # a fresh stage never inherits another attempt's steps
        for old in stage_dir.glob("step-*"):
            shutil.rmtree(old, ignore_errors=True)
    for i in range(1, k + 1):
        d = stage_dir / f"step-{i}"
        if job.resume and (d / STEP_JSON).exists():  # finished earlier: its model is where step i+1 starts
            records.append(json.loads((d / STEP_JSON).read_text()))
            model = load_pruned(d / "model.safetensors")[0]
            continue
        kwargs = step_kwargs(kind, value, start, i, k)
        if job.resume and (d / PRUNED).exists():  # pruned before the kill: same network, recovery resumes
            model, pruned_meta = load_pruned(d / PRUNED)
            record = dict(pruned_meta["step"])
        else:
            job.ctx.console.print(f"[cyan]prune[/] step {i}/{k}: {kwargs}")
            before = copy.deepcopy(model)
            try:
                prune_structured(model.eval(), example(job, 2), importance=cfg.importance,
                                 global_pruning=cfg.scope == "global", round_to=round_to,
                                 calib_batches=_calib(job, cfg), max_layer_ratio=cfg.max_layer_ratio,
                                 min_channels=floors, **kwargs)
            except UserError as e:
                raise UserError(f"prune step {i}/{k}: {e}") from None
            record = {"step": i, **kwargs, "params": count_params(model), "flops": count_flops(model, (1, 3, s, s)),
                      "top1_pruned": val_top1(job, model), "latency_ab": ab_latency(job, before, model.eval())}
            job.ctx.console.print(f"[cyan]prune[/] step {i}/{k}: {ab_text(record['latency_ab'])}")
            if i < k and epochs:
                save_pruned(d / PRUNED, model, {**meta, "stage": f"prune step {i}", "step": record})
        if i < k and epochs:
            distill_fit(job, model, cfg, d, epochs=epochs, lr=lr, schedule="cosine", resume=job.resume)
            record.update(epochs=epochs, lr=lr, top1_recovered=val_top1(job, model))
            save_pruned(d / "model.safetensors", model, {**meta, "stage": f"prune step {i}"})
            atomic_write_text(d / STEP_JSON, json.dumps(record, indent=2))
            for p in ("last.pt", "best.pt"):  # the step's model replaces its optimizer state
                (d / p).unlink(missing_ok=True)
        records.append(record)
    # (a step resumed from a folder written before steps were timed has no record: the overall A/B still runs)
    overall = records[0].get("latency_ab") if k == 1 else None
    overall = overall or ab_latency(job, stage_input, model.eval())
    info = {"steps": records, "target": {kind: value}, "scope": cfg.scope, "importance": cfg.importance,
            "input": {"params": params0, "flops": flops0}, "teacher": cfg.teacher if epochs else None,
            "step_epochs": epochs, "round_to": {"value": round_to, "asked": cfg.round_to, "why": round_why},
            "latency_ab": {"steps": [{"step": x["step"], **x["latency_ab"]} for x in records if x.get("latency_ab")],
                           "overall": overall}}
    if kind == "flops":
        info["flops_removed"] = 1 - records[-1]["flops"] / flops0
    return model.eval(), info
