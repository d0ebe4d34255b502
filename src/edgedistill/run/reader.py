"""Reading a run folder: its metrics, its recipe, which file is its student, and what a command's TARGET (a run
folder or a model file) starts from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import UserError


def resolve_checkpoint(path: str) -> Path:
    """A run folder means its distilled student; a file must be a model written by edgedistill."""
    p = Path(path).expanduser()
    if p.is_dir():
        primary = _primary(p)
        for cand in (p / primary / "model.safetensors", p / "model.safetensors"):
            if cand.exists():
                return cand
        raise UserError(f"{p} is a folder without {primary}/model.safetensors (not an edgedistill run folder)")
    if not p.exists():
        raise UserError(f"no such file or folder: {p}")
    if p.suffix != ".safetensors":
        raise UserError(f"{p}: expected a .safetensors model written by edgedistill or a run folder")
    return p


def _primary(run_dir: Path) -> str:
    """The run's student: `student`, or the model metrics.json names (peer1 online, genN born-again)."""
    try:
        return str(read_metrics(run_dir).get("primary", "student"))
    except (OSError, ValueError):
        return "student"


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A finished run's metrics.json."""
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def read_finished_run(run_dir: Path, overrides: list[str] | None = None) -> tuple[Path, Any, dict[str, Any]]:
    """The run folder, its recipe (plus overrides) and metrics; a folder that is not a finished run: exit 2."""
    from ..recipe import load_recipe

    run_dir = Path(run_dir).expanduser()
    for f in ("recipe.yaml", "metrics.json"):
        if not (run_dir / f).is_file():
            raise UserError(f"{run_dir} has no {f}; allowed: the folder of a finished `edgedistill run`",
                            key="RUN_DIR")
    recipe = load_recipe(run_dir / "recipe.yaml", overrides or [])
    return run_dir, recipe, read_metrics(run_dir)


def read_target(target: str) -> tuple[Path, dict[str, Any], Path | None, dict[str, Any]]:
    """A command's TARGET, a run folder or a .safetensors model: the model file, its meta, the run folder (None
    for a file) and the recipe to start from (the run's recipe.yaml, else the data section the file records)."""
    from ..models import read_meta
    from ..recipe import load_yaml

    ckpt = resolve_checkpoint(target)
    meta = read_meta(ckpt)
    run_dir = Path(target).expanduser() if Path(target).expanduser().is_dir() else None
    base = load_yaml(run_dir / "recipe.yaml") if run_dir and (run_dir / "recipe.yaml").exists() else {
        "data": meta.get("data", {})}
    return ckpt, meta, run_dir, base
