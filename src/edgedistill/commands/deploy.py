"""What `edgedistill deploy RUN_DIR|MODEL` does: the student in every runtime, measured here, and a recommendation."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ..atomic import atomic_write_text
from ..errors import UserError

if TYPE_CHECKING:
    from ..recipe import Recipe

MAX_IMAGES = 10_000  # held-out images run through every row
MAX_CALIB = 1024  # calibration images (NNCF, PT2E and ONNX Runtime each calibrate on all of them)
MAX_ROUNDS, MAX_RUNS = 50, 10_000
# what deploy reads of the recipe: the data, the deploy setting, the int8 gate and the run's quantize stage
DEPLOY_READS = ("data.", "deploy.", "segmentation.", "detection.", "compress.min_int8_agreement", "compress.stages",
                "compress.stages.")
MAX_DEPLOY_BATCH = 256  # the deploy setting is timed too: one input of that many images per row
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _bounded(value: int, low: int, high: int, option: str, what: str) -> None:
    if not low <= value <= high:
        raise UserError(f"{value}: allowed: {low} to {high} ({what})", key=option)


def check_options(opts: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Every option checked before any model is loaded; returns the runtimes and precisions asked for."""
    from ..deploy.runtimes import pick_precisions, pick_runtimes

    runtimes, precisions = pick_runtimes(opts.get("runtimes")), pick_precisions(opts.get("precisions"))
    _bounded(opts["images"], 1, MAX_IMAGES, "--images", "held-out images every row is checked on")
    _bounded(opts["calib"], 1, MAX_CALIB, "--calib", "calibration images for int8")
    _bounded(opts["rounds"], 1, MAX_ROUNDS, "--rounds", "interleaved timing rounds")
    _bounded(opts["runs"], 1, MAX_RUNS, "--runs", "timed batch-1 runs per row and round")
    if opts.get("split", "val") not in ("val", "test"):
        raise UserError(f"unknown split {opts['split']!r}; allowed: val, test", key="--split")
    d = opts.get("image_dir")
    if d is not None and not Path(d).expanduser().is_dir():
        raise UserError(f"{d} is not a folder; allowed: a folder of image files", key="--image-dir")
    return runtimes, precisions


def ort_int8_builder(recipe: Recipe, select: np.ndarray, rounds: int, runs: int, console: Console,
                     agreement: Callable[[np.ndarray, np.ndarray], float] | None = None
                     ) -> Callable[[Path, Path, np.ndarray], dict[str, Any]]:
    """The ONNX Runtime int8 file, built as the compress stage builds it: the one place that picks it.

    compress.int8_choice.choose_int8 tries every format correct on deploy.target, keeps those passing
    compress.min_int8_agreement on `select` (train images), and keeps the fastest (interleaved against fp32,
    `rounds` × `runs` at the deploy batch and threads). The run's own static quantize stage settings are used
    when it has one. agreement: how a candidate's outputs are compared with fp32's (a task's; default top-1).
    """
    from ..compress.cpu import detect_cpu, resolve
    from ..compress.int8_choice import choose_int8
    from ..recipe.compress import QuantizeStage

    mine = [s for s in recipe.compress.stages if s.name == "quantize" and s.mode == "static"]
    cfg = (mine[0] if mine else QuantizeStage(name="quantize")).model_copy(update={"choice_rounds": rounds})
    deploy = (recipe.deploy.batch_size, recipe.deploy.threads)

    def build(fp32: Path, out: Path, calib: np.ndarray) -> dict[str, Any]:
        info = choose_int8(fp32, out, calib, select, cfg, resolve(cfg.format, recipe.deploy.target, detect_cpu()),
                           recipe.compress.min_int8_agreement, "compress.stages.quantize.fp32_layers", deploy,
                           runs, console, **({"agreement": agreement} if agreement is not None else {}))
        return {"quantizer": f"onnxruntime quantize_static, {info.get('int8_choice', {}).get('chosen', '?')}",
                **info}

    return build


def _files_images(folder: Path, n: int, meta: dict[str, Any]) -> np.ndarray:
    """Up to n image files of a folder (sorted), preprocessed as the model's eval transform does."""
    from PIL import Image, UnidentifiedImageError

    from ..deploy.onnx_classify import preprocess

    files = sorted(p for p in folder.expanduser().rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if not files:
        raise UserError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}", key="--image-dir")
    out = []
    for p in files:
        try:
            with Image.open(p) as img:
                out.append(preprocess(img, int(meta["image_size"]), meta["mean"], meta["std"]))
        except (OSError, UnidentifiedImageError) as e:
            raise UserError(f"cannot read image {p}: {e}", key="--image-dir") from None
    return np.stack(out).astype(np.float32)


def _held_out(data: Any, split: str, n: int) -> np.ndarray:
    """The first n images of the held-out split (already a seeded sample of it), eval preprocessing."""
    import torch

    ds = data.held_out(split)
    return torch.stack([ds[i][0] for i in range(min(n, len(ds)))]).numpy().astype(np.float32)


