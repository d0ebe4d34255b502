"""Find and replace a model's classifier, so any backbone can serve any class count."""

from __future__ import annotations

from torch import nn

from ..errors import UserError


def head_name(model: nn.Module) -> str:
    """Dotted name of the classifier layer: timm's get_classifier(), else the last Linear (or 1×1 conv)."""
    if hasattr(model, "get_classifier"):
        head = model.get_classifier()
        head = head[0] if isinstance(head, (tuple, list)) else head
        for name, mod in model.named_modules():
            if mod is head and name and isinstance(mod, (nn.Linear, nn.Conv2d)):
                return name
    last = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            last = name
    if last is None:  # squeezenet-style: a 1×1 conv makes the logits
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Conv2d) and "classifier" in name.split("."):
                last = name
    if last is None:
        raise UserError(f"cannot find the classifier of {type(model).__name__}; allowed: resize_head=false")
    return last


def replace_layer(model: nn.Module, name: str, num_classes: int) -> None:
    """Swap the Linear/Conv2d at `name` for a freshly initialised one with `num_classes` outputs."""
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    elif isinstance(old, nn.Conv2d):
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, bias=old.bias is not None)
    else:
        raise UserError(f"cannot resize the classifier {name!r} ({type(old).__name__}); "
                        "allowed: resize_head=false")
    setattr(parent, attr, new.to(old.weight.device, old.weight.dtype))


def reset_head(model: nn.Module, num_classes: int) -> nn.Module:
    """A fresh classifier with `num_classes` outputs; the rest of the model keeps its weights."""
    if hasattr(model, "reset_classifier"):  # timm models and HFClassifier know their own heads
        model.reset_classifier(num_classes)
        return model
    replace_layer(model, head_name(model), num_classes)
    if isinstance(getattr(model, "num_classes", None), int):
        model.num_classes = num_classes
    return model
