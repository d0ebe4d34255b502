"""Proxy trust: is flash top-1 a ranking full training keeps? Measured, never assumed.

The top-k of the Pareto front and a seeded random sample of other trained candidates are distilled with
the full budget (through the same run queue as `edgedistill compare`); Spearman and Kendall rank
correlations between flash and full top-1 come with a bootstrap 95% interval over candidates.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from .space import Candidate

if TYPE_CHECKING:
    from .study import Search

TRUSTED_RHO = 0.8  # the target rank correlation


def pick(pareto: list[Candidate], trained: list[Candidate], top_k: int, random_k: int, seed: int) -> list[Candidate]:
    """The first top_k Pareto candidates (best flash first), then random_k others, seeded."""
    first = list(dict.fromkeys(pareto))[:top_k]
    rest = [c for c in dict.fromkeys(trained) if c not in first]
    return first + random.Random(seed).sample(rest, min(random_k, len(rest)))


def run_full(search: Search, cands: list[Candidate], workers: int, say: Any) -> dict[str, float]:
    """Each candidate distilled with the recipe's full budget (run folders in search/full); key → top-1."""
    from ..jobs import Job, open_study, run_workers, schedule
    from ..jobs.runs import metric_of, run_folder
    from .trials import candidate_recipe, write_recipe

    out_dir = search.folder / "full"
    jobs = [Job(c.slug, write_recipe(candidate_recipe(search.recipe, c, search.teacher, out_dir, None),
                                     out_dir / f"{c.slug}.yaml")) for c in cands]
    name = f"{search.study_name}-full"
    schedule(open_study(search.storage, name), jobs)
    run_workers(search.storage, name, workers, search.folder / "logs", say=say)
    done = {}
    for c, j in zip(cands, jobs, strict=True):
        if (run_folder(j.recipe) / "metrics.json").exists():
            done[c.key] = metric_of(run_folder(j.recipe), "top1")
    return done


def finished_full(search: Search) -> dict[str, float]:
    """Every candidate with a finished full-budget run in search/full (picked now or by an earlier session of
    the search): key → top-1. Each is a flash-vs-full pair as good as a picked one."""
    from ..jobs.runs import metric_of, run_folder
    from ..recipe import load_recipe

    out = {}
    for path in sorted((search.folder / "full").glob("*.yaml")):
        try:
            r = load_recipe(path)
        except Exception:  # noqa: BLE001 — a recipe the current schema refuses is not a pair
            continue
        if (run_folder(path) / "metrics.json").exists():
            out[Candidate(r.student.model, r.data.image_size).key] = metric_of(run_folder(path), "top1")
    return out


def correlate(flash: list[float], full: list[float], seed: int = 0, rounds: int = 2000) -> dict[str, Any]:
    """Spearman and Kendall with percentile-bootstrap 95% intervals (pairs resampled), and a plain verdict."""
    n = len(flash)
    out: dict[str, Any] = {"n": n}
    if n < 3:
        out["verdict"] = (f"not measured: {n} candidate(s) with both a flash and a full result; at least 3 are "
                          "needed (raise search.top_k / search.random_k)")
        return out
    x, y = np.asarray(flash, float), np.asarray(full, float)
    rng = np.random.default_rng(seed)
    for name, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        point = float(fn(x, y)[0])
        boot = []
        for _ in range(rounds):
            i = rng.integers(0, n, n)
            if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
                boot.append(float(fn(x[i], y[i])[0]))
        lo, hi = (np.percentile(boot, [2.5, 97.5]).tolist() if boot else [float("nan")] * 2)
        out[name] = {"value": point, "ci95": [lo, hi]}
    few = f"; with n={n} < 5 the interval says little" if n < 5 else ""
    rho, lo = out["spearman"]["value"], out["spearman"]["ci95"][0]
    if not np.isfinite(rho):
        out["trusted"], out["verdict"] = False, "cannot be trusted: flash or full top-1 is constant over the candidates"
    elif rho >= TRUSTED_RHO and lo > 0:
        out["trusted"] = True
        out["verdict"] = (f"can be trusted on this task: Spearman {rho:.2f} ≥ {TRUSTED_RHO} and its 95% interval "
                          f"excludes 0 (n={n}{few})")
    else:
        out["trusted"] = False
        why = f"Spearman {rho:.2f} < {TRUSTED_RHO}" if rho < TRUSTED_RHO else "its 95% interval includes 0"
        out["verdict"] = (f"cannot be trusted on this task: {why} (n={n}{few}); rank candidates by full training, "
                          "or raise search.flash")
    return out
