"""Held-out evaluation: predictions once, then accuracy, calibration and teacher-fidelity metrics from logits."""

from .inference import predict
from .metrics import classification_metrics, expected_calibration_error, fidelity

__all__ = ["classification_metrics", "expected_calibration_error", "fidelity", "predict"]
