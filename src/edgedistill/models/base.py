"""The model-source registry and the interface each `SOURCE:` prefix implements."""

from __future__ import annotations

from typing import Protocol

from torch import nn

from ..registry import Registry


class ModelSource(Protocol):
    """What `create_model` needs from a source; `names()` feeds `list models` and close-match errors."""

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module: ...

    def names(self) -> list[str]: ...

    def native_classes(self, name: str, pretrained: bool) -> int | None: ...


MODEL_SOURCES: Registry[ModelSource] = Registry("model source")
