"""`hf:DIR`: a local transformers image-classification model dir (optional extra `edgedistill[hf]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..usertext import read_json_file
from .base import MODEL_SOURCES
from .heads import replace_layer

HINT = "hf: models need the transformers package: pip install edgedistill[hf]"


def import_transformers() -> Any:
    """Imported lazily: transformers is an optional extra."""
    try:
        import transformers
    except ImportError:
        raise UserError(HINT) from None
    return transformers


class HFClassifier(nn.Module):
    """Makes `forward(x)` return the logits tensor; `.hf` keeps the inner model so taps by name still work."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hf(pixel_values=x).logits

    def reset_classifier(self, num_classes: int) -> None:
        scope = "hf.classifier" if isinstance(getattr(self.hf, "classifier", None), nn.Module) else "hf"
        linears = [n for n, m in self.named_modules() if isinstance(m, nn.Linear) and n.startswith(scope)]
        if not linears:
            raise UserError(f"cannot find the classifier of {type(self.hf).__name__}; "
                            "allowed: resize_head=false")
        replace_layer(self, linears[-1], num_classes)
        cfg = getattr(self.hf, "config", None)
        if cfg is not None:
            cfg.num_labels = num_classes


def _config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    if not cfg.is_file():
        raise UserError(f"{path} is not a transformers model folder (no config.json)")
    data = read_json_file(cfg, "hf: config")
    if not isinstance(data, dict):
        raise UserError(f"{cfg}: a transformers config is a JSON object, got {type(data).__name__}")
    return data


class HFSource:
    def create(self, name: str, num_classes: int | None, pretrained: bool) -> nn.Module:
        path = Path(name).expanduser()
        native = self.native_classes(name, True)
        tf = import_transformers()
        kwargs: dict[str, Any] = {}
        if num_classes is not None and num_classes != native:
            kwargs = {"num_labels": num_classes}
        try:
            if pretrained:
                model = tf.AutoModelForImageClassification.from_pretrained(
                    str(path), ignore_mismatched_sizes=bool(kwargs), **kwargs)
            else:
                cfg = tf.AutoConfig.from_pretrained(str(path), **kwargs)
                model = tf.AutoModelForImageClassification.from_config(cfg)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load the transformers model in {path}: {e}") from None
        return HFClassifier(model)

    def names(self) -> list[str]:
        return []

    def native_classes(self, name: str, pretrained: bool) -> int | None:
        cfg = _config(Path(name).expanduser())
        if not pretrained:
            return None
        if cfg.get("id2label"):
            return len(cfg["id2label"])
        return int(cfg.get("num_labels", 2))


MODEL_SOURCES.register("hf", description="hf:DIR — a local transformers image-classification folder "
                       "('pretrained' = its saved weights; needs edgedistill[hf])")(HFSource())
