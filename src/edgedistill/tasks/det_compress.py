"""`edgedistill compress` of a task=detection run (FCOS / RetinaNet): prune → export → quantize, each stage scored
on the held-out split (COCO mAP, box agreement with its input) and timed against its input in interleaved rounds,
end to end (an ONNX stage includes decoding and NMS in Python).

- prune: Torch-Pruning's DepGraph on a copy of the DetNet's head graph (tasks/det_graph.py HeadGraph); the head's
  final class / box / centerness convs are ignored (their outputs are classes × anchors, 4 box values, 1), so
  the head stays legal while DepGraph keeps the FPN's inner/layer blocks consistent; FCOS's GroupNorm'd head
  tower keeps its width (det_stages.group_normed). The pruned student is then
  distilled from the unpruned one (DetDistiller through the run's engine; the stage's terms, else the run's)
  for the stage's step_epochs.
- export: fp32 ONNX of the head graph (fixed input size, dynamic batch; NMS outside the graph, written in the
  metadata), parity-checked on the raw outputs and on the decoded boxes.
- quantize: the int8 file compress/int8_choice.py picks by measurement on this CPU (gated on box agreement on
  train images), then gated on the held-out split: mAP drop ≤ detection.int8_max_map_drop and box agreement
  with the fp32 file ≥ compress.min_int8_agreement. A file that fails is kept as *.gate-failed.onnx, not shipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from ..errors import UserError
from ..recipe.detection import DET_STAGES
from .det_chain import det_data, onnx_predict, score, stack, torch_predict
from .det_graph import NMS_NOTE, DetDecoder, check_exportable
from .det_stages import export_det, prune_stage, quantize_det, teacher_speed
from .seg_compress import SegCompress
from .stage_loop import Steps, run_stages, start, write_result

def check_det_stages(r: Any) -> None:
    """Every stage is one detection runs, in an order that works (prune before export before quantize)."""
    names = [s.name for s in r.compress.stages]
    if not names:
        raise UserError(f"no compression stages given; allowed: compress.stages=[…] with {', '.join(DET_STAGES)}",
                        key="compress.stages")
    order = [DET_STAGES.index(n) for n in names]
    if order != sorted(order) or len(set(names)) != len(names):
        raise UserError(f"compress.stages {names}: allowed: each of {', '.join(DET_STAGES)} at most once, in that "
                        "order", key="compress.stages")
    for i, s in enumerate(r.compress.stages):
        if s.name == "quantize" and s.mode != "static":
            raise UserError(f"compress.stages.{i}.mode={s.mode!r}: allowed for detection: static (calibrated "
                            "int8 of every conv)", key=f"compress.stages.{i}.mode")
        if s.name == "prune" and s.ratio is None:
            raise UserError(f"compress.stages.{i}: detection pruning takes ratio (share of channels removed per "
                            "group); allowed: ratio in [0, 1)", key=f"compress.stages.{i}.ratio")


class DetCompress(SegCompress):
    """One compress folder: recipe, data, the held-out split, the decoder, and the stage rows as they are made."""

    KEYS = ("map", "map50", "map75", "mar100", "agreement")
    HEADLINE = ("map", "mAP", "box agreement")

    def __init__(self, r: Any, meta: dict[str, Any], out: Path, console: Console, model: nn.Module):
        self.r, self.meta, self.out, self.console = r, meta, out, console
        self.train, evals, self.names = det_data(r, meta)
        self.images, self.targets = stack(evals[r.eval.split])
        self.min_score, self.agree_score = r.detection.score_threshold, r.detection.agreement_score
        self.batch, self.threads = r.deploy.batch_size, r.deploy.threads
        self.decoder = DetDecoder(model, r.data.image_size)
        self.rows: list[dict[str, Any]] = []

    def scores(self, predict: Any, ref: Any) -> tuple[dict[str, Any], Any]:
        dets = predict(self.images)
        return score(dets, self.targets, self.min_score, self.agree_score, ref), dets

    def predictor(self, thing: nn.Module | Path) -> Any:
        return onnx_predict(thing, self.decoder) if isinstance(thing, Path) else torch_predict(thing)

    def save_ref(self, d: Path, ref: Any) -> None:
        """A finished stage's decoded boxes (per image: boxes, labels, scores), the next stage's reference for
        box agreement (tasks/stage_loop.py)."""
        torch.save([{k: v.cpu() for k, v in det.items()} for det in ref], d / "ref.pt")

    def load_ref(self, d: Path) -> Any:
        return torch.load(d / "ref.pt", weights_only=True)

    def call(self, thing: nn.Module | Path, decoder: DetDecoder | None = None) -> Any:
        """One timed call, end to end: an ONNX file's session plus decoding and NMS (`decoder`, default the
        student's); a DetNet's forward."""
        if not isinstance(thing, Path):
            return super().call(thing)
        from ..deploy.onnx_runtime import ort_session

        x = np.ascontiguousarray(np.resize(self.images, (self.batch, *self.images.shape[1:])), np.float32)
        s = ort_session(thing, self.threads)
        feed, dec = {s.get_inputs()[0].name: x}, decoder or self.decoder

        return lambda: dec(s.run(None, feed)[0])  # decoding at self.threads: timing() sets them


def compress_det(ckpt: Path, meta: dict[str, Any], run_dir: Path | None, r: Any, out: Path, console: Console,
                 resume: bool = False) -> dict[str, Any]:
    """Every stage of compress.stages for a detection student; writes stages.json and report.md into `out`.

    resume: `out` is a compress folder started with the same stages (plan.json, checked by the caller); every
    stage whose entry.json exists is reloaded from disk, the first unfinished one reruns (tasks/stage_loop.py)."""
    from ..compress.prune import load_pruned
    from ..report.det_stages import det_stage_lines, print_det_stages

    check_det_stages(r)
    student, meta = load_pruned(ckpt)
    check_exportable(student, key="student.model")
    student.set_image_size(r.data.image_size)  # type: ignore[operator]
    model: nn.Module = student.cpu().float().eval()
    job = DetCompress(r, meta, out, console, model)
    start(job, ckpt, resume)

    def load(path: str) -> nn.Module:
        pruned = load_pruned(path)[0]
        pruned.set_image_size(r.data.image_size)  # type: ignore[operator]
        return pruned

    model, current = run_stages(job, model, ckpt, Steps(prune_stage, export_det, quantize_det, load), resume)
    teacher = teacher_speed(job, run_dir, current)
    result = {"task": "detection", "model": meta["model"], "checkpoint": str(ckpt), "split": r.eval.split,
              "images": len(job.images), "stages": job.rows, "final": str(current), "teacher": teacher,
              "nms": NMS_NOTE, "decode": job.decoder.settings(),
              "deploy": {"batch": job.batch, "threads": job.threads}, "dir": str(out)}
    return write_result(job, result, "detection", det_stage_lines(result), print_det_stages)


__all__ = ["DetCompress", "check_det_stages", "compress_det"]
