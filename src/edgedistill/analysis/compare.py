"""A comparison's numbers from its finished run folders: per-arm intervals, paired tests, verdicts, stability."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..evaluate.predictions import load_predictions
from ..evaluate.per_image import PER_IMAGE, load_per_image
from ..recipe.compare import METRICS
from ..registry import Registry
from ..run.reader import read_metrics
from . import stats
from .plan import Plan


@dataclass(frozen=True)
class PairedUnit:
    """How a task's runs pair image by image. load(run, model) → {images (held-out id), labels, unit, pred?} from
    the run folder, {} when it has no per-image file; test(units of a, units of b) → {p, …} under `name`."""

    load: Callable[[Path, str], dict[str, Any]]
    test: Callable[[np.ndarray, np.ndarray], dict[str, Any]]
    name: str


PAIRED_UNITS: Registry[PairedUnit] = Registry("paired unit")


def _classification_unit(run: Path, model: str) -> dict[str, Any]:
    if not (run / "predictions.npz").exists():
        return {}
    p = load_predictions(run / "predictions.npz")
    pred = p["models"][model]
    return {"pred": pred, "labels": p["labels"], "images": p["images"], "unit": pred == p["labels"]}


def _per_image_unit(unit: str) -> Callable[[Path, str], dict[str, Any]]:
    """A loader of one per-image score (per_image.npz's `unit`: iou for segmentation, map for detection)."""

    def load(run: Path, model: str) -> dict[str, Any]:
        if not (run / PER_IMAGE).exists():
            return {}
        p = load_per_image(run / PER_IMAGE, unit=unit)
        return {"labels": np.zeros(0), "images": p["images"], "unit": p["models"][model]}

    return load


PAIRED_UNITS.register("classification", description="per-image correctness, McNemar's test")(
    PairedUnit(_classification_unit, stats.mcnemar, "mcnemar"))
PAIRED_UNITS.register("segmentation", description="per-image IoU, Wilcoxon signed-rank test")(
    PairedUnit(_per_image_unit("iou"), stats.per_image_wilcoxon, "per_image_iou"))
PAIRED_UNITS.register("detection", description="per-image COCO mAP, Wilcoxon signed-rank test")(
    PairedUnit(_per_image_unit("map"), stats.defined_wilcoxon, "per_image_map"))


def collect(plan: Plan) -> dict[str, dict[tuple[int, int], dict[str, Any]]]:
    """arm → (seed, split) → {value, run, task, and the task's per-image unit} from each cell's metrics.json and
    its per-image file (predictions.npz; per_image.npz for segmentation and detection)."""
    out: dict[str, dict[tuple[int, int], dict[str, Any]]] = {a: {} for a in plan.arms}
    for c in plan.cells:
        run = c.recipe.output.dir / c.recipe.output.name
        m = read_metrics(run)
        primary = m["primary"]
        if plan.cfg.metric not in m["models"][primary]:
            raise UserError(f"compare.metric={plan.cfg.metric!r} is not in {run}/metrics.json for {primary} "
                            f"(e.g. agreement needs a teacher)", key="compare.metric")
        task = m.get("task", "classification")
        row = {"value": float(m["models"][primary][plan.cfg.metric]), "run": str(run), "task": task,
               **PAIRED_UNITS.get(task, key="task").load(run, primary)}
        out[c.arm][(c.seed, c.split)] = row
    return out


def _check_images(results: dict[str, dict[tuple[int, int], dict[str, Any]]], units: list) -> bool:
    """Per unit every arm must have seen the same held-out images; False when a run has no predictions."""
    have = True
    for u in units:
        rows = {a: r[u] for a, r in results.items()}
        if any("unit" not in r for r in rows.values()):
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
    unit = PAIRED_UNITS.get(next(iter(results[plan.arms[0]].values()))["task"], key="task")
    arms: dict[str, Any] = {}
    for a in plan.arms:
        vals = [results[a][u]["value"] for u in units]
        entry = stats.describe(vals) | {"values": vals, "runs": [results[a][u]["run"] for u in units]}
        if with_preds and "pred" in results[a][units[0]]:  # churn across seeds, per split, averaged over splits
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
        if with_preds:  # the task's per-image test on the pooled images of every unit
            c[unit.name] = unit.test(np.concatenate([results[a][u]["unit"] for u in units]),
                                     np.concatenate([results[b][u]["unit"] for u in units]))
        comps.append(c)
    for key, get in (("p", lambda c: c["p"]), ("t_p", lambda c: c["t_p"]), ("wilcoxon_p", lambda c: c["wilcoxon_p"]),
                     (f"{unit.name}_p", lambda c: c.get(unit.name, {}).get("p"))):
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
        **({"per_image_test": unit.name} if unit.name != "mcnemar" else {}),
        "split": plan.cells[0].recipe.eval.split,
        **({"sweep": {"keys": list(plan.cfg.sweep), "points": {a: p for a, p in plan.sweep.items()}}}
           if plan.sweep else {}),
    }
