"""Images/s of one distillation epoch: edgedistill vs a hand-written KD loop, with and without the teacher cache.

    python benchmarks/throughput.py --root ../shared/data/cifar10-subset --threads 2 --repeats 3

Variants (same teacher, student, data, batch size, threads and transform):
  handwritten   a minimal PyTorch KD loop (torchvision ImageFolder + DataLoader): the floor of framework overhead
  edgedistill   engine.fit on a Distiller with the kd term, loader from data.make_loader
  cached        the same with the teacher-output cache (built beforehand; its one-off cost is reported)
  resident      edgedistill with data.device_resident (uint8 tensor, no DataLoader)
  resident+cache
and the compute ceiling on random tensors: student forward+backward+step, teacher forward, and the KD
ceiling 1/(1/student + 1/teacher). Variants are interleaved per repeat (the machine may be shared);
medians and min–max are reported. Augmentation is off (data.augment=none) so the cache serves every
epoch. A benchmark, not a test: minutes on 2 CPU cores. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from machine_load import load_between, snapshot, too_loaded
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from edgedistill.data import build_data, build_transform, make_loader
from edgedistill.data.device_loader import DeviceLoader
from edgedistill.teachers.output_cache import open_or_build
from edgedistill.distill import Distiller, build_terms
from edgedistill.engine import fit
from edgedistill.losses import kd_loss
from edgedistill.models import create_model
from edgedistill.recipe import DataConfig, DistillConfig, TrainConfig

CIFAR = dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))


def handwritten(teacher: torch.nn.Module, student: torch.nn.Module, dcfg: DataConfig, args: Any) -> float:
    """The textbook loop: frozen teacher under no_grad, CE + T²-scaled KL, SGD; images/s of one epoch."""
    ds: Any = torchvision.datasets.ImageFolder(str(Path(args.root) / "train"), transform=build_transform(dcfg, True))
    if args.max_train:  # the same seeded subset data.max_train_samples picks
        ds = torch.utils.data.Subset(ds, sorted(torch.randperm(len(ds), generator=torch.Generator().manual_seed(
            dcfg.split_seed))[:args.max_train].tolist()))
    loader = DataLoader(ds, args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=args.workers > 0)
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    teacher.eval()
    student.train()
    seen, t0 = 0, time.perf_counter()
    for x, y in loader:
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = student(x)
        loss = F.cross_entropy(s_logits, y) + kd_loss(s_logits, t_logits, 4.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def edgedistill_epoch(teacher: torch.nn.Module, student: torch.nn.Module, loader: Any, out: Path,
                      cache: Any = None) -> float:
    """engine.fit for one epoch; its own images/s (the loop, without the checkpoint write after it)."""
    terms = build_terms(DistillConfig(), student, teacher)
    module = Distiller(student, teacher, terms, teacher_outputs=cache)
    cfg = TrainConfig(epochs=1, device="cpu", lr=0.05)
    res = fit(module, loader, cfg, out, console=Console(quiet=True))
    return float(res.last["images_per_s"])


def ceiling(model: torch.nn.Module, batch: int, size: int, train: bool, seconds: float = 4.0) -> float:
    """Images/s of forward(+backward+SGD step) on one random batch reused: no data loading at all."""
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train(train)

    def step() -> None:
        if train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                model(x)

    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += batch
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/data/cifar10-subset"))
    ap.add_argument("--teacher", default="cifar:resnet20")
    ap.add_argument("--student", default="cifar:resnet8")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=None, help="first N train images (a fixed seeded subset)")
    ap.add_argument("--variants", nargs="+", default=["handwritten", "edgedistill", "cached", "resident",
                                                       "resident+cache"])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/throughput.json"))
    ap.add_argument("--allow-loaded", action="store_true",
                    help="write the result even when the machine was loaded (marked loaded: true)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    dcfg = DataConfig(source="imagefolder", root=args.root, image_size=32, augment="none", workers=args.workers,
                      max_train_samples=args.max_train, **CIFAR)
    data = build_data(dcfg)
    torch.manual_seed(0)
    teacher = create_model(args.teacher, 10).eval()
    student0 = create_model(args.student, 10)
    work = Path(tempfile.mkdtemp(prefix="edgedistill-throughput-"))

    t0 = time.perf_counter()
    cache = open_or_build(teacher, args.teacher, data.train, data_cfg=dcfg.model_dump(mode="json"), seed=0,
                          epochs=1, augmenting=False, taps=[], cache_dir=work / "cache", dtype="float16", max_gb=1,
                          device=torch.device("cpu"), batch_size=2 * args.batch_size, workers=args.workers,
                          log=lambda m: None)
    cache_build_s = time.perf_counter() - t0
    resident = DeviceLoader(data.train, dcfg, args.batch_size, "cpu", seed=0)

    def loader() -> Any:
        return make_loader(data.train, args.batch_size, train=True, workers=args.workers, keys=True)

    runs: dict[str, Callable[[int], float]] = {
        "handwritten": lambda r: handwritten(teacher, copy.deepcopy(student0), dcfg, args),
        "edgedistill": lambda r: edgedistill_epoch(teacher, copy.deepcopy(student0), loader(), work / f"a{r}"),
        "cached": lambda r: edgedistill_epoch(teacher, copy.deepcopy(student0), loader(), work / f"c{r}", cache),
        "resident": lambda r: edgedistill_epoch(teacher, copy.deepcopy(student0), resident, work / f"d{r}"),
        "resident+cache": lambda r: edgedistill_epoch(teacher, copy.deepcopy(student0), resident, work / f"e{r}",
                                                      cache),
    }
    results: dict[str, list[float]] = {v: [] for v in args.variants}
    loads: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for r in range(args.repeats):  # interleaved: every variant sees the same slice of machine noise
        for v in args.variants:
            before = snapshot()
            results[v].append(runs[v](r))
            load = load_between(before, snapshot())
            loads[v].append({**load, "refused": too_loaded(load)})
            console.print(f"repeat {r + 1}/{args.repeats}  {v:<15} {results[v][-1]:8.0f} img/s   others "
                          f"{(load['others_share'] or 0):.0%} of the cores, steal {(load['steal_share'] or 0):.0%}, "
                          f"load1 {load['load1_before']} → {load['load1_after']}")
    why = sorted({f"{v}: {x['refused']}" for v, xs in loads.items() for x in xs if x["refused"]})
    s_fb = ceiling(copy.deepcopy(student0), args.batch_size, 32, train=True)
    t_f = ceiling(teacher, args.batch_size, 32, train=False)
    ceil = {"student_fwd_bwd": s_fb, "teacher_fwd": t_f, "kd_step": 1 / (1 / s_fb + 1 / t_f)}

    med = {v: statistics.median(x) for v, x in results.items()}
    summary = {
        "config": {**{k: str(v) for k, v in vars(args).items()}, "n_train": len(data.train),
                   "torch": torch.__version__, "augment": "none", "image_size": 32},
        "images_per_s": {v: {"median": med[v], "min": min(x), "max": max(x), "runs": x} for v, x in results.items()},
        "ceiling_images_per_s": ceil,
        "cache_build_seconds": cache_build_s,
        "machine_load": loads,
        "loaded": bool(why),
        "loaded_reasons": why,
        "ratios": {k: (med[a] / med[b] if a in med and b in med else None) for k, (a, b) in {
            "edgedistill_vs_handwritten": ("edgedistill", "handwritten"),
            "cached_vs_edgedistill": ("cached", "edgedistill"),
            "resident_vs_edgedistill": ("resident", "edgedistill"),
            "resident+cache_vs_edgedistill": ("resident+cache", "edgedistill"),
        }.items()} | {
            "edgedistill_vs_kd_ceiling": med["edgedistill"] / ceil["kd_step"] if "edgedistill" in med else None,
            "resident_vs_kd_ceiling": med["resident"] / ceil["kd_step"] if "resident" in med else None,
            "resident+cache_vs_student_ceiling": med["resident+cache"] / s_fb if "resident+cache" in med else None,
        },
    }
    if why and not args.allow_loaded:
        console.print("[red]not written: the machine was too loaded for the comparison to mean anything[/]\n  "
                      + "\n  ".join(why) + "\nrerun on a quiet machine, or pass --allow-loaded to keep it marked")
        raise SystemExit(3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))

    table = Table(title=f"distillation epoch, {args.teacher} → {args.student}, 32 px, batch {args.batch_size}, "
                        f"{args.threads} threads, {args.workers} workers, {args.repeats} interleaved repeats")
    for col in ("variant", "img/s median", "min–max"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for v, x in results.items():
        table.add_row(v, f"{med[v]:.0f}", f"{min(x):.0f}–{max(x):.0f}")
    for k, x in ceil.items():
        table.add_row(f"ceiling: {k}", f"{x:.0f}", "random tensors")
    console.print(table)
    if why:
        console.print("[yellow]LOADED machine (--allow-loaded): these figures measure the neighbours too[/]")
    console.print({k: (round(v, 3) if v else v) for k, v in summary["ratios"].items()},
                  f"cache built in {cache_build_s:.1f} s", f"→ {args.out}")


if __name__ == "__main__":
    main()
