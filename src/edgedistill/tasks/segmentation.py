"""task=segmentation: recipe → mask data and seg: models → teacher, student alone, distilled student → mIoU,
boundary F1 and teacher agreement → metrics.json and report.md. The engine (fit) and the Distiller are the
classification ones; only data, models, the cross-entropy, the terms and the metrics are dense.
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
from ..data.seg_transforms import seg_loader
from ..deploy import profile_model
from ..distill import build_terms
from ..distill.dense import SegDistiller
from ..engine import fit, resolve_device
from ..engine.checkpoint import seed_everything
from ..evaluate.predictions import held_out_id
from ..evaluate.segmentation import PER_IMAGE, quick_miou, save_per_image, seg_evaluate
from ..models import create_model, load_model, save_model
from ..models.weights import load_state, read_state_dict
from ..recipe import Recipe
from ..report.segmentation import print_seg_summary, write_seg_report
from ..output_folder import check_output_dir
from ..run.folder import make_run_dir
from ..run.identity import settings_tag
from ..run.timings import StageTimes
from .seg_data import build_seg_data


def build_seg_model(spec: str, k: int, weights: str | None, key: str) -> nn.Module:
    """A seg: model with `k` classes; a weights file (safetensors or .pth, weights_only) is loaded strictly."""
    model = create_model(spec, k, key=key)
    if weights not in (None, "", "none", "None"):
        load_state(model, read_state_dict(str(weights), key), str(weights), key)
    return model


class SegRun:
    """One run's shared state: the recipe, its run folder, loaders and device."""

    def __init__(self, r: Recipe, run_dir: Path, train: Dataset, evals: dict[str, Dataset], names: list[str],
                 device: torch.device, console: Console):
        self.r, self.run_dir, self.names, self.device, self.console = r, run_dir, names, device, console
        b, w = r.train.batch_size, r.data.workers
        self.train = seg_loader(train, b, train=True, workers=w, seed=r.train.seed)
        self.val = seg_loader(evals["val"], b, train=False, workers=w, seed=0)
        self.held = seg_loader(evals[r.eval.split], b, train=False, workers=w, seed=0)

    def meta(self, spec: str, stage: str) -> dict[str, Any]:
        d = self.r.data
        return {"model": spec, "num_classes": len(self.names), "class_names": self.names, "task": "segmentation",
                "ignore_index": self.r.segmentation.ignore_index, "image_size": d.image_size, "mean": list(d.mean),
                "std": list(d.std), "stage": stage, "data": d.model_dump(mode="json"),
                "segmentation": self.r.segmentation.model_dump(mode="json"), "edgedistill": __version__}

    def train_stage(self, stage: str, spec: str, module: SegDistiller, *, epochs: int | None = None,
                    lr: float | None = None) -> nn.Module:
        """Fit `module` (its student is saved as STAGE/model.safetensors); a finished stage is reused."""
        final = self.run_dir / stage / "model.safetensors"
        if final.exists():
            self.console.print(f"[cyan]{stage}[/]: finished earlier, reusing {final}")
            return load_model(final)[0]
        k, ignore = len(self.names), self.r.segmentation.ignore_index
        student = module.student
        fit(module, self.train, self.r.train, self.run_dir / stage, monitor="miou", epochs=epochs, lr=lr,
            evaluate=lambda: quick_miou(student, self.val, self.device, k, ignore), resume=self.r.train.resume,
            name=stage, console=self.console, tag=settings_tag(self.r))
        student = student.cpu()
        save_model(final, student, self.meta(spec, stage))
        return student


