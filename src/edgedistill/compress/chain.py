"""The compression chain: the recipe's `compress.stages` in order, each artifact kept and measured alike.

input model → stage 1 → stage 2 → … ; artifacts in OUT/<k>-<stage>/, one JSON entry per stage, then the
`deploy.budget` verdict on the last reported artifact.

Each measured stage also writes OUT/<k>-<stage>/entry.json (atomically) the moment it is done, and
OUT/plan.json records the stage list: a killed run resumed with `resume=True` reloads the finished
stages from disk and reruns the first unfinished one (a fine-tuning stage from its last.pt).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..atomic import atomic_write_text
from ..deploy.budget import budgets_passed, check_budgets
from ..errors import UserError
from ..evaluate.pcr import pcr_all
from .cpu import detect_cpu
from .cpu import not_measurable_reason as _reason
from .measure import agreement, measure
from .stages import STAGES, Artifact, Job, example, export_checked, save_torch

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..run.context import Context

PLAN, ENTRY = "plan.json", "entry.json"
TRAINING_STATE = ("last.pt", "best.pt")  # a training stage's resume point, dropped once its entry is written


def held_out(ctx: Context) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of the held-out split the spine reports on, preprocessed, in a fixed order."""
    xs, ys = [], []
    for x, y in ctx.loader(ctx.recipe.eval.split):
        xs.append(x)
        ys.append(y)
    return torch.cat(xs).float(), torch.cat(ys).long()


def not_measurable_reason(target: str) -> str | None:
    """Why deploy.target's latency cannot be timed on this machine, or None."""
    return _reason(target, detect_cpu())


def check_stages(recipe: Recipe, model: nn.Module) -> None:
    """Dry-run the first structured pruning on a copy and resolve fp32_layers names before any training, so an
    impossible target (a ratio that empties a layer, a FLOPs share out of reach) or a layer name that matches
    nothing fails in seconds naming its key.

    One-shot to the stage's final target: uniform scope keeps the same widths however many steps reach
    it, so taylor importance is stood in for by magnitude; global taylor ranking needs trained gradients
    and is checked when it runs. Later prune stages act on an already pruned model; checked when they run.
    """
    from ..deploy.profile import count_flops, count_params
    from ..recipe.compress import TARGETS
    from .iterative import dry_run, final_target, lands
    from .prune import check_round_to
    from .prune_ab import pick_round_to

    s, pruned = recipe.data.image_size, False
    for k, cfg in enumerate(recipe.compress.stages):
        if cfg.name == "quantize" and cfg.fp32_layers:
            check_fp32_layers(model, s, cfg.fp32_layers, f"compress.stages.{k}.fp32_layers")
        if cfg.name != "prune" or pruned:
            continue
        pruned = True
        if cfg.importance == "taylor" and cfg.scope == "global":
            continue
        key = next(t for t in TARGETS if getattr(cfg, t) is not None)
        kind, value = final_target(cfg, count_params(model), count_flops(copy.deepcopy(model), (1, 3, s, s)))
        x = torch.zeros(2, 3, s, s)
        round_to = pick_round_to(cfg.round_to, recipe.deploy.target,
                                 lambda v: lands(cfg, model, x, v))[0]  # noqa: B023 (called here)
        try:
            check_round_to(model, round_to)
        except UserError as e:
            raise UserError(str(e), key=f"compress.stages.{k}.round_to") from None
        try:
            dry_run(cfg, model, x, round_to, kind, value)
        except UserError as e:
            raise UserError(str(e), key=f"compress.stages.{k}.{key}") from None


def check_fp32_layers(model: nn.Module, image_size: int, names: list[str], key: str) -> None:
    """Export a copy to ONNX (as the stages will) and resolve every name against its quantizable layers."""
    import tempfile

    from ..deploy.export import export_onnx
    from .int8 import resolve_layers
    from .quantize import quantizable_nodes

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "m.onnx", image_size, ["x"], [0.0] * 3, [1.0] * 3)
        resolve_layers(list(names), quantizable_nodes(path), key)


