"""`edgedistill audit RUN_DIR`: how faithfully the distilled student follows its teacher, clean and perturbed.

Loads the run's teacher, distilled student and (when present) the student trained alone from their
model.safetensors, the held-out split from the run's recipe.yaml, and measures fidelity, inherited errors,
representation similarity (CKA), calibration and behaviour under perturbations on at most --max-images images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.build import first_samples
from ..errors import UserError
from ..evaluate import classification_metrics, fidelity
from ..models import load_model
from ..models.features import default_feature_layer, to_spatial
from ..models.taps import FeatureTaps
from ..run.reader import read_finished_run
from ..teachers.loader import load_run_teacher
from .cka import linear_cka
from .inherit import error_similarity, inherited_errors
from .perturb import PERTURBATIONS, Pixels, fgsm_pixels, parse_levels, perturb

if TYPE_CHECKING:
    from ..recipe import Recipe

MAX_IMAGES = 1_000_000
STUDENTS = ("student", "student_alone")


@dataclass
class AuditInputs:
    """A run folder's recipe, metrics and models, checked before any image is read."""

    run_dir: Path
    recipe: Recipe
    metrics: dict[str, Any]
    models: dict[str, tuple[str, nn.Module]]  # teacher, student, student_alone (when the run has it)


def check_device(device: str) -> None:
    """--device of audit and explain: a known name, and CUDA only where there is one (named as the flag it is)."""
    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?|mps", device):
        raise UserError(f"device {device!r}; allowed: cpu, auto, cuda, cuda:N, mps", key="--device")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{device} but CUDA is not available here; allowed: cpu or auto", key="--device")


def check_args(max_images: int, batch_size: int, perturb_names: str | None, levels: list[str],
               split: str | None = None, device: str = "cpu") -> dict[str, tuple[float, ...]]:
    """Every option checked before any model is loaded; returns the perturbations and their severities."""
    if split not in (None, "val", "test"):
        raise UserError(f"split {split!r}; allowed: val, test", key="--split")
    check_device(device)
    if not 1 <= max_images <= MAX_IMAGES:
        raise UserError(f"{max_images} images; allowed: 1 to {MAX_IMAGES:,}", key="--max-images")
    if not 1 <= batch_size <= 4096:
        raise UserError(f"batch size {batch_size}; allowed: 1 to 4096", key="--batch-size")
    return parse_levels(perturb_names, levels)


def _run_teacher(run_dir: Path, recipe: Recipe, metrics: dict[str, Any], needs: str) -> nn.Module:
    """The run's teacher, or exit 2 saying that `needs` (audit, explain) cannot go on without one."""
    if "teacher" not in metrics.get("models", {}):
        raise UserError(f"{run_dir} has no teacher (scheme {metrics.get('scheme')!r} ran without one); {needs} "
                        "needs the teacher the student was distilled from", key="RUN_DIR")
    teacher = load_run_teacher(run_dir, recipe, len(metrics["class_names"]))
    if teacher is None:
        raise UserError(f"{run_dir} has no teacher model (teacher/model.safetensors is missing and the recipe names "
                        f"no teacher weights); {needs} needs the teacher", key="RUN_DIR")
    return teacher


def load_teacher(run_dir: Path, overrides: list[str] | None = None,
                 needs: str = "explain") -> tuple[Path, Any, dict[str, Any], nn.Module]:
    """A finished run's folder, recipe (plus overrides), metrics and teacher: what `explain` starts from."""
    run_dir, recipe, metrics = read_finished_run(run_dir, overrides)
    task = metrics.get("task", "classification")
    if task != "classification":  # a detector or segmenter has no single classifier head to approximate
        raise UserError(f"{run_dir} is a task={task} run; {needs} approximates a classifier's decisions; allowed: "
                        f"a task=classification run (`edgedistill audit` and `compare` take {task} runs)",
                        key="RUN_DIR")
    return run_dir, recipe, metrics, _run_teacher(run_dir, recipe, metrics, needs)


