"""`timm:NAME`: any timm architecture (tags like resnet18.a1_in1k pick pretrained weights)."""

from __future__ import annotations

from torch import nn

from ..errors import UserError
from ..registry import unknown_name_message
from .base import MODEL_SOURCES


class TimmSource:
    def _check(self, name: str) -> None:
        import timm

        if not timm.is_model(name):
            raise UserError(unknown_name_message("timm model", name, self.names()))

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        import timm

        self._check(name)
        kwargs = {} if num_classes is None else {"num_classes": num_classes}
        return timm.create_model(name, pretrained=pretrained, **kwargs)

    def names(self) -> list[str]:
        import timm

        return timm.list_models()

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        if not pretrained:
            return None
        from timm.models import get_pretrained_cfg

        self._check(name)
        cfg = get_pretrained_cfg(name, allow_unregistered=True)
        return int(cfg.num_classes) if cfg is not None and cfg.num_classes else 1000


MODEL_SOURCES.register("timm", description="timm architectures (timm.list_models()); "
                                           "'pretrained' = hub weights")(TimmSource())
