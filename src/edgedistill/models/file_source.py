"""`file:PATH`: a model saved by edgedistill (`save_model`), rebuilt from its own meta."""

from __future__ import annotations

from torch import nn

from .base import MODEL_SOURCES
from .factory import load_model
from .heads import reset_head
from .io import read_meta


class FileSource:
    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        model, meta = load_model(name)
        if num_classes is not None and num_classes != int(meta["num_classes"]):
            reset_head(model, num_classes)
        return model

    def names(self) -> list[str]:
        return []

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        return int(read_meta(name)["num_classes"])


MODEL_SOURCES.register("file", description="file:PATH — a .safetensors model written by edgedistill "
                                           "(weights included)")(FileSource())
