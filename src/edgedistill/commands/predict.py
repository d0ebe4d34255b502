"""`edgedistill predict`: run an exported ONNX model on image files, by the task its metadata records.

Classification: the top-k classes (ONNX Runtime, numpy, PIL; torch is not imported). Segmentation: each class's
share of the image and, with --out, a class-id mask PNG per image (no torch either). Detection: the boxes at or
above --min-score, decoded by the chain's own DetDecoder (torch); with --out, each image with its boxes drawn.
--out also writes predictions.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import UserError

TASKS = ("classification", "segmentation", "detection")


def _names(paths: list[str]) -> list[str]:
    """One output file name per image: its stem, made unique by its position where two stems are the same."""
    stems = [Path(p).stem for p in paths]
    return [f"{s}.png" if stems.count(s) == 1 else f"{s}-{i}.png" for i, s in enumerate(stems)]


def print_predictions(model: Path, images: list[Path], top_k: int, threads: int | None, console: Console,
                      min_score: float = 0.25, out: Path | None = None) -> None:
    """One line per image: the top_k classes (probabilities), class shares (%) or boxes (score, x1 y1 x2 y2)."""
    from ..atomic import atomic_write_text
    from ..deploy.onnx_classify import check_options, open_images, predict_images
    from ..deploy.onnx_runtime import read_onnx_meta

    check_options(top_k, threads, min_score)
    meta = read_onnx_meta(model)
    task = meta.get("task", "classification")
    if task not in TASKS:
        raise UserError(f"{model} records task={task}; allowed: an ONNX file of {', '.join(TASKS)}", key="MODEL")
    if out is not None:
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file; allowed: a folder (made if missing)", key="--out")
        out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if task == "classification":
        rows = predict_images(model, images, top_k=top_k, threads=threads, meta=meta)
        for r in rows:
            shown = ", ".join(f"{t['label']} {t['prob']:.3f}" for t in r["top"])
            console.print(f"{escape(r['path'])}: {escape(shown)}", highlight=False)
    elif task == "segmentation":
        from ..deploy.onnx_segment import save_mask, segment_images

        opened = open_images(images)
        rows = segment_images(model, opened, meta, threads) if opened else []
        names = _names([r["path"] for r in rows])
        for r, name in zip(rows, names, strict=True):
            shown = ", ".join(f"{k} {v:.1f}%" for k, v in list(r["shares"].items())[:top_k])
            console.print(f"{escape(r['path'])}: {escape(shown)}", highlight=False)
            mask = r.pop("mask")
            if out is not None:
                save_mask(mask, out / name)
                r["mask"] = name
    else:
        from ..tasks.det_predict import detect_images, draw_boxes

        opened = open_images(images)
        rows = detect_images(model, opened, meta, min_score, threads) if opened else []
        for (_, img), r, name in zip(opened, rows, _names([r["path"] for r in rows]), strict=True):
            shown = ", ".join(f"{b['label']} {b['score']:.2f} [{', '.join(f'{v:g}' for v in b['box'])}]"
                              for b in r["boxes"][:top_k])
            more = f" (+{len(r['boxes']) - top_k} more)" if len(r["boxes"]) > top_k else ""
            console.print(f"{escape(r['path'])}: {len(r['boxes'])} box(es) ≥ {min_score:g}"
                          f"{': ' if shown else ''}{escape(shown)}{more}", highlight=False)
            if out is not None:
                draw_boxes(img, r["boxes"], list(meta["class_names"]), out / name)
                r["drawn"] = name
    if out is not None:
        atomic_write_text(out / "predictions.json", json.dumps({"model": str(model), "task": task, "images": rows},
                                                              indent=2))
        console.print(f"written: {escape(str(out))}/ (predictions.json"
                      f"{', a mask PNG per image' if task == 'segmentation' else ''}"
                      f"{', each image with its boxes' if task == 'detection' else ''})", highlight=False)
