"""Reading a finished run folder: which file is its student."""

from __future__ import annotations

import json
from pathlib import Path

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
        return str(json.loads((run_dir / "metrics.json").read_text()).get("primary", "student"))
    except (OSError, ValueError):
        return "student"
