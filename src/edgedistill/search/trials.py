"""One search trial: the teacher trained once, each candidate's flash and full recipes, and the run of either.

Trials are ordinary run folders (`search/flash/SLUG`, `search/full/SLUG`) made by the ordinary pipeline,
so a user can open, resume or compress any of them. The teacher is trained (or loaded) once before the
study; every trial names its weights file and reads its outputs from one shared teacher-output cache.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ..atomic import atomic_write_text
from ..filelock import flock
from ..recipe import Recipe, build_recipe
from .space import Candidate


@dataclass
class Flash:
    """The flash budget as recipe settings: epochs and, below one epoch, a train subset."""

    steps: int
    epochs: int
    max_train_samples: int | None
    full_steps: int


def flash_budget(recipe: Recipe, n_train: int) -> Flash:
    """search.flash × train.epochs × the train split, in steps (at least search.min_steps, at most the full budget)."""
    batch = recipe.train.batch_size
    per_epoch = max(1, n_train // batch)
    full = recipe.train.epochs * per_epoch
    steps = min(full, max(recipe.search.min_steps, math.ceil(recipe.search.flash * full)))
    if steps >= per_epoch:
        return Flash(steps, max(1, round(steps / per_epoch)), None, full)
    return Flash(steps, 1, steps * batch, full)


def prepare_teacher(recipe: Recipe, folder: Path, console: Console) -> str | None:
    """Train the recipe's teacher once in `folder/teacher` (or reuse it); its weights file, or None when the
    recipe gives weights or needs no teacher."""
    from ..teachers.rule import trains_teacher

    # Given weights (a probe's too): every trial starts from them; the search trains only a teacher without weights.
    if not trains_teacher(recipe) or recipe.teacher.weights is not None:
        return None
    final = folder / "teacher" / "teacher" / "model.safetensors"
    with flock(folder / "teacher.lock"):  # another machine or process of this search trains it: wait for it
        if not final.exists():
            _train_teacher(recipe, folder, console)
    return str(final)


def _train_teacher(recipe: Recipe, folder: Path, console: Console) -> None:
    from ..data import build_data
    from ..engine import resolve_device
    from ..engine.checkpoint import seed_everything
    from ..models import create_model
    from ..pipeline import get_teacher
    from ..preflight import check_recipe
    from ..run.context import Context

    tc = recipe.teacher
    r = build_recipe(trial_base(recipe), [f"output.dir={json.dumps(str(folder))}", "output.name=teacher"])
    names = check_recipe(r)
    seed_everything(r.train.seed)
    model = create_model(tc.model, len(names), resize_head=tc.resize_head, key="teacher.model")
    ctx = Context(r, folder / "teacher", build_data(r.data), resolve_device(r.train.device), console, resume=True)
    console.print(f"[cyan]search[/]: training the teacher {tc.model} once, for every trial ({folder / 'teacher'})")
    get_teacher(ctx, model)


def trial_base(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, minus the sections a trial does not carry."""
    base = recipe.model_dump(mode="json")
    base.pop("search")
    base.pop("compare")
    return base


def candidate_recipe(recipe: Recipe, cand: Candidate, teacher: str | None, out_dir: Path,
                     flash: Flash | None) -> Recipe:
    """A trial's recipe: the candidate as student, the shared teacher and cache, no baseline, no compression;
    flash trials train `flash` steps (no warm-up or milestones: they would not fit)."""
    over = {"student.model": cand.spec, "student.weights": None, "data.image_size": cand.image_size,
            "eval.baseline": False, "compress.stages": [], "train.resume": False,
            "output.dir": str(out_dir), "output.name": cand.slug,
            "distill.teacher_cache": True, "distill.cache_dir": str(out_dir.parent / "teacher-cache")}
    if teacher is not None:
        over["teacher.weights"] = teacher
    if recipe.data.device_resident and recipe.data.augment != "none":
        # the shared teacher cache stores the CPU augmentation's draws; the device path draws its own
        over["data.device_resident"] = False
    if flash is not None:
        over.update({"train.epochs": flash.epochs, "train.warmup_epochs": 0.0, "train.milestones": []})
        if flash.max_train_samples is not None:
            cap = recipe.data.max_train_samples
            over["data.max_train_samples"] = min(flash.max_train_samples, cap or flash.max_train_samples)
        over["eval.latency_runs"] = min(recipe.eval.latency_runs, 10)
    return build_recipe(trial_base(recipe), [f"{k}={json.dumps(v)}" for k, v in over.items()])


def write_recipe(recipe: Recipe, path: Path) -> Path:
    """The trial's recipe file; a resumed search keeps the file it wrote first."""
    if not path.exists():
        atomic_write_text(path, recipe.to_yaml())
    return path


def run_candidate(recipe: Recipe, cand: Candidate, teacher: str | None, out_dir: Path, flash: Flash | None) -> Path:
    """The candidate's run folder, trained now, resumed, or reused when finished; one process per candidate."""
    from ..jobs.runs import run_job

    path = write_recipe(candidate_recipe(recipe, cand, teacher, out_dir, flash), out_dir / f"{cand.slug}.yaml")
    with flock(path.with_suffix(".lock")):  # a second worker on the same candidate waits, then reuses
        return run_job(path, path.with_suffix(".log"))
