"""TensorBoard: event files in RUN/tensorboard, through torch's SummaryWriter (needs tensorboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import TRACKERS, Scalar


def _markdown(rows: list[dict[str, Scalar]]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


class TensorBoardTracker:
    """Scalars per stage and epoch; the recipe as hparams and text; report as text, charts as images."""

    def __init__(self, cfg: Any, run_dir: Path, output_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def params(self, params: dict[str, Scalar]) -> None:
        from torch.utils.tensorboard.summary import hparams

        # Written into this run's own event file (add_hparams would start a sub-run folder per call).
        hp = {k: "null" if v is None else v for k, v in params.items()}
        for summary in hparams(hp, {}):
            self.writer.file_writer.add_summary(summary)
        self.writer.add_text("recipe", "\n".join(f"    {k}: {v}" for k, v in params.items()))

    def metrics(self, values: dict[str, float], step: int, stage: str | None = None) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()  # an epoch is visible in TensorBoard as soon as it ends

    def table(self, name: str, rows: list[dict[str, Scalar]]) -> None:
        self.writer.add_text(name, _markdown(rows))

    def artifact(self, path: Path) -> None:
        if path.suffix == ".png":
            import numpy as np
            from PIL import Image

            self.writer.add_image(path.stem, np.asarray(Image.open(path).convert("RGB")), dataformats="HWC")
        elif path.suffix in (".md", ".yaml", ".json"):
            self.writer.add_text(path.name, path.read_text())

    def close(self, failed: bool) -> None:
        self.writer.close()


TRACKERS.register("tensorboard", module="tensorboard", pip="pip install tensorboard")(TensorBoardTracker)