def _cpu_line() -> str:
    from ..compress.cpu import detect_cpu, target_of

    cpu = detect_cpu()
    flags = ", ".join(sorted(cpu.flags)) or "flags unknown"
    name = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                 if line.startswith("model name")), platform.processor() or cpu.machine)
    return f"{name}, {os.cpu_count()} CPUs ({target_of(cpu.machine, cpu.flags)}: {flags})"


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _source(model: Any, meta: dict[str, Any], calib: np.ndarray, check: np.ndarray, out: Path,
            int8: Callable[[Path, Path, np.ndarray], dict[str, Any]], onnx_meta: dict[str, str] | None = None) -> Any:
    """The matrix's Source: the fp32 ONNX file is exported on first use and must pass the parity check."""
    import torch

    from ..deploy.backend import Source
    from ..deploy.export import check_parity, export_onnx

    def export() -> Path:
        path = export_onnx(model, out / "onnxruntime" / "model.onnx", int(meta["image_size"]), meta["class_names"],
                           meta["mean"], meta["std"], extra=onnx_meta)
        parity = check_parity(model, path, torch.from_numpy(check))
        if not parity["passed"]:
            raise RuntimeError(f"fp32 ONNX parity failed (max |Δlogit| {parity['max_abs_diff']:.2g}); kept as "
                               f"{parity['path']}")
        return path

    return Source(model=model, image_size=int(meta["image_size"]), calib=calib, export=export, int8_onnx=int8)


def _classification_inputs(recipe: Recipe, meta: dict[str, Any], opts: dict[str, Any]
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out (or --image-dir) images, calibration images and the int8 selection images (train split)."""
    from ..compress.stages import train_images
    from ..data import build_data

    data = build_data(recipe.data)
    if data.class_names != meta["class_names"]:
        raise UserError(f"the data's classes {data.class_names[:5]}… differ from the model's "
                        f"{meta['class_names'][:5]}…", key="data.root")
    images = (_files_images(Path(opts["image_dir"]), opts["images"], meta) if opts.get("image_dir")
              else _held_out(data, opts["split"], opts["images"]))
    job = SimpleNamespace(ctx=SimpleNamespace(data=data, recipe=recipe))  # what train_images reads of a Job
    calib = train_images(job, 0, opts["calib"]).numpy()
    select = train_images(job, opts["calib"], opts["calib"]).numpy()  # int8 candidates are gated on these
    return images, calib, select


def deploy_target(target: str, overrides: list[str], opts: dict[str, Any], console: Console) -> dict[str, Any]:
    """Build and measure the student of a run folder or model file in every runtime × precision asked for."""
    import torch

    from ..compress.prune import load_pruned
    from ..deploy.matrix import MatrixConfig, run_matrix
    from ..deploy.matrix_report import matrix_markdown, print_matrix
    from ..output_folder import check_output_dir
    from ..recipe import build_recipe
    from ..recipe.loading import check_read_keys
    from ..run.reader import read_target
    from ..tasks import task_chain

    runtimes, precisions = check_options(opts)
    check_read_keys(overrides, DEPLOY_READS, "deploy reads a trained student, its data and these settings")
    ckpt, meta, run_dir, base = read_target(target)
    chain = task_chain(meta, "deploy")  # None: classification; segmentation's inputs come from tasks/
    recipe = build_recipe(base, overrides) if chain is None else chain.recipe(base, overrides, meta)
    _bounded(recipe.deploy.batch_size, 1, MAX_DEPLOY_BATCH, "deploy.batch_size", "the batch the deploy setting times")
    out = Path(opts["out"]).expanduser() if opts.get("out") else (run_dir or ckpt.parent) / "deploy"
    check_output_dir(out, key="--out")
    model, meta = load_pruned(ckpt)
    model = model.cpu().float().eval()
    if chain is None:
        images, calib, select = _classification_inputs(recipe, meta, opts)
        own: dict[str, Any] = {}  # a task's matrix settings, ONNX metadata and result fields
    else:
        images, calib, select, own = chain.deploy_inputs(recipe, meta, model, opts)
        model, meta = own.get("model", model), {**meta, **own.get("meta", {})}  # detection: its head graph
    with torch.no_grad():
        ref = torch.cat([model(torch.from_numpy(images[i:i + 256])) for i in range(0, len(images), 256)]).numpy()
    cfg = MatrixConfig(runtimes, precisions, recipe.compress.min_int8_agreement,
                       (recipe.deploy.batch_size, recipe.deploy.threads), rounds=opts["rounds"], runs=opts["runs"],
                       memory=opts["memory"], **own.get("matrix", {}))
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"deploy folder: [bold]{out}[/]")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("deploy matrix", total=None)
        int8 = ort_int8_builder(recipe, select, opts["rounds"], min(opts["runs"], 50), console,
                                own.get("int8_agreement"))
        result = run_matrix(_source(model, meta, calib, images[:64], out, int8, own.get("onnx_meta")), images,
                            ref, out, cfg,
                            lambda text: bar.update(task, description=text))
    result.update(model=str(meta["model"]), checkpoint=str(ckpt), cpu=_cpu_line(),
                  images_from=f"files from {opts['image_dir']}" if opts.get("image_dir") else f"{opts['split']}-split",
                  calib_images=len(calib), **own.get("result", {}))
    atomic_write_text(out / "matrix.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "matrix.md", matrix_markdown(result))
    print_matrix(result, console)
    console.print(f"\nmatrix: [bold]{out / 'matrix.md'}[/]")
    return result
