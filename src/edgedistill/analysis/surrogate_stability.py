"""Repeated fits of the approximation tree and of scikit-learn's CART: fidelity to the teacher and stability.

Stability is how often refits agree on the tree's top structure (the root's feature; the features of the top
two levels): the number of distinct structures over R fits and the entropy of their frequencies (0 bits when
every fit agrees, log2 R when none do). CART is fitted on as many samples as the approximation tree drew, once on
a bootstrap of the real train images labelled by the teacher (what a user would do with CART) and once on fresh
pseudo-samples (the same data source, without the test): the second isolates what the sequential test adds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .surrogate import BoxMixture, Grower, Node, TreeSettings, predict, significance, structure
from .surrogate_split import MIN_LEAF

METHODS = ("approximation_tree", "cart_real", "cart_pseudo")
LEVELS = {"root": 1, "top2": 2}


def structure_stability(structures: list[str]) -> dict[str, Any]:
    """Distinct structures among repeated fits, the entropy of their frequencies (bits), the commonest's share."""
    counts = Counter(structures)
    n = len(structures)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values()) if n else float("nan")
    top, top_n = counts.most_common(1)[0] if counts else ("", 0)
    return {"distinct": len(counts), "entropy_bits": abs(entropy), "most_common": top,
            "most_common_share": top_n / n if n else float("nan"), "counts": dict(counts.most_common())}


def cart_structure(tree: Any, levels: int, node: int = 0) -> str:
    """A fitted sklearn DecisionTreeClassifier's top structure in `structure()`'s notation."""
    t = tree.tree_
    if t.children_left[node] == -1:
        return "-"
    here = f"f{int(t.feature[node])}"
    if levels <= 1:
        return here
    return (f"{here}({cart_structure(tree, levels - 1, int(t.children_left[node]))},"
            f"{cart_structure(tree, levels - 1, int(t.children_right[node]))})")


@dataclass
class Problem:
    """What every fit shares: real features and teacher labels, the density and the teacher as labeller."""

    z_train: np.ndarray
    y_train: np.ndarray
    z_val: np.ndarray
    y_val: np.ndarray
    mixture: BoxMixture
    label: Callable[[np.ndarray], np.ndarray]
    n_classes: int


def _agree(pred: np.ndarray, y: np.ndarray) -> float:
    return 100.0 * float((pred == y).mean())


def _fit_once(p: Problem, settings: TreeSettings, fresh: int, seed: int) -> tuple[Node, dict[str, dict[str, Any]]]:
    """One approximation tree and its two CART counterparts; their fidelity and top structures."""
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(seed)
    grower = Grower(p.mixture, p.label, p.n_classes, settings, rng)
    tree = grower.grow()
    n = grower.drawn
    inf = np.full(p.mixture.means.shape[1], np.inf)
    fx = p.mixture.sample(fresh, -inf, inf, rng)
    fy = p.label(fx)
    boot = rng.integers(0, len(p.z_train), size=min(n, len(p.z_train)))
    px = p.mixture.sample(n, -inf, inf, rng)

    def cart(x: np.ndarray, y: np.ndarray) -> Any:
        return DecisionTreeClassifier(max_depth=settings.depth, min_samples_leaf=MIN_LEAF,
                                      random_state=seed).fit(x, y)

    carts = {"cart_real": (cart(p.z_train[boot], p.y_train[boot]), len(boot)), "cart_pseudo": (cart(px, p.label(px)), n)}
    sig, splits = significance(tree)
    out = {"approximation_tree": {"fresh": _agree(predict(tree, fx), fy), "real": _agree(predict(tree, p.z_val), p.y_val),
                                  "n_samples": n, "significant": sig, "splits": splits,
                                  **{k: structure(tree, v) for k, v in LEVELS.items()}}}
    for name, (c, used) in carts.items():
        out[name] = {"fresh": _agree(c.predict(fx), fy), "real": _agree(c.predict(p.z_val), p.y_val), "n_samples": used,
                     **{k: cart_structure(c, v) for k, v in LEVELS.items()}}
    return tree, out


def repeated_fits(p: Problem, settings: TreeSettings, repeats: int, fresh: int, seed: int,
                  progress: Callable[[int], None] | None = None) -> tuple[Node, dict[str, Any]]:
    """R independent fits of each method (seed, seed+1, …): the first approximation tree, and the summary."""
    first: Node | None = None
    fits: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
    for r in range(repeats):
        tree, one = _fit_once(p, settings, fresh, seed + r)
        first = first or tree
        for m in METHODS:
            fits[m].append(one[m])
        if progress:
            progress(r + 1)
    assert first is not None
    summary: dict[str, Any] = {}
    for m, rows in fits.items():
        s: dict[str, Any] = {}
        for k in ("fresh", "real", "n_samples"):
            v = np.array([r[k] for r in rows], dtype=np.float64)
            s[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
        for level in LEVELS:
            s[level] = structure_stability([r[level] for r in rows])
        if m == "approximation_tree":
            s["significant_splits"] = sum(r["significant"] for r in rows)
            s["splits"] = sum(r["splits"] for r in rows)
        summary[m] = s
    return first, summary
