"""Ready recipes shipped inside the package, so `edgedistill demo` needs no files from the repo."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..registry import unknown_name_message

HERE = Path(__file__).parent


def recipe_names() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    path = HERE / f"{name}.yaml"
    if not path.exists():
        raise UserError(unknown_name_message("recipe", name, recipe_names()))
    return path
