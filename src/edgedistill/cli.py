"""The `edgedistill` command: parse arguments and call commands/, one function a command. No logic lives here."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distill a large image model into a small, fast one; evaluate, profile and report it.",
)
# On a pipe rich would wrap at 80 columns and break the summary table; logs are read wide.
console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, soft_wrap=True)  # error lines stay whole, greppable

Overrides = Annotated[list[str] | None, typer.Argument(help="recipe overrides as section.key=value", show_default=False)]
Strict = Annotated[bool, typer.Option("--strict", help="exit with code 3 when a deploy.budget fails or cannot be measured here")]


@app.command()
def demo(overrides: Overrides = None, strict: Strict = False) -> None:
    """Offline demo: teacher, student alone and distilled student on scikit-learn's digits (~2 min on 2 CPUs)."""
    from .commands.run import exit_if_strict, run_recipe

    exit_if_strict(strict, err_console, run_dir=run_recipe(None, overrides or [], console))


@app.command("run")
def run_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the latest run of this recipe")] = False,
    strict: Strict = False,
) -> None:
    """Run a recipe: RECIPE.yaml plus section.key=value overrides."""
    from .commands.run import exit_if_strict, run_recipe

    exit_if_strict(strict, err_console, run_dir=run_recipe(recipe, overrides or [], console, resume=resume))


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[str, typer.Argument(help="a run folder or a .safetensors model written by edgedistill")],
    overrides: Overrides = None,
    split: Annotated[str, typer.Option(help="held-out split: val or test")] = "val",
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the metrics to this file")] = None,
) -> None:
    """Evaluate a checkpoint on its data (from the checkpoint, or data.key=value overrides)."""
    from .commands.evaluate import evaluate_checkpoint

    evaluate_checkpoint(checkpoint, overrides or [], split, json_out, console)


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="a run folder, a .safetensors model, or a spec like timm:resnet18")],
    image_size: Annotated[int | None, typer.Option(help="input side in pixels (default: the checkpoint's)")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: torch's choice)")] = None,
    runs: Annotated[int, typer.Option(help="timed runs after warm-up")] = 50,
    batch_size: Annotated[int, typer.Option(help="batch size of the timed input")] = 1,
    num_classes: Annotated[int, typer.Option(help="classes, for a bare model spec")] = 1000,
) -> None:
    """Parameters, FLOPs, size, CPU latency (median, p90) and peak memory of a model."""
    from .commands.profile import profile_checkpoint

    profile_checkpoint(model, image_size, threads, runs, batch_size, num_classes, console)


@app.command()
def compress(
    target: Annotated[str, typer.Argument(help="a run folder (its student, and teacher when present) or a .safetensors model")],
    overrides: Overrides = None,
    strict: Strict = False,
    resume: Annotated[bool, typer.Option("--resume", help="continue the latest compress of this target: "
                                         "finished stages are reused, the first unfinished one reruns")] = False,
) -> None:
    """Prune, fine-tune, quantize and export a trained model through compress.stages; measure every stage."""
    from .commands.compress import compress_target
    from .commands.run import exit_if_strict

    exit_if_strict(strict, err_console, result=compress_target(target, overrides or [], console, resume=resume))


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="an ONNX file written by edgedistill (fp32 or int8)")],
    images: Annotated[list[Path], typer.Argument(help="image files")],
    top_k: Annotated[int, typer.Option(help="classes (or boxes) shown per image")] = 3,
    threads: Annotated[int | None, typer.Option(help="ONNX Runtime threads (default: its choice)")] = None,
    min_score: Annotated[float, typer.Option(help="detection: boxes shown at or above this score")] = 0.25,
    out: Annotated[Path | None, typer.Option(help="folder for predictions.json, and a mask PNG (segmentation) "
                                             "or the image with its boxes (detection) per image")] = None,
) -> None:
    """Classify, segment or detect on image files with an exported ONNX model (classification and segmentation
    without torch)."""
    from .commands.predict import print_predictions

    print_predictions(model, images, top_k, threads, console, min_score=min_score, out=out)


