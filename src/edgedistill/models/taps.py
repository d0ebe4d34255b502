"""Forward hooks that collect intermediate features by module name, for feature-based distillation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..registry import unknown_name_message


def _first_tensor(out: Any) -> Any:
    """Blocks may return tuples or HF ModelOutputs; the first tensor is the feature map."""
    if isinstance(out, torch.Tensor):
        return out
    values = out.values() if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else ()
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    return out


class FeatureTaps:
    """`with FeatureTaps(model, ["layer2"]) as t: model(x)` fills `t.features`; hooks go on exit."""

    def __init__(self, model: nn.Module, names: Iterable[str], key: str | None = None):
        self.model = model
        self.names = list(names)
        self.features: dict[str, Any] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        modules = dict(model.named_modules())
        for n in self.names:
            if n not in modules or not n:
                raise UserError(unknown_name_message(f"module of {type(model).__name__}", n,
                                                     [m for m in modules if m]), key=key)
        self._modules = {n: modules[n] for n in self.names}

    def _hook(self, name: str) -> Any:
        def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
            self.features[name] = _first_tensor(out)

        return hook

    def __enter__(self) -> FeatureTaps:
        self.features = {}
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self._modules.items()]
        return self

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __exit__(self, *exc: object) -> None:
        self.remove()
