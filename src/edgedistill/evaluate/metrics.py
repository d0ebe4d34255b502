"""Classification metrics and teacher fidelity from logits; scikit-learn does the counting where it can."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as skm

from ..losses import kd_loss


def _probs(logits: torch.Tensor) -> np.ndarray:
    """Softmax in float64 so log_loss and AUC see rows that sum to 1 within sklearn's tolerance."""
    return F.softmax(logits.detach().cpu().double(), dim=1).numpy()


def _top_k(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Top-k accuracy in percent; a tensor one-liner, cheaper than sklearn's top_k_accuracy_score on large N."""
    hit = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * float(hit.double().mean())


def _kappa(y: np.ndarray, pred: np.ndarray, num_classes: int, weights: str | None) -> float:
    """Cohen's kappa; 0.0 where it is undefined (both raters use one class), like sklearn's MCC does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = skm.cohen_kappa_score(y, pred, labels=list(range(num_classes)), weights=weights)
    return 0.0 if math.isnan(k) else float(k)


def _roc_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest macro AUC over the classes present in y, probabilities renormalised over those classes.

    sklearn refuses a class with no positives (its AUC is undefined), so absent classes are left out
    rather than the whole number lost; NaN only when fewer than two classes are present.
    """
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    p = probs[:, present]
    p = p / p.sum(axis=1, keepdims=True)
    if len(present) == 2:
        return float(skm.roc_auc_score(y == present[1], p[:, 1]))
    return float(skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=present))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE over equal-width bins of max-probability confidence; hand-written because sklearn has no ECE."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    # Bins are (lo, hi]; a confidence of exactly 0 cannot occur for a softmax, so bin 0 starts open.
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                           ece_bins: int = 15) -> dict[str, float]:
    """The full metric suite; top1/top5 are percentages (0–100), everything else is on its natural scale.

    top5 uses k = min(5, num_classes). roc_auc is macro one-vs-rest over the classes present in
    `labels` (see `_roc_auc`). Kappa is 0.0 where undefined. `n` is the sample count (as a float).
    """
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0] or logits.shape[0] == 0:
        raise ValueError(f"need logits [N, C] and labels [N] with N > 0, got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    logits, labels = logits.detach().cpu().float(), labels.detach().cpu().long()
    probs = _probs(logits)
    y, pred = labels.numpy(), probs.argmax(axis=1)
    classes = list(range(num_classes))
    out = {"top1": _top_k(logits, labels, 1), "top5": _top_k(logits, labels, min(5, num_classes))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=classes, average=avg, zero_division=0)
        out |= {f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)}
    out["kappa"] = _kappa(y, pred, num_classes, None)
    out["qwk"] = _kappa(y, pred, num_classes, "quadratic")
    out["mcc"] = float(skm.matthews_corrcoef(y, pred))
    out["roc_auc"] = _roc_auc(y, probs)
    out["log_loss"] = float(skm.log_loss(y, probs, labels=classes))
    out["ece"] = expected_calibration_error(probs, y, ece_bins)
    out["n"] = len(y)
    return out


def fidelity(student_logits: torch.Tensor, teacher_logits: torch.Tensor, T: float = 4.0) -> dict[str, float]:
    """How closely the student imitates the teacher: top-1 agreement (%), KL and JS at T=1 (nats), KD loss at T."""
    s, t = student_logits.detach().cpu().double(), teacher_logits.detach().cpu().double()
    if s.shape != t.shape:
        raise ValueError(f"student and teacher logits differ in shape: {tuple(s.shape)} vs {tuple(t.shape)}")
    js = jensenshannon(_probs(t), _probs(s), axis=1) ** 2  # scipy returns the distance, sqrt of the divergence
    return {
        "agreement": 100.0 * float((s.argmax(1) == t.argmax(1)).double().mean()),
        "kl": float(kd_loss(s, t, T=1.0)),  # at T=1 the T² factor is 1: plain mean KL(teacher‖student)
        "js": float(np.mean(js)),
        "kd_loss": float(kd_loss(s, t, T=T)),
    }