@app.command()
def deploy(
    target: Annotated[str, typer.Argument(help="a run folder (its student) or a .safetensors model")],
    overrides: Annotated[list[str] | None, typer.Argument(help="data.key=value, deploy.key=value or "
                                                          "compress.min_int8_agreement=… overrides",
                                                          show_default=False)] = None,
    runtimes: Annotated[str | None, typer.Option(help="comma-separated: onnxruntime, openvino, executorch, "
                                                 "litert (default: all)")] = None,
    precisions: Annotated[str | None, typer.Option(help="comma-separated: fp32, int8 (default: both)")] = None,
    images: Annotated[int, typer.Option(help="held-out images each row is checked on")] = 256,
    calib: Annotated[int, typer.Option(help="train images int8 is calibrated on")] = 128,
    image_dir: Annotated[Path | None, typer.Option(help="check on these image files instead of the split")] = None,
    split: Annotated[str, typer.Option(help="held-out split: val or test")] = "val",
    rounds: Annotated[int, typer.Option(help="interleaved timing rounds")] = 5,
    runs: Annotated[int, typer.Option(help="timed batch-1 runs per row and round (batch 32: runs/8)")] = 50,
    memory: Annotated[bool, typer.Option(help="probe each file's peak RSS in a fresh process")] = True,
    out: Annotated[Path | None, typer.Option(help="folder for matrix.json/.md and artifacts "
                                             "(default: RUN/deploy)")] = None,
) -> None:
    """The student in every runtime (ONNX Runtime, OpenVINO, ExecuTorch, LiteRT) × fp32/int8, measured here."""
    from .commands.deploy import deploy_target

    deploy_target(target, overrides or [], dict(runtimes=runtimes, precisions=precisions, images=images,
                                                calib=calib, image_dir=image_dir, split=split, rounds=rounds,
                                                runs=runs, memory=memory, out=out), console)


@app.command("compare")
def compare_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file with a compare: section (or --arms)")],
    overrides: Overrides = None,
    arms: Annotated[str | None, typer.Option(help="arms to run: names from compare.arms, comma-separated, or a "
                                             "YAML mapping like '{kd: {}, alone: {distill.terms: []}}'")] = None,
    seeds: Annotated[int | None, typer.Option(help="runs per arm (compare.seeds)")] = None,
    splits: Annotated[int | None, typer.Option(help="repeated train/validation splits (compare.splits)")] = None,
    workers: Annotated[int | None, typer.Option(help="run processes on this machine (compare.workers)")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL shared by several machines, e.g. "
                                                "postgresql://user@host/db (default: a journal file in the folder)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the latest comparison of this recipe: "
                                         "finished runs are reused, interrupted ones resume")] = False,
) -> None:
    """Compare arms (recipe variants) over seeds and splits: intervals, corrected paired tests, verdicts."""
    from .commands.compare import run_compare

    run_compare(recipe, overrides or [], arms=arms, seeds=seeds, splits=splits, workers=workers, storage=storage,
                resume=resume, console=console)


@app.command("search")
def search_cmd(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file with a search: section")],
    overrides: Overrides = None,
    trials: Annotated[int | None, typer.Option(help="trials of the study in all (search.trials)")] = None,
    timeout: Annotated[float | None, typer.Option(help="stop starting trials after S seconds (search.timeout)")] = None,
    workers: Annotated[int | None, typer.Option(help="trial processes on this machine (search.workers)")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage shared by several machines, e.g. "
                                                "postgresql://user@host/db (search.storage)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the latest search of this recipe: finished "
                                         "trials are kept, killed ones rerun")] = False,
    then_run: Annotated[bool, typer.Option("--then-run", help="then run best.yaml with its compress stages")] = False,
) -> None:
    """Hardware-aware student search: cost measured first, flash distillation, a multi-objective Optuna study."""
    from .commands.search import run_search

    run_search(recipe, overrides or [], trials=trials, timeout=timeout, workers=workers, storage=storage,
               resume=resume, then_run=then_run, console=console)