def int8_gate(path: Path, agreement_pct: float, min_agreement: float) -> Path | None:
    """The int8 gate: a file whose top-1 agrees with its fp32 source on < min_agreement of the held-out images
    is renamed *.agreement-failed.onnx and never reported; returns that new path, or None when it passes."""
    if agreement_pct >= 100.0 * min_agreement:
        return None
    kept = path.with_name(f"{path.stem}.agreement-failed{path.suffix}")
    return path.replace(kept)


def check_teacher_stages(recipe: Recipe, has_teacher: bool) -> None:
    """A stage taught by the recipe's teacher needs one; say so before any work, not after training."""
    if has_teacher:
        return
    for k, cfg in enumerate(recipe.compress.stages):
        if getattr(cfg, "teacher", None) == "teacher":
            raise UserError(f"the {cfg.name} stage has teacher='teacher' but no trained teacher is available "
                            "(a run folder with teacher/, or teacher.weights); allowed: 'unpruned' or 'none'",
                            key=f"compress.stages.{k}.teacher")


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def plan(recipe: Recipe) -> list[dict[str, Any]]:
    """The stage list as the compress folder records it (every field, defaults included)."""
    return [s.model_dump(mode="json") for s in recipe.compress.stages]


def check_plan(out_dir: Path, recipe: Recipe) -> None:
    """Resuming a compress folder needs the stage list it started with; anything else would mix two chains."""
    path = out_dir / PLAN
    if not path.exists():
        return
    stored = json.loads(path.read_text()).get("stages")
    if stored != plan(recipe):
        names = [s.get("name") for s in stored or []]
        given = [s.name for s in recipe.compress.stages]
        raise UserError(f"compress.stages {given} differ from the ones {out_dir} started with ({names}, every "
                        f"field in {path}); allowed: no compress.stages (resumes with the folder's own), the "
                        "same compress.stages, or a run without --resume (a new compress folder)",
                        key="compress.stages")


def cross_check(ctx: Context, name: str, art: Artifact, images: torch.Tensor, int8_bar: float) -> dict[str, Any]:
    """ONNX Runtime and OpenVINO on the parity images; a low agreement or a load failure warns, never refuses.

    The warning bar: every image for an fp32 file (both runtimes compute the same float graph), and
    compress.min_int8_agreement for an int8 file (each runtime has its own int8 kernels).
    """
    from ..deploy.openvino_runtime import check_runtimes

    rt = check_runtimes(art.onnx_path, images.numpy())
    ov, bar = rt["openvino"], int8_bar if art.precision == "int8" else 1.0
    if ov["status"] == "failed":
        ctx.console.print(f"[yellow]warning[/]: {name}: OpenVINO {ov['version']} cannot run {art.onnx_path.name}: "
                          f"{ov['error']}")
    elif ov["status"] == "checked" and ov["agreement"] < bar:
        ctx.console.print(f"[yellow]warning[/]: {name}: OpenVINO {ov['version']} agrees with ONNX Runtime on "
                          f"{100 * ov['agreement']:.1f}% of {ov['images']} images (< {100 * bar:.0f}%), "
                          f"max |Δlogit| {ov['max_abs_diff']:.3g}; the file stays reported (checked in ORT)")
    return rt


def _entry(index: int | str, stage: str, out_dir: Path, stage_dir: Path, art: Artifact, m: dict[str, Any],
           reported: bool) -> dict[str, Any]:
    m = {k: v for k, v in m.items() if k != "logits_argmax"}
    return {"index": index, "stage": stage, "dir": str(stage_dir.relative_to(out_dir)),
            "artifact": str(art.onnx_path.relative_to(out_dir)) if art.onnx_path else None,
            "precision": art.precision, "reported": reported, **m, "info": art.info}


def _label_of(e: dict[str, Any]) -> str:
    return e["stage"] if e["index"] == "ref" else f"{e['index']}-{e['stage']}"