def run_segmentation(r: Recipe, console: Console) -> Path:
    """Every stage of a task=segmentation recipe; returns the run folder."""
    t0 = time.perf_counter()
    check_output_dir(r.output.dir)
    if r.compress.stages:
        from .seg_compress import check_seg_stages

        check_seg_stages(r)  # a bad stage list fails now, not after training
    train, evals, names = build_seg_data(r)  # every mask checked before a folder is made
    k, ignore = len(names), r.segmentation.ignore_index
    seed_everything(r.train.seed)
    teacher = build_seg_model(r.teacher.model, k, r.teacher.weights, "teacher.weights")
    student_init = build_seg_model(r.student.model, k, r.student.weights, "student.weights")
    example = torch.stack([evals["val"][i][0] for i in range(min(2, len(evals["val"])))])  # type: ignore[arg-type]
    build_terms(r.distill, copy.deepcopy(student_init), teacher, example)  # a bad layer name fails now
    device = resolve_device(r.train.device)
    if r.train.threads:
        torch.set_num_threads(r.train.threads)
    run_dir = make_run_dir(r, r.train.resume)
    atomic_write_text(run_dir / "recipe.yaml", r.to_yaml())
    console.print(f"run folder: [bold]{run_dir}[/]")
    run = SegRun(r, run_dir, train, evals, names, device, console)
    timings = timed = StageTimes()
    smoothing = r.train.label_smoothing

    models: dict[str, tuple[str, nn.Module]] = {}
    if r.teacher.weights is None:  # the recipe reads "none" and "" as None
        teacher = timed("teacher", run.train_stage, "teacher", r.teacher.model,
                        SegDistiller(teacher, ignore_index=ignore, label_smoothing=smoothing),
                        epochs=r.teacher.epochs, lr=r.teacher.lr)
    models["teacher"] = (r.teacher.model, teacher)
    if r.eval.baseline:
        alone = SegDistiller(copy.deepcopy(student_init), ignore_index=ignore, label_smoothing=smoothing)
        models["student_alone"] = (r.student.model, timed("student_alone", run.train_stage, "student_alone",
                                                          r.student.model, alone))
    student = copy.deepcopy(student_init)
    terms = build_terms(r.distill, student, teacher, example)
    module = SegDistiller(student, teacher, terms, ce_weight=r.distill.ce_weight, ignore_index=ignore,
                          label_smoothing=smoothing)
    models["student"] = (r.student.model, timed("student", run.train_stage, "student", r.student.model, module))
    entries = timed("evaluate", evaluate_seg_models, run, models)
    metrics = {
        "task": "segmentation", "split": r.eval.split, "n_images": entries["student"]["n"], "class_names": names,
        "ignore_index": ignore, "terms": [t.model_dump() for t in r.distill.terms], "primary": "student",
        "models": entries, "comparison": seg_compare(entries),
        "environment": {"torch": torch.__version__, "edgedistill": __version__, "device": str(device),
                        "threads": torch.get_num_threads()},
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 2)},
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    write_seg_report(run_dir, metrics)
    print_seg_summary(metrics, console)
    console.print(f"\nreport: [bold]{run_dir / 'report.md'}[/]")
    if r.compress.stages:  # the same chain as `edgedistill compress RUN_DIR`, into RUN_DIR/compress
        from ..models import read_meta
        from .seg_compress import compress_seg

        ckpt = run_dir / "student" / "model.safetensors"
        compress_seg(ckpt, read_meta(ckpt), run_dir, r, run_dir / "compress", console)
    return run_dir


def evaluate_seg_models(run: SegRun, models: dict[str, tuple[str, nn.Module]]) -> dict[str, Any]:
    r = run.r
    nets = {n: m for n, (_, m) in models.items()}
    scores = seg_evaluate(nets, run.held, run.device, len(run.names), r.segmentation.ignore_index,
                          r.segmentation.boundary_tolerance)
    per_image = {n: s.pop("per_image_iou") for n, s in scores.items()}
    save_per_image(run.run_dir / PER_IMAGE, per_image, held_out_id(r.data.model_dump(mode="json"), r.eval.split))
    shape = (1, 3, r.data.image_size, r.data.image_size)
    out = {}
    for name, (spec, model) in models.items():
        run.console.print(f"[dim]profiling {name} ({spec}) …[/]")
        cost = profile_model(model, shape, runs=r.eval.latency_runs, warmup=r.eval.warmup_runs, threads=r.eval.threads)
        out[name] = {"model": spec, **scores[name], **cost}
    return out


def seg_compare(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """mIoU retention and gain, and the teacher/student cost ratios."""
    t, s = models.get("teacher", {}), models["student"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    out = {"retention": ratio(s["miou"], t.get("miou")), "params_ratio": ratio(t.get("params"), s["params"]),
           "latency_ratio": ratio(t.get("latency_ms_median"), s["latency_ms_median"])}
    if "student_alone" in models:
        out["gain_over_alone"] = s["miou"] - models["student_alone"]["miou"]
        out["agreement_gain"] = s.get("teacher_agreement", 0.0) - models["student_alone"].get("teacher_agreement", 0.0)
    return out


__all__ = ["build_seg_data", "build_seg_model", "run_segmentation"]  # build_seg_data: from seg_data.py
