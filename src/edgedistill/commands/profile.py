"""`edgedistill profile`: parameters, FLOPs, size, latency and memory of a model."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..run.reader import resolve_checkpoint


def profile_checkpoint(spec: str, image_size: int | None, threads: int | None, runs: int, batch_size: int,
                       num_classes: int, console: Console) -> dict:
    from ..deploy import profile_model
    from ..models import create_model, load_model

    _check_profile_args(image_size, threads, runs, batch_size, num_classes)
    if ":" in spec and not Path(spec).exists():
        model = create_model(spec, num_classes, key="model")
        size = image_size or 224
    else:
        model, meta = load_model(resolve_checkpoint(spec))
        size = image_size or int(meta.get("image_size", 224))
    result = profile_model(model, (batch_size, 3, size, size), runs=runs, threads=threads)
    table = Table(title=f"{spec} — input {batch_size}×3×{size}×{size}, CPU")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, "not measurable here" if v is None else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}")
    console.print(table)
    return result


PROFILE_LIMITS = {"--image-size": (8, 4096), "--threads": (1, 1024), "--runs": (1, 100_000),
                  "--batch-size": (1, 4096), "--num-classes": (1, 100_000)}


def _check_profile_args(image_size: int | None, threads: int | None, runs: int, batch_size: int,
                        num_classes: int) -> None:
    """Refuse, before building anything, values that would crash, hang or silently mean something else."""
    given = {"--image-size": image_size, "--threads": threads, "--runs": runs, "--batch-size": batch_size,
             "--num-classes": num_classes}
    for opt, v in given.items():
        lo, hi = PROFILE_LIMITS[opt]
        if v is not None and not lo <= v <= hi:
            raise UserError(f"{opt} {v} is out of range; allowed: {lo}..{hi:,}"
                            + (" (omit it for the checkpoint's own size)" if opt == "--image-size" else ""))
