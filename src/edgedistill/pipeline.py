"""Runs the stages a recipe asks for and writes the run folder.

recipe → data and models → (teacher training) → student alone → distilled student → evaluation → report.
"""

from __future__ import annotations

import copy
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from . import __version__
from .atomic import atomic_write_text
from .deploy import profile_model
from .deploy.energy import torch_energy
from .distill import Distiller, SchemeJob
from .engine import distributed as ddp
from .engine import epoch_tags, fit
from .evaluate import classification_metrics, fidelity, predict
from .evaluate.pcr import pcr_all
from .evaluate.predictions import held_out_id, save_predictions
from .models import load_model, save_model
from .output_folder import removed_on_user_error
from .preflight import preflight
from .recipe import Recipe
from .report import print_summary, write_report
from .report.markdown import read_history
from .run.context import Context
from .run.folder import make_run_dir
from .run.identity import check_resume, settings_tag, store_teacher, teacher_key
from .run.timings import StageTimes
from .teachers.build import fit_ensemble, freeze_all_but_head, teacher_cache, teacher_rows
from .teachers.rule import trains_teacher
from .teachers.student_loader import mixes_unlabeled, student_loader
from .track import Trackers

STAGES = ("teacher", "student_alone", "student")


def _model_meta(ctx: Context, spec: str, stage: str) -> dict[str, Any]:
    d = ctx.recipe.data
    return {"model": spec, "num_classes": ctx.data.num_classes, "class_names": ctx.data.class_names,
            "image_size": d.image_size, "mean": list(d.mean), "std": list(d.std), "stage": stage,
            "data": d.model_dump(mode="json"), "edgedistill": __version__}


def quick_top1(model: nn.Module, loader: Any, device: torch.device) -> dict[str, float]:
    logits, labels = predict(model, loader, device)
    return {"top1": 100.0 * float((logits.argmax(1) == labels).float().mean())}


def train_stage(
    ctx: Context, stage: str, spec: str, model: nn.Module, *, epochs: int | None = None, lr: float | None = None,
) -> nn.Module:
    """Train one model on labels alone (the teacher, the student alone) through the engine."""
    module = Distiller(model, label_smoothing=ctx.recipe.train.label_smoothing)
    return train_module(ctx, stage, module, {stage: (spec, model)}, epochs=epochs, lr=lr)[stage]


def train_module(
    ctx: Context, stage: str, module: nn.Module, outputs: dict[str, tuple[str, nn.Module]], *,
    epochs: int | None = None, lr: float | None = None,
) -> dict[str, nn.Module]:
    """Train `module` as one engine stage and save each model of `outputs` as run_dir/NAME/model.safetensors;
    when resuming, models whose file exists are reused."""
    finals = {name: ctx.run_dir / name / "model.safetensors" for name in outputs}
    if all(f.exists() for f in finals.values()):
        for f in finals.values():
            ctx.console.print(f"[cyan]{stage}[/]: finished earlier, reusing {f}")
        return {name: load_model(f)[0] for name, f in finals.items()}
    r = ctx.recipe
    teacher = getattr(module, "teacher", None)
    mixing = mixes_unlabeled(r, stage)
    if isinstance(module, Distiller) and teacher is not None and r.distill.teacher_cache and not mixing:
        module.teacher_outputs = teacher_cache(ctx, teacher, module.teacher_taps, epochs or r.train.epochs)
    cached = getattr(module, "teacher_outputs", None) is not None
    train_loader = student_loader(ctx, ctx.loader("train")) if mixing else ctx.loader("train", keys=cached)
    val_loader = ctx.loader(r.eval.split)

    def evaluate() -> dict[str, float]:
        tops = {n: quick_top1(m, val_loader, ctx.device)["top1"] for n, (_, m) in outputs.items()}
        extra = {f"{n}_top1": v for n, v in tops.items()} if len(tops) > 1 else {}
        return {"top1": next(iter(tops.values())), **extra}  # the first model's top-1 picks best.pt

    tag = teacher_key(r) if stage == "teacher" else settings_tag(r)  # recorded per epoch in last.pt
    fit(module, train_loader, r.train, ctx.run_dir / stage, evaluate=evaluate, epochs=epochs, lr=lr,
        resume=ctx.resume, name=stage, console=ctx.console, tag=tag, on_epoch_end=ctx.tracks.epoch_hook(stage))
    history = read_history(ctx.run_dir / stage)
    trained = {}
    for name, (spec, model) in outputs.items():
        trained[name] = model.cpu()
        if not ddp.is_main():
            continue
        save_model(finals[name], model, _model_meta(ctx, spec, name))
        if name != stage:  # one curve per model for the report, from the shared stage's log
            rows = [{"epoch": h["epoch"], "val_top1": h[f"val_{name}_top1"]} for h in history
                    if f"val_{name}_top1" in h]
            atomic_write_text(finals[name].parent / "metrics.jsonl", "".join(json.dumps(x) + "\n" for x in rows))
    ddp.barrier()
    return trained


