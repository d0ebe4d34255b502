"""The grid of a comparison: arms × seeds × splits, each cell a resolved recipe; all checked before any work."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import UserError
from ..recipe import Recipe, build_recipe
from ..recipe.compare import CompareConfig
from ..recipe.core import format_validation_error
from ..usertext import parse_mapping

# Keys an arm may not set: compare owns them, or they change the images every arm is tested on.
_MANAGED = ("output.", "train.seed", "train.resume", "compare.", "eval.split")
_DATA_OK = ("data.workers", "data.device_resident")
MAX_RUNS = 200  # runs in one comparison: each cell's recipe is built and checked before any work starts


@dataclass
class Cell:
    arm: str
    seed: int
    split: int
    name: str
    recipe: Recipe


@dataclass
class Plan:
    cfg: CompareConfig
    arms: list[str]
    baseline: str
    cells: list[Cell]
    notes: list[str] = field(default_factory=list)
    sweep: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm → {key: value} of a sensitivity sweep

    @property
    def units(self) -> list[tuple[int, int]]:
        """(seed, split) pairs: the paired unit every arm is run on."""
        return sorted({(c.seed, c.split) for c in self.cells})


def flatten_overrides(over: dict[str, Any]) -> dict[str, Any]:
    """{train: {lr: 0.1}} → {train.lr: 0.1}; dotted keys stay as they are."""
    out: dict[str, Any] = {}
    for k, v in over.items():
        k = str(k)
        if isinstance(v, dict) and "." not in k:
            out.update({f"{k}.{kk}": vv for kk, vv in flatten_overrides(v).items()})
        else:
            out[k] = v
    return out


def arm_overrides(name: str, over: dict[str, Any]) -> list[str]:
    """An arm's overrides as `key=value` strings (values as JSON, which YAML reads back unchanged)."""
    out = []
    for k, v in flatten_overrides(over).items():
        if (k.startswith("data.") and k not in _DATA_OK) or k.startswith(_MANAGED) or k in ("data", "output"):
            what = "the data and validation images" if k.startswith(("data", "eval.split")) else "what compare sets"
            raise UserError(f"arm {name!r} sets {k}={v!r}, but arms must share {what}; allowed in an arm: any key "
                            f"except data.* (but {', '.join(_DATA_OK)}), eval.split, output.*, train.seed, "
                            "train.resume, compare.*", key=f"compare.arms.{name}")
        out.append(f"{k}={json.dumps(v)}")
    return out


def select_arms(cfg: CompareConfig, arms: str | None) -> dict[str, dict[str, Any]]:
    """--arms: a YAML mapping of arms, or comma-separated names of the recipe's compare.arms."""
    if not arms:
        return dict(cfg.arms)
    if arms.lstrip().startswith("{"):
        data = parse_mapping(arms, "--arms")
        try:
            return dict(CompareConfig(arms=data).arms)
        except ValidationError as e:
            raise UserError(format_validation_error(e, "compare", head="--arms")) from None
    names = [a.strip() for a in arms.split(",") if a.strip()]
    unknown = [a for a in names if a not in cfg.arms]
    if unknown:
        raise UserError(f"--arms names {', '.join(map(repr, unknown))}, not in the recipe's compare.arms "
                        f"(allowed: {', '.join(cfg.arms) or 'none defined'}; or a mapping like '{{kd: {{}}}}')",
                        key="compare.arms")
    return {a: cfg.arms[a] for a in names}


