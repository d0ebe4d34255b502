"""Weights & Biases offline: all lands in RUN/wandb; `wandb sync RUN/wandb/offline-run-*` uploads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import TRACKERS, Scalar


class WandbTracker:
    """Per-stage epochs on their own step axis (define_metric), run-level values in the summary."""

    def __init__(self, cfg: Any, run_dir: Path, output_dir: Path):
        import wandb

        self.wandb, self.run_dir, self.stages = wandb, run_dir, set()
        self.run = wandb.init(mode="offline",  # = WANDB_MODE=offline: never the network
                               dir=str(run_dir), project=cfg.project, name=run_dir.name,
                              reinit="create_new", settings=wandb.Settings(silent=True, console="off"))

    def params(self, params: dict[str, Scalar]) -> None:
        self.run.config.update(params, allow_val_change=True)

    def metrics(self, values: dict[str, float], step: int, stage: str | None = None) -> None:
        if stage is None:
            self.run.summary.update(values)
            return
        if stage not in self.stages:  # every stage counts its own epochs from 1
            self.stages.add(stage)
            self.run.define_metric(f"{stage}/epoch", hidden=True)
            self.run.define_metric(f"{stage}/*", step_metric=f"{stage}/epoch")
        self.run.log({**values, f"{stage}/epoch": step})

    def table(self, name: str, rows: list[dict[str, Scalar]]) -> None:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        data = [[None if r.get(c) is None else str(r[c]) for c in cols] for r in rows]
        self.run.log({name: self.wandb.Table(columns=cols, data=data)})

    def artifact(self, path: Path) -> None:
        self.run.save(str(path), base_path=str(path.parent), policy="now")

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


TRACKERS.register("wandb", module="wandb", pip="pip install wandb")(WandbTracker)
