"""Approximation trees: a shallow decision tree that mimics a teacher, each split made statistically stable.

Zhou, Zhou & Hooker ("Approximation trees: statistical stability in model distillation") grow the tree on
pseudo-samples drawn from a density of the inputs and labelled by the model explained; at every node they draw
more until the chosen split beats its rivals significantly, so refits agree on the tree's structure where CART,
fitted once on finite data, flips between near-tied splits.

Here the inputs are the first principal components of the teacher's penultimate embedding, and the density is
a Gaussian mixture with *diagonal* covariances (sklearn): principal components are uncorrelated, and a diagonal
mixture restricted to a node's box is again a mixture of products of truncated normals, which scipy samples
exactly. So every node gets fresh draws from its own region however small it is, with no rejection sampling.
The sampler loop and the tree recursion are hand-written: no library grows a tree by sequential testing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import log_ndtr, logsumexp
from scipy.stats import truncnorm

from .surrogate_split import Split, best_splits, looks, split_p_value

Draw = Callable[[int], tuple[np.ndarray, np.ndarray]]  # n → (features [n, d], teacher labels [n])


class BoxMixture:
    """A diagonal Gaussian mixture that draws exactly from its restriction to a box lo < x ≤ hi."""

    def __init__(self, weights: np.ndarray, means: np.ndarray, stds: np.ndarray):
        self.weights, self.means, self.stds = weights, means, stds

    @classmethod
    def fit(cls, z: np.ndarray, components: int, seed: int) -> BoxMixture:
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(components, covariance_type="diag", random_state=seed, reg_covar=1e-4).fit(z)
        return cls(gm.weights_, gm.means_, np.sqrt(gm.covariances_))

    def _bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (lo - self.means) / self.stds, (hi - self.means) / self.stds

    def log_mass(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """log P_k(box) of each component: Σ_j log(Φ(b) − Φ(a)), stable in the tails (mirrored when a > 0)."""
        a, b = self._bounds(lo, hi)
        flip = a > 0
        a, b = np.where(flip, -b, a), np.where(flip, -a, b)
        la, lb = log_ndtr(a), log_ndtr(b)
        with np.errstate(divide="ignore"):
            return (lb + np.log1p(-np.exp(np.minimum(la - lb, 0.0)))).sum(1)

    def sample(self, n: int, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """n exact draws from the mixture conditioned on the box: components reweighted by their mass in it."""
        logw = np.log(self.weights) + self.log_mass(lo, hi)
        p = np.exp(logw - logsumexp(logw))
        comp = rng.choice(len(p), size=n, p=p / p.sum())
        a, b = self._bounds(lo, hi)
        out = np.empty((n, self.means.shape[1]))
        unbounded = bool(np.isinf(lo).all() and np.isinf(hi).all())
        for k in np.unique(comp):
            rows = np.flatnonzero(comp == k)
            if unbounded:  # the root: plain normal draws, much faster than truncnorm's inverse cdf
                out[rows] = self.means[k] + self.stds[k] * rng.standard_normal((len(rows), len(a[k])))
                continue
            out[rows] = truncnorm.rvs(a[k], b[k], loc=self.means[k], scale=self.stds[k],
                                      size=(len(rows), len(a[k])), random_state=rng)
        return np.clip(out, lo, hi)  # guards the last ulp of truncnorm's inverse-cdf


@dataclass
class Choice:
    """The outcome of one node's sequential test: the split, its p-value, and what it cost."""

    split: Split | None
    p_value: float
    significant: bool
    n_samples: int
    rounds: list[tuple[int, float]]  # (samples so far, p) at each look
    counts: list[int]  # teacher labels among the node's samples


def choose_split(draw: Draw, n_classes: int, batch: int, budget: int, alpha: float) -> Choice:
    """Draw pseudo-samples in rounds (batch, then doubling) until the best split beats its rivals at level
    alpha / looks, or the budget is spent (then the best split is kept, marked not significant).

    Doubling keeps the number of looks logarithmic in the budget, and splitting alpha over the looks (Bonferroni)
    keeps repeated testing from declaring a tie significant more often than alpha.
    """
    level = alpha / looks(batch, budget)
    x, y = draw(batch)
    rounds: list[tuple[int, float]] = []
    while True:
        counts = np.bincount(y, minlength=n_classes).tolist()
        splits = best_splits(x, y, n_classes) if np.count_nonzero(counts) > 1 else []
        if not splits:  # pure, or nothing separates: a leaf
            return Choice(None, float("nan"), False, len(y), rounds, counts)
        p = split_p_value(x, y, n_classes, splits)
        rounds.append((len(y), p))
        if p < level or len(y) >= budget:
            return Choice(splits[0], p, p < level, len(y), rounds, counts)
        x2, y2 = draw(min(len(y), budget - len(y)))
        x, y = np.concatenate([x, x2]), np.concatenate([y, y2])


