"""How many run processes compare or search may start: none that the memory cannot hold."""

from __future__ import annotations

from ..memory_estimate import Estimate, check_workers, estimate
from ..recipe import Recipe


def run_estimate(recipe: Recipe, class_names: list[str]) -> Estimate:
    """One cell's memory estimate, from its models built as the run would build them (no data, no training)."""
    from ..data import build_data
    from ..distill import SCHEMES
    from ..models import create_model
    from ..teachers.build import build_teacher

    sc = recipe.student
    teacher = build_teacher(recipe, class_names) if SCHEMES.get(recipe.distill.scheme).needs_teacher(recipe) else None
    student = create_model(sc.model, len(class_names), weights=sc.weights, resize_head=sc.resize_head,
                           key="student.model")
    n_train = len(build_data(recipe.data).train) if recipe.data.device_resident else 0
    return estimate(recipe, teacher, student, n_train, on_cuda=False)


def check_parallel_workers(recipes: list[tuple[Recipe, list[str]]], workers: int, runs: int, key: str) -> None:
    """`key` (compare.workers, search.workers) × the heaviest recipe's estimate must fit in host RAM; checked
    only when workers > 1 (one worker is one run, which checks itself)."""
    if workers <= 1 or runs <= 1:
        return
    heaviest = max((run_estimate(r, names) for r, names in recipes), key=lambda e: e.host)
    check_workers(heaviest, workers, runs, key=key)
