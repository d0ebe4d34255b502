"""Models named `source:name` (timm, torchvision, cifar, hf, file): weights, heads, checkpoints, taps."""

from __future__ import annotations

from . import cifar, clip, file_source, hf, timm_source, torchvision_source  # noqa: F401  (register the sources)
from .base import MODEL_SOURCES
from .factory import create_model, list_models, load_model, weights_class_count
from .heads import reset_head
from .hf import HFClassifier
from .io import read_meta, save_model
from .taps import FeatureTaps

__all__ = ["MODEL_SOURCES", "FeatureTaps", "HFClassifier", "create_model", "list_models", "load_model",
           "read_meta", "reset_head", "save_model", "weights_class_count"]
