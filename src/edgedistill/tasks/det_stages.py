"""The stages of a detection compress (tasks/det_compress.py): prune + distill-fine-tune, export with box parity,
int8 gated on mAP and box agreement, and the teacher's speed against the final student."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..deploy.export import check_parity, export_onnx, failed_path
from ..errors import UserError
from .det_chain import agreement, box_agreement, int8_gate, onnx_predict, score, torch_predict, train_images
from .det_graph import DetDecoder, HeadGraph, exportable, is_ssd

PARITY_MAP_TOL = 0.5  # mAP points an fp32 ONNX file may differ from PyTorch by (float rounding at NMS ties)
PARITY_MIN_AGREEMENT = 98.0  # % of boxes (score ≥ detection.score_threshold) matched between ONNX and PyTorch


def head_outputs(det: nn.Module) -> list[nn.Module]:
    """The convs whose output channels are the head's answers: classes × anchors, 4 × anchors, centerness (SSD:
    the last conv of each level's class and box predictor)."""
    h = det.net.head
    if is_ssd(det):
        return [list(block.modules())[-1] for part in (h.classification_head, h.regression_head)
                for block in part.module_list]
    return [m for m in (h.classification_head.cls_logits, h.regression_head.bbox_reg,
                        getattr(h.regression_head, "bbox_ctrness", None)) if m is not None]


def group_normed(det: nn.Module) -> list[nn.Module]:
    """The head's convs feeding a GroupNorm (FCOS: 32 groups): pruned, a 64-wide tower keeps 1 channel a group
    and GroupNorm cannot train on the 1×1 P7 map, so the tower keeps its width (its inputs still follow the FPN)."""
    out = []
    for seq in det.net.head.modules():
        if isinstance(seq, nn.Sequential):
            kids = list(seq)
            out += [a for a, b in zip(kids, kids[1:]) if isinstance(a, nn.Conv2d) and isinstance(b, nn.GroupNorm)]
    return out


def prune_det(model: nn.Module, ratio: float, example: torch.Tensor) -> nn.Module:
    """Torch-Pruning (DepGraph, L2 magnitude) on a copy of the DetNet, traced through its head graph."""
    import torch_pruning as tp

    m = copy.deepcopy(model).cpu().eval()
    graph = HeadGraph(m).eval()
    with torch.no_grad():
        before = graph(example).shape
    pruner = tp.pruner.MagnitudePruner(graph, example, tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
                                       ignored_layers=head_outputs(m) + group_normed(m))
    pruner.step()
    with torch.no_grad():
        if graph(example).shape != before:
            raise RuntimeError("pruning changed the head's output shape")
    return m


def prune_stage(job: Any, model: nn.Module, cfg: Any, d: Path, resume: bool = False) -> nn.Module:
    """Prune, then distill the pruned student from the unpruned one for the stage's step_epochs (resume: from
    the fine-tune's last.pt in `d`, when a killed compress left one)."""
    from ..compress.prune import save_pruned
    from ..data.det_base import DetDataset, det_loader
    from ..distill import build_terms
    from ..distill.det_base import DetDistiller
    from ..engine import fit, resolve_device
    from ..evaluate.detection import quick_map

    r = job.r
    example = torch.from_numpy(job.images[:2])
    pruned = prune_det(model, float(cfg.ratio), example)
    epochs = r.train.epochs // 2 if cfg.step_epochs == "auto" else int(cfg.step_epochs)
    if epochs > 0:
        teacher = copy.deepcopy(model).eval()
        terms = build_terms(r.distill.model_copy(update={"terms": cfg.terms or r.distill.terms}), pruned, teacher,
                            example)
        module = DetDistiller(pruned, teacher, terms, det_weight=r.distill.ce_weight)
        loader = det_loader(job.train, r.train.batch_size, train=True, workers=r.data.workers, seed=r.train.seed)
        plain = DetDataset(job.train.samples, job.train.size, False)  # never the held-out split
        seen = det_loader(plain, r.train.batch_size, train=False, workers=0, seed=0)
        lr = r.train.lr / 10 if cfg.lr == "auto" else float(cfg.lr)
        device = resolve_device(r.train.device)
        fit(module, loader, r.train, d, monitor="map", epochs=epochs, lr=lr, name="prune", console=job.console,
            evaluate=lambda: quick_map(pruned, seen, device, job.min_score), resume=resume)
    pruned = pruned.cpu().eval()
    save_pruned(d / "model.safetensors", pruned, {**job.meta, "stage": "prune"})
    return pruned


