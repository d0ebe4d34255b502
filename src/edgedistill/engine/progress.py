"""A rich progress bar per training stage (loss, lr, images/s, ETA) and one summary line per epoch."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrainProgress:
    """Live bar on a terminal; on a pipe (CI, logs) only the per-epoch lines are printed."""

    def __init__(self, console: Console, name: str, epochs: int, steps_per_epoch: int, start_epoch: int = 0):
        self.console, self.name, self.epochs = console, name, epochs
        self.progress = Progress(
            TextColumn("[bold cyan]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.progress.add_task(
            self._desc(start_epoch), total=epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch,
            loss=float("nan"), lr=0.0, ips=0.0,
        )
        self.epoch = start_epoch

    def _desc(self, epoch: int) -> str:
        return f"{self.name} {min(epoch + 1, self.epochs)}/{self.epochs}"

    def __enter__(self) -> TrainProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def step(self, **fields: float) -> None:
        self.progress.update(self.task, advance=1, **fields)

    def epoch_done(self, record: dict[str, Any], monitor: str) -> None:
        self.epoch = record["epoch"]
        self.progress.update(self.task, description=self._desc(self.epoch))
        terms = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "lr", "images_per_s")
                          and not k.startswith("val_"))
        val = record.get(f"val_{monitor}")
        val_s = f"  [green]val {monitor} {val:.2f}[/]" if val is not None else ""
        self.console.print(
            f"[cyan]{self.name}[/] epoch {self.epoch:>3}/{self.epochs}  {terms}{val_s}  "
            f"[dim]{record['images_per_s']:.0f} img/s[/]"
        )
