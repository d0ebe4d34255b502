"""`edgedistill run` and `demo`: a recipe through the pipeline; `--strict`: the budget verdict as the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console


def run_recipe(recipe_file: Path | None, overrides: list[str], console: Console, resume: bool = False) -> Path:
    """Run RECIPE_FILE (the bundled demo recipe when None) with overrides; returns the run folder."""
    from ..pipeline import run
    from ..recipe import load_recipe
    from ..recipes import recipe_path

    extra = ["train.resume=true"] if resume else []
    return run(load_recipe(recipe_path("demo") if recipe_file is None else recipe_file, overrides + extra), console)


def exit_if_strict(strict: bool, err_console: Console, *, run_dir: Path | None = None,
                   result: dict[str, Any] | None = None) -> None:
    """--strict: a deploy.budget that failed or cannot be measured here (a run folder's, or a compress result's)
    ends the command with exit code 3."""
    import typer

    from ..deploy.budget import STRICT_EXIT_CODE, run_strict_failure, strict_failure

    failure = run_strict_failure(run_dir) if run_dir is not None else strict_failure(result)
    if strict and failure:
        err_console.print(f"[bold red]{failure}[/] (--strict)")
        raise typer.Exit(STRICT_EXIT_CODE)
