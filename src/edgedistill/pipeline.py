"""Runs the stages a recipe asks for and writes the run folder.

recipe → data and models → (teacher training) → student alone → distilled student → evaluation → report.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from . import __version__
from .data import DataBundle, build_data, class_names_of, make_loader
from .deploy import profile_model
from .distill import Distiller, build_terms
from .engine import fit, resolve_device
from .engine.checkpoint import seed_everything
from .errors import UserError
from .evaluate import classification_metrics, fidelity, predict
from .models import create_model, load_model, save_model, weights_class_count
from .recipe import ModelConfig, Recipe
from .report import print_summary, write_report

STAGES = ("teacher", "student_alone", "student")


@dataclass
class Context:
    """What every stage needs: the recipe, the run folder, data, loaders and where to compute."""

    recipe: Recipe
    run_dir: Path
    data: DataBundle
    device: torch.device
    console: Console
    resume: bool

    def loader(self, split: str) -> Any:
        cfg = self.recipe
        ds = self.data.train if split == "train" else self.data.held_out(split)
        return make_loader(ds, cfg.train.batch_size, train=split == "train", workers=cfg.data.workers,
                           seed=cfg.train.seed, device_type=self.device.type)


def check_recipe(recipe: Recipe) -> list[str]:
    """Checks that need the data's classes or the weights' shapes; all before any work starts."""
    class_names = class_names_of(recipe.data)
    for role in ("teacher", "student"):
        mc: ModelConfig = getattr(recipe, role)
        n = weights_class_count(mc.model, mc.weights)
        if n is not None and n != len(class_names) and not mc.resize_head:
            raise UserError(
                f"{mc.model} ({mc.weights or 'checkpoint'}) has {n} classes but the data has {len(class_names)}; "
                f"allowed: {role}.resize_head=true (replace the classifier), or weights for {len(class_names)} classes",
                key=f"{role}.resize_head",
            )
    return class_names


def make_run_dir(recipe: Recipe, resume: bool) -> Path:
    """output.dir/output.name, or name-2, -3 … when taken; resuming picks the latest existing one."""
    base, name = recipe.output.dir, recipe.output.name
    taken = [base / name] + sorted(base.glob(f"{name}-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])
                                   if p.name.rsplit("-", 1)[1].isdigit() else 0)
    taken = [p for p in taken if p.is_dir() and (p == base / name or p.name.rsplit("-", 1)[1].isdigit())]
    if resume:
        if not taken:
            raise UserError(f"nothing to resume in {base / name}", key="train.resume")
        return taken[-1]
    run_dir, k = base / name, 2
    while run_dir.exists():
        run_dir, k = base / f"{name}-{k}", k + 1
    run_dir.mkdir(parents=True)
    return run_dir


def _teacher_key(recipe: Recipe) -> str:
    """Identity of a trained-from-scratch teacher: same key, same weights, so later runs reuse it."""
    train = recipe.train.model_dump(mode="json", exclude={"resume", "threads", "device", "eval_every"})
    data = recipe.data.model_dump(mode="json", exclude={"workers"})
    ident = {"model": recipe.teacher.model, "epochs": recipe.teacher.epochs, "lr": recipe.teacher.lr,
             "train": train, "data": data}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]


def _model_meta(ctx: Context, spec: str, stage: str) -> dict[str, Any]:
    d = ctx.recipe.data
    return {"model": spec, "num_classes": ctx.data.num_classes, "class_names": ctx.data.class_names,
            "image_size": d.image_size, "mean": list(d.mean), "std": list(d.std), "stage": stage,
            "data": d.model_dump(mode="json"), "edgedistill": __version__}


def quick_top1(model: nn.Module, loader: Any, device: torch.device) -> dict[str, float]:
    logits, labels = predict(model, loader, device)
    return {"top1": 100.0 * float((logits.argmax(1) == labels).float().mean())}


def train_stage(
    ctx: Context, stage: str, spec: str, model: nn.Module, teacher: nn.Module | None = None, *,
    epochs: int | None = None, lr: float | None = None,
) -> nn.Module:
    """Train one stage through the engine, or reuse its finished weights when resuming."""
    stage_dir = ctx.run_dir / stage
    final = stage_dir / "model.safetensors"
    if final.exists():
        ctx.console.print(f"[cyan]{stage}[/]: finished earlier, reusing {final}")
        return load_model(final)[0]
    r = ctx.recipe
    example = torch.zeros(2, 3, r.data.image_size, r.data.image_size)
    terms = build_terms(r.distill, model, teacher, example) if teacher is not None else {}
    ce_weight = r.distill.ce_weight if teacher is not None else 1.0
    module = Distiller(model, teacher, terms, ce_weight=ce_weight, label_smoothing=r.train.label_smoothing)
    val_loader = ctx.loader(r.eval.split)
    fit(module, ctx.loader("train"), r.train, stage_dir, evaluate=lambda: quick_top1(model, val_loader, ctx.device),
        epochs=epochs, lr=lr, resume=ctx.resume, name=stage, console=ctx.console)
    model = module.student.cpu()
    save_model(final, model, _model_meta(ctx, spec, stage))
    return model


def get_teacher(ctx: Context, model: nn.Module) -> nn.Module:
    """Use the teacher's weights, or train it once and cache it for later runs with the same settings."""
    r, tc = ctx.recipe, ctx.recipe.teacher
    if tc.weights is not None or tc.model.startswith("file:"):
        return model
    cached = r.output.dir / "teachers" / _teacher_key(r) / "model.safetensors"
    final = ctx.run_dir / "teacher" / "model.safetensors"
    if cached.exists() and not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, final)
        ctx.console.print(f"[cyan]teacher[/]: reusing the teacher trained earlier with these settings ({cached})")
    model = train_stage(ctx, "teacher", tc.model, model, epochs=tc.epochs, lr=tc.lr)
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(final, cached)
    return model


