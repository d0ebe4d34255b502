"""What a search leaves: trials.csv, pareto.png, report.md/.html and best.yaml."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from ..atomic import atomic_write_text
from ..recipe import Recipe

COLUMNS = ["trial", "spec", "image_size", "params", "flops", "size_mb", "latency_fp32_ms", "latency_int8_ms",
           "flash_top1", "full_top1", "state", "pareto", "error", "seconds", "run"]


def trial_rows(study: optuna.Study, pareto: set[int], full: dict[str, float]) -> list[dict[str, Any]]:
    """One row per trial that reached a candidate: its measured figures, flash top-1, state and error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if "spec" not in t.user_attrs:
            continue
        c = t.user_attrs.get("cost", {})
        state = t.user_attrs.get("status", "")
        if t.user_attrs.get("killed"):
            state, err = "killed", "its process died; enqueued again on --resume"
        elif t.state == TrialState.FAIL:
            state, err = "failed", t.user_attrs.get("error", "")
        elif t.state == TrialState.RUNNING:
            state, err = "running", ""
        else:
            err = "repeat: its finished run reused" if t.user_attrs.get("repeat") else ""
        key = f"{t.user_attrs['spec']}@{t.user_attrs['image_size']}"
        rows.append({"trial": t.number, "spec": t.user_attrs["spec"], "image_size": t.user_attrs["image_size"],
                     "params": c.get("params"), "flops": c.get("flops"), "size_mb": c.get("size_mb"),
                     "latency_fp32_ms": c.get("latency_fp32_ms"), "latency_int8_ms": c.get("latency_int8_ms"),
                     "latency_ms": c.get("latency_ms"), "flash_top1": t.user_attrs.get("flash_top1"),
                     "full_top1": full.get(key), "state": state, "pareto": t.number in pareto, "error": err,
                     "seconds": t.user_attrs.get("seconds"), "run": t.user_attrs.get("run", "")})
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def pareto_chart(path: Path, rows: list[dict[str, Any]], recipe: Recipe, hand: dict[str, Any] | None) -> None:
    """Flash top-1 vs measured latency: trained trials, the Pareto front, budget line, the hand-picked student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    trained = [r for r in rows if r["state"] == "trained"]
    ax.scatter([r["latency_ms"] for r in trained], [r["flash_top1"] for r in trained], c="#7aa6d6", label="trained")
    front = sorted((r for r in trained if r["pareto"]), key=lambda r: r["latency_ms"])
    if front:
        ax.plot([r["latency_ms"] for r in front], [r["flash_top1"] for r in front], "o-", c="#d62728",
                label="Pareto front")
    infeasible = [r for r in rows if r["state"] == "infeasible"]
    if infeasible:
        low = min([r["flash_top1"] for r in trained] or [0.0])
        ax.scatter([r["latency_ms"] for r in infeasible], [low] * len(infeasible), marker="x", c="grey",
                   label="over budget (not trained)")
    if hand is not None and hand.get("flash_top1") is not None:
        ax.scatter([hand["latency_ms"]], [hand["flash_top1"]], marker="*", s=220, c="#2ca02c", zorder=5,
                   label=f"hand-picked {hand['spec']}")
    if recipe.deploy.budget.latency_ms is not None:
        ax.axvline(recipe.deploy.budget.latency_ms, ls="--", c="k", lw=1, label="latency budget")
    kind = "int8" if any(r.get("latency_int8_ms") is not None for r in rows) else "fp32"
    ax.set_xlabel(f"ONNX Runtime latency, {kind}, ms (batch {recipe.deploy.batch_size}, "
                  f"{recipe.deploy.threads} thread(s))")
    ax.set_ylabel(f"flash top-1 on {recipe.eval.split}, %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_recipe(recipe: Recipe, spec: str, image_size: int, teacher: str | None) -> str:
    """A ready recipe for `edgedistill run`: the searched recipe with the chosen student and resolution, and the
    teacher the search trained (so the run does not train it again)."""
    data = recipe.model_dump(mode="json")
    data.pop("search")
    data["student"].update(model=spec, weights=None)
    if teacher is not None:
        data["teacher"]["weights"] = teacher
    data["data"]["image_size"] = image_size
    data["output"]["name"] = f"{recipe.output.name}-best"
    head = f"# Chosen by `edgedistill search` from {recipe.output.dir / recipe.output.name}: {spec} at {image_size} px\n"
    return head + yaml.safe_dump(data, sort_keys=False)


def _fmt(v: Any, f: str = ".4g") -> str:
    return "–" if v is None or v == "" else format(v, f) if isinstance(v, float) else str(v)


def write_report(folder: Path, rows: list[dict[str, Any]], recipe: Recipe, best: dict[str, Any] | None,
                 hand: dict[str, Any] | None, trust: dict[str, Any] | None, flash: Any, seconds: float) -> Path:
    """report.md and a self-contained report.html beside it."""
    from ..report.html import write_html

    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    b = recipe.deploy.budget
    limits = ", ".join(f"{k} ≤ {getattr(b, k)}" for k in ("latency_ms", "size_mb", "params", "flops")
                       if getattr(b, k) is not None) or "none"
    lines = ["# Student search", "",
             (f"{len(rows)} trials ({', '.join(f'{v} {k}' for k, v in sorted(states.items()))}) in {seconds:.0f} s; "
              f"objectives {', '.join(recipe.search.objectives)}; sampler {recipe.search.sampler}; budget {limits} "
              f"at deploy.threads={recipe.deploy.threads}, deploy.batch_size={recipe.deploy.batch_size}."),
             f"Flash distillation: {flash.steps} steps per candidate ({flash.epochs} epoch(s)"
             + (f" of {flash.max_train_samples} train images" if flash.max_train_samples else "")
             + f"; the full budget is {flash.full_steps} steps). Top-1 on the {recipe.eval.split} split.", ""]
    if best is not None:
        lines += [f"**Chosen:** `{best['spec']}` at {best['image_size']} px — flash top-1 {_fmt(best['flash_top1'])}"
                  + (f", full top-1 {_fmt(best.get('full_top1'))}" if best.get("full_top1") is not None else "")
                  + f", {_fmt(best['latency_ms'])} ms, {_fmt(best['params'])} params. Run it: "
                  f"`edgedistill run {folder / 'best.yaml'}`", ""]
    if hand is not None:
        lines += [(f"Hand-picked student `{hand['spec']}`: flash top-1 {_fmt(hand.get('flash_top1'))}, "
                   f"{_fmt(hand['latency_ms'])} ms, {_fmt(hand['params'])} params."), ""]
    lines += ["![Pareto front](pareto.png)", "", "## Pareto front", "",
              "| trial | spec | px | params | FLOPs | size MB | latency ms | flash top-1 | full top-1 |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["pareto"]), key=lambda r: r["latency_ms"]):
        lines.append(f"| {r['trial']} | `{r['spec']}` | {r['image_size']} | {_fmt(r['params'])} | {_fmt(r['flops'])} "
                     f"| {_fmt(r['size_mb'])} | {_fmt(r['latency_ms'])} | {_fmt(r['flash_top1'])} "
                     f"| {_fmt(r['full_top1'])} |")
    lines += ["", "## Proxy trust: flash vs full top-1", ""]
    if trust is None:
        lines.append("Not measured (search.top_k = search.random_k = 0).")
    else:
        for name in ("spearman", "kendall"):
            if name in trust:
                v = trust[name]
                lines.append(f"- {name.title()}: {v['value']:.3f} (bootstrap 95% interval {v['ci95'][0]:.3f} … "
                             f"{v['ci95'][1]:.3f}), n = {trust['n']}")
        lines += ["", f"**Flash proxy: {trust['verdict']}.**"]
    failed = [r for r in rows if r["state"] == "failed"]
    if failed:
        lines += ["", "## Failed trials", ""] + [f"- trial {r['trial']} `{r['spec']}`: {r['error']}" for r in failed]
    lines += ["", "Every trial: `trials.csv`; every trained candidate is an ordinary run folder under `flash/`."]
    md = folder / "report.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    write_html(md, "edgedistill search")
    return md
