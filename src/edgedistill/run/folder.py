"""Where a run lives: output.dir/output.name, numbered when taken; the latest one when resuming."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..recipe import Recipe


def make_run_dir(recipe: Recipe, resume: bool) -> Path:
    """output.dir/output.name, or name-2, -3 … when taken; resuming picks the latest existing one."""
    from ..output_folder import check_output_dir

    base, name = recipe.output.dir, recipe.output.name
    check_output_dir(base)
    taken = [base / name] + sorted(base.glob(f"{name}-*"), key=lambda p: int(p.name.rsplit("-", 1)[1])
                                   if p.name.rsplit("-", 1)[1].isdigit() else 0)
    taken = [p for p in taken if p.is_dir() and (p == base / name or p.name.rsplit("-", 1)[1].isdigit())]
    if resume:
        if not taken:
            raise UserError(f"nothing to resume in {base / name}", key="train.resume")
        return taken[-1]
    run_dir, k = base / name, 2
    while run_dir.exists():
        run_dir, k = base / f"{name}-{k}", k + 1
    run_dir.mkdir(parents=True)
    return run_dir
