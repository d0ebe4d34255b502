"""Statistics of repeated runs: intervals, paired tests, effect sizes, corrections, verdicts and churn.

scipy and statsmodels do the tests; what is written here is only what they lack: the paired effect
size dz, the probability of improvement over pairs, the verdict rule and per-image churn.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as st
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

VERDICTS = ("better", "no evidence", "worse", "not enough seeds")
MIN_PAIRS = 3  # a paired t test over 2 pairs has 1 degree of freedom: no verdict rests on it
_METHODS = {"holm": "holm", "bh": "fdr_bh"}


def _f(x: float | np.floating) -> float | None:
    """JSON-safe float: NaN and ±inf become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float | None, float | None]:
    """Student-t interval of the mean; None where n < 2 (no spread to scale it by)."""
    a = np.asarray(values, float)
    if len(a) < 2:
        return None, None
    sem = st.sem(a)
    if sem == 0:
        return float(a.mean()), float(a.mean())
    lo, hi = st.t.interval(level, len(a) - 1, loc=a.mean(), scale=sem)
    return float(lo), float(hi)


def bootstrap_interval(values: Sequence[float], level: float = 0.95, seed: int = 0,
                       n_resamples: int = 9999) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap); BCa needs more runs than a comparison has."""
    a = np.asarray(values, float)
    if len(a) < 2:
        return None, None
    if np.all(a == a[0]):
        return float(a[0]), float(a[0])
    res = st.bootstrap((a,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
                       rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def describe(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof 1), range, t and bootstrap intervals of one arm's runs."""
    a = np.asarray(values, float)
    std = float(a.std(ddof=1)) if len(a) > 1 else None
    return {"n": len(a), "mean": float(a.mean()), "std": std, "min": float(a.min()), "max": float(a.max()),
            "t_ci": list(t_interval(a, level)), "bootstrap_ci": list(bootstrap_interval(a, level))}


def cohen_dz(diffs: Sequence[float]) -> float | None:
    """Paired effect size dz = mean(d) / sd(d) (Cohen 1988; scipy has none); None when sd is 0 or n < 2."""
    d = np.asarray(diffs, float)
    if len(d) < 2:
        return None
    sd = d.std(ddof=1)
    return _f(d.mean() / sd) if sd > 0 else (0.0 if d.mean() == 0 else None)


def prob_improvement(diffs: Sequence[float]) -> float:
    """Share of paired runs where the arm beats the other, ties counting one half (a paired P(X > Y))."""
    d = np.asarray(diffs, float)
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) / len(d))


def _constant(d: np.ndarray) -> bool:
    """Every paired difference equal (to rounding): the t statistic is undefined, not infinite."""
    return bool(np.ptp(d) <= 1e-9 * max(1.0, float(np.abs(d).max())))


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give over n pairs: all signs alike."""
    return min(1.0, 2.0 ** (1 - n))


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Paired comparison of a vs b over the same seeds/splits: difference, its t interval, paired t and Wilcoxon.

    `p` is what the verdict rests on: the paired t test, or the Wilcoxon test when every difference is the same
    (sd 0 leaves t undefined; scipy would say p = 0 or NaN, and warn of catastrophic cancellation)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or len(a) < 2:
        raise ValueError(f"a paired test needs two equal-length samples of ≥ 2 runs, got {len(a)} and {len(b)}")
    d = a - b
    lo, hi = t_interval(d, level)
    if np.all(d == 0):  # scipy returns NaN (t) or raises (Wilcoxon) on identical samples: no evidence either way
        t_p, w_p = 1.0, 1.0
    else:
        with warnings.catch_warnings():  # precision-loss warnings would reach the console: the numbers say it
            warnings.simplefilter("ignore", RuntimeWarning)
            w_p = float(st.wilcoxon(a, b, zero_method="wilcox").pvalue)
            if _constant(d):
                t_p, lo, hi = None, None, None
            else:
                t_p = _f(st.ttest_rel(a, b).pvalue)
    return {"n": len(d), "diff": float(d.mean()), "diff_ci": [lo, hi], "t_p": t_p, "wilcoxon_p": _f(w_p),
            "p": t_p if t_p is not None else _f(w_p), "test": "paired t" if t_p is not None else "Wilcoxon",
            "dz": cohen_dz(d), "p_improve": prob_improvement(d)}


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict[str, Any]:
    """McNemar's test on per-image correctness (statsmodels); exact binomial when the discordant pairs are < 25."""
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = np.array([[np.sum(ca & cb), np.sum(ca & ~cb)], [np.sum(~ca & cb), np.sum(~ca & ~cb)]])
    discordant = int(table[0, 1] + table[1, 0])
    res = sm_mcnemar(table, exact=discordant < 25, correction=True)
    return {"only_a": int(table[0, 1]), "only_b": int(table[1, 0]), "n": int(table.sum()),
            "p": 1.0 if discordant == 0 else _f(res.pvalue)}


