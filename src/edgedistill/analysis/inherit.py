"""What a student shares with its teacher beyond accuracy: the same mistakes, per class and per image."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import confusion_matrix


def inherited_errors(teacher: np.ndarray, student: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
    """On the images the teacher gets wrong: how many the student also gets wrong, and with the same class.

    `inherited_rate` is the share of teacher errors the student repeats exactly (same wrong class);
    `student_wrong_rate` the share it gets wrong at all. NaN rates when the teacher makes no error.
    """
    teacher, student, labels = (np.asarray(a).astype(int) for a in (teacher, student, labels))
    t_wrong = teacher != labels
    n = int(t_wrong.sum())
    same = int((t_wrong & (student == teacher)).sum())
    wrong = int((t_wrong & (student != labels)).sum())
    return {"teacher_errors": n, "same_mistake": same, "also_wrong": wrong,
            "inherited_rate": same / n if n else float("nan"), "student_wrong_rate": wrong / n if n else float("nan")}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN where a side is constant (no variation to correlate), not a warning."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.corrcoef(a, b)[0, 1])


def class_error_rates(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class error rate (NaN for a class with no images)."""
    rates = np.full(num_classes, np.nan)
    for c in range(num_classes):
        m = labels == c
        if m.any():
            rates[c] = float((pred[m] != c).mean())
    return rates


def error_similarity(teacher: np.ndarray, student: np.ndarray, labels: np.ndarray,
                     num_classes: int) -> dict[str, float]:
    """Per-class error-rate correlation, per-image error correlation (phi) and confusion-pattern cosine.

    The confusion cosine compares the off-diagonal counts only (where the errors go), so two models that
    are both mostly right do not look alike merely because of their diagonals. NaN when either has no error.
    """
    teacher, student, labels = (np.asarray(a).astype(int) for a in (teacher, student, labels))
    rt, rs = class_error_rates(teacher, labels, num_classes), class_error_rates(student, labels, num_classes)
    ok = ~np.isnan(rt)
    classes = list(range(num_classes))
    ct = confusion_matrix(labels, teacher, labels=classes).astype(float)
    cs = confusion_matrix(labels, student, labels=classes).astype(float)
    off = ~np.eye(num_classes, dtype=bool)
    a, b = ct[off], cs[off]
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return {
        "class_error_corr": _pearson(rt[ok], rs[ok]),
        "image_error_corr": _pearson((teacher != labels).astype(float), (student != labels).astype(float)),
        "confusion_cosine": float(a @ b / denom) if denom > 0 else float("nan"),
    }
