"""The audit of a segmentation or detection run: teacher and students on held-out images, clean and under each
perturbation, scored by the task's own evaluation (mIoU and per-pixel agreement, or COCO mAP and box agreement).

Per perturbation and severity: each model's metric, its drop from clean (points) and retention (perturbed /
clean, %), each student's agreement with the teacher on the same perturbed images, and two Wilcoxon signed-rank
tests on the per-image scores compare already pairs (per-image IoU, per-image mAP): each model clean vs
perturbed, and each student's per-image drop vs the teacher's (does the student lose more?), Holm-corrected over
the audit. The task (tasks/seg_audit.py, tasks/det_audit.py) supplies the evaluation and the data; this file
holds no metric of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..evaluate.audit_spec import AuditSpec, Batch
from . import stats
from .perturb import PERTURBATIONS, Pixels, fgsm_step, perturb

TEST = "asymptotic"  # scipy's normal approximation: the audit runs up to 3 tests per row (stats.per_image_wilcoxon)


def check_perturbations(task: AuditSpec, chosen: dict[str, tuple[float, ...]], named: str | None
                        ) -> tuple[dict[str, tuple[float, ...]], dict[str, str]]:
    """The perturbations this task can run and the skipped ones with why; a skipped one named in --perturb: exit 2."""
    if "fgsm" not in chosen or task.fgsm_loss is not None:
        return chosen, {}
    if named is not None:
        can = ", ".join(n for n in PERTURBATIONS if n != "fgsm")
        raise UserError(f"fgsm on a task={task.task} run: {task.fgsm_skip}; allowed: {can}", key="--perturb")
    return {n: v for n, v in chosen.items() if n != "fgsm"}, {"fgsm": task.fgsm_skip}


def student_teacher_models(run_dir: Path, recipe: Any, metrics: dict[str, Any], teacher: nn.Module | None,
                           load: Callable[[Path], nn.Module], alone: Path | None) -> dict[str, tuple[str, nn.Module]]:
    """teacher, distilled student and student alone (own, or --alone RUN's) of a finished dense run; exit 2 without
    a teacher or a student."""
    from .audit import alone_path

    student_file = run_dir / metrics.get("primary", "student") / "model.safetensors"
    if not student_file.is_file():
        raise UserError(f"{run_dir} has no distilled student ({student_file} is missing); audit compares a "
                        "student with its teacher", key="RUN_DIR")
    if teacher is None:
        raise UserError(f"{run_dir} has no teacher model (teacher/model.safetensors is missing and the recipe names "
                        "no teacher weights); audit needs the teacher", key="RUN_DIR")
    models = {"teacher": (recipe.teacher.model, teacher), "student": (recipe.student.model, load(student_file))}
    own = run_dir / "student_alone" / "model.safetensors"
    if alone is not None:
        models["student_alone"] = (recipe.student.model, load(alone_path(alone, recipe, metrics)))
    elif own.is_file():
        models["student_alone"] = (recipe.student.model, load(own))
    return models


def perturbed(task: AuditSpec, loader: Iterable[Batch], name: str, level: float, i: int,
              teacher: nn.Module) -> Iterator[Batch]:
    """The loader's batches with perturbation `name` at `level` applied to the [0, 1] pixels, targets untouched
    (every perturbation here maps images to images: no box or mask moves); seeded as classification's audit."""
    pixels = Pixels(task.mean, task.std)
    for b, (x, *rest) in enumerate(loader):
        px = pixels.to_pixels(x)
        if name == "fgsm":  # made on the teacher, transferred unchanged to the students
            loss = task.fgsm_loss
            assert loss is not None
            with torch.enable_grad():
                adv = fgsm_step(lambda z, b=(x, *rest): loss(teacher, z, b), px.to(task.device), level,
                                pixels.normalize).cpu()
        else:
            adv = perturb(name, px, level, seed=10_000 * b + i)
        yield (pixels.normalize(adv), *rest)


def _scores(task: AuditSpec, s: dict[str, Any]) -> dict[str, Any]:
    return {k: s.get(k) for k in (task.metric, *task.extra)}


def _row(task: AuditSpec, level: float, clean: dict[str, dict[str, Any]], got: dict[str, dict[str, Any]],
         students: list[str]) -> dict[str, Any]:
    """One severity: metric, drop, retention and agreement per model, and the per-image tests."""
    m = task.metric
    img = {n: np.asarray(s[task.per_image], float) for n, s in got.items()}
    img0 = {n: np.asarray(s[task.per_image], float) for n, s in clean.items()}
    drop_i = {n: img0[n] - img[n] for n in got}
    drop = {n: (clean[n][m] or 0.0) - (got[n][m] or 0.0) for n in got}
    return {
        "level": level, m: {n: got[n][m] for n in got}, "drop": drop,
        "retention": {n: 100 * (got[n][m] or 0.0) / clean[n][m] if clean[n][m] else None for n in got},
        "drop_gap": {s: drop[s] - drop["teacher"] for s in students},
        "agreement": {s: got[s].get("teacher_agreement") for s in students},
        "scores": {n: _scores(task, s) for n, s in got.items()},
        "clean_vs_perturbed": {n: stats.defined_wilcoxon(img0[n], img[n], TEST) for n in got},
        "drop_vs_teacher": {s: stats.defined_wilcoxon(drop_i[s], drop_i["teacher"], TEST) for s in students},
    }


def _holm(rows: list[dict[str, Any]], test: str) -> None:
    """Holm-adjusted p of every `test` in the audit (one family: every perturbation, severity and model)."""
    cells = [c for r in rows for c in r[test].values()]
    for c, p in zip(cells, stats.correct([c["p"] if c["p"] is not None else 1.0 for c in cells]), strict=True):
        c["p_holm"] = p


def run_dense_audit(task: AuditSpec, models: dict[str, nn.Module], loader: Iterable[Batch],
                    chosen: dict[str, tuple[float, ...]]) -> dict[str, Any]:
    """Every model clean, then under every perturbation at every severity; the audit dict (no files written)."""
    students = [s for s in ("student", "student_alone") if s in models]
    clean = task.evaluate(models, loader)
    out: dict[str, Any] = {
        "task": task.task, "metric": task.metric, "metric_label": task.label, "per_image": task.per_image,
        "agreement_kind": task.agreement, "n_images": next(iter(clean.values()))["n"],
        "clean": {n: _scores(task, s) for n, s in clean.items()},
        "fidelity": {s: {"agreement": clean[s].get("teacher_agreement")} for s in students},
        "perturbations": {}}
    rows_all: list[dict[str, Any]] = []
    for name, levels in chosen.items():
        rows = []
        for i, level in enumerate(levels):
            got = task.evaluate(models, perturbed(task, loader, name, level, i, models["teacher"]))
            rows.append(_row(task, level, clean, got, students))
        out["perturbations"][name] = {"meaning": PERTURBATIONS[name][3], "rows": rows}
        rows_all += rows
    _holm(rows_all, "clean_vs_perturbed")
    _holm(rows_all, "drop_vs_teacher")
    return out


def audit_run(task: AuditSpec, run_dir: Path, r: Any, metrics: dict[str, Any], chosen: dict[str, tuple[float, ...]],
              *, named: str | None, max_images: int, batch_size: int, split: str, alone: Path | None,
              say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """A finished dense run audited: perturbations the task can run (checked first), its held-out split (a seeded
    sample of at most max_images), its models; returns the audit with the models' specs and what was skipped."""
    from ..data.build import first_samples

    assert task.loader is not None and task.load is not None
    chosen, skipped = check_perturbations(task, chosen, named)
    evals = task.data()
    if split not in evals:
        raise UserError(f"this dataset has no {split} split; allowed: {', '.join(evals)}", key="--split")
    models = student_teacher_models(run_dir, r, metrics, task.teacher(), task.load, alone)
    held = task.loader(first_samples(evals[split], max_images, r.data.split_seed), batch_size)
    say(f"auditing {run_dir}: {', '.join(models)} on ≤ {max_images} {split} images, "
        f"{sum(len(v) for v in chosen.values())} perturbed copies each"
        + "".join(f"; {n} skipped: {why}" for n, why in skipped.items()))
    audit = run_dense_audit(task, {n: m for n, (_, m) in models.items()}, held, chosen)
    return {"models": {n: spec for n, (spec, _) in models.items()}, **audit, "skipped": skipped}


def dense_summary(audit: dict[str, Any]) -> dict[str, Any]:
    """The `fidelity` section of metrics.json for a dense run: the headline numbers per student, the details in
    audit/audit.json."""
    rows = [r for p in audit["perturbations"].values() for r in p["rows"]]

    def mean(xs: list[Any]) -> float | None:
        xs = [x for x in xs if x is not None]
        return float(np.mean(xs)) if xs else None

    out: dict[str, Any] = {"n_images": audit["n_images"], "details": "audit/audit.json", "metric": audit["metric"]}
    for s, f in audit["fidelity"].items():
        out[s] = {"agreement": f["agreement"], "perturbed_agreement_mean": mean([r["agreement"][s] for r in rows]),
                  "retention_mean": mean([r["retention"][s] for r in rows]),
                  "drop_gap_mean": mean([r["drop_gap"][s] for r in rows]),
                  "loses_more_than_teacher": sum(1 for r in rows if r["drop_vs_teacher"][s]["p_holm"] < 0.05
                                                 and r["drop_gap"][s] > 0)}
    out["teacher"] = {audit["metric"]: audit["clean"]["teacher"][audit["metric"]],
                      "retention_mean": mean([r["retention"]["teacher"] for r in rows])}
    return out


__all__ = ["audit_run", "check_perturbations", "dense_summary", "perturbed", "run_dense_audit",
           "student_teacher_models"]
