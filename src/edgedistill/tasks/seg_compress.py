"""`edgedistill compress` of a task=segmentation run: prune → export → quantize, each stage scored on the held-out
split (mIoU, per-pixel agreement with its input) and timed against its input in interleaved rounds.

- prune: Torch-Pruning's DepGraph removes channels of the backbone and the LR-ASPP/DeepLabV3 head; the
  classifier convs (their outputs are the classes) are ignored, so the head stays legal (cbr and scale branches
  keep equal widths through the dependency graph). The pruned student is then distilled from the unpruned one
  (pixel KD through the run's engine) for the stage's step_epochs.
- export: fp32 ONNX (dynamic batch; metadata: task, classes, input size, ignore index), parity-checked.
- quantize: the int8 file compress/int8_choice.py picks by measurement on this CPU (formats correct on it by
  compress/cpu.py, gated on per-pixel agreement on train images), then gated on the held-out split: mIoU drop
  ≤ segmentation.int8_max_miou_drop and per-pixel agreement ≥ compress.min_int8_agreement. A file that fails is
  kept as *.gate-failed.onnx and not shipped.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from ..deploy.ab_latency import interleaved_rounds
from ..deploy.export import check_parity, export_onnx
from ..errors import UserError
from ..recipe.task import SEG_STAGES
from .seg_chain import int8_gate, onnx_predict, score, seg_data, stack, torch_predict, train_images
from .stage_loop import Steps, run_stages, start, write_result



def check_seg_stages(r: Any) -> None:
    """Every stage is one segmentation runs, in an order that works (prune before export before quantize)."""
    names = [s.name for s in r.compress.stages]
    if not names:
        raise UserError("no compression stages given; allowed: compress.stages=[…] with "
                        f"{', '.join(SEG_STAGES)}", key="compress.stages")
    order = [SEG_STAGES.index(n) for n in names]
    if order != sorted(order) or len(set(names)) != len(names):
        raise UserError(f"compress.stages {names}: allowed: each of {', '.join(SEG_STAGES)} at most once, in that "
                        "order", key="compress.stages")
    for i, s in enumerate(r.compress.stages):
        if s.name == "quantize" and s.mode != "static":
            raise UserError(f"compress.stages.{i}.mode={s.mode!r}: allowed for segmentation: static (calibrated "
                            "int8 of every conv)", key=f"compress.stages.{i}.mode")
        if s.name == "prune" and s.ratio is None:
            raise UserError(f"compress.stages.{i}: segmentation pruning takes ratio (share of channels removed "
                            "per group); allowed: ratio in [0, 1)", key=f"compress.stages.{i}.ratio")


def prune_seg(model: nn.Module, ratio: float, example: torch.Tensor) -> nn.Module:
    """Torch-Pruning (DepGraph, L2 magnitude) on a copy; every conv whose outputs are the classes is ignored."""
    import torch_pruning as tp

    m = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        k = m(example).shape[1]
    ignored = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.out_channels == k]
    pruner = tp.pruner.MagnitudePruner(m, example, tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
                                       ignored_layers=ignored)
    pruner.step()
    with torch.no_grad():
        if m(example).shape != model.eval()(example).shape:
            raise RuntimeError("pruning changed the output shape")
    return m


class SegCompress:
    """One compress folder: recipe, data, the held-out split, and the stage rows as they are made."""

    KEYS = ("miou", "pixel_acc", "boundary_f1", "agreement", "per_image_iou")  # a stage row's scores
    HEADLINE = ("miou", "mIoU", "agreement")  # the metric, its label, the agreement's label

    def __init__(self, r: Any, meta: dict[str, Any], out: Path, console: Console):
        self.r, self.meta, self.out, self.console = r, meta, out, console
        self.train, evals, self.names = seg_data(r, meta)
        self.images, self.masks = stack(evals[r.eval.split])
        self.k, self.ignore, self.tol = len(self.names), r.segmentation.ignore_index, r.segmentation.boundary_tolerance
        self.batch, self.threads = r.deploy.batch_size, r.deploy.threads
        self.rows: list[dict[str, Any]] = []

    def scores(self, predict: Any, ref: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray]:
        pred = predict(self.images).argmax(1)
        return score(pred, self.masks, self.k, self.ignore, self.tol, ref), pred

    def timing(self, calls: dict[str, Any]) -> dict[str, Any]:
        """Interleaved rounds at the deploy batch and threads: each name's median ms and the speed-up of the last
        call against the first (median of per-round ratios)."""
        c = self.r.compress
        per = interleaved_rounds(calls, rounds=5, runs=max(3, c.latency_runs // 5), warmup=min(3, c.warmup_runs),
                                 threads=self.threads)
        names = list(per)
        ratios = [a / b for a, b in zip(per[names[0]], per[names[-1]], strict=True)]
        return {"ms": {k: float(np.median(v)) for k, v in per.items()}, "speedup": float(np.median(ratios)),
                "speedup_min": min(ratios), "speedup_max": max(ratios), "rounds": 5,
                "faster_in_rounds": int(sum(r > 1 for r in ratios)), "batch": self.batch, "threads": self.threads}

    def call(self, thing: nn.Module | Path) -> Any:
        x = np.ascontiguousarray(np.resize(self.images, (self.batch, *self.images.shape[1:])), np.float32)
        if isinstance(thing, Path):
            from ..deploy.onnx_runtime import ort_session

            s = ort_session(thing, self.threads)
            feed = {s.get_inputs()[0].name: x}
            return lambda: s.run(None, feed)
        m, t = thing.cpu().float().eval(), torch.from_numpy(x)

        def run() -> None:  # at self.threads: timing() sets them for the whole measurement
            with torch.inference_mode():
                m(t)
        return run

    def predictor(self, thing: nn.Module | Path) -> Any:
        return onnx_predict(thing, None) if isinstance(thing, Path) else torch_predict(thing)

    def save_ref(self, d: Path, ref: np.ndarray) -> None:
        """A finished stage's argmax maps, the next stage's reference (tasks/stage_loop.py)."""
        np.save(d / "ref.npy", ref.astype(np.int16))

    def load_ref(self, d: Path) -> np.ndarray:
        return np.load(d / "ref.npy").astype(np.int64)

    def add(self, stage: str, artifact: str, thing: nn.Module | Path, before: nn.Module | Path | None,
            ref: Any, **info: Any) -> Any:
        """Score and time one stage against its input; returns its predictions (the next stage's reference)."""
        s, pred = self.scores(self.predictor(thing), ref)
        row: dict[str, Any] = {"stage": stage, "artifact": artifact, **{k: s[k] for k in self.KEYS}, **info}
        if isinstance(thing, Path):
            row["size_mb"] = thing.stat().st_size / 1e6
        else:
            row["params"] = sum(p.numel() for p in thing.parameters())
            row["size_mb"] = sum(p.numel() * p.element_size() for p in thing.state_dict().values()) / 1e6
        if before is not None:
            row["latency"] = self.timing({"input": self.call(before), stage: self.call(thing)})
            row["latency_ms"] = row["latency"]["ms"][stage]
            row["input_latency_ms"] = row["latency"]["ms"]["input"]
        metric, label, agreement = self.HEADLINE
        if self.rows:
            row[f"{metric}_drop_vs_input"] = self.rows[-1][metric] - s[metric]
        self.rows.append(row)
        lat = f", {row['latency_ms']:.2f} ms ({row['latency']['speedup']:.2f}× its input)" if before is not None else ""
        self.console.print(f"{stage}: {label} {s[metric]:.2f}" + (f", {agreement} {s['agreement']:.1f}%"
                                                                   if s["agreement"] is not None else "") + lat)
        return pred


def compress_seg(ckpt: Path, meta: dict[str, Any], run_dir: Path | None, r: Any, out: Path, console: Console,
                 resume: bool = False) -> dict[str, Any]:
    """Every stage of compress.stages for a segmentation student; writes stages.json and report.md into `out`.

    resume: `out` is a compress folder started with the same stages (plan.json, checked by the caller); every
    stage whose entry.json exists is reloaded from disk, the first unfinished one reruns (tasks/stage_loop.py)."""
    from ..compress.prune import load_pruned
    from ..report.segmentation import print_seg_stages, seg_stage_lines

    check_seg_stages(r)
    student, meta = load_pruned(ckpt)
    job = SegCompress(r, meta, out, console)
    start(job, ckpt, resume)
    model: nn.Module = student.cpu().float().eval()
    steps = Steps(_prune_stage, _export, _quantize, lambda p: load_pruned(p)[0])
    model, current = run_stages(job, model, ckpt, steps, resume)
    teacher = _teacher_speed(job, run_dir, current)
    result = {"task": "segmentation", "model": meta["model"], "checkpoint": str(ckpt), "split": r.eval.split,
              "images": len(job.images), "stages": job.rows, "final": str(current), "teacher": teacher,
              "deploy": {"batch": job.batch, "threads": job.threads}, "dir": str(out)}
    return write_result(job, result, "segmentation", seg_stage_lines(result), print_seg_stages)


def _prune_stage(job: SegCompress, model: nn.Module, cfg: Any, d: Path, resume: bool = False) -> nn.Module:
    from ..compress.prune import save_pruned
    from ..distill import build_terms
    from ..distill.dense import SegDistiller
    from ..engine import fit, resolve_device
    from ..evaluate.segmentation import quick_miou
    from ..data.seg_transforms import seg_loader

    r = job.r
    example = torch.from_numpy(job.images[:2])
    pruned = prune_seg(model, float(cfg.ratio), example)
    epochs = r.train.epochs // 2 if cfg.step_epochs == "auto" else int(cfg.step_epochs)
    if epochs > 0:
        teacher = copy.deepcopy(model).eval()
        terms = build_terms(r.distill.model_copy(update={"terms": cfg.terms or r.distill.terms}), pruned, teacher,
                            example)
        module = SegDistiller(pruned, teacher, terms, ce_weight=r.distill.ce_weight, ignore_index=job.ignore)
        loader = seg_loader(job.train, r.train.batch_size, train=True, workers=r.data.workers, seed=r.train.seed)
        seen = seg_loader(job.train, r.train.batch_size, train=False, workers=0, seed=0)  # never the held-out split
        lr = r.train.lr / 10 if cfg.lr == "auto" else float(cfg.lr)
        device = resolve_device(r.train.device)
        fit(module, loader, r.train, d, monitor="miou", epochs=epochs, lr=lr, name="prune", console=job.console,
            evaluate=lambda: quick_miou(pruned, seen, device, job.k, job.ignore), resume=resume)
    pruned = pruned.cpu().eval()
    save_pruned(d / "model.safetensors", pruned, {**job.meta, "stage": "prune"})
    return pruned


def seg_meta(ignore: int) -> dict[str, str]:
    """The metadata of every segmentation ONNX file (student and teacher): predict dispatches on `task`."""
    return {"task": "segmentation", "ignore_index": str(ignore), "output": "N×K×H×W logits (argmax over K)"}


def _export(job: SegCompress, model: nn.Module, path: Path) -> tuple[Path, dict[str, Any]]:
    c, d = job.r.compress, job.r.data
    export_onnx(model, path, d.image_size, job.names, d.mean, d.std, opset=c.opset, extra=seg_meta(job.ignore))
    parity = check_parity(model, path, torch.from_numpy(job.images[:c.parity_images]), atol=c.atol, rtol=c.rtol)
    if not parity["passed"]:
        raise UserError(f"fp32 ONNX parity failed (max |Δlogit| {parity['max_abs_diff']:.2g} > atol {c.atol}); kept "
                        f"as {parity['path']}", key="compress.atol")
    return path, parity


def _quantize(job: SegCompress, model: nn.Module, current: nn.Module | Path, cfg: Any, d: Path,
              ref: np.ndarray) -> tuple[nn.Module | Path, np.ndarray]:
    from ..compress.cpu import detect_cpu, resolve
    from ..compress.int8_choice import choose_int8

    r = job.r
    fp32 = current if isinstance(current, Path) else _export(job, model, d / "model.fp32.onnx")[0]
    fp32_scores, fp32_pred = job.scores(onnx_predict(fp32), None)
    calib = train_images(r, job.train, 0, cfg.calib_samples)
    select = train_images(r, job.train, cfg.calib_samples, cfg.sensitivity_images)
    path = d / "model.int8.onnx"
    info = choose_int8(fp32, path, calib, select, cfg, resolve(cfg.format, r.deploy.target, detect_cpu()),
                       r.compress.min_int8_agreement, "compress.stages.quantize.fp32_layers",
                       (job.batch, job.threads), min(r.compress.latency_runs, 50), job.console)
    int8_scores, _ = job.scores(onnx_predict(path), fp32_pred)
    gate = int8_gate(fp32_scores, int8_scores, r.segmentation.int8_max_miou_drop, r.compress.min_int8_agreement)
    choice = info.get("int8_choice", {})
    keep = {"int8_format": info.get("format"), "int8_graph": info.get("graph"), "int8_choice": choice, "gate": gate}
    if not gate["passed"]:
        failed = path.replace(path.with_name("model.int8.gate-failed.onnx"))
        job.console.print(f"[red]int8 rejected[/]: {'; '.join(gate['reasons'])}; kept as {failed}, not shipped")
        job.add("quantize", str(failed), failed, fp32, ref, shipped=False, **keep)
        return current, ref
    shipped = choice.get("shipped", "int8") == "int8"
    ref = job.add("quantize", str(path), path, fp32, ref, shipped=shipped, **keep)
    return (path if shipped else fp32), ref


def _teacher_speed(job: SegCompress, run_dir: Path | None, final: nn.Module | Path) -> dict[str, Any] | None:
    """The run's trained teacher as fp32 ONNX against the final student artifact, interleaved; None without one."""
    from ..models import load_model

    f = run_dir / "teacher" / "model.safetensors" if run_dir is not None else None
    if f is None or not f.exists():
        return None
    teacher = load_model(f)[0].cpu().float().eval()
    d = job.r.data
    path = export_onnx(teacher, job.out / "teacher" / "model.onnx", d.image_size, job.names, d.mean, d.std,
                       opset=job.r.compress.opset, extra=seg_meta(job.ignore))
    s, _ = job.scores(onnx_predict(path), None)
    t = job.timing({"teacher": job.call(path), "student": job.call(final)})
    return {"miou": s["miou"], "teacher_ms": t["ms"]["teacher"], "student_ms": t["ms"]["student"],
            "student_speedup": t["speedup"], "speedup_min": t["speedup_min"], "speedup_max": t["speedup_max"],
            "rounds": t["rounds"], "batch": t["batch"], "threads": t["threads"], "student_artifact": str(final)}


__all__ = ["SEG_STAGES", "check_seg_stages", "compress_seg", "prune_seg"]
