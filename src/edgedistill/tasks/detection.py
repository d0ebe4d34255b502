"""task=detection: recipe → box data and det: models → teacher, student alone, distilled student → COCO mAP,
mAP50, mAP small/medium/large and teacher agreement → metrics.json and report.md. The engine (fit) is the
classification one; data, models, the detection losses (torchvision's own), the terms and the metrics are
the detection ones.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from .. import __version__
from ..atomic import atomic_write_text
from ..data.det_base import det_loader
from ..deploy import profile_model
from ..distill import build_terms
from ..distill.det_base import DetDistiller
from ..engine import fit, resolve_device
from ..engine.checkpoint import seed_everything
from ..evaluate.detection import det_evaluate, quick_map
from ..evaluate.per_image import PER_IMAGE, save_per_image
from ..evaluate.predictions import held_out_id
from ..models import create_model, load_model, save_model
from ..models.weights import load_state, read_state_dict
from ..output_folder import check_output_dir
from ..recipe import Recipe
from ..report.detection import print_det_summary, write_det_report
from ..run.folder import make_run_dir
from ..run.identity import settings_tag
from .det_data import build_det_data


def build_det_model(spec: str, k: int, size: int, weights: str | None, key: str) -> nn.Module:
    """A det: model for `k` classes at `size` px; a weights file (safetensors or .pth, weights_only) is loaded
    strictly."""
    model = create_model(spec, k, key=key)
    model.set_image_size(size)  # type: ignore[operator]
    if weights not in (None, "", "none", "None"):
        load_state(model, read_state_dict(str(weights), key), str(weights), key)
    return model


class DetRun:
    """One run's shared state: the recipe, its run folder, loaders and device."""

    def __init__(self, r: Recipe, run_dir: Path, train: Dataset, evals: dict[str, Dataset], names: list[str],
                 device: torch.device, console: Console):
        self.r, self.run_dir, self.names, self.device, self.console = r, run_dir, names, device, console
        b, w = r.train.batch_size, r.data.workers
        self.train = det_loader(train, b, train=True, workers=w, seed=r.train.seed)
        self.val = det_loader(evals["val"], b, train=False, workers=w, seed=0)
        self.held = det_loader(evals[r.eval.split], b, train=False, workers=w, seed=0)

    def meta(self, spec: str, stage: str) -> dict[str, Any]:
        d = self.r.data
        return {"model": spec, "num_classes": len(self.names), "class_names": self.names, "task": "detection",
                "image_size": d.image_size, "stage": stage, "data": d.model_dump(mode="json"),
                "detection": self.r.detection.model_dump(mode="json"),
                "edgedistill": __version__}

    def train_stage(self, stage: str, spec: str, module: DetDistiller, *, epochs: int | None = None,
                    lr: float | None = None) -> nn.Module:
        """Fit `module` (its student is saved as STAGE/model.safetensors); a finished stage is reused."""
        final = self.run_dir / stage / "model.safetensors"
        size = self.r.data.image_size
        if final.exists():
            self.console.print(f"[cyan]{stage}[/]: finished earlier, reusing {final}")
            model = load_model(final)[0]
            model.set_image_size(size)  # type: ignore[operator]
            return model
        student, min_score = module.student, self.r.detection.score_threshold
        fit(module, self.train, self.r.train, self.run_dir / stage, monitor="map", epochs=epochs, lr=lr,
            evaluate=lambda: quick_map(student, self.val, self.device, min_score), resume=self.r.train.resume,
            name=stage, console=self.console, tag=settings_tag(self.r))
        student = student.cpu()
        save_model(final, student, self.meta(spec, stage))
        return student