def export_det(job: Any, model: nn.Module, path: Path, decoder: DetDecoder | None = None, check: bool = True,
               spec: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The head graph as fp32 ONNX (input RGB 0..1, normalization inside; NMS outside, said in the metadata),
    parity-checked on the raw outputs and on the decoded boxes of the held-out images."""
    c, size = job.r.compress, job.r.data.image_size
    dec = decoder or job.decoder
    export_onnx(HeadGraph(model).eval(), path, size, job.names, [0.0] * 3, [1.0] * 3, opset=c.opset, extra={
        "task": "detection", "model": spec or str(job.meta["model"]),  # predict rebuilds the decoder from it
        "input": "N×3×S×S RGB in 0..1 (the graph normalizes)",
        "output": dec.settings()["outputs"], "nms": dec.settings()["nms"], "resize": dec.settings()["resize"],
        "decode": json.dumps(dec.settings())})
    if not check:
        return path, {}
    x = torch.from_numpy(job.images[:c.parity_images])
    parity = check_parity(HeadGraph(model).eval(), path, x, atol=c.atol, rtol=c.rtol)
    if not parity["passed"]:
        raise UserError(f"fp32 ONNX parity failed (max |Δ head output| {parity['max_abs_diff']:.2g} > atol {c.atol}); "
                        f"kept as {parity['path']}", key="compress.atol")
    ref, got = torch_predict(model)(job.images), onnx_predict(path, dec)(job.images)
    a = agreement(got, ref, job.min_score)
    m_ref, m_got = (score(d, job.targets, job.min_score, job.agree_score)["map"] for d in (ref, got))
    parity.update(box_agreement=a, map_pytorch=m_ref, map_onnx=m_got, images=len(job.images),
                  max_map_diff=PARITY_MAP_TOL, min_box_agreement=PARITY_MIN_AGREEMENT)
    if abs(m_ref - m_got) > PARITY_MAP_TOL or (a is not None and a < PARITY_MIN_AGREEMENT):
        kept = path.replace(failed_path(path))
        raise UserError(f"fp32 ONNX box parity failed: mAP {m_got:.2f} vs PyTorch {m_ref:.2f}, box agreement "
                        f"{a:.1f}% (allowed: within {PARITY_MAP_TOL} points, ≥ {PARITY_MIN_AGREEMENT}%); kept as "
                        f"{kept}", key="compress.atol")
    return path, parity


def quantize_det(job: Any, model: nn.Module, current: nn.Module | Path, cfg: Any, d: Path,
                 ref: Any) -> tuple[nn.Module | Path, Any]:
    from ..compress.cpu import detect_cpu, resolve
    from ..compress.int8_choice import choose_int8

    r = job.r
    fp32 = current if isinstance(current, Path) else export_det(job, model, d / "model.fp32.onnx")[0]
    fp32_scores, fp32_dets = job.scores(onnx_predict(fp32, job.decoder), None)
    calib = train_images(job.train, 0, cfg.calib_samples)
    select = train_images(job.train, cfg.calib_samples, cfg.sensitivity_images)
    path = d / "model.int8.onnx"
    info = choose_int8(fp32, path, calib, select, cfg, resolve(cfg.format, r.deploy.target, detect_cpu()),
                       r.compress.min_int8_agreement, "compress.stages.quantize.fp32_layers",
                       (job.batch, job.threads), min(r.compress.latency_runs, 50), job.console,
                       agreement=box_agreement(job.decoder, job.agree_score), decode=job.decoder)
    int8_scores, _ = job.scores(onnx_predict(path, job.decoder), fp32_dets)
    gate = int8_gate(fp32_scores, int8_scores, r.detection.int8_max_map_drop, r.compress.min_int8_agreement)
    choice = info.get("int8_choice", {})
    keep = {"int8_format": info.get("format"), "int8_graph": info.get("graph"), "int8_choice": choice, "gate": gate}
    if not gate["passed"]:
        failed = path.replace(path.with_name("model.int8.gate-failed.onnx"))
        job.console.print(f"[red]int8 rejected[/]: {'; '.join(gate['reasons'])}; kept as {failed}, not shipped")
        job.add("quantize", str(failed), failed, fp32, ref, shipped=False, **keep)
        return fp32, ref  # the parity-checked fp32 file is what ships
    shipped = choice.get("shipped", "int8") == "int8"
    ref = job.add("quantize", str(path), path, fp32, ref, shipped=shipped, **keep)
    return (path if shipped else fp32), ref


def teacher_speed(job: Any, run_dir: Path | None, final: nn.Module | Path) -> dict[str, Any] | None:
    """The run's trained teacher (its fp32 ONNX head graph + decoding, or PyTorch for a two-stage model) against
    the final student artifact, end to end and interleaved; None without a teacher."""
    from ..models import load_model

    f = run_dir / "teacher" / "model.safetensors" if run_dir is not None else None
    if f is None or not f.exists():
        return None
    teacher = load_model(f)[0].cpu().float().eval()
    teacher.set_image_size(job.r.data.image_size)  # type: ignore[operator]
    s, _ = job.scores(torch_predict(teacher), None)
    if exportable(teacher):
        dec = DetDecoder(teacher, job.r.data.image_size)
        path = export_det(job, teacher, job.out / "teacher" / "model.onnx", dec, check=False,
                          spec=job.r.teacher.model)[0]
        call, form = job.call(path, dec), "fp32 ONNX + decoding and NMS"
    else:
        call, form = job.call(teacher), "PyTorch (two-stage: no head graph to export)"
    t = job.timing({"teacher": call, "student": job.call(final)})
    return {"map": s["map"], "teacher_ms": t["ms"]["teacher"], "student_ms": t["ms"]["student"], "form": form,
            "student_speedup": t["speedup"], "speedup_min": t["speedup_min"], "speedup_max": t["speedup_max"],
            "rounds": t["rounds"], "batch": t["batch"], "threads": t["threads"], "student_artifact": str(final)}


__all__ = ["export_det", "group_normed", "head_outputs", "prune_det", "prune_stage", "quantize_det", "teacher_speed"]
