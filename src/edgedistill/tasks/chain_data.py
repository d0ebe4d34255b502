"""What the compress/deploy/eval chains of segmentation and detection (seg_chain.py, det_chain.py) share about
their recipe and data: one home for what were two copies."""

from __future__ import annotations

from typing import Any

from ..errors import UserError


def task_recipe(task: str, base: dict[str, Any], overrides: list[str]) -> Any:
    """The run's recipe (or a model file's data section) as a recipe of `task`, overrides applied."""
    from ..recipe import build_recipe

    return build_recipe({**base, "task": task}, overrides)


def checked(data: tuple[Any, dict[str, Any], list[str]], meta: dict[str, Any]) -> tuple[Any, dict[str, Any], list[str]]:
    """Train set, held-out sets and class names as built; the classes must be the model's."""
    names = data[2]
    if list(names) != list(meta["class_names"]):
        raise UserError(f"the data's classes {names[:5]}… differ from the model's {meta['class_names'][:5]}…",
                        key="data.root")
    return data


def items(ds: Any, n: int | None = None, start: int = 0) -> list[Any]:
    """Items start..start+n of a dataset (all from start when n is None); none left is the user's split size."""
    idx = range(start, min(len(ds), start + n) if n is not None else len(ds))
    if not idx:
        raise UserError(f"no images left in the split (asked for {n} from image {start})", key="data.max_val_samples")
    return [ds[i] for i in idx]


__all__ = ["checked", "items", "task_recipe"]
