"""One tracker interface: what a run logs (per-epoch terms, stage table, final metrics, recipe, report).

Each tracker (TensorBoard, MLflow, W&B) implements `Tracker` and registers a factory in TRACKERS; `Trackers`
fans every call out to the ones the recipe's `track:` section turns on. The engine only sees
`epoch_hook(stage)`, a plain `(epoch, record)` callback, so it still knows nothing of trackers or methods.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from ..recipe import Recipe

Scalar = str | int | float | bool | None
ARTIFACTS = ("report.md", "report.html", "metrics.json", "recipe.yaml")


class Tracker(Protocol):
    """What every tracker backend does; `step` is the epoch within a stage, or 0 for run-level values."""

    def params(self, params: dict[str, Scalar]) -> None: ...

    def metrics(self, values: dict[str, float], step: int, stage: str | None = None) -> None: ...

    def table(self, name: str, rows: list[dict[str, Scalar]]) -> None: ...

    def artifact(self, path: Path) -> None: ...

    def close(self, failed: bool) -> None: ...


# name → factory(track_cfg, run_dir, output_dir) -> Tracker; meta: module (import name), pip (install command)
TRACKERS: Registry[Callable[..., Tracker]] = Registry("tracker")


def enabled(cfg: Any) -> list[str]:
    """The trackers the `track:` section turns on, in registry order."""
    return [e.name for e in TRACKERS if getattr(cfg, e.name, False)]


def check_trackers(cfg: Any) -> None:
    """Before any work: every tracker turned on can import its library, else exit 2 naming the key."""
    for name in enabled(cfg):
        meta = TRACKERS.entry(name).meta
        try:
            importlib.import_module(meta["module"])
        except ImportError as e:
            raise UserError(f"track.{name}=true but the {meta['module']} package cannot be imported ({e}); "
                            f"allowed: {meta['pip']}, or track.{name}=false", key=f"track.{name}") from None


def flatten(obj: Any, prefix: str = "") -> dict[str, Scalar]:
    """Nested dicts → dotted keys; lists become JSON text, so every value is a scalar a tracker accepts."""
    if isinstance(obj, dict):
        out: dict[str, Scalar] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, (list, tuple)):
        return {prefix: json.dumps(obj, default=str)}
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return {prefix: obj}
    return {prefix: str(obj)}


def numbers(values: dict[str, Any]) -> dict[str, float]:
    """The numeric entries (no bools, no NaN-free promise: a tracker shows NaN as it is)."""
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Trackers:
    """The trackers of one run; empty (all calls no-ops) until `open`, and on every rank but 0."""

    def __init__(self) -> None:
        self.active: dict[str, Tracker] = {}

    def open(self, recipe: Recipe, run_dir: Path) -> None:
        """Start every tracker the recipe turns on and log the recipe (flattened) as parameters."""
        for name in enabled(recipe.track):
            try:
                self.active[name] = TRACKERS.get(name)(recipe.track, run_dir, recipe.output.dir)
            except Exception as e:  # an unreachable server, a store it cannot open: one line naming the key
                self.close(failed=True)
                key = "track.mlflow_uri" if name == "mlflow" and recipe.track.mlflow_uri else f"track.{name}"
                raise UserError(f"{key}: {name} could not start a run ({type(e).__name__}: {e}); allowed: "
                                f"fix it, or track.{name}=false", key=key) from None
        self.params(flatten(recipe.model_dump(mode="json")))

    def params(self, params: dict[str, Scalar]) -> None:
        for t in self.active.values():
            t.params(params)

    def metrics(self, values: dict[str, Any], step: int, stage: str | None = None) -> None:
        nums = numbers(values)
        for t in self.active.values():
            t.metrics(nums, step, stage)

    def epoch_hook(self, stage: str) -> Callable[[int, dict[str, Any]], None] | None:
        """The engine's on_epoch_end for one stage: every number of the epoch's record as `stage/key`."""
        if not self.active:
            return None

        def hook(epoch: int, record: dict[str, Any]) -> None:
            self.metrics({f"{stage}/{k}": v for k, v in record.items()}, epoch, stage)

        return hook

    def finish(self, metrics: dict[str, Any], run_dir: Path) -> None:
        """Run-level results: final metrics per model, the compression stage table, report and charts."""
        if not self.active:
            return
        final = {f"final/{name}/{k}": v for name, entry in metrics.get("models", {}).items()
                 for k, v in flatten(entry).items()}
        final.update({f"final/comparison/{k}": v for k, v in flatten(metrics.get("comparison", {})).items()})
        self.metrics(final, 0)
        stages = metrics.get("stages") or []
        if stages:
            rows = [flatten({k: v for k, v in e.items() if k != "logits_argmax"}) for e in stages]
            for e, row in zip(stages, rows):
                label = e["stage"] if e.get("index") == "ref" else f"{e.get('index')}-{e['stage']}"
                self.metrics({f"compress_table/{label}/{k}": v for k, v in row.items()}, 0)
            for t in self.active.values():
                t.table("compress_stages", rows)
        paths = [run_dir / a for a in ARTIFACTS] + sorted(run_dir.glob("*.png"))
        for p in paths:
            if p.is_file():
                for t in self.active.values():
                    t.artifact(p)

    def close(self, failed: bool = False) -> None:
        for t in self.active.values():
            t.close(failed)
        self.active = {}

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(failed=exc_type is not None)
