"""`torchvision:NAME`: torchvision's classification models; 'pretrained' = their DEFAULT weights."""

from __future__ import annotations

from torch import nn

from ..errors import UserError
from ..registry import unknown_name_message
from .base import MODEL_SOURCES
from .heads import reset_head

_AUX = ("googlenet", "inception_v3")  # return (logits, aux) tuples in training unless aux heads are off


class TorchvisionSource:
    def _check(self, name: str) -> None:
        if name not in self.names():
            raise UserError(unknown_name_message("torchvision model", name, self.names()))

    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        import torchvision

        self._check(name)
        if pretrained:
            model = torchvision.models.get_model(name, weights="DEFAULT")
            if name in _AUX:  # the weights need the aux heads to load; drop them afterwards
                model.aux_logits = False
                for aux in ("AuxLogits", "aux1", "aux2"):
                    if hasattr(model, aux):
                        setattr(model, aux, None)
            native = self.native_classes(name, True)
            if num_classes is not None and num_classes != native:
                reset_head(model, num_classes)
            return model
        kwargs: dict = {} if num_classes is None else {"num_classes": num_classes}
        if name in _AUX:
            kwargs["aux_logits"] = False
            kwargs["init_weights"] = True
        return torchvision.models.get_model(name, weights=None, **kwargs)

    def names(self) -> list[str]:
        import torchvision

        return torchvision.models.list_models(module=torchvision.models)

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        if not pretrained:
            return None
        import torchvision

        self._check(name)
        return len(torchvision.models.get_model_weights(name).DEFAULT.meta["categories"])


MODEL_SOURCES.register("torchvision", description="torchvision classification models; "
                                                  "'pretrained' = DEFAULT weights")(TorchvisionSource())
