"""Models named `source:name` (timm, torchvision, cifar, arch, hf, file): weights, heads, checkpoints, taps."""

from __future__ import annotations

from . import cifar, clip, families, file_source, hf, timm_source, torchvision_source  # noqa: F401  (register)
from . import seg_source  # noqa: F401  (task=segmentation models)
from . import det_source  # noqa: F401  (task=detection models)
from .base import MODEL_SOURCES
from .factory import create_model, list_models, load_model, weights_class_count
from .families import FAMILIES, Knob, canonical_spec, family_spec, parse_family_spec
from .heads import reset_head
from .hf import HFClassifier
from .io import read_meta, save_model
from .taps import FeatureTaps

__all__ = ["FAMILIES", "MODEL_SOURCES", "FeatureTaps", "HFClassifier", "Knob", "canonical_spec", "create_model",
           "family_spec", "list_models", "load_model", "parse_family_spec", "read_meta", "reset_head", "save_model",
           "weights_class_count"]
