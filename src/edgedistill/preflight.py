"""Every check of a run before any work: trackers, the output folder, classes against weights, the teachers, both
models built, compress stages, every data split, parallel batches and the memory estimate. A bad recipe exits 2
here, in seconds, before a folder is made or anything is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .data import DataBundle, build_data, class_names_of
from .data.unlabeled import skipped_unlabeled
from .distill import SCHEMES
from .engine import distributed as ddp
from .engine import resolve_device
from .engine.checkpoint import seed_everything
from .errors import UserError
from .memory_estimate import check_memory
from .models import create_model, weights_class_count
from .output_folder import check_output_dir
from .recipe import ModelConfig, Recipe
from .teachers.build import build_teacher
from .teachers.checks import check_teachers, check_unlabeled
from .track import check_trackers


@dataclass
class Ready:
    """What the checks built on the way, handed to the run: nothing is built twice."""

    class_names: list[str]
    scheme: Any
    teacher: nn.Module | None
    student_init: nn.Module
    data: DataBundle
    device: torch.device


def check_recipe(recipe: Recipe) -> list[str]:
    """Checks that need the data's classes or the weights' shapes; all before any work starts."""
    class_names = class_names_of(recipe.data)
    roles = ("teacher", "student") if SCHEMES.get(recipe.distill.scheme).needs_teacher(recipe) else ("student",)
    check_teachers(recipe, class_names)  # several teachers: each by itself (teachers.models.i.weights); zero-shot
    if recipe.teachers.models:
        roles = ("student",)
    check_unlabeled(recipe)
    for role in roles:
        mc: ModelConfig = getattr(recipe, role)
        n = weights_class_count(mc.model, mc.weights, key=f"{role}.weights" if mc.weights else f"{role}.model")
        if n is not None and n != len(class_names) and not mc.resize_head:
            raise UserError(
                f"{mc.model} ({mc.weights or 'checkpoint'}) has {n} classes but the data has {len(class_names)}; "
                f"allowed: {role}.resize_head=true (replace the classifier), or weights for {len(class_names)} classes",
                key=f"{role}.resize_head",
            )
    return class_names


def check_parallel(recipe: Recipe, n_train: int, world: int) -> None:
    """Before any work: the global batch splits evenly and every rank gets at least one full batch."""
    batch = recipe.train.batch_size
    if world == 1:
        return
    if batch % world:
        raise UserError(f"train.batch_size={batch} is the global batch and must divide by the {world} processes; "
                        f"allowed: a multiple of {world}", key="train.batch_size")
    if n_train // world < batch // world:
        raise UserError(f"{world} processes × {batch // world} images per step need ≥ {batch} train images but the "
                        f"train split has {n_train}; use fewer processes (--nproc_per_node) or a smaller "
                        "train.batch_size", key="train.batch_size")


def preflight(recipe: Recipe) -> Ready:
    """Run every check in order; returns what they built (models, data, device)."""
    check_trackers(recipe.track)  # a tracker's missing library fails now, naming track.X
    check_output_dir(recipe.output.dir)  # before any work; make_run_dir asks again once models are built
    class_names = check_recipe(recipe)
    # Build both models before any work, so a bad name or head fails in seconds, not after training.
    sc = recipe.student
    scheme = SCHEMES.get(recipe.distill.scheme, key="distill.scheme")
    needs_teacher = scheme.needs_teacher(recipe)
    seed_everything(recipe.train.seed)  # initial weights depend on the seed only, not on what ran before
    teacher = build_teacher(recipe, class_names) if needs_teacher else None
    student_init = create_model(sc.model, len(class_names), weights=sc.weights, resize_head=sc.resize_head,
                                key="student.model")
    scheme.prepare(recipe, len(class_names))
    if recipe.compress.stages:
        from .compress.chain import check_stages, check_teacher_stages

        check_stages(recipe, student_init)
        check_teacher_stages(recipe, teacher is not None)
    device = resolve_device(recipe.train.device)
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    data = build_data(recipe.data)  # every split checked, and the memory estimate, before a folder is made
    unlabeled_bad = skipped_unlabeled(recipe.data)  # data.bad_images=skip: counted and reported like labelled ones
    data.skipped, data.skipped_files = data.skipped + len(unlabeled_bad), [*data.skipped_files, *unlabeled_bad]
    check_parallel(recipe, len(data.train), ddp.world_size())
    check_memory(recipe, teacher, student_init, len(data.train), device, ddp.world_size())
    return Ready(class_names, scheme, teacher, student_init, data, device)
