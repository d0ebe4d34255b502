"""What every scheme shares: the job the pipeline hands it, its result, the base class and the registry."""


from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from rich.console import Console
from torch import nn

from ...registry import Registry

if TYPE_CHECKING:
    from ...recipe import Recipe

# train(stage, module, {name: (spec, model)}) → {name: trained model}, each saved as run_dir/name/model.safetensors
TrainFn = Callable[[str, nn.Module, dict[str, tuple[str, nn.Module]]], dict[str, nn.Module]]


@dataclass
class SchemeJob:
    """What the pipeline hands a scheme: the recipe, a teacher (or None), fresh students and a trainer."""

    recipe: Recipe
    num_classes: int
    teacher: nn.Module | None
    new_student: Callable[[], nn.Module]  # the student's initial weights, the same ones the baseline starts from
    student_alone: Callable[[], nn.Module]  # the student trained alone (trained once, then reused)
    train: TrainFn
    console: Console = field(default_factory=Console)

    @property
    def example(self) -> torch.Tensor:
        s = self.recipe.data.image_size
        return torch.zeros(2, 3, s, s)


@dataclass
class SchemeResult:
    """The trained models to evaluate ({name: (spec, model)}) and which one is the run's student."""

    models: dict[str, tuple[str, nn.Module]]
    primary: str


class Scheme:
    """Base of a scheme; subclasses register with SCHEMES and implement `run`."""

    stage: str = "student"  # name of the timing entry in metrics.json

    def needs_teacher(self, recipe: Recipe) -> bool:
        raise NotImplementedError

    def prepare(self, recipe: Recipe, num_classes: int) -> None:
        """Build what the scheme will train before any work, so a bad model name fails in seconds."""

    def run(self, job: SchemeJob) -> SchemeResult:  # pragma: no cover
        raise NotImplementedError


SCHEMES: Registry[Scheme] = Registry("scheme")
