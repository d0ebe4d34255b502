"""The stage loop segmentation and detection compress share: prune → export → quantize in the recipe's order, each
stage done once its entry.json is written (last, atomically) next to its reference outputs, the stage list in
plan.json, and a resumed compress that reloads the finished stages and reruns the first unfinished one (a prune
fine-tune from its last.pt); commands/compress.py refuses another stage list (compress/chain.py check_plan)
before any work.

A task supplies its job (SegCompress or a subclass: add, save_ref, load_ref) and its Steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..atomic import atomic_write_text
from ..compress.chain import ENTRY, PLAN, TRAINING_STATE, plan


@dataclass(frozen=True)
class Steps:
    """A task's stages: prune(job, model, cfg, dir, resume) → model; export(job, model, path) → (path, parity);
    quantize(job, model, current, cfg, dir, ref) → (current, ref); load(path) → the pruned model as saved."""

    prune: Callable[..., nn.Module]
    export: Callable[..., tuple[Path, dict[str, Any]]]
    quantize: Callable[..., tuple[nn.Module | Path, Any]]
    load: Callable[[str], nn.Module]


def start(job: Any, ckpt: Path, resume: bool) -> None:
    """The compress folder with its recipe and, the first time, its stage list (what a resume must match)."""
    job.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(job.out / "recipe.yaml", job.r.to_yaml())
    if not (job.out / PLAN).exists():
        atomic_write_text(job.out / PLAN, json.dumps({"stages": plan(job.r), "source": str(Path(ckpt).resolve())}))
    job.console.print(f"compress folder: [bold]{job.out}[/]" +
                      (" (resuming: finished stages are reused)" if resume else ""))


def run_stages(job: Any, model: nn.Module, ckpt: Path, steps: Steps, resume: bool = False
               ) -> tuple[nn.Module, nn.Module | Path]:
    """The student's row, then every stage of compress.stages (a finished one reloaded when resuming); returns
    the last model and the final artifact."""
    ref = job.add("student", str(ckpt), model, None, None)
    current: nn.Module | Path = model
    for cfg in job.r.compress.stages:
        d = job.out / cfg.name
        d.mkdir(exist_ok=True)
        if resume and (d / ENTRY).exists():
            model, current, ref = _reload(job, d, model, current, steps.load)
            continue
        rows = len(job.rows)
        if cfg.name == "prune":
            model = steps.prune(job, model, cfg, d, resume)
            ref = job.add("prune", str(d / "model.safetensors"), model, current, ref, ratio=cfg.ratio)
            current = model
        elif cfg.name == "export":
            path, parity = steps.export(job, model, d / "model.onnx")
            ref = job.add("export", str(path), path, current, ref, parity=parity)
            current = path
        else:
            current, ref = steps.quantize(job, model, current, cfg, d, ref)
        _finish(job, d, job.rows[rows:], model if cfg.name == "prune" else None, current, ref)
    return model, current


def _finish(job: Any, d: Path, rows: list[dict[str, Any]], pruned: nn.Module | None, current: nn.Module | Path,
            ref: Any) -> None:
    """A stage is done once its entry.json exists (written last, atomically): its rows, what the next stage
    takes (the pruned weights, the current artifact) and its outputs (the next stage's reference)."""
    job.save_ref(d, ref)
    atomic_write_text(d / ENTRY, json.dumps({
        "rows": rows, "model": str(d / "model.safetensors") if pruned is not None else None,
        "current": str(current) if isinstance(current, Path) else None}, default=str))
    for f in TRAINING_STATE:  # the fine-tune's resume point is spent once the stage is recorded
        (d / f).unlink(missing_ok=True)


def _reload(job: Any, d: Path, model: nn.Module, current: nn.Module | Path, load: Callable[[str], nn.Module]
            ) -> tuple[nn.Module, nn.Module | Path, Any]:
    """A finished stage from its entry.json: rows, model, artifact and reference outputs as it left them."""
    e = json.loads((d / ENTRY).read_text())
    job.rows.extend(e["rows"])
    if e["model"]:
        model = current = load(e["model"]).cpu().float().eval()
    if e["current"]:
        current = Path(e["current"])
    job.console.print(f"[cyan]{d.name}[/]: finished earlier, reusing {d / ENTRY}")
    return model, current, job.load_ref(d)


def write_result(job: Any, result: dict[str, Any], title: str, lines: list[str], show: Callable[..., None]
                 ) -> dict[str, Any]:
    """stages.json, report.md (title, the model and recipe links, `lines`) and the console table (`show`)."""
    out = job.out
    atomic_write_text(out / "stages.json", json.dumps(result, indent=2, default=str))
    text = [f"# edgedistill compression report ({title})", "", f"Model `{result['checkpoint']}` ({result['model']}). "
            "Recipe: [recipe.yaml](recipe.yaml); all numbers: [stages.json](stages.json).", "", *lines]
    atomic_write_text(out / "report.md", "\n".join(text) + "\n")
    show(result, job.console)
    job.console.print(f"\nreport: [bold]{out / 'report.md'}[/]")
    return result


__all__ = ["Steps", "run_stages", "start", "write_result"]
