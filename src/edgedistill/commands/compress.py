"""What `edgedistill compress RUN_DIR|CHECKPOINT` does: find the student (and teacher), run the chain, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ..atomic import atomic_write_text
from ..errors import UserError
from ..output_folder import check_output_dir

if TYPE_CHECKING:
    from ..recipe import Recipe


def _free_dir(base: Path) -> Path:
    """base, or base-2, base-3 … : a second compress run on the same folder never overwrites the first."""
    out, k = base, 2
    while out.exists():
        out, k = base.with_name(f"{base.name}-{k}"), k + 1
    return out


def _numbered(base: Path) -> list[Path]:
    """The existing folders base, base-2, base-3 …, oldest first."""
    def k(p: Path) -> int:
        return 1 if p == base else int(p.name[len(base.name) + 1:])

    found = [p for p in base.parent.glob(f"{base.name}*") if p.is_dir() and (
        p == base or (p.name.startswith(f"{base.name}-") and p.name[len(base.name) + 1:].isdigit()))]
    return sorted(found, key=k)


def _resume_dir(run_dir: Path | None, recipe: Recipe, ckpt: Path) -> Path | None:
    """The compress folder --resume continues: a run folder's newest compress[-k], or for a model file the
    newest output.dir/output.name[-k] that a compress of this same file started; None when there is none."""
    from ..compress.chain import PLAN

    if run_dir is not None:
        return (_numbered(run_dir / "compress") or [None])[-1]
    mine = [p for p in _numbered(recipe.output.dir / recipe.output.name) if (p / PLAN).exists()
            and json.loads((p / PLAN).read_text()).get("source") == str(ckpt.resolve())]
    return mine[-1] if mine else None


def _take_plan(base: dict[str, Any], overrides: list[str], out: Path) -> bool:
    """--resume without compress.stages takes the folder's plan.json: after a kill users retype the bare command."""
    from ..compress.chain import PLAN

    if any(o.split("=", 1)[0].strip().startswith("compress.stages") for o in overrides) or not (out / PLAN).exists():
        return False
    base["compress"] = {**(base.get("compress") or {}), "stages": json.loads((out / PLAN).read_text())["stages"]}
    return True


def compress_target(target: str, overrides: list[str], console: Console, resume: bool = False
                    ) -> dict[str, Any]:
    """Compress a run folder's student (teacher from the run) or a model file; returns the stage result.

    resume: continue the newest compress folder of this target (finished stages reused), else start one.
    """
    from ..compress.chain import check_plan, check_stages, check_teacher_stages, run_compress
    from ..compress.measure import all_threads
    from ..compress.prune import load_pruned
    from ..data import build_data
    from ..engine import resolve_device
    from ..recipe import build_recipe
    from ..report.stages import print_stages, stages_markdown
    from ..run.context import Context
    from ..run.folder import make_run_dir
    from ..run.reader import read_target
    from ..tasks import task_chain
    from ..teachers.loader import load_run_teacher

    ckpt, meta, run_dir, base = read_target(target)
    if (chain := task_chain(meta, "compress")) is not None:  # segmentation: the task's own chain (tasks/)
        if resume and not chain.resumable:
            raise UserError(f"--resume is not yet available for task={meta['task']}; allowed: a fresh compress",
                            key="--resume")
        r = chain.recipe(base, overrides, meta)
        out = _resume_dir(run_dir, r, Path(ckpt)) if resume else None
        if out is not None:
            if _take_plan(base, overrides, out):
                r = chain.recipe(base, overrides, meta)
            check_plan(out, r)  # before any work: a changed stage list is refused, not mixed in
            return chain.compress(ckpt, meta, run_dir, r, out, console, resume=True)
        out = make_run_dir(r, False) if run_dir is None else _free_dir(run_dir / "compress")
        return chain.compress(ckpt, meta, run_dir, r, out, console)
    # A run folder's compress goes into RUN/compress[-k] unless output.dir/output.name is given: honoured.
    own_out = run_dir is None or any(o.split("=", 1)[0].strip().startswith("output.") for o in overrides)
    base.setdefault("train", {})["resume"] = False
    recipe = build_recipe(base, overrides)
    if resume and (found := _resume_dir(None if own_out else run_dir, recipe, Path(ckpt))) is not None \
            and _take_plan(base, overrides, found):
        recipe = build_recipe(base, overrides)
    if not recipe.compress.stages:
        raise UserError("no compression stages given; allowed: a run whose recipe has compress.stages, or "
                        "compress.stages=[…] as an override (see README)", key="compress.stages")
    if own_out:
        check_output_dir(recipe.output.dir)
    student, meta = load_pruned(ckpt)
    check_stages(recipe, student)
    out = _resume_dir(None if own_out else run_dir, recipe, Path(ckpt)) if resume else None
    if out is not None:
        check_plan(out, recipe)  # before any work: a changed stage list is refused, not mixed in
    resume = out is not None
    data = build_data(recipe.data)
    if data.class_names != meta["class_names"]:
        raise UserError(f"the data's classes {data.class_names[:5]}… differ from the model's "
                        f"{meta['class_names'][:5]}…", key="data.root")
    teacher = load_run_teacher(run_dir, recipe, data.num_classes)
    check_teacher_stages(recipe, teacher is not None)
    if out is None:
        out = make_run_dir(recipe, False) if own_out else _free_dir(run_dir / "compress")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "recipe.yaml", recipe.to_yaml())
    console.print(f"compress folder: [bold]{out}[/]" + (" (resuming: finished stages are reused)" if resume
                                                        else ""))
    ctx = Context(recipe, out, data, resolve_device(recipe.train.device), console, resume)
    result = run_compress(ctx, student, teacher, str(meta["model"]), meta, out, resume=resume,
                          source=str(Path(ckpt).resolve()) if own_out else None)
    result["dir"] = str(out)
    lines = ["# edgedistill compression report", "", f"Model `{ckpt}` ({meta['model']}), teacher: "
             f"{'yes' if teacher is not None else 'none'}. Recipe: [recipe.yaml](recipe.yaml); all numbers: "
             "[stages.json](stages.json).", "", *stages_markdown(result, out, "", all_threads())]
    (out / "report.md").write_text("\n".join(lines))
    print_stages(result, console, all_threads())
    console.print(f"\nreport: [bold]{out / 'report.md'}[/]")
    return result
