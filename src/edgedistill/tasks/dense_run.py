"""The run of a dense task (segmentation, detection): teacher → student alone → distilled student → held-out
scores and cost → metrics.json and report.md → the compress chain when the recipe has stages.

One structure for both (two near-copies before); a task says what differs in a DenseTask: its data, models,
distiller, monitored metric, evaluation, metrics fields, report and compress (tasks/segmentation.py,
tasks/detection.py).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from .. import __version__
from ..atomic import atomic_write_text
from ..deploy import profile_model
from ..distill import build_terms
from ..engine import fit, resolve_device
from ..engine.checkpoint import seed_everything
from ..models import create_model, load_model, save_model
from ..models.weights import load_state, read_state_dict
from ..output_folder import check_output_dir
from ..recipe import Recipe
from ..run.folder import make_run_dir
from ..run.identity import settings_tag
from ..run.timings import StageTimes


class DenseTask:
    """What differs between dense tasks; every method is one task's answer (see a subclass for the meaning)."""

    name = ""  # the recipe's task
    monitor = ""  # the metric the engine keeps the best epoch by

    def check_stages(self, r: Recipe) -> None: ...
    def build_data(self, r: Recipe) -> tuple[Dataset, dict[str, Dataset], list[str]]: ...
    def check_student(self, r: Recipe, student: nn.Module) -> None: ...
    def distiller(self, r: Recipe, student: nn.Module, teacher: nn.Module | None = None,
                  terms: Any = None) -> nn.Module: ...
    def loader(self, ds: Dataset, batch: int, train: bool, workers: int, seed: int) -> Any: ...
    def quick(self, run: DenseRun, student: nn.Module) -> Callable[[], float]: ...
    def meta(self, r: Recipe) -> dict[str, Any]: ...
    def evaluate(self, run: DenseRun, nets: dict[str, nn.Module]) -> dict[str, dict[str, Any]]: ...
    def head(self, r: Recipe, entries: dict[str, Any], names: list[str]) -> dict[str, Any]: ...
    def compare(self, models: dict[str, dict[str, Any]]) -> dict[str, Any]: ...
    write_report: Callable[[Path, dict[str, Any]], Any]  # report.md from metrics.json's content
    print_summary: Callable[[dict[str, Any], Console], None]
    def compress(self, ckpt: Path, meta: dict[str, Any], run_dir: Path, r: Recipe, out: Path,
                 console: Console) -> dict[str, Any]: ...

    def prepare(self, r: Recipe, model: nn.Module) -> nn.Module:
        """A model as built or loaded, made ready for the run (detection: its input size)."""
        return model


def build_model(spec: str, k: int, weights: str | None, key: str,
                prepare: Callable[[nn.Module], nn.Module] | None = None) -> nn.Module:
    """A task model with `k` classes (made ready by `prepare`, e.g. a detector's input size); a weights file
    (safetensors or .pth, weights_only) is loaded strictly."""
    model = create_model(spec, k, key=key)
    model = prepare(model) if prepare is not None else model
    if weights not in (None, "", "none", "None"):
        load_state(model, read_state_dict(str(weights), key), str(weights), key)
    return model


class DenseRun:
    """One run's shared state: the recipe, its run folder, loaders and device."""

    def __init__(self, task: DenseTask, r: Recipe, run_dir: Path, train: Dataset, evals: dict[str, Dataset],
                 names: list[str], device: torch.device, console: Console):
        self.task, self.r, self.run_dir, self.names, self.device, self.console = (task, r, run_dir, names, device,
                                                                                  console)
        b, w = r.train.batch_size, r.data.workers
        self.train = task.loader(train, b, True, w, r.train.seed)
        self.val = task.loader(evals["val"], b, False, w, 0)
        self.held = task.loader(evals[r.eval.split], b, False, w, 0)

    def meta(self, spec: str, stage: str) -> dict[str, Any]:
        return {"model": spec, "num_classes": len(self.names), "class_names": self.names, "task": self.task.name,
                **self.task.meta(self.r), "stage": stage, "data": self.r.data.model_dump(mode="json"),
                self.task.name: getattr(self.r, self.task.name).model_dump(mode="json"), "edgedistill": __version__}

    def train_stage(self, stage: str, spec: str, module: nn.Module, *, epochs: int | None = None,
                    lr: float | None = None) -> nn.Module:
        """Fit `module` (its student is saved as STAGE/model.safetensors); a finished stage is reused."""
        final = self.run_dir / stage / "model.safetensors"
        if final.exists():
            self.console.print(f"[cyan]{stage}[/]: finished earlier, reusing {final}")
            return self.task.prepare(self.r, load_model(final)[0])
        student = module.student
        fit(module, self.train, self.r.train, self.run_dir / stage, monitor=self.task.monitor, epochs=epochs, lr=lr,
            evaluate=self.task.quick(self, student), resume=self.r.train.resume, name=stage, console=self.console,
            tag=settings_tag(self.r))
        student = student.cpu()
        save_model(final, student, self.meta(spec, stage))
        return student