def get_teacher(ctx: Context, model: nn.Module) -> nn.Module:
    """Use the teacher's weights, or train it once and cache it for later runs with the same settings."""
    r, tc = ctx.recipe, ctx.recipe.teacher
    if not trains_teacher(r):
        return model
    if tc.probe:  # a linear probe: the features stay frozen
        freeze_all_but_head(model)
    key = teacher_key(r)
    cached = r.output.dir / "teachers" / key / "model.safetensors"
    final = ctx.run_dir / "teacher" / "model.safetensors"
    if cached.exists() and not final.exists() and ddp.is_main():
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, final)
        ctx.console.print(f"[cyan]teacher[/]: reusing the teacher trained earlier with these settings ({cached})")
    ddp.barrier()
    model = train_stage(ctx, "teacher", tc.model, model, epochs=tc.epochs, lr=tc.lr)
    if not cached.exists() and ddp.is_main():  # only a teacher whose every epoch ran under this key
        store_teacher(final, cached, epoch_tags(ctx.run_dir / "teacher"), key, tc.epochs or r.train.epochs,
                      ctx.console.print)
    return model


def evaluate_models(ctx: Context, models: dict[str, tuple[str, nn.Module]]) -> dict[str, Any]:
    """The metric suite, teacher fidelity and cost for every model, on the same held-out split."""
    r = ctx.recipe
    loader = ctx.loader(r.eval.split)
    shape = (1, 3, r.data.image_size, r.data.image_size)
    logits = {name: predict(m, loader, ctx.device) for name, (_, m) in models.items()}  # every rank takes part
    if not ddp.is_main():
        return {}
    t_logits = logits["teacher"][0] if "teacher" in logits else None
    save_predictions(ctx.run_dir / "predictions.npz", {n: lg.argmax(1).numpy() for n, (lg, _) in logits.items()},
                     next(iter(logits.values()))[1].numpy(), held_out_id(r.data.model_dump(mode="json"), r.eval.split))
    out: dict[str, Any] = {}
    for name, (spec, model) in models.items():
        lg, labels = logits[name]
        entry: dict[str, Any] = {"model": spec}
        entry.update(classification_metrics(lg, labels, ctx.data.num_classes, ece_bins=r.eval.ece_bins))
        if name != "teacher" and t_logits is not None:
            entry.update(fidelity(lg, t_logits, T=r.eval.kd_T))
        ctx.console.print(f"[dim]profiling {name} ({spec}) …[/]")
        entry.update(profile_model(model, shape, runs=r.eval.latency_runs, warmup=r.eval.warmup_runs,
                                   threads=r.eval.threads))
        entry["energy"] = torch_energy(model, shape, runs=r.eval.latency_runs, threads=r.eval.threads)
        out[name] = entry
    if "teacher" in out:  # Performance-Cost Ratio of every model against the teacher (evaluate/pcr.py)
        for entry in out.values():
            entry["pcr"] = pcr_all(entry, out["teacher"], r.eval.pcr)
    return out


def compare(models: dict[str, dict[str, Any]], primary: str = "student") -> dict[str, Any]:
    """Retention and teacher/student ratios: the numbers a reader looks for first."""
    t, s = models.get("teacher", {}), models[primary]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    out: dict[str, Any] = {
        "retention": ratio(s["top1"], t.get("top1")),
        "params_ratio": ratio(t.get("params"), s["params"]),
        "flops_ratio": ratio(t.get("flops"), s["flops"]),
        "latency_ratio": ratio(t.get("latency_ms_median"), s["latency_ms_median"]),
        "size_ratio": ratio(t.get("size_mb"), s["size_mb"]),
    }
    if "student_alone" in models:
        alone = models["student_alone"]["top1"]
        out["gain_over_alone"] = s["top1"] - alone
        others = [n for n in models if n != "student_alone" and not n.startswith("teacher")]
        if len(others) > 1:  # peers, generations: each one's gain
            out["gain_over_alone_by_model"] = {n: models[n]["top1"] - alone for n in others}
    return out


def run(recipe: Recipe, console: Console | None = None) -> Path:
    """Run every stage of `recipe`; returns the run folder. Under torchrun: data-parallel, rank 0 writes."""
    if recipe.task != "classification":  # the task layer: segmentation runs its own stages (tasks/)
        from .tasks import TASKS

        return TASKS.get(recipe.task, key="task")(recipe, console or Console())
    joined = ddp.init_from_env(recipe.train.device)
    try:
        with Trackers() as tracks:  # closed on the way out; an exception marks the tracked run failed
            return _run(recipe, (console or Console()) if ddp.is_main() else Console(quiet=True), tracks)
    finally:
        if joined:
            ddp.shutdown()