def per_image_wilcoxon(a: np.ndarray, b: np.ndarray, method: str = "auto") -> dict[str, Any]:
    """Wilcoxon signed-rank (scipy) on paired per-image scores, e.g. per-image IoU of two segmentation arms.

    method: scipy's; "asymptotic" (normal approximation, tie-corrected) where many tests must stay cheap: "auto"
    enumerates all 2^n sign patterns of a small sample with ties (seconds per test at n = 13)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    d = x - y
    p = 1.0 if not np.any(d) else _f(st.wilcoxon(x, y, zero_method="wilcox", method=method).pvalue)
    return {"n": len(d), "mean_diff": float(d.mean()) if len(d) else 0.0, "better_a": int(np.sum(d > 0)),
            "better_b": int(np.sum(d < 0)), "p": p}


def defined_wilcoxon(a: np.ndarray, b: np.ndarray, method: str = "auto") -> dict[str, Any]:
    """per_image_wilcoxon on the images scored in both (per-image mAP is NaN where an image has no ground truth)."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    return {**per_image_wilcoxon(x[keep], y[keep], method), "left_out": int((~keep).sum())}


def correct(pvalues: Sequence[float], method: str = "holm", alpha: float = 0.05) -> list[float]:
    """Adjusted p-values over one family (statsmodels multipletests): holm or bh (Benjamini–Hochberg)."""
    if not len(pvalues):
        return []
    return [float(p) for p in multipletests(list(pvalues), alpha=alpha, method=_METHODS[method])[1]]


def verdict(diff: float, p_adjusted: float | None, alpha: float, higher_is_better: bool = True, n: int | None = None,
            test: str = "paired t") -> str:
    """"better" / "worse" when the corrected p is below α (direction from the mean difference), else "no evidence";
    "not enough seeds" when n pairs are too few for any verdict (fewer than MIN_PAIRS, or a Wilcoxon decision
    that cannot reach α however the runs fall)."""
    if n is not None and (n < MIN_PAIRS or (test == "Wilcoxon" and min_wilcoxon_p(n) >= alpha)):
        return "not enough seeds"
    if p_adjusted is None or p_adjusted >= alpha or diff == 0:
        return "no evidence"
    return "better" if (diff > 0) == higher_is_better else "worse"


def churn(preds: np.ndarray) -> dict[str, Any]:
    """Prediction churn of one arm over its seeds, preds [seeds, images] of the same images.

    share: images whose prediction is not the same for every seed; pairwise: mean share of images that
    two seeds label differently; entropy: mean over images of the entropy (bits) of the predicted-label
    distribution across seeds (0 when all seeds agree).
    """
    p = np.asarray(preds)
    if p.ndim != 2 or p.shape[0] < 2:
        return {"share": None, "pairwise": None, "entropy_bits": None, "seeds": int(p.shape[0])}
    k = p.shape[0]
    share = float(np.mean(np.any(p != p[0], axis=0)))
    pairs = [np.mean(p[i] != p[j]) for i in range(k) for j in range(i + 1, k)]
    ent = []
    for col in p.T:
        _, counts = np.unique(col, return_counts=True)
        q = counts / k
        ent.append(float(-(q * np.log2(q)).sum()))
    return {"share": share, "pairwise": float(np.mean(pairs)), "entropy_bits": float(np.mean(ent)), "seeds": k}