def run_dense(task: DenseTask, r: Recipe, console: Console) -> Path:
    """Every stage of a dense task's recipe; returns the run folder."""
    t0 = time.perf_counter()
    check_output_dir(r.output.dir)
    if r.compress.stages:
        task.check_stages(r)  # a bad stage list fails now, not after training
    train, evals, names = task.build_data(r)  # every label checked before a folder is made
    k = len(names)
    seed_everything(r.train.seed)
    ready = lambda m: task.prepare(r, m)  # noqa: E731
    teacher = build_model(r.teacher.model, k, r.teacher.weights, "teacher.weights", ready)
    student_init = build_model(r.student.model, k, r.student.weights, "student.weights", ready)
    if r.compress.stages:
        task.check_student(r, student_init)  # a model the chain cannot export: refused before training
    example = torch.stack([evals["val"][i][0] for i in range(min(2, len(evals["val"])))])  # type: ignore[arg-type]
    build_terms(r.distill, copy.deepcopy(student_init), teacher, example)  # a bad layer or pairing fails now
    device = resolve_device(r.train.device)
    if r.train.threads:
        torch.set_num_threads(r.train.threads)
    run_dir = make_run_dir(r, r.train.resume)
    atomic_write_text(run_dir / "recipe.yaml", r.to_yaml())
    console.print(f"run folder: [bold]{run_dir}[/]")
    run = DenseRun(task, r, run_dir, train, evals, names, device, console)
    timings = timed = StageTimes()

    models: dict[str, tuple[str, nn.Module]] = {}
    if r.teacher.weights is None:  # the recipe reads "none" and "" as None
        teacher = timed("teacher", run.train_stage, "teacher", r.teacher.model, task.distiller(r, teacher),
                        epochs=r.teacher.epochs, lr=r.teacher.lr)
    models["teacher"] = (r.teacher.model, teacher)
    if r.eval.baseline:
        alone = task.distiller(r, copy.deepcopy(student_init))
        models["student_alone"] = (r.student.model, timed("student_alone", run.train_stage, "student_alone",
                                                          r.student.model, alone))
    student = copy.deepcopy(student_init)
    terms = build_terms(r.distill, student, teacher, example)
    module = task.distiller(r, student, teacher, terms)
    models["student"] = (r.student.model, timed("student", run.train_stage, "student", r.student.model, module))
    entries = timed("evaluate", _evaluate, run, models)
    metrics = {
        "task": task.name, "split": r.eval.split, "n_images": entries["student"]["n"],
        **task.head(r, entries, names), "terms": [t.model_dump() for t in r.distill.terms], "primary": "student",
        "models": entries, "comparison": task.compare(entries),
        "environment": {"torch": torch.__version__, "edgedistill": __version__, "device": str(device),
                        "threads": torch.get_num_threads()},
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 2)},
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    task.write_report(run_dir, metrics)
    task.print_summary(metrics, console)
    console.print(f"\nreport: [bold]{run_dir / 'report.md'}[/]")
    if r.compress.stages:  # the same chain as `edgedistill compress RUN_DIR`, into RUN_DIR/compress
        from ..models import read_meta

        ckpt = run_dir / "student" / "model.safetensors"
        task.compress(ckpt, read_meta(ckpt), run_dir, r, run_dir / "compress", console)
    return run_dir


def _evaluate(run: DenseRun, models: dict[str, tuple[str, nn.Module]]) -> dict[str, Any]:
    """The task's held-out scores (it saves its per-image scores) and every model's cost at batch 1."""
    r = run.r
    scores = run.task.evaluate(run, {n: m for n, (_, m) in models.items()})
    shape = (1, 3, r.data.image_size, r.data.image_size)
    out = {}
    for name, (spec, model) in models.items():
        run.console.print(f"[dim]profiling {name} ({spec}) …[/]")
        cost = profile_model(model, shape, runs=r.eval.latency_runs, warmup=r.eval.warmup_runs, threads=r.eval.threads)
        out[name] = {"model": spec, **scores[name], **cost}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def compare(models: dict[str, dict[str, Any]], metric: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
    """`metric` retention and gain over the student alone (and the gains of the `also` metrics), agreement gain,
    and the teacher/student cost ratios."""
    t, s = models.get("teacher", {}), models["student"]
    out = {"retention": ratio(s[metric], t.get(metric)), "params_ratio": ratio(t.get("params"), s["params"]),
           "latency_ratio": ratio(t.get("latency_ms_median"), s["latency_ms_median"])}
    if "student_alone" in models:
        alone = models["student_alone"]
        out["gain_over_alone"] = (s[metric] or 0.0) - (alone[metric] or 0.0)
        out |= {f"{m}_gain_over_alone": (s[m] or 0.0) - (alone[m] or 0.0) for m in also}
        out["agreement_gain"] = (s.get("teacher_agreement") or 0.0) - (alone.get("teacher_agreement") or 0.0)
    return out


__all__ = ["DenseRun", "DenseTask", "build_model", "compare", "run_dense"]