def run_detection(r: Recipe, console: Console) -> Path:
    """Every stage of a task=detection recipe; returns the run folder."""
    t0 = time.perf_counter()
    check_output_dir(r.output.dir)
    if r.compress.stages:
        from .det_compress import check_det_stages

        check_det_stages(r)  # a bad stage list fails now, not after training
    train, evals, names = build_det_data(r)  # every annotation checked before a folder is made
    k, size = len(names), r.data.image_size
    seed_everything(r.train.seed)
    teacher = build_det_model(r.teacher.model, k, size, r.teacher.weights, "teacher.weights")
    student_init = build_det_model(r.student.model, k, size, r.student.weights, "student.weights")
    if r.compress.stages:
        from .det_graph import check_exportable

        check_exportable(student_init)  # Faster R-CNN: refused before training, not after
    example = torch.stack([evals["val"][i][0] for i in range(min(2, len(evals["val"])))])  # type: ignore[arg-type]
    build_terms(r.distill, copy.deepcopy(student_init), teacher, example)  # a bad pairing fails now
    device = resolve_device(r.train.device)
    if r.train.threads:
        torch.set_num_threads(r.train.threads)
    run_dir = make_run_dir(r, r.train.resume)
    atomic_write_text(run_dir / "recipe.yaml", r.to_yaml())
    console.print(f"run folder: [bold]{run_dir}[/]")
    run = DetRun(r, run_dir, train, evals, names, device, console)
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Any, *a: Any, **kw: Any) -> Any:
        s = time.perf_counter()
        out = fn(*a, **kw)
        timings[stage] = round(time.perf_counter() - s, 2)
        return out

    models: dict[str, tuple[str, nn.Module]] = {}
    if r.teacher.weights is None:  # the recipe reads "none" and "" as None
        teacher = timed("teacher", run.train_stage, "teacher", r.teacher.model, DetDistiller(teacher),
                        epochs=r.teacher.epochs, lr=r.teacher.lr)
    models["teacher"] = (r.teacher.model, teacher)
    if r.eval.baseline:
        alone = DetDistiller(copy.deepcopy(student_init))
        models["student_alone"] = (r.student.model, timed("student_alone", run.train_stage, "student_alone",
                                                          r.student.model, alone))
    student = copy.deepcopy(student_init)
    terms = build_terms(r.distill, student, teacher, example)
    module = DetDistiller(student, teacher, terms, det_weight=r.distill.ce_weight)
    models["student"] = (r.student.model, timed("student", run.train_stage, "student", r.student.model, module))
    entries = timed("evaluate", evaluate_det_models, run, models)
    metrics = {
        "task": "detection", "split": r.eval.split, "n_images": entries["student"]["n"],
        "n_boxes": entries["student"]["boxes"], "class_names": names, "image_size": size,
        "terms": [t.model_dump() for t in r.distill.terms], "primary": "student", "models": entries,
        "comparison": det_compare(entries),
        "environment": {"torch": torch.__version__, "edgedistill": __version__, "device": str(device),
                        "threads": torch.get_num_threads()},
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 2)},
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_det_report(run_dir, metrics)
    print_det_summary(metrics, console)
    console.print(f"\nreport: [bold]{run_dir / 'report.md'}[/]")
    if r.compress.stages:  # the same chain as `edgedistill compress RUN_DIR`, into RUN_DIR/compress
        from ..models import read_meta
        from .det_compress import compress_det

        ckpt = run_dir / "student" / "model.safetensors"
        compress_det(ckpt, read_meta(ckpt), run_dir, r, run_dir / "compress", console)
    return run_dir


def evaluate_det_models(run: DetRun, models: dict[str, tuple[str, nn.Module]]) -> dict[str, Any]:
    r = run.r
    nets = {n: m for n, (_, m) in models.items()}
    scores = det_evaluate(nets, run.held, run.device, r.detection.score_threshold, r.detection.agreement_score,
                          per_image=True)
    per_image = {n: s.pop("per_image_map") for n, s in scores.items()}  # compare's paired unit
    save_per_image(run.run_dir / PER_IMAGE, per_image, held_out_id(r.data.model_dump(mode="json"), r.eval.split),
                   unit="map")
    shape = (1, 3, r.data.image_size, r.data.image_size)
    out = {}
    for name, (spec, model) in models.items():
        run.console.print(f"[dim]profiling {name} ({spec}) …[/]")
        cost = profile_model(model, shape, runs=r.eval.latency_runs, warmup=r.eval.warmup_runs, threads=r.eval.threads)
        out[name] = {"model": spec, **scores[name], **cost}
    return out


def det_compare(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """mAP retention and gain, and the teacher/student cost ratios."""
    t, s = models.get("teacher", {}), models["student"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    out = {"retention": ratio(s["map"], t.get("map")), "params_ratio": ratio(t.get("params"), s["params"]),
           "latency_ratio": ratio(t.get("latency_ms_median"), s["latency_ms_median"])}
    if "student_alone" in models:
        alone = models["student_alone"]
        out["gain_over_alone"] = (s["map"] or 0.0) - (alone["map"] or 0.0)
        out["map50_gain_over_alone"] = (s["map50"] or 0.0) - (alone["map50"] or 0.0)
        out["agreement_gain"] = (s.get("teacher_agreement") or 0.0) - (alone.get("teacher_agreement") or 0.0)
    return out


__all__ = ["build_det_model", "run_detection"]
