"""Split search and the CLT test of approximation trees: does the best split really beat its rivals?

Approximation trees (Zhou, Zhou & Hooker, "Approximation trees: statistical stability in model distillation")
choose each split on pseudo-samples labelled by the model being explained, and draw more of them until the
choice is statistically significant. The Gini scan is numpy; the test is hand-written because no library gives
the asymptotic variance of a difference of two Gini gains measured on the same samples (a delta method on the
multinomial of (side under split A, side under split B, class) cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

MIN_LEAF = 5  # pseudo-samples each side of a split at least: no split isolates a handful of draws


@dataclass(frozen=True)
class Split:
    """x[:, feature] <= threshold goes left; gain is the Gini gain on the samples it was chosen on."""

    feature: int
    threshold: float
    gain: float


def gini(y: np.ndarray, n_classes: int) -> float:
    """Gini impurity 1 − Σ p_k² of labels y."""
    if len(y) == 0:
        return 0.0
    p = np.bincount(y, minlength=n_classes) / len(y)
    return float(1.0 - (p**2).sum())


def best_splits(x: np.ndarray, y: np.ndarray, n_classes: int, min_leaf: int = MIN_LEAF) -> list[Split]:
    """The best threshold of every feature by Gini gain, best first: one candidate per feature.

    One vectorised scan per feature over its sorted values (cumulative class counts); a threshold lies midway
    between two distinct neighbouring values and leaves at least min_leaf samples each side.
    """
    n, d = x.shape
    if n < 2 * min_leaf:
        return []
    onehot = np.eye(n_classes)[y]
    total = onehot.sum(0)
    parent = 1.0 - ((total / n) ** 2).sum()
    nl = np.arange(1, n, dtype=np.float64)
    nr = n - nl
    out = []
    for j in range(d):
        order = np.argsort(x[:, j], kind="stable")
        xs = x[order, j]
        left = np.cumsum(onehot[order], axis=0)[:-1]
        right = total - left
        weighted = (nl - (left**2).sum(1) / nl + nr - (right**2).sum(1) / nr) / n
        valid = (xs[1:] > xs[:-1]) & (nl >= min_leaf) & (nr >= min_leaf)
        if not valid.any():
            continue
        i = int(np.argmin(np.where(valid, weighted, np.inf)))
        out.append(Split(j, float((xs[i] + xs[i + 1]) / 2), float(parent - weighted[i])))
    return sorted(out, key=lambda s: (-s.gain, s.feature))


def _impurity_and_influence(right: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, np.ndarray]:
    """Weighted Gini impurity I = 1 − Σ_a Σ_k q_ak² / q_a of a split, and ∂I/∂q at each sample's own cell.

    q_ak is the share of samples on side a with class k. The derivative, evaluated at each sample's cell, is
    its influence: the delta-method variance of I is the variance of these values over the samples / n.
    """
    side = right.astype(np.int64)
    q = np.bincount(side * n_classes + y, minlength=2 * n_classes).reshape(2, n_classes) / len(y)
    qa = q.sum(1)
    safe = np.where(qa > 0, qa, 1.0)
    s = (q**2).sum(1)
    impurity = 1.0 - float((s / safe).sum())
    grad = -(2.0 * q / safe[:, None] - (s / safe**2)[:, None])
    return impurity, grad[side, y]


def compare(x: np.ndarray, y: np.ndarray, n_classes: int, best: Split, rival: Split) -> tuple[float, float]:
    """(z, two-sided p) of gain(best) − gain(rival) on the same samples, by asymptotic normality.

    Two-sided because `best` was picked as the larger of the two on these very samples: under a true tie the
    picked difference is |D|, whose tail is twice the one-sided one.
    """
    ib, psi_b = _impurity_and_influence(x[:, best.feature] > best.threshold, y, n_classes)
    ir, psi_r = _impurity_and_influence(x[:, rival.feature] > rival.threshold, y, n_classes)
    diff = ir - ib  # gain(best) − gain(rival): the parent impurity cancels
    psi = psi_r - psi_b
    se = float(psi.std(ddof=1) / math.sqrt(len(y))) if len(y) > 1 else 0.0
    if se <= 1e-12:
        return (math.inf, 0.0) if diff > 1e-12 else (0.0, 1.0)
    z = diff / se
    return float(z), float(2.0 * ndtr(-abs(z)))


def split_p_value(x: np.ndarray, y: np.ndarray, n_classes: int, splits: list[Split]) -> float:
    """p-value that splits[0] beats every rival (the best split of each other feature).

    An intersection-union test: "best beats all rivals" is claimed only when each pairwise test rejects,
    so the largest pairwise p is the test's p and no multiplicity correction is needed. With no rival
    (one usable feature) there is no choice to be unstable: p = 0.
    """
    if len(splits) < 2:
        return 0.0
    return max(compare(x, y, n_classes, splits[0], r)[1] for r in splits[1:])


def looks(batch: int, budget: int) -> int:
    """How many times a node can test: batch, 2·batch, 4·batch, … capped at the budget."""
    n, k = batch, 1
    while n < budget:
        n, k = min(2 * n, budget), k + 1
    return k