@dataclass
class Node:
    """A tree node; `choice` is None at a leaf grown to full depth."""

    depth: int
    label: int
    counts: list[int]
    n_samples: int
    choice: Choice | None = None
    left: Node | None = None
    right: Node | None = None

    @property
    def split(self) -> Split | None:
        return self.choice.split if self.choice else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"depth": self.depth, "label": self.label, "n_samples": self.n_samples,
                             "counts": self.counts}
        if self.split is not None and self.choice is not None:
            d.update(feature=self.split.feature, threshold=self.split.threshold, gain=self.split.gain,
                     p_value=self.choice.p_value, significant=self.choice.significant,
                     rounds=[list(r) for r in self.choice.rounds], left=self.left.to_dict() if self.left else None,
                     right=self.right.to_dict() if self.right else None)
        return d


@dataclass
class TreeSettings:
    depth: int
    batch: int
    budget: int
    alpha: float


@dataclass
class Grower:
    """Grows one approximation tree: a box sampler, the teacher as labeller, and the settings."""

    mixture: BoxMixture
    label: Callable[[np.ndarray], np.ndarray]
    n_classes: int
    settings: TreeSettings
    rng: np.random.Generator
    drawn: int = field(default=0)

    def _draw(self, lo: np.ndarray, hi: np.ndarray) -> Draw:
        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            x = self.mixture.sample(n, lo, hi, self.rng)
            self.drawn += n
            return x, self.label(x)
        return draw

    def grow(self, depth: int = 0, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> Node:
        d = self.mixture.means.shape[1]
        lo = np.full(d, -np.inf) if lo is None else lo
        hi = np.full(d, np.inf) if hi is None else hi
        s = self.settings
        if depth == s.depth:  # a leaf: one batch of draws says which class the teacher gives its region
            _, y = self._draw(lo, hi)(s.batch)
            counts = np.bincount(y, minlength=self.n_classes)
            return Node(depth, int(counts.argmax()), counts.tolist(), len(y))
        choice = choose_split(self._draw(lo, hi), self.n_classes, s.batch, s.budget, s.alpha)
        node = Node(depth, int(np.argmax(choice.counts)), choice.counts, choice.n_samples, choice)
        if choice.split is None:
            return node
        f, t = choice.split.feature, choice.split.threshold
        hi_left, lo_right = hi.copy(), lo.copy()
        hi_left[f], lo_right[f] = min(hi[f], t), max(lo[f], t)
        node.left = self.grow(depth + 1, lo, hi_left)
        node.right = self.grow(depth + 1, lo_right, hi)
        return node


def predict(node: Node, x: np.ndarray) -> np.ndarray:
    """The tree's class for each row of x."""
    out = np.empty(len(x), dtype=np.int64)
    stack = [(node, np.arange(len(x)))]
    while stack:
        n, rows = stack.pop()
        if n.split is None or n.left is None or n.right is None:
            out[rows] = n.label
            continue
        go_left = x[rows, n.split.feature] <= n.split.threshold
        stack += [(n.left, rows[go_left]), (n.right, rows[~go_left])]
    return out


def structure(node: Node | None, levels: int) -> str:
    """The split features of the top `levels` levels as text, e.g. 'f3(f1,f0)'; '-' is a leaf."""
    if node is None or node.split is None:
        return "-"
    here = f"f{node.split.feature}"
    if levels <= 1:
        return here
    return f"{here}({structure(node.left, levels - 1)},{structure(node.right, levels - 1)})"


def significance(node: Node) -> tuple[int, int]:
    """(significant splits, all splits) of the tree."""
    if node.split is None or node.choice is None:
        return 0, 0
    s, n = int(node.choice.significant), 1
    for child in (node.left, node.right):
        if child is not None:
            cs, cn = significance(child)
            s, n = s + cs, n + cn
    return s, n
