"""One function per compression stage, registered by the name a recipe's `compress.stages[].name` uses.

A stage takes the job's current model and returns its artifact; the runner (compress/chain.py)
measures every artifact the same way, so a stage only does its one transformation.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..deploy.export import check_parity, export_onnx
from ..errors import UserError
from ..registry import Registry
from .iterative import prune_in_steps
from .prune import save_pruned
from .quantize import quantize_dynamic_onnx
from .recover import distill_fit, resolve_epochs, resolve_lr
from .stage_job import Artifact, Job, example
from .unstructured import make_permanent, overall_sparsity, prune_unstructured, sparsity_report

Stage = Callable[[Job, Any, Path], Artifact]
# onnxruntime.quantization.quantize_static passes no bin counts to its entropy calibrator: it runs with 128
# histogram bins and 128 quantized bins, so the only threshold it can pick is the full range (calibrate.py,
# get_entropy_threshold). Measured: the same scales as minmax on every tensor (benchmarks/int8_calibration.py).
ENTROPY_NOTE = ("ONNX Runtime's quantize_static runs its entropy calibrator with 128 bins for 128 levels, "
                "which yields the min-max ranges (measured: identical scales); percentile is the clipping choice")
STAGES: Registry[Stage] = Registry("compression stage")


def export_checked(job: Job, model: nn.Module, path: Path) -> tuple[Path | None, dict[str, Any]]:
    """fp32 ONNX export plus the parity check on real held-out images; a failing file is kept renamed, not used."""
    r, c = job.ctx.recipe, job.ctx.recipe.compress
    export_onnx(model, path, r.data.image_size, job.meta["class_names"], r.data.mean, r.data.std, opset=c.opset)
    parity = check_parity(model, path, job.images[:c.parity_images], atol=c.atol, rtol=c.rtol)
    parity.update(atol=c.atol, rtol=c.rtol, images=min(c.parity_images, len(job.images)))
    if not parity["passed"]:
        job.ctx.console.print(f"[red]parity check failed[/] for {path} (max |Δlogit| {parity['max_abs_diff']:.2e}); "
                              f"kept as {parity['path']}, not reported")
    return (path if parity["passed"] else None), parity


def save_torch(job: Job, model: nn.Module, stage_dir: Path, stage: str) -> Path:
    """Weights plus the pruned widths, so load_pruned rebuilds this exact network without re-pruning."""
    return save_pruned(stage_dir / "model.safetensors", model, {**job.meta, "model": job.spec, "stage": stage})


def _torch_artifact(job: Job, model: nn.Module, stage_dir: Path, stage: str, **info: Any) -> Artifact:
    save_torch(job, model, stage_dir, stage)
    path, parity = export_checked(job, model, stage_dir / "model.onnx")
    return Artifact(model, path, {"parity": parity, **info})


@STAGES.register("prune", description="structured channel pruning (Torch-Pruning DepGraph), in steps with distillation")
def prune_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    model, info = prune_in_steps(job, cfg, stage_dir, copy.deepcopy(_need_torch(job, "prune")))
    return _torch_artifact(job, model, stage_dir, "prune", **info)


@STAGES.register("unstructured", description="magnitude pruning of single weights (torch.nn.utils.prune)")
def unstructured_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    model = copy.deepcopy(_need_torch(job, "unstructured"))
    make_permanent(prune_unstructured(model, cfg.amount, cfg.scope))
    return _torch_artifact(job, model.eval(), stage_dir, "unstructured", sparsity=overall_sparsity(model),
                           sparsity_layers=sparsity_report(model))


@STAGES.register("finetune", description="distillation-aware fine-tuning through the engine")
def finetune_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    r = job.ctx.recipe
    model = copy.deepcopy(_need_torch(job, "finetune"))
    epochs = resolve_epochs(cfg.epochs, cfg.fraction, r.train.epochs)
    lr = resolve_lr(cfg.lr, r.train.lr)
    terms = distill_fit(job, model, cfg, stage_dir, epochs=epochs, lr=lr, schedule=cfg.schedule)
    return _torch_artifact(job, model.cpu().eval(), stage_dir, "finetune", teacher=cfg.teacher,
                           epochs=epochs, lr=lr, schedule=cfg.schedule, terms=terms)


@STAGES.register("qat", description="quantization-aware training with the distillation loss (torchao PT2E) → int8 ONNX")
def qat_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    import numpy as np
    import onnx

    from ..deploy.onnx_runtime import ort_predict, ort_session
    from .cpu import detect_cpu, resolve
    from .qat import convert, export_qat_onnx, prepare_qat, qat_format

    r = job.ctx.recipe
    target = str(resolve("auto", r.deploy.target, detect_cpu())["target"])
    fmt = qat_format(cfg.format, target)
    qat = prepare_qat(copy.deepcopy(_need_torch(job, "qat")), example(job, 2), fmt)
    terms = distill_fit(job, qat, cfg, stage_dir, logits_only=True)
    converted = convert(qat)
    out = export_qat_onnx(converted, stage_dir / "model.int8.onnx", example(job, 2), r.compress.opset)
    proto = onnx.load(str(out))
    for node in proto.graph.node:  # the dynamo exporter's per-node debug info (FX source) is ~40% of the file
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.graph.value_info[:]
    onnx.helper.set_model_props(proto, {
        "class_names": json.dumps(list(job.meta["class_names"])), "mean": json.dumps(list(r.data.mean)),
        "std": json.dumps(list(r.data.std)), "image_size": str(r.data.image_size), "producer": "edgedistill",
        "int8_format": fmt, "int8_graph": "qdq", "int8_target": target})
    onnx.save(proto, str(out))
    images = job.images[:r.compress.parity_images]
    with torch.no_grad():
        ref = converted(images).numpy()
    got = ort_predict(ort_session(out), images.numpy())
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    parity = {"max_abs_diff": float(np.max(np.abs(got - ref))), "top1_agreement": agree, "images": len(images),
              "against": "converted PyTorch int8 graph", "passed": agree >= r.compress.min_int8_agreement}
    info: dict[str, Any] = {}
    if not parity["passed"]:
        kept = out.replace(out.with_name("model.int8.parity-failed.onnx"))
        job.ctx.console.print(f"[red]qat: ONNX top-1 agreement with the PyTorch int8 graph {100 * agree:.1f}%[/]; "
                              f"kept as {kept}, not reported")
        out, info["kept_for_inspection"] = None, str(kept)
    return Artifact(None, out, {**info, "qat_parity": parity, "teacher": cfg.teacher, "epochs": cfg.epochs, "lr": cfg.lr,
                                "terms": terms, "opset": int(proto.opset_import[0].version), "qat_format": fmt,
                                "target": target, "quantizer": "torchao X86InductorQuantizer (QAT)"}, precision="int8",
                    gate_on_source=False)


@STAGES.register("export", description="the fp32 ONNX deliverable (parity-checked), optional TorchScript")
def export_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    model = _need_torch(job, "export").eval()
    art = _torch_artifact(job, model, stage_dir, "export")
    if cfg.torchscript:
        ts = stage_dir / "model.ts"
        with torch.no_grad():
            torch.jit.trace(copy.deepcopy(model).cpu().float(), example(job)).save(str(ts))
        art.info["torchscript"] = str(ts)
    return art


@STAGES.register("quantize", description="int8 ONNX with ONNX Runtime: static (calibrated QDQ) or dynamic")
def quantize_stage(job: Job, cfg: Any, stage_dir: Path) -> Artifact:
    from .cpu import detect_cpu, dynamic_resolved, not_measurable_reason, resolve
    from .int8_choice import choose_int8
    from .quantize import quant_metadata

    fp32 = job.onnx_path
    if fp32 is None:
        if job.model is None:
            raise UserError("quantize needs an fp32 model or ONNX file before it", key="compress.stages")
        fp32, parity = export_checked(job, job.model, stage_dir / "model.fp32.onnx")
        if fp32 is None:
            return Artifact(None, None, {"parity": parity}, precision="int8")
    r, out = job.ctx.recipe, stage_dir / "model.int8.onnx"
    cpu = detect_cpu()
    why = not_measurable_reason(r.deploy.target, cpu)
    if why:
        job.ctx.console.print(f"[yellow]{why}[/]: building the int8 file for it; its latency is "
                              "not measurable here and its agreement is checked with exact int8 arithmetic")
    info: dict[str, Any] = {"source_onnx": str(fp32), "mode": cfg.mode}
    if cfg.mode == "static" and cfg.calibration == "entropy":
        info["calibration_note"] = ENTROPY_NOTE
        job.ctx.console.print(f"[yellow]calibration=entropy: {ENTROPY_NOTE}[/]")
    if cfg.mode == "static":
        key = f"compress.stages.{_index(r, cfg)}.fp32_layers"
        calib = train_images(job, 0, cfg.calib_samples)
        select = train_images(job, cfg.calib_samples, cfg.sensitivity_images)
        info.update(choose_int8(fp32, out, calib.numpy(), select.numpy(), cfg,
                                resolve(cfg.format, r.deploy.target, cpu), r.compress.min_int8_agreement, key,
                                (r.deploy.batch_size, r.deploy.threads), min(r.compress.latency_runs, 50),
                                job.ctx.console))
        info.update(calibration=cfg.calibration, calib_samples=len(calib), per_channel=cfg.per_channel)
    else:
        res = dynamic_resolved(resolve(cfg.format, r.deploy.target, cpu))
        quantize_dynamic_onnx(fp32, out, str(res["format"]), quant_metadata(res, []))
        info.update({k: res[k] for k in ("format", "reduce_range", "format_reason", "target", "host",
                                         "measurable_here")})
    return Artifact(None, out, info, precision="int8", not_measurable=why)


def _index(r: Any, cfg: Any) -> int:
    """The position of stage config `cfg` in the recipe's stage list, for error keys."""
    k = [i for i, s in enumerate(r.compress.stages) if s is cfg]
    return k[0] if k else len(r.compress.stages) - 1


def train_images(job: Job, start: int, n: int) -> torch.Tensor:
    """Train images [start, start+n) of a seeded permutation, eval preprocessing (no augmentation): what
    deployment sees. Calibration takes the first ones, mixed-precision selection the next (the same ones
    when the split is too small for both)."""
    data = job.ctx.data
    train = data.train
    if dataclasses.is_dataclass(train) and hasattr(train, "transform"):
        train = dataclasses.replace(train, transform=data.val.transform)
    g = torch.Generator().manual_seed(job.ctx.recipe.data.split_seed)
    perm = torch.randperm(len(train), generator=g)
    idx = (perm[start:start + n] if start + n <= len(perm) else perm[-n:]).tolist()
    return torch.stack([train[i][0] for i in idx])


def _need_torch(job: Job, stage: str) -> nn.Module:
    if job.model is None:
        raise UserError(f"stage {stage!r} needs a PyTorch model, but an earlier stage left only an int8 ONNX file; "
                        "allowed: quantize as the last stage", key="compress.stages")
    return job.model
