"""Experiment trackers behind one interface (base.Tracker): TensorBoard (default), MLflow, W&B offline."""

from . import mlflow, tensorboard, wandb  # noqa: F401  (each registers itself in TRACKERS)
from .base import TRACKERS, Tracker, Trackers, check_trackers, flatten

__all__ = ["TRACKERS", "Tracker", "Trackers", "check_trackers", "flatten"]