def _run(recipe: Recipe, console: Console, tracks: Trackers) -> Path:
    t0 = time.perf_counter()
    ready = preflight(recipe)  # every check before any work: nothing is trained or written before it passes
    class_names, teacher, student_init, data, device = (ready.class_names, ready.teacher, ready.student_init,
                                                        ready.data, ready.device)
    sc, scheme, resume = recipe.student, ready.scheme, recipe.train.resume
    run_dir = ddp.broadcast_object(make_run_dir(recipe, resume) if ddp.is_main() else None)
    with removed_on_user_error(run_dir, fresh=not resume and ddp.is_main()):  # a tracker refused: no folder left
        if resume:  # before anything is written; every rank checks, so none waits on one that refused
            for line in check_resume(recipe, run_dir):
                console.print(f"[dim]resuming with a changed setting that does not change results: {line}[/]")
        console.print(f"run folder: [bold]{run_dir}[/]" + (f" ({ddp.world_size()} processes)"
                                                          if ddp.is_distributed() else ""))
        if resume and recipe.compress.stages:  # every rank: a rank that raised alone would leave the rest waiting
            from .compress.chain import check_plan

            check_plan(run_dir / "compress", recipe)  # a changed stage list fails now, not after training
        if ddp.is_main():
            atomic_write_text(run_dir / "recipe.yaml", recipe.to_yaml())
            tracks.open(recipe, run_dir)
    if data.skipped:
        console.print(f"[yellow]skipped {data.skipped} unreadable image(s) (data.bad_images=skip): "
                      f"{', '.join(data.skipped_files[:5])}{' …' if data.skipped > 5 else ''}[/]")
    ctx = Context(recipe, run_dir, data, device, console, resume, tracks)
    timings = timed = StageTimes()

    models: dict[str, tuple[str, nn.Module]] = {}
    if teacher is not None:
        teacher = timed("teacher", get_teacher, ctx, teacher)
        fit_ensemble(ctx, teacher)
        models.update(teacher_rows(recipe, teacher))

    def new_student() -> nn.Module:
        return copy.deepcopy(student_init)  # the same initial weights for the baseline and the distilled run

    def student_alone() -> nn.Module:
        return train_stage(ctx, "student_alone", sc.model, new_student())  # reused once its file exists

    if recipe.eval.baseline:
        models["student_alone"] = (sc.model, timed("student_alone", student_alone))
    job = SchemeJob(recipe, len(class_names), teacher, new_student, student_alone,
                    lambda stage, module, outputs: train_module(ctx, stage, module, outputs), console)
    result = timed(scheme.stage, scheme.run, job)
    models.update(result.models)
    entries = timed("evaluate", evaluate_models, ctx, models)
    if not ddp.is_main():
        return run_dir
    # Compression runs on rank 0 alone: its fine-tuning is short and its measurements need one process.
    primary = models[result.primary][1]
    compressed = timed("compress", compress_student, ctx, primary, teacher) if recipe.compress.stages else None
    metrics = {
        "split": recipe.eval.split,
        "n_images": entries[result.primary]["n"],
        "class_names": data.class_names,
        "scheme": recipe.distill.scheme,
        "primary": result.primary,
        "models": entries,
        "comparison": compare(entries, result.primary),
        "environment": environment(device),
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 2)},
        "accuracy_epoch": "last",
        "skipped_images": {"count": data.skipped, "files": data.skipped_files},
    }
    if compressed is not None:
        metrics["stages"] = compressed.pop("stages")
        metrics["compress"] = compressed
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_report(run_dir, metrics, recipe)
    tracks.finish(metrics, run_dir)
    print_summary(metrics, console)
    if compressed is not None:
        from .deploy.profile import all_threads
        from .report.stages import print_stages

        print_stages({**compressed, "stages": metrics["stages"]}, console, all_threads())
    console.print(f"\nreport: [bold]{run_dir / 'report.md'}[/]")
    return run_dir


def compress_student(ctx: Context, student: nn.Module, teacher: nn.Module | None) -> dict[str, Any]:
    """The recipe's compress stages on the distilled student, its teacher at hand; artifacts in run/compress/.
    A resumed run (train.resume) continues its compress folder: finished stages are reused."""
    from .compress.chain import run_compress

    spec = ctx.recipe.student.model
    return run_compress(ctx, student, teacher, spec, _model_meta(ctx, spec, "student"),
                        ctx.run_dir / "compress", resume=ctx.resume)


def environment(device: torch.device) -> dict[str, Any]:
    return {"torch": torch.__version__, "edgedistill": __version__, "python": platform.python_version(),
            "device": str(device), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "processes": ddp.world_size()}


__all__ = ["STAGES", "run"]