def evaluate_models(ctx: Context, models: dict[str, tuple[str, nn.Module]]) -> dict[str, Any]:
    """The metric suite, teacher fidelity and cost for every model, on the same held-out split."""
    r = ctx.recipe
    loader = ctx.loader(r.eval.split)
    shape = (1, 3, r.data.image_size, r.data.image_size)
    logits = {name: predict(m, loader, ctx.device) for name, (_, m) in models.items()}
    t_logits = logits["teacher"][0]
    out: dict[str, Any] = {}
    for name, (spec, model) in models.items():
        lg, labels = logits[name]
        entry: dict[str, Any] = {"model": spec}
        entry.update(classification_metrics(lg, labels, ctx.data.num_classes, ece_bins=r.eval.ece_bins))
        if name != "teacher":
            entry.update(fidelity(lg, t_logits, T=r.eval.kd_T))
        ctx.console.print(f"[dim]profiling {name} ({spec}) …[/]")
        entry.update(profile_model(model, shape, runs=r.eval.latency_runs, warmup=r.eval.warmup_runs,
                                   threads=r.eval.threads))
        out[name] = entry
    return out


def compare(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Retention and teacher/student ratios: the numbers a reader looks for first."""
    t, s = models["teacher"], models["student"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    out = {
        "retention": ratio(s["top1"], t["top1"]),
        "params_ratio": ratio(t["params"], s["params"]),
        "flops_ratio": ratio(t["flops"], s["flops"]),
        "latency_ratio": ratio(t["latency_ms_median"], s["latency_ms_median"]),
        "size_ratio": ratio(t["size_mb"], s["size_mb"]),
    }
    if "student_alone" in models:
        out["gain_over_alone"] = s["top1"] - models["student_alone"]["top1"]
    return out


def run(recipe: Recipe, console: Console | None = None) -> Path:
    """Run every stage of `recipe`; returns the run folder."""
    console = console or Console()
    t0 = time.perf_counter()
    class_names = check_recipe(recipe)
    # Build both models before any work, so a bad name or head fails in seconds, not after training.
    tc, sc = recipe.teacher, recipe.student
    seed_everything(recipe.train.seed)  # initial weights depend on the seed only, not on what ran before
    teacher = create_model(tc.model, len(class_names), weights=tc.weights, resize_head=tc.resize_head,
                           key="teacher.model")
    student_init = create_model(sc.model, len(class_names), weights=sc.weights, resize_head=sc.resize_head,
                                key="student.model")
    if recipe.compress.stages:
        from .compress.pipeline import check_stages

        check_stages(recipe, student_init)
    resume = recipe.train.resume
    device = resolve_device(recipe.train.device)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    run_dir = make_run_dir(recipe, resume)
    console.print(f"run folder: [bold]{run_dir}[/]")
    saved = run_dir / "recipe.yaml"
    if resume and saved.exists():
        before = yaml_without_resume(saved.read_text())
        if before != yaml_without_resume(recipe.to_yaml()):
            console.print("[yellow]warning: the recipe differs from the one this run started with[/]")
    saved.write_text(recipe.to_yaml())
    data = build_data(recipe.data)
    if data.skipped:
        console.print(f"[yellow]skipped {data.skipped} unreadable image(s) (data.bad_images=skip)[/]")
    ctx = Context(recipe, run_dir, data, device, console, resume)
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Any, *a: Any, **kw: Any) -> Any:
        s = time.perf_counter()
        result = fn(*a, **kw)
        timings[stage] = round(time.perf_counter() - s, 2)
        return result

    teacher = timed("teacher", get_teacher, ctx, teacher)
    models: dict[str, tuple[str, nn.Module]] = {"teacher": (recipe.teacher.model, teacher)}

    def new_student() -> nn.Module:
        return copy.deepcopy(student_init)  # the same initial weights for the baseline and the distilled run

    if recipe.eval.baseline:
        alone = timed("student_alone", train_stage, ctx, "student_alone", sc.model, new_student())
        models["student_alone"] = (sc.model, alone)
    student = timed("student", train_stage, ctx, "student", sc.model, new_student(), teacher)
    models["student"] = (sc.model, student)
    entries = timed("evaluate", evaluate_models, ctx, models)
    compressed = timed("compress", compress_student, ctx, student, teacher) if recipe.compress.stages else None
    metrics = {
        "split": recipe.eval.split,
        "n_images": entries["student"]["n"],
        "class_names": data.class_names,
        "models": entries,
        "comparison": compare(entries),
        "environment": environment(device),
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 2)},
        "accuracy_epoch": "last",
    }
    if compressed is not None:
        metrics["stages"] = compressed.pop("stages")
        metrics["compress"] = compressed
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_report(run_dir, metrics, recipe)
    print_summary(metrics, console)
    if compressed is not None:
        from .compress.measure import all_threads
        from .report.stages import print_stages

        print_stages({**compressed, "stages": metrics["stages"]}, console, all_threads())
    console.print(f"\nreport: [bold]{run_dir / 'report.md'}[/]")
    return run_dir


def compress_student(ctx: Context, student: nn.Module, teacher: nn.Module) -> dict[str, Any]:
    """The recipe's compress stages on the distilled student, its teacher at hand; artifacts in run/compress/."""
    from .compress.pipeline import run_compress

    spec = ctx.recipe.student.model
    return run_compress(ctx, student, teacher, spec, _model_meta(ctx, spec, "student"), ctx.run_dir / "compress")


def yaml_without_resume(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("resume:"))


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def environment(device: torch.device) -> dict[str, Any]:
    return {"torch": torch.__version__, "edgedistill": __version__, "python": platform.python_version(),
            "device": str(device), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}


__all__ = ["STAGES", "check_recipe", "run"]
