"""The training engine: one loop for every stage; it never imports a distillation method."""

from .checkpoint import atomic_save, load_checkpoint
from .trainer import FitResult, TrainingError, epoch_tags, fit, resolve_device

__all__ = ["FitResult", "TrainingError", "atomic_save", "epoch_tags", "fit", "load_checkpoint", "resolve_device"]