def alone_path(other: Path, recipe: Recipe, metrics: dict[str, Any]) -> Path:
    """The student file of another finished run (e.g. compare's `alone` arm) as the baseline trained alone.

    It must have seen the same data and validation images and be the same architecture; else exit 2."""
    try:
        other, o_recipe, o_metrics = read_finished_run(other)
    except UserError as e:
        raise UserError(str(e).removeprefix(f"{e.key}: ") if e.key else str(e), key="--alone") from None
    path = other / o_metrics.get("primary", "student") / "model.safetensors"
    why = []
    if o_recipe.data.model_dump(mode="json", exclude={"workers", "device_resident"}) != recipe.data.model_dump(
            mode="json", exclude={"workers", "device_resident"}):
        why.append("its data section differs (other images or another validation split)")
    task = metrics.get("task", "classification")
    if task != "classification" and getattr(o_recipe, task) != getattr(recipe, task):  # synthetic scenes, classes
        why.append(f"its {task} section differs (other scenes, classes or thresholds)")
    if o_metrics.get("class_names") != metrics.get("class_names"):
        why.append("its classes differ")
    if o_recipe.student.model != recipe.student.model:
        why.append(f"its student is {o_recipe.student.model}, not {recipe.student.model}")
    if not path.is_file():
        why.append(f"{path} is missing")
    if why:
        raise UserError(f"--alone {other}: {'; '.join(why)}; allowed: a finished run of the same student on the "
                        "same data (e.g. the alone arm of the same compare seed)", key="--alone")
    return path


def load_inputs(run_dir: Path, alone: Path | None = None) -> AuditInputs:
    """The run's recipe, metrics and models; a folder that is not a finished run, or lacks a model: exit 2.

    alone: another run whose student is the baseline trained alone (when this run has none of its own)."""
    run_dir, recipe, metrics = read_finished_run(run_dir)
    task = metrics.get("task", "classification")
    if task != "classification":  # its checks (top-1 agreement, calibration, class-label perturbations) are per label
        raise UserError(f"{run_dir} is a task={task} run; audit checks classifiers (label agreement, calibration, "
                        "perturbed top-1, CKA); allowed: a classification run. Its own metrics.json holds the "
                        "teacher agreement, and `edgedistill compare` pairs runs image by image", key="RUN_DIR")
    primary = metrics.get("primary", "student")
    student_file = run_dir / primary / "model.safetensors"
    if not student_file.is_file():
        raise UserError(f"{run_dir} has no distilled student ({student_file} is missing); audit compares a "
                        "student with its teacher", key="RUN_DIR")
    teacher = _run_teacher(run_dir, recipe, metrics, "audit")
    models = {"teacher": (recipe.teacher.model, teacher),
              "student": (recipe.student.model, load_model(student_file)[0])}
    own = run_dir / "student_alone" / "model.safetensors"
    if alone is not None:
        models["student_alone"] = (recipe.student.model, load_model(alone_path(alone, recipe, metrics))[0])
    elif own.is_file():
        models["student_alone"] = (recipe.student.model, load_model(own)[0])
    return AuditInputs(run_dir, recipe, metrics, models)


def _pooled(feat: Any) -> torch.Tensor:
    """A tapped map [B,C,H,W] (or tokens) → the pooled [B,C] vector the classifier head reads."""
    return to_spatial(feat).float().mean(dim=(2, 3)).cpu()


