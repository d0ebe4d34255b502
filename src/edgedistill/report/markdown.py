"""report.md with the summary, every metric, training curves and an accuracy-vs-latency chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..recipe import Recipe
from .charts import accuracy_vs_latency, metric_suite, training_curves
from .html import write_html
from .tables import LABELS, METRIC_KEYS, comparison_lines, markdown_table, summary_markdown


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def read_history(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def scheme_sentence(recipe: Recipe) -> str:
    """How the students were taught, when it is not the default offline scheme."""
    d = recipe.distill
    if d.scheme == "online":
        o = recipe.online
        teacher = " plus the teacher's terms" if o.teacher else " (the terms above are not used)"
        return (f" Scheme: online (deep mutual learning) between {len(o.peers)} peers {', '.join(o.peers)}, "
                f"KL weight {o.weight}, T {o.T}{teacher}; peer1 is the reported student.")
    if d.scheme == "born_again":
        b = recipe.born_again
        first = "the student trained alone" if b.first == "alone" else f"the teacher `{recipe.teacher.model}`"
        return (f" Scheme: born-again, {b.generations} generation(s); gen1 taught by {first}, gen k+1 by gen k; "
                f"gen{b.generations} is the reported student.")
    return ""


def _stage_lines(run_dir: Path, metrics: dict[str, Any]) -> list[str]:
    """The compression section when the run had compress stages (charts live in run/compress/)."""
    if "stages" not in metrics:
        return []
    from ..deploy.profile import all_threads
    from .stages import stages_markdown

    result = {**metrics["compress"], "stages": metrics["stages"]}
    return stages_markdown(result, run_dir / "compress", "compress/", all_threads())


def skipped_lines(metrics: dict[str, Any]) -> list[str]:
    """Images left out by data.bad_images=skip: a reader must know the numbers are not on the whole folder."""
    skipped = metrics.get("skipped_images") or {}
    if not skipped.get("count"):
        return []
    files = skipped.get("files", [])
    shown = ", ".join(f"`{f}`" for f in files[:20]) + (f" and {len(files) - 20} more" if len(files) > 20 else "")
    return [(f"**Skipped {skipped['count']} unreadable image(s)** (data.bad_images=skip; every file in "
             f"metrics.json): {shown}."), ""]


def write_report(run_dir: Path, metrics: dict[str, Any], recipe: Recipe) -> Path:
    models = metrics["models"]
    histories = {name: read_history(run_dir / name) for name in models}
    charts = []
    if training_curves(histories, run_dir / "training_curves.png"):
        charts.append(("Held-out top-1 per epoch", "training_curves.png"))
    if accuracy_vs_latency(models, run_dir / "accuracy_vs_latency.png"):
        charts.append(("Accuracy vs latency", "accuracy_vs_latency.png"))
    if metric_suite(models, run_dir / "metric_suite.png"):
        charts.append(("Metric suite: teacher vs students", "metric_suite.png"))
    terms = ", ".join(f"{t.name} (weight {t.weight}{''.join(f', {k}={v}' for k, v in t.params.items())})"
                      for t in recipe.distill.terms)
    lines = [
        "# edgedistill report",
        "",
        (f"Teacher `{recipe.teacher.model}` → student" if "teacher" in models else "No teacher model; student")
        + f" `{recipe.student.model}` on `{recipe.data.source}` "
        f"({len(metrics['class_names'])} classes, {recipe.data.image_size}px). "
        f"Distillation: ce (weight {recipe.distill.ce_weight}) + {terms}; "
        f"{recipe.train.epochs} epochs, batch {recipe.train.batch_size}, lr {recipe.train.lr}, seed {recipe.train.seed}."
        + scheme_sentence(recipe),
        "",
        *skipped_lines(metrics),
        summary_markdown(metrics),
        "",
        *[f"- {line}" for line in comparison_lines(metrics)],
        "",
        *[f"![{title}]({path})\n" for title, path in charts],
        "## All metrics",
        "",
        markdown_table(["metric", *(LABELS.get(n, n) for n in models)],
                       [[k, *(_fmt(m.get(k)) for m in models.values())] for k in METRIC_KEYS]),
        "",
        "top-1/top-5/agreement in %; kl, js: mean over images at T=1 (nats); kd_loss at T="
        f"{recipe.eval.kd_T} (×T²); FLOPs from torch.utils.flop_counter (a multiply-add counts 2); "
        "size: weights as safetensors; peak_mem_mb: inference allocations at batch 1.",
        "",
        *_stage_lines(run_dir, metrics),
        "## Time",
        "",
        markdown_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in metrics["seconds"].items()]),
        "",
        f"Environment: {', '.join(f'{k} {v}' for k, v in metrics['environment'].items())}. "
        "Recipe: [recipe.yaml](recipe.yaml); all numbers: [metrics.json](metrics.json).",
        "",
    ]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    write_html(path)  # the same report as one self-contained file
    return path