@app.command()
def audit(
    run_dir: Annotated[Path, typer.Argument(help="a run folder with a teacher and a distilled student")],
    max_images: Annotated[int, typer.Option(help="held-out images audited (a seeded sample when fewer)")] = 1000,
    perturb: Annotated[str | None, typer.Option(help="perturbations, comma-separated: noise, blur, jpeg, "
                                                "brightness, contrast, fgsm (default: all)")] = None,
    levels: Annotated[list[str] | None, typer.Option(help="severities of one perturbation, e.g. "
                                                     "--levels noise=0.05,0.1 (repeatable)")] = None,
    split: Annotated[str | None, typer.Option(help="val or test (default: the run's eval.split)")] = None,
    batch_size: Annotated[int, typer.Option(help="images per forward pass")] = 128,
    device: Annotated[str, typer.Option(help="cpu, auto, cuda or cuda:N")] = "cpu",
    alone: Annotated[Path | None, typer.Option(help="another run whose student is the baseline trained alone, "
                                                    "e.g. the alone arm of the same compare seed")] = None,
) -> None:
    """Fidelity audit: agreement, KL/JS, inherited errors, CKA, calibration and perturbations vs the teacher."""
    from .commands.audit import run_audit

    run_audit(run_dir, max_images=max_images, batch_size=batch_size, perturb=perturb, levels=levels, split=split,
              device=device, alone=alone, console=console)


@app.command()
def explain(
    run_dir: Annotated[Path, typer.Argument(help="a run folder with a teacher")],
    overrides: Annotated[list[str] | None, typer.Argument(help="explain.key=value (and data.key=value) overrides",
                                                          show_default=False)] = None,
    depth: Annotated[int | None, typer.Option(help="tree depth (explain.depth)")] = None,
    samples: Annotated[int | None, typer.Option(help="pseudo-sample budget of one node (explain.samples)")] = None,
    repeats: Annotated[int | None, typer.Option(help="fits for the stability measure (explain.repeats)")] = None,
    device: Annotated[str, typer.Option(help="cpu, auto, cuda or cuda:N (for the teacher's embeddings)")] = "cpu",
) -> None:
    """Approximation tree of the teacher (stable splits on pseudo-samples) and its stability vs scikit-learn's CART."""
    from .commands.explain import run_explain

    run_explain(run_dir, overrides or [], depth=depth, samples=samples, repeats=repeats, device=device,
                console=console)


class ListWhat(str, Enum):
    models = "models"
    data = "data"
    methods = "methods"


@app.command("list")
def list_cmd(
    what: Annotated[ListWhat, typer.Argument(help="models, data or methods")],
    pattern: Annotated[str | None, typer.Argument(help="filter models by a glob, e.g. 'resnet*'")] = None,
    source: Annotated[str | None, typer.Option(help="only this model source (timm, torchvision, cifar, …)")] = None,
) -> None:
    """Show what recipes can name: model sources and names, dataset sources, distillation methods."""
    from .commands.listing import list_registered

    list_registered(what.value, pattern, source, console)


def main() -> None:
    from .errors import TrainingError  # not from .engine: that imports torch, which predict must not
    from .output_folder import disk_error_line

    try:
        app()
    except UserError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)
    except TrainingError as e:
        err_console.print(f"[bold red]training stopped:[/] {escape(str(e))}", highlight=False)
        sys.exit(1)
    except OSError as e:  # a full disk or a folder turned read-only during work: one line, exit 1
        line = disk_error_line(e)
        if line is None:
            raise
        err_console.print(f"[bold red]stopped:[/] {escape(line)}", highlight=False)
        sys.exit(1)
    except (KeyboardInterrupt, SystemExit) as e:
        # Typer turns Ctrl-C into exit code 130 before it reaches here; either way, say how to go on.
        if isinstance(e, SystemExit) and e.code != 130:
            raise
        err_console.print("[yellow]interrupted[/]; rerun with --resume (or train.resume=true) to continue")
        sys.exit(130)


if __name__ == "__main__":
    main()