class _Collector:
    """Per-model clean logits, pooled features and perturbed predictions, accumulated batch by batch."""

    def __init__(self, models: dict[str, nn.Module], example: torch.Tensor, device: torch.device):
        self.models, self.device = models, device
        for m in models.values():
            m.to(device).eval()
        self.layers = {n: default_feature_layer(m, example.to(device)) for n, m in models.items()}
        self.logits: dict[str, list[torch.Tensor]] = {n: [] for n in models}
        self.feats: dict[str, list[torch.Tensor]] = {n: [] for n in models}
        self.preds: dict[tuple[str, float], dict[str, list[torch.Tensor]]] = {}
        self.labels: list[torch.Tensor] = []

    def clean(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.labels.append(y)
        for n, m in self.models.items():
            with FeatureTaps(m, [self.layers[n]]) as taps, torch.inference_mode():
                self.logits[n].append(m(x.to(self.device)).float().cpu())
                self.feats[n].append(_pooled(taps.features[self.layers[n]]))

    def perturbed(self, key: tuple[str, float], x: torch.Tensor) -> None:
        slot = self.preds.setdefault(key, {n: [] for n in self.models})
        with torch.inference_mode():
            for n, m in self.models.items():
                slot[n].append(m(x.to(self.device)).argmax(1).cpu())


def collect(inputs: AuditInputs, chosen: dict[str, tuple[float, ...]], max_images: int, batch_size: int,
            device: torch.device, split: str) -> tuple[_Collector, int]:
    """One pass over the held-out images: clean outputs, then every perturbation at every severity."""
    from ..data import build_data

    r = inputs.recipe
    data = build_data(r.data)
    ds = first_samples(data.held_out(split), max_images, r.data.split_seed)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    px_map = Pixels(data.mean, data.std)
    models = {n: m for n, (_, m) in inputs.models.items()}
    col: _Collector | None = None
    for b, (x, y) in enumerate(loader):
        y = torch.as_tensor(y).long()
        col = col or _Collector(models, x[:2], device)
        col.clean(x, y)
        px = px_map.to_pixels(x)
        for name, levels in chosen.items():
            for i, level in enumerate(levels):
                if name == "fgsm":  # made on the teacher, transferred unchanged to the students
                    with torch.enable_grad():
                        adv = fgsm_pixels(models["teacher"], px.to(device), y, level, px_map.normalize)
                else:
                    adv = perturb(name, px, level, seed=10_000 * b + i)
                col.perturbed((name, level), px_map.normalize(adv))
    assert col is not None  # build_data refuses an empty split
    return col, len(ds)


def _cat(xs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(xs)


def analyse(col: _Collector, chosen: dict[str, tuple[float, ...]], num_classes: int, ece_bins: int,
            kd_T: float) -> dict[str, Any]:
    """Every audit number from the collected outputs (pure: no model runs here)."""
    labels = _cat(col.labels)
    y = labels.numpy()
    logits = {n: _cat(v) for n, v in col.logits.items()}
    preds = {n: lg.argmax(1).numpy() for n, lg in logits.items()}
    feats = {n: _cat(v).numpy() for n, v in col.feats.items()}
    students = [s for s in STUDENTS if s in logits]
    out: dict[str, Any] = {"n_images": len(y), "feature_layers": col.layers, "clean": {}, "fidelity": {},
                           "inherited": {}, "errors": {}, "perturbations": {}}
    for n, lg in logits.items():
        m = classification_metrics(lg, labels, num_classes, ece_bins=ece_bins)
        out["clean"][n] = {"top1": m["top1"], "ece": m["ece"]}
    for s in students:
        out["fidelity"][s] = {**fidelity(logits[s], logits["teacher"], T=kd_T),
                              "cka": linear_cka(feats[s], feats["teacher"])}
        out["inherited"][s] = inherited_errors(preds["teacher"], preds[s], y)
        out["errors"][s] = error_similarity(preds["teacher"], preds[s], y, num_classes)
    for name, levels in chosen.items():
        rows = []
        for level in levels:
            p = {n: _cat(v).numpy() for n, v in col.preds[(name, level)].items()}
            rows.append({"level": level,
                         "top1": {n: 100.0 * float((v == y).mean()) for n, v in p.items()},
                         "agreement": {s: 100.0 * float((p[s] == p["teacher"]).mean()) for s in students}})
        out["perturbations"][name] = {"meaning": PERTURBATIONS[name][3], "rows": rows}
    return out


def summary(audit: dict[str, Any]) -> dict[str, Any]:
    """The `fidelity` section of metrics.json: the headline numbers per student, the details in audit.json."""
    out: dict[str, Any] = {"n_images": audit["n_images"], "details": "audit/audit.json"}
    for s, f in audit["fidelity"].items():
        rows = [r for p in audit["perturbations"].values() for r in p["rows"]]
        out[s] = {"agreement": f["agreement"], "kl": f["kl"], "js": f["js"], "cka": f["cka"],
                  "inherited_rate": audit["inherited"][s]["inherited_rate"],
                  "class_error_corr": audit["errors"][s]["class_error_corr"],
                  "confusion_cosine": audit["errors"][s]["confusion_cosine"],
                  "ece": audit["clean"][s]["ece"],
                  "perturbed_agreement_mean": float(np.mean([r["agreement"][s] for r in rows])) if rows else None}
    out["teacher"] = {"ece": audit["clean"]["teacher"]["ece"]}
    return out
