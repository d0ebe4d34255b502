"""`edgedistill predict`: classify image files with an exported ONNX model alone (torch is not imported)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape


def print_predictions(model: Path, images: list[Path], top_k: int, threads: int | None, console: Console) -> None:
    """One line per image: its path and the top_k classes with their probabilities."""
    from ..deploy.onnx_classify import predict_images

    for r in predict_images(model, images, top_k=top_k, threads=threads):
        shown = ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"])
        console.print(f"{escape(r['path'])}: {escape(shown)}", highlight=False)
