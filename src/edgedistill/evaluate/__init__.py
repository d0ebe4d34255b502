"""Held-out evaluation: predictions once, then accuracy, calibration and teacher-fidelity metrics from logits."""

from .metrics import classification_metrics, expected_calibration_error, fidelity
from .predict import predict

__all__ = ["classification_metrics", "expected_calibration_error", "fidelity", "predict"]
