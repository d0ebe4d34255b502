"""What does `round_to` cost in accuracy? The same trained student pruned to half its FLOPs with round_to off/8/16/auto.

    python benchmarks/prune_accuracy.py --root ../shared/data/cifar10-subset        # ~20 min on 2 loaded cores

A CIFAR ResNet (default `cifar:resnet20`, 32 px) is trained alone (cross-entropy, through the product's own
compress `finetune` stage from random weights), then each arm runs `prune (flops_ratio 0.5, uniform) → finetune
(the unpruned student teaches)` with one round_to value. Per arm: held-out top-1 before and after fine-tuning,
FLOPs and params, and the prune stage's own interleaved A/B (`info.latency_ab`: ONNX Runtime, batch 1, 1 thread).
Writes OUT/prune_accuracy.{json,md} beside benchmarks/prune_latency.py's results. One seed: differences under
about a point are inside seed noise on a 1,000-image split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from edgedistill.atomic import atomic_write_text
from edgedistill.commands.compress import compress_target
from edgedistill.data import class_names_of
from edgedistill.errors import UserError
from edgedistill.models import create_model, save_model
from edgedistill.recipe import build_recipe

REPO = Path(__file__).resolve().parents[1]
ARMS = ("off", 8, 16, "auto")


def data_keys(args: argparse.Namespace) -> list[str]:
    return [f"data.root={args.root}", f"data.max_train_samples={args.train_samples}",
            f"data.max_val_samples={args.val_samples}", "data.source=imagefolder", "data.image_size=32", "data.augment=padcrop",
            "data.hflip=true", "data.mean=[0.4914,0.4822,0.4465]", "data.std=[0.2470,0.2435,0.2616]",
            "data.workers=0", "data.device_resident=true", "train.batch_size=128", "train.weight_decay=5.0e-4"]


def untrained(spec: str, args: argparse.Namespace, path: Path) -> Path:
    """A random-init model file whose metadata names the data, as `edgedistill compress FILE` needs."""
    recipe = build_recipe({}, data_keys(args))
    torch.manual_seed(0)
    meta = {"model": spec, "num_classes": 10, "class_names": class_names_of(recipe.data), "image_size": 32,
            "mean": list(recipe.data.mean), "std": list(recipe.data.std), "data": recipe.data.model_dump(mode="json")}
    return save_model(path, create_model(spec, 10), meta)


def compress(model: Path, stages: list[dict[str, Any]], out: Path, name: str, args: argparse.Namespace,
             console: Console) -> dict[str, Any]:
    over = data_keys(args) + [f"compress.stages={json.dumps(stages)}", f"output.dir={out}", f"output.name={name}",
                                   f"compress.latency_runs={args.runs}", "compress.parity_images=64",
                                   f"train.epochs={args.epochs}", "train.lr=0.1"]
    return compress_target(str(model), over, console, resume=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-subset")
    ap.add_argument("--model", default="cifar:resnet20")
    ap.add_argument("--epochs", type=int, default=15, help="training epochs of the student alone")
    ap.add_argument("--ft-epochs", type=int, default=8, help="fine-tuning epochs after pruning")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per latency figure (the prune A/B takes >= 20)")
    ap.add_argument("--train-samples", type=int, default=5000, help="train images used (the subset has 5,000)")
    ap.add_argument("--val-samples", type=int, default=1000, help="held-out images used (the subset has 1,000)")
    ap.add_argument("--arms", nargs="+", default=[str(a) for a in ARMS], help="round_to values, one arm each")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgedistill-prune-accuracy"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prune_latency")
    args = ap.parse_args()
    console = Console(width=160)
    args.work.mkdir(parents=True, exist_ok=True)
    base = compress(untrained(args.model, args, args.work / "init.safetensors"),
                    [{"name": "finetune", "epochs": args.epochs, "lr": 0.1, "teacher": "none"}],
                    args.work, "student", args, console)
    student = Path(base["dir"]) / "1-finetune" / "model.safetensors"
    rows: dict[str, Any] = {"student_top1": base["stages"][-1]["top1"]}
    for arm in (int(a) if a.isdigit() else a for a in args.arms):
        stages = [{"name": "prune", "flops_ratio": 0.5, "round_to": arm},
                  {"name": "finetune", "epochs": args.ft_epochs, "lr": 0.01, "teacher": "unpruned"}]
        try:
            res = compress(student, stages, args.work, f"round_to-{arm}", args, console)
        except UserError as e:  # e.g. multiples of 16 cannot reach half the FLOPs of a 16-channel ResNet
            rows[str(arm)] = {"error": str(e)}
            continue
        st = {e["stage"]: e for e in res["stages"]}
        p, ft, inp = st["prune"], st["finetune"], st["input"]
        rows[str(arm)] = {"round_to": p["info"]["round_to"], "top1_pruned": p["top1"], "top1_finetuned": ft["top1"],
                          "drop": inp["top1"] - ft["top1"], "flops_kept": p["flops"] / inp["flops"],
                          "params": p["params"], "params_input": inp["params"], "latency_ab": p["info"]["latency_ab"]}
        result = {"model": args.model, "image_size": 32, "epochs": args.epochs, "ft_epochs": args.ft_epochs,
                  "data": f"cifar10-subset ({args.train_samples:,} train / {args.val_samples:,} val images)",
                  "arms": rows}
        atomic_write_text(args.out / "prune_accuracy.json", json.dumps(result, indent=2, default=str))
        atomic_write_text(args.out / "prune_accuracy.md", markdown(result))


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# round_to and accuracy: {result['model']} at 32 px, half the FLOPs pruned (uniform), "
             f"{result['ft_epochs']}-epoch distillation fine-tune", "",
             f"Student trained alone for {result['epochs']} epochs on {result['data']}: held-out top-1 "
             f"{result['arms']['student_top1']:.2f}. One seed. Latency: the prune stage's own interleaved A/B "
             "(`info.latency_ab.overall`, ONNX Runtime, batch 1, 1 thread), unpruned ms / pruned ms per round.", "",
             "| round_to | used | FLOPs kept | params | top-1 pruned | top-1 fine-tuned | drop | speed-up (min–max) |",
             "|---|---|---|---|---|---|---|---|"]
    for arm in ARMS:
        r = result["arms"].get(str(arm))
        if r is None or "error" in r:
            lines += [] if r is None else [f"| {arm} | refused: {r['error']} | | | | | | |"]
            continue
        ab = r["latency_ab"]["overall"]
        lines.append(f"| {arm} | {r['round_to']['value'] or 'none'} | {r['flops_kept']:.3f} | {r['params']:,} | "
                     f"{r['top1_pruned']:.2f} | {r['top1_finetuned']:.2f} | {r['drop']:+.2f} | "
                     f"{ab['speedup']:.2f}× ({ab['speedup_min']:.2f}–{ab['speedup_max']:.2f}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
