"""`edgedistill compare`: plan the grid, run its cells through the job scheduler, analyse, report."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from rich.console import Console

from ..analysis.compare import analyze, collect
from ..analysis.plan import Plan, flatten_overrides, make_plan, place
from ..analysis.workers import check_parallel_workers
from ..atomic import atomic_write_text
from ..errors import UserError
from ..jobs import Job, open_study, run_workers, schedule
from ..jobs.runs import open_storage
from ..output_folder import removed_on_user_error
from ..preflight import check_recipe
from ..recipe import load_recipe
from ..run.folder import make_run_dir

# What preflight.check_recipe reads: arms equal on these sections pass or fail it together (a 100-point sweep of
# a loss weight is checked once, not 100 times at about a second each).
_CHECKED = {"data", "teacher", "teachers", "student", "distill", "online", "born_again"}


def _settings(text: str) -> dict:
    """A cell's recipe as the current schema reads it, minus what changes no result: `train.resume` (a resumed
    comparison sets it) and `compare` (cells do not use it). Read through the schema, a cell written by an
    older edgedistill gains the defaults of keys added since, so an upgrade does not refuse a comparison."""
    from ..recipe import build_recipe

    data = build_recipe(yaml.safe_load(text)).model_dump(mode="json")
    data.pop("compare", None)
    data["train"].pop("resume", None)
    return data


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two recipes (the first place a resumed comparison differs)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _write_cells(plan: Plan, folder: Path, resume: bool) -> list[Job]:
    """cells/NAME.yaml per cell; on --resume a cell whose recipe changed since it was written is refused."""
    jobs = []
    for c in plan.cells:
        path = folder / "cells" / f"{c.name}.yaml"
        text = c.recipe.to_yaml()
        old = _settings(path.read_text()) if path.exists() else None
        if old is not None and old != _settings(text):
            keys = _changed(old, _settings(text))
            arm_keys = set(flatten_overrides(plan.cfg.arms.get(c.arm, {})))
            blame = next((k for k in keys if k in arm_keys), None)
            what = f"arm {c.arm!r}" if blame else "the recipe"
            raise UserError(f"{what} differs from the one this comparison started with ({path}): "
                            f"{', '.join(keys[:3])} changed; allowed: the same recipe and arms with --resume, or a "
                            "new comparison without --resume", key=f"compare.arms.{c.arm}" if blame else keys[0])
        if not path.exists():
            atomic_write_text(path, text)
        jobs.append(Job(c.name, path, plan.cfg.metric))
    return jobs


def run_compare(recipe_file: Path, overrides: list[str], *, arms: str | None = None, seeds: int | None = None,
                splits: int | None = None, workers: int | None = None, storage: str | None = None,
                resume: bool = False, console: Console | None = None) -> Path:
    """Run (or resume) a comparison; returns its folder (output.dir/output.name, -2, … when taken)."""
    console = console or Console()
    recipe = load_recipe(recipe_file, overrides)
    if storage:
        open_storage(storage)  # a bad path, URL, driver or server: exit 2 before a folder is made
    plan = make_plan(recipe, arms, seeds, splits, workers)
    checked: dict[str, tuple] = {}
    for arm in plan.arms:  # classes vs weights, per distinct data and models, before any folder or training
        r = next(c.recipe for c in plan.cells if c.arm == arm)
        key = json.dumps(r.model_dump(mode="json", include=_CHECKED), sort_keys=True)
        if key not in checked:
            checked[key] = (r, check_recipe(r))
    check_parallel_workers(list(checked.values()), plan.cfg.workers, len(plan.cells), key="compare.workers")
    folder = make_run_dir(recipe, resume=resume)
    with removed_on_user_error(folder, fresh=not resume):
        place(plan, folder)
        jobs = _write_cells(plan, folder, resume=resume)
        url = storage or str(folder / "study.journal")
        name = f"compare-{folder.name}"
        counts = schedule(open_study(url, name), jobs)
    workers = max(1, min(plan.cfg.workers, counts["queued"] + counts["waiting"]))
    if workers < plan.cfg.workers:
        plan.notes.append(f"compare.workers={plan.cfg.workers} but {workers} run(s) wait: {workers} worker(s)")
    console.print(f"comparison folder: [bold]{folder}[/] — {len(plan.arms)} arms × {plan.cfg.seeds} seeds"
                  + (f" × {plan.cfg.splits} splits" if plan.cfg.splits > 1 else "")
                  + f" = {len(jobs)} runs ({', '.join(f'{v} {k}' for k, v in counts.items() if v)}); "
                  f"{workers} worker(s); run logs in {folder / 'cells'}")
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    run_workers(url, name, workers, folder / "logs", say=lambda m: console.print(f"  {m}", highlight=False))
    left = [c.name for c in plan.cells if not (c.recipe.output.dir / c.recipe.output.name / "metrics.json").exists()]
    if left:
        console.print(f"[yellow]{len(left)} run(s) not finished ({', '.join(left)}): running elsewhere; rerun "
                      "with --resume once they end to analyse[/]")
        return folder
    from ..report.compare import print_compare, write_compare_report

    res = analyze(plan, collect(plan))
    atomic_write_text(folder / "compare.json", json.dumps(res, indent=2))
    write_compare_report(folder, res)
    print_compare(res, console)
    console.print(f"\nreport: [bold]{folder / 'report.html'}[/]")
    return folder
