"""The one loader of a finished run's teacher, for the commands that start from a run (compress, audit, explain)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..recipe import Recipe


def load_run_teacher(run_dir: Path | None, recipe: Recipe, num_classes: int) -> nn.Module | None:
    """The teacher this run distilled from: trained here (RUN/teacher/model.safetensors), a file: spec, or given
    weights (seeded, so a resized head is the same every time); None when it had none."""
    from ..models import create_model, load_model

    trained = run_dir / "teacher" / "model.safetensors" if run_dir is not None else None
    if trained is not None and trained.is_file():
        return load_model(trained)[0]
    tc = recipe.teacher
    if tc.model.startswith("file:"):
        return load_model(Path(tc.model[5:]).expanduser())[0]
    if tc.weights is not None:
        torch.manual_seed(recipe.train.seed)
        return create_model(tc.model, num_classes, weights=tc.weights, resize_head=tc.resize_head, key="teacher.model")
    return None