def run_compress(ctx: Context, student: nn.Module, teacher: nn.Module | None, spec: str, meta: dict[str, Any],
                 out_dir: Path, resume: bool = False, source: str | None = None) -> dict[str, Any]:
    """Run every stage of ctx.recipe.compress on `student`; returns {stages, budgets, budgets_passed, final}.

    resume: reuse every stage whose entry.json exists in out_dir (the stage list must be the recorded one)
    and continue from the first unfinished stage; its fine-tuning resumes from last.pt. source: the model
    file compressed, recorded so `compress FILE --resume` finds this folder again.
    """
    from .prune import load_pruned

    r, c, d = ctx.recipe, ctx.recipe.compress, ctx.recipe.deploy
    if not c.stages:
        raise UserError("no compression stages given; allowed: e.g. "
                        "'compress.stages=[{name: prune, ratio: 0.5}, {name: finetune}, {name: quantize}]'",
                        key="compress.stages")
    out_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        check_plan(out_dir, r)
    write_json(out_dir / PLAN, {"stages": plan(r), "source": source})
    images, labels = held_out(ctx)
    student = student.cpu().float().eval()
    job = Job(ctx, student, copy.deepcopy(student), teacher, spec, meta, images, labels)
    timing = dict(runs=c.latency_runs, warmup=c.warmup_runs, deploy_batch=d.batch_size, deploy_threads=d.threads)
    n = len(meta["class_names"])

    def measured(index: int | str, name: str, stage_dir: Path, art: Artifact, inherited: dict | None = None,
                 ref_argmax: torch.Tensor | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx.console.print(f"[dim]measuring {stage_dir.name} …[/]")
        m = measure(images=images, labels=labels, num_classes=n, onnx_path=art.onnx_path, model=art.model,
                    inherited=inherited, not_measurable=art.not_measurable, **timing)
        reported = art.onnx_path is not None
        if ref_argmax is not None and reported:
            m["agreement_fp32"] = 100.0 * agreement(m["logits_argmax"], ref_argmax)
            if art.gate_on_source and (kept := int8_gate(art.onnx_path, m["agreement_fp32"],
                                                         c.min_int8_agreement)) is not None:
                ctx.console.print(f"[red]{name}: top-1 agreement with fp32 {m['agreement_fp32']:.1f}% < "
                                  f"{100 * c.min_int8_agreement:.0f}%[/]; kept as {kept}, not reported")
                art.onnx_path, reported = None, False
                art.info["kept_for_inspection"] = str(kept)
        if reported:  # the reported file, run once more in a second runtime (OpenVINO) beside ORT
            m["runtimes"] = cross_check(ctx, name, art, images[:c.parity_images], c.min_int8_agreement)
        entry = _entry(index, name, out_dir, stage_dir, art, m, reported)
        # What a resumed run needs to stand where this one stands after the stage: the entry, whether a
        # PyTorch model (model.safetensors) follows, the ONNX file, and what later int8 stages compare with.
        write_json(stage_dir / ENTRY, {
            "entry": entry, "model": art.model is not None,
            "onnx_path": str(art.onnx_path.relative_to(out_dir)) if art.onnx_path else None,
            "last": {"params": m.get("params"), "flops": m.get("flops"), "macs": m.get("macs"),
                     "logits_argmax": None if m["logits_argmax"] is None else m["logits_argmax"].tolist()}})
        for p in TRAINING_STATE:  # the stage's artifact and entry replace its optimizer state
            (stage_dir / p).unlink(missing_ok=True)
        return entry, m

    def finished(stage_dir: Path) -> dict[str, Any] | None:
        """The stored outcome of a stage when resuming and it completed earlier, else None."""
        if not reuse or not (stage_dir / ENTRY).exists():
            return None
        done = json.loads((stage_dir / ENTRY).read_text())
        if done["last"]["logits_argmax"] is not None:
            done["last"]["logits_argmax"] = torch.tensor(done["last"]["logits_argmax"], dtype=torch.long)
        done["onnx_path"] = out_dir / done["onnx_path"] if done["onnx_path"] else None
        ctx.console.print(f"[cyan]compress[/] {stage_dir.name}: finished earlier, reusing "
                          f"{stage_dir / ENTRY}")
        return done

    reuse = resume  # True until the first stage that has to run: every later one depends on it, so reruns too
    entries: list[dict[str, Any]] = []
    if teacher is not None:
        tdir = out_dir / "teacher"
        if (done := finished(tdir)) is not None:
            entries.append(done["entry"])
        else:
            tpath, parity = export_checked(job, teacher.cpu().float().eval(), tdir / "model.onnx")
            entries.append(measured("ref", "teacher", tdir, Artifact(teacher, tpath, {"parity": parity}))[0])
    in_dir = out_dir / "0-input"
    if (done := finished(in_dir)) is not None:
        entry, last, path = done["entry"], done["last"], done["onnx_path"]
    else:
        save_torch(job, student, in_dir, "input")
        path, parity = export_checked(job, student, in_dir / "model.onnx")
        entry, last = measured(0, "input", in_dir, Artifact(student, path, {"parity": parity}))
    entries.append(entry)
    job.onnx_path = path
    for k, cfg in enumerate(c.stages, 1):
        stage_dir = out_dir / f"{k}-{cfg.name}"
        if (done := finished(stage_dir)) is not None:
            entries.append(done["entry"])
            if done["model"]:
                model = load_pruned(stage_dir / "model.safetensors")[0].eval()
                job.model, job.onnx_path, last = model, done["onnx_path"], done["last"]
            else:
                job.model = None
            continue
        # The first unfinished stage continues its own training (last.pt); every later one starts afresh.
        job.resume, reuse = reuse, False
        ctx.console.print(f"[cyan]compress[/] stage {k}/{len(c.stages)}: {cfg.name}")
        art = STAGES.get(cfg.name, key=f"compress.stages.{k - 1}.name")(job, cfg, stage_dir)
        if art.precision == "int8":
            inherited = {key: last.get(key) for key in ("params", "flops", "macs")}
            entry, m = measured(k, cfg.name, stage_dir, art, inherited, ref_argmax=last["logits_argmax"])
        else:
            entry, m = measured(k, cfg.name, stage_dir, art)
        entries.append(entry)
        if art.model is not None:
            job.model, job.onnx_path, last = art.model, art.onnx_path, m
        else:
            job.model = None
    reference = next(e for e in entries if e["index"] == 0)
    pcr_ref = next((e for e in entries if e["index"] == "ref"), reference)  # the teacher, measured the same way
    for e in entries:
        e["pcr"] = pcr_all(e, pcr_ref, r.eval.pcr)
    final = next((e for e in reversed(entries) if e["reported"] and e["index"] != "ref"), None)
    shipped_note = None
    if final is not None and (final["info"].get("int8_choice") or {}).get("shipped") == "fp32":
        shipped_note = final["info"]["int8_choice"]["note"]  # int8 is slower here: its fp32 source ships
        final = next(e for e in reversed(entries) if e["reported"] and e["index"] != "ref" and e["precision"] == "fp32")
    budgets = check_budgets(d.budget, final, reference, d, latency_elsewhere=not_measurable_reason(d.target))
    result = {"stages": entries, "budgets": budgets, "budgets_passed": budgets_passed(budgets),
              "final": final["dir"] if final else None, "shipped_note": shipped_note,
              "deploy": {"threads": d.threads, "batch_size": d.batch_size},
              "pcr_reference": _label_of(pcr_ref),
              "measurement": {"runs": c.latency_runs, "warmup": c.warmup_runs, "split": r.eval.split,
                              "n_images": len(labels)}}
    write_json(out_dir / "stages.json", result)
    return result


__all__ = ["check_plan", "check_stages", "check_teacher_stages", "example", "int8_gate", "run_compress"]
