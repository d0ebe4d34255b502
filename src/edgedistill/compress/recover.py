"""Recovery training after compression: distillation through the engine, sized to the student's own training.

`finetune`, the steps of an iterative `prune` and `qat` all train here, so they share the teacher
choice (unpruned | teacher | none), the loss terms and the engine's checkpoint/resume.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import UserError
from .stage_job import Job, example

LR_FACTOR = 0.1  # lr: auto = train.lr × this (Torch-Pruning's CIFAR protocol: trained at 0.1, fine-tuned at 0.01)


def resolve_epochs(value: int | str, fraction: float, train_epochs: int) -> int:
    """`auto` = fraction × train.epochs, at least one: recovery sized to what trained the student."""
    return max(1, round(fraction * train_epochs)) if value == "auto" else int(value)


def resolve_lr(value: float | str, train_lr: float) -> float:
    """`auto` = train.lr × LR_FACTOR: a fine-tune starts from trained weights, so a tenth of the peak lr."""
    return LR_FACTOR * train_lr if value == "auto" else float(value)


def val_top1(job: Job, model: nn.Module) -> float:
    """Top-1 (%) on the held-out split the engine evaluates on, the figure the stage's epochs log."""
    from ..evaluate import predict

    ctx = job.ctx
    logits, labels = predict(model, ctx.loader(ctx.recipe.eval.split), ctx.device)
    model.cpu()
    return 100.0 * float((logits.argmax(1) == labels).float().mean())


def distill_fit(job: Job, model: nn.Module, cfg: Any, stage_dir: Path, logits_only: bool = False,
                epochs: int | None = None, lr: float | None = None, schedule: str | None = None,
                resume: bool | None = None) -> list[str]:
    """Train `model` in place through the engine, taught by cfg.teacher with cfg.terms (or distill.terms).

    epochs/lr default to cfg.epochs/cfg.lr; schedule overrides train.schedule (fine-tuning: cosine);
    resume defaults to job.resume (continue from stage_dir/last.pt).
    """
    from ..distill import Distiller, build_terms
    from ..engine import fit

    ctx, r = job.ctx, job.ctx.recipe
    teacher = {"unpruned": job.unpruned, "teacher": job.teacher, "none": None}[cfg.teacher]
    if cfg.teacher == "teacher" and teacher is None:
        raise UserError(f"{cfg.name} stage has teacher=teacher but no trained teacher is available; "
                        "allowed: teacher=unpruned or none", key="compress.stages")
    teacher = copy.deepcopy(teacher) if teacher is not None else None  # the Distiller freezes its teacher
    distill = r.distill if cfg.terms is None else r.distill.model_copy(update={"terms": cfg.terms})
    terms = build_terms(distill, model, teacher, example(job, 2)) if teacher is not None else {}
    if logits_only and any(t.student_features() for _, t in terms.values()):
        raise UserError(f"{cfg.name}: feature-based terms cannot tap a captured graph; allowed: logit terms "
                        "(kd, dkd, dist, …) via the stage's terms", key="compress.stages")
    module = Distiller(model, teacher, terms, ce_weight=distill.ce_weight if teacher is not None else 1.0,
                       label_smoothing=r.train.label_smoothing)
    resume = job.resume if resume is None else resume
    update: dict[str, Any] = {"warmup_epochs": 0.0, "milestones": [], "resume": resume}
    if schedule is not None:
        update["schedule"] = schedule
    train_cfg = r.train.model_copy(update=update)
    val = ctx.loader(r.eval.split)

    def evaluate() -> dict[str, float]:
        from ..evaluate import predict

        logits, labels = predict(model, val, ctx.device)
        return {"top1": 100.0 * float((logits.argmax(1) == labels).float().mean())}

    # last.pt stays until the runner has written this stage's entry.json: a kill before that resumes from it.
    fit(module, ctx.loader("train"), train_cfg, stage_dir, evaluate=evaluate,
        epochs=cfg.epochs if epochs is None else epochs, lr=cfg.lr if lr is None else lr,
        resume=resume, name=stage_dir.name, console=ctx.console, on_epoch_end=_hook(ctx, stage_dir))
    module.student.cpu()
    return list(terms)


def _hook(ctx: Any, stage_dir: Path) -> Any:
    """The trackers' per-epoch callback, named by the stage's folder in the run (compress/2-finetune, …)."""
    tracks = getattr(ctx, "tracks", None)
    if tracks is None:
        return None
    inside = stage_dir.is_relative_to(ctx.run_dir)
    return tracks.epoch_hook(stage_dir.relative_to(ctx.run_dir).as_posix() if inside else stage_dir.name)