def make_plan(recipe: Recipe, arms: str | None = None, seeds: int | None = None, splits: int | None = None,
              workers: int | None = None) -> Plan:
    """Resolve every cell's recipe (validating each arm) and the test settings; raises UserError on bad input."""
    upd = {k: v for k, v in (("seeds", seeds), ("splits", splits), ("workers", workers)) if v is not None}
    try:
        cfg = CompareConfig(**{**recipe.compare.model_dump(), **upd, "arms": select_arms(recipe.compare, arms)})
    except ValidationError as e:  # a bad --seeds/--splits/--workers value
        raise UserError(format_validation_error(e, "compare", head="invalid compare setting")) from None
    _check_cost(cfg)
    sweep = sweep_arms(cfg)
    cfg.arms = {**cfg.arms, **{name: dict(point) for name, point in sweep.items()}}
    if len(cfg.arms) < 2:
        raise UserError(f"a comparison needs at least 2 arms, got {list(cfg.arms) or 'none'}; define them in "
                        "compare.arms or pass --arms", key="compare.arms")
    baseline = cfg.baseline or next(iter(cfg.arms))
    if baseline not in cfg.arms:
        raise UserError(f"compare.baseline={baseline!r} is not an arm (allowed: {', '.join(cfg.arms)})",
                        key="compare.baseline")
    if cfg.seeds * cfg.splits < 2:
        raise UserError(f"compare.seeds={cfg.seeds} and compare.splits={cfg.splits}: one run per arm has no "
                        "spread, so no interval or paired test is possible; allowed: seeds ≥ 2 (--seeds) or "
                        "splits ≥ 2 (--splits)", key="compare.seeds")
    base = recipe.model_dump(mode="json")
    base.pop("compare")  # cells do not carry it: adding seeds later leaves finished cells' recipes unchanged
    cells = []
    for arm, over in cfg.arms.items():
        extra = arm_overrides(arm, over)
        for i in range(cfg.seeds):
            for k in range(cfg.splits):
                seed, split = recipe.train.seed + i, recipe.data.split_seed + k
                name = f"{arm}-s{seed}" + (f"-k{split}" if cfg.splits > 1 else "")
                try:
                    r = build_recipe(base, ["eval.baseline=false", *extra, f"train.seed={seed}",
                                            f"data.split_seed={split}", "train.resume=false", f"output.name={name}"])
                except UserError as e:
                    raise UserError(f"arm {arm!r}: {e}", key=f"compare.arms.{arm}") from None
                cells.append(Cell(arm, seed, split, name, r))
    return Plan(cfg, list(cfg.arms), baseline, cells, _teacher_notes(cells), sweep)


def grid_size(cfg: CompareConfig) -> int:
    """Points of the compare.sweep grid, counted, never listed."""
    return math.prod(len(v) for v in cfg.sweep.values()) if cfg.sweep else 0


def _check_cost(cfg: CompareConfig) -> None:
    """Runs = arms × seeds × splits, counted before a single cell's recipe is built (each costs time and memory)."""
    grid = grid_size(cfg)
    points = min(grid, cfg.sweep_samples) if cfg.sweep_samples is not None else grid
    arms = len(cfg.arms) + points
    runs = arms * cfg.seeds * cfg.splits
    if runs > MAX_RUNS:
        parts = [f"{len(cfg.arms)} arms"] + ([f"{points} sweep points (of a {grid:,}-point grid)"] if grid else [])
        key = "compare.sweep" if points > len(cfg.arms) else "compare.seeds"
        raise UserError(f"{' + '.join(parts)} × {cfg.seeds} seeds × {cfg.splits} splits = {runs:,} runs; allowed: "
                        f"at most {MAX_RUNS} runs in one comparison (fewer seeds, fewer sweep values, or "
                        "compare.sweep_samples)", key=key)


def sweep_arms(cfg: CompareConfig) -> dict[str, dict[str, Any]]:
    """Grid points of compare.sweep (or a seeded random sample of them) as arms named key=value,…; a sample is
    drawn as indices into the grid, so a huge grid is never listed."""
    if not cfg.sweep:
        return {}
    import random

    keys, values = list(cfg.sweep), list(cfg.sweep.values())
    total = grid_size(cfg)
    picked = range(total)
    if cfg.sweep_samples is not None and cfg.sweep_samples < total:
        picked = sorted(random.Random(0).sample(range(total), cfg.sweep_samples))
    points = []
    for i in picked:
        combo = []
        for vals in reversed(values):  # mixed radix, the last key fastest, as itertools.product orders them
            i, r = divmod(i, len(vals))
            combo.append(vals[r])
        points.append(dict(zip(keys, reversed(combo), strict=True)))
    return {",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in p.items()): p for p in points}


def _teacher_notes(cells: list[Cell]) -> list[str]:
    """Arms whose settings give a seed another teacher than the baseline's (the store keys teachers by them)."""
    from ..distill import SCHEMES
    from ..run.identity import teacher_key

    keys: dict[tuple[int, int], dict[str, str]] = {}
    for c in cells:
        if SCHEMES.get(c.recipe.distill.scheme).needs_teacher(c.recipe) and c.recipe.teacher.weights is None:
            keys.setdefault((c.seed, c.split), {})[c.arm] = teacher_key(c.recipe)
    notes = set()
    for by_arm in keys.values():
        if len(set(by_arm.values())) > 1:
            first = next(iter(by_arm.values()))
            notes |= {f"arm {a!r} trains its own teacher per seed (its teacher.*/train.* differ)"
                      for a, k in by_arm.items() if k != first}
    return sorted(notes)


def place(plan: Plan, folder: Path) -> None:
    """Point every cell's run folder into the comparison folder."""
    for c in plan.cells:
        c.recipe.output.dir = folder / "runs"
