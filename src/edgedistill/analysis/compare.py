"""A comparison's numbers from its finished run folders: per-arm intervals, paired tests, verdicts, stability."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import UserError
from ..evaluate.predictions import load_predictions
from ..recipe.compare import METRICS
from ..run.reader import read_metrics
from . import stats
from .plan import Plan


def collect(plan: Plan) -> dict[str, dict[tuple[int, int], dict[str, Any]]]:
    """arm → (seed, split) → {value, pred, labels, images, run} from each cell's metrics.json and predictions.npz."""
    out: dict[str, dict[tuple[int, int], dict[str, Any]]] = {a: {} for a in plan.arms}
    for c in plan.cells:
        run = c.recipe.output.dir / c.recipe.output.name
        m = read_metrics(run)
        primary = m["primary"]
        if plan.cfg.metric not in m["models"][primary]:
            raise UserError(f"compare.metric={plan.cfg.metric!r} is not in {run}/metrics.json for {primary} "
                            f"(e.g. agreement needs a teacher)", key="compare.metric")
        row = {"value": float(m["models"][primary][plan.cfg.metric]), "run": str(run)}
        pred_file = run / "predictions.npz"
        if pred_file.exists():
            p = load_predictions(pred_file)
            row |= {"pred": p["models"][primary], "labels": p["labels"], "images": p["images"]}
        out[c.arm][(c.seed, c.split)] = row
    return out


def _check_images(results: dict[str, dict[tuple[int, int], dict[str, Any]]], units: list) -> bool:
    """Per unit every arm must have seen the same held-out images; False when a run has no predictions."""
    have = True
    for u in units:
        rows = {a: r[u] for a, r in results.items()}
        if any("pred" not in r for r in rows.values()):
            have = False
            continue
        ref_arm, ref = next(iter(rows.items()))
        for a, r in rows.items():
            if r["images"] != ref["images"] or not np.array_equal(r["labels"], ref["labels"]):
                raise UserError(f"arms {ref_arm!r} and {a!r} were evaluated on different validation images at "
                                f"seed/split {u} ({ref['run']} vs {r['run']}); a paired comparison needs the same "
                                "images", key="compare.arms")
    return have


def _pairs(arms: list[str], baseline: str) -> list[tuple[str, str]]:
    """Every arm against the baseline first, then every other pair in arm order (a vs b: a − b)."""
    others = [a for a in arms if a != baseline]
    return [(a, baseline) for a in others] + [(a, b) for i, b in enumerate(others) for a in others[i + 1:]]


def analyze(plan: Plan, results: dict[str, dict[tuple[int, int], dict[str, Any]]]) -> dict[str, Any]:
    """Everything compare.json holds: settings, per-arm statistics, stability and the corrected comparisons."""
    cfg, units = plan.cfg, plan.units
    higher = METRICS[cfg.metric]
    with_preds = _check_images(results, units)
    arms: dict[str, Any] = {}
    for a in plan.arms:
        vals = [results[a][u]["value"] for u in units]
        entry = stats.describe(vals) | {"values": vals, "runs": [results[a][u]["run"] for u in units]}
        if with_preds:  # churn across seeds, per split, then averaged over splits
            per_split = []
            for k in sorted({s for _, s in units}):
                preds = np.stack([results[a][u]["pred"] for u in units if u[1] == k])
                per_split.append(stats.churn(preds))
            entry["churn"] = {key: (None if per_split[0][key] is None else float(np.mean([c[key] for c in per_split])))
                              for key in ("share", "pairwise", "entropy_bits")}
        arms[a] = entry
    comps = []
    pairs = _pairs(plan.arms, plan.baseline)
    if plan.sweep:  # a surface of many points: each against the baseline, not every pair
        pairs = [(a, b) for a, b in pairs if b == plan.baseline]
    for a, b in pairs:
        c = {"arm": a, "vs": b, **stats.paired(arms[a]["values"], arms[b]["values"])}
        if with_preds:
            ca = np.concatenate([results[a][u]["pred"] == results[a][u]["labels"] for u in units])
            cb = np.concatenate([results[b][u]["pred"] == results[b][u]["labels"] for u in units])
            c["mcnemar"] = stats.mcnemar(ca, cb)
        comps.append(c)
    for key, get in (("p", lambda c: c["p"]), ("t_p", lambda c: c["t_p"]), ("wilcoxon_p", lambda c: c["wilcoxon_p"]),
                     ("mcnemar_p", lambda c: c.get("mcnemar", {}).get("p"))):
        ps = [get(c) for c in comps]
        if all(p is not None for p in ps):
            for c, p in zip(comps, stats.correct(ps, cfg.correction, cfg.alpha), strict=True):
                c[f"{key}_adj"] = p
    for c in comps:
        c["verdict"] = stats.verdict(c["diff"], c.get("p_adj"), cfg.alpha, higher, n=c["n"], test=c["test"])
    return {
        "metric": cfg.metric, "higher_is_better": higher, "alpha": cfg.alpha, "correction": cfg.correction,
        "baseline": plan.baseline, "seeds": cfg.seeds, "splits": cfg.splits, "units": [list(u) for u in units],
        "test": "paired t over seeds × splits decides the verdict (Wilcoxon where every difference is the same; "
                f"'not enough seeds' under {stats.MIN_PAIRS} pairs); Wilcoxon and McNemar are reported beside it",
        "arms": arms, "comparisons": comps, "notes": plan.notes,
        "split": plan.cells[0].recipe.eval.split,
        **({"sweep": {"keys": list(plan.cfg.sweep), "points": {a: p for a, p in plan.sweep.items()}}}
           if plan.sweep else {}),
    }
