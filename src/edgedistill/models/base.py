"""The model-source registry and the interface each `SOURCE:` prefix implements."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from torch import nn

from ..registry import Registry


class ModelSource(Protocol):
    """What `create_model` needs from a source; `names()` feeds `list models` and close-match errors."""

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module: ...

    def names(self) -> list[str]: ...

    def native_classes(self, name: str, pretrained: bool) -> int | None: ...


MODEL_SOURCES: Registry[ModelSource] = Registry("model source")


def parse_width(name: str, builders: Collection[str], widths: Collection[str], what: str, example: str) -> tuple[str, float]:
    """'NAME@W' → (NAME, W) for the dense-task sources; UserError naming what is allowed (W a MobileNetV3 width
    multiplier in 0.1..4, only on the `widths` builders)."""
    from ..errors import UserError
    from ..registry import unknown_name_message

    base, sep, w = name.partition("@")
    if base not in builders:
        raise UserError(unknown_name_message(f"{what} model", base, list(builders)))
    if not sep:
        return base, 1.0
    try:
        width = float(w)
    except ValueError:
        width = -1.0
    if base not in widths or not 0.1 <= width <= 4:
        raise UserError(f"{example.partition(':')[0]}:{name}: @WIDTH is a MobileNetV3 width multiplier in 0.1..4 (e.g. {example}); allowed on "
                        f"{', '.join(widths)}")
    return base, width
