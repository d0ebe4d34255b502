"""Compare distillation methods on an ImageFolder tree: same teacher, same student budget, several seeds.

    python benchmarks/methods.py --root ../shared/data/cifar10-subset --seeds 0 1 2

A teacher is trained once (or taken from --teacher-file) and reused by every run; each method then
trains the student on the same budget per seed, next to the student trained alone. Writes JSON and
a markdown table (val top-1 mean ± std over seeds, retention, gain over the student alone, seconds per
epoch). Not part of the test suite: it takes hours on 2 CPU cores. Rerunning the same command skips the
runs already finished in --out and resumes an interrupted one from its last epoch. A second copy of the
command started beside the first takes the runs the first has not claimed (see `claim`); give the copies
different --seeds so that each seed's teacher cache is built by one process, and rerun the command once
both end to write the table over every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from portable import portable
from rich.console import Console
from rich.table import Table

from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe
from edgedistill.recipes import recipe_path

# name → distill.terms (YAML flow); "alone" (no terms) is the labels-only baseline on the same budget.
METHODS = {
    "alone": "[]",
    "kd": "[{name: kd, weight: 1.0, T: 4}]",
    "dkd": "[{name: dkd, weight: 1.0, alpha: 1.0, beta: 8.0, T: 4, warmup: 5}]",
    "dist": "[{name: dist, weight: 1.0, beta: 1.0, gamma: 1.0, T: 1}]",
    "ctkd": "[{name: ctkd, weight: 1.0}]",
    # Sun et al. CVPR 2024's CIFAR setting for KD with logit standardization: base T 2, KD weight 9, CE 0.1.
    "kd_std": "[{name: kd, weight: 9.0, T: 2, standardize: true}]",
    # DKD with β for 10 classes (the paper's 8 is for 100) and a 1-epoch warm-up fitting a 15-epoch budget.
    "dkd_b2": "[{name: dkd, weight: 1.0, alpha: 1.0, beta: 2.0, T: 4, warmup: 1}]",
}
EXTRA = {"kd_std": ["distill.ce_weight=0.1"]}  # recipe overrides a method needs beyond its terms


def base_overrides(args: argparse.Namespace, out: Path) -> list[str]:
    return [
        "data.source=imagefolder", f"data.root={args.root}", "data.image_size=32", "data.augment=padcrop",
        "data.hflip=true", "data.mean=[0.4914,0.4822,0.4465]", "data.std=[0.2470,0.2435,0.2616]",
        f"data.workers={args.workers}", f"student.model={args.student}", f"train.epochs={args.epochs}",
        f"train.batch_size={args.batch_size}", f"train.lr={args.lr}", "train.warmup_epochs=1",
        f"output.dir={out}", "eval.latency_runs=20",
    ] + ([
        # The frozen teacher's outputs for a seed are computed once and reused by every method at that
        # seed (augmentation is seeded per sample and epoch, so they are the same images): half the work.
        "distill.teacher_cache=true", "distill.cache_dtype=float32", f"distill.cache_dir={out / 'teacher-cache'}",
    ] if args.teacher_cache else [])


def train_teacher(args: argparse.Namespace, out: Path, console: Console) -> tuple[str, float]:
    """One teacher for every run: trained here once (cached by the pipeline), or a given file."""
    if args.teacher_file:
        return f"file:{args.teacher_file}", float("nan")
    over = base_overrides(args, out) + [
        f"teacher.model={args.teacher}", f"teacher.epochs={args.teacher_epochs}", "eval.baseline=false",
        "train.epochs=1", "train.warmup_epochs=0", "output.name=teacher",
    ]
    run_dir = run(load_recipe(recipe_path("demo"), over), console)
    top1 = json.loads((run_dir / "metrics.json").read_text())["models"]["teacher"]["top1"]
    return f"file:{run_dir / 'teacher' / 'model.safetensors'}", top1


def claim(out: Path, name: str) -> bool:
    """Mark a run as taken by this process; False when another live process holds it.

    Two copies of the same command then share the runs (one each), which on a small machine nearly
    doubles throughput: one small-model run keeps only about one core busy. A claim left by a killed
    process (its pid is gone) is taken over, and the run resumes from its checkpoint.
    """
    lock = out / f"{name}.claim"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(lock.read_text() or 0)
            os.kill(pid, 0)
            return pid == os.getpid()
        except (ValueError, ProcessLookupError):
            lock.write_text(str(os.getpid()))
            return True
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def one_run(args: argparse.Namespace, out: Path, teacher: str, method: str, seed: int,
            console: Console) -> dict[str, Any] | None:
    """One method at one seed; None when another process is running it right now."""
    terms = METHODS[method]
    name = f"{method}-s{seed}"
    done = out / name / "metrics.json"
    if not done.exists() and not claim(out, name):
        return None
    over = base_overrides(args, out) + [
        f"teacher.model={teacher}", f"train.seed={seed}", f"distill.terms={terms}",
        "eval.baseline=false", f"output.name={name}", *EXTRA.get(method, []),
        # A run killed midway continues from its last checkpoint: the benchmark survives interruptions.
        f"train.resume={str((out / name).is_dir() and not done.exists()).lower()}",
    ]
    t0 = time.perf_counter()
    run_dir = out / name if done.exists() else run(load_recipe(recipe_path("demo"), over), console)
    (out / f"{name}.claim").unlink(missing_ok=True)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"method": method, "seed": seed, "top1": m["models"]["student"]["top1"],
            "teacher_top1": m["models"].get("teacher", {}).get("top1", float("nan")),  # "alone" loads no teacher
            "seconds_per_epoch": seconds_per_epoch(run_dir / "student" / "metrics.jsonl", args.n_train),
            "wall_s": time.perf_counter() - t0}


def seconds_per_epoch(log: Path, n_train: int) -> float:
    """Training time of a median epoch from the engine's log (a resumed run's wall time would be partial)."""
    epochs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return n_train / statistics.median(e["images_per_s"] for e in epochs)


def summarize(rows: list[dict[str, Any]], teacher_top1: float) -> list[dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    alone = statistics.mean(r["top1"] for r in by.get("alone", [])) if "alone" in by else None
    out = []
    for method, rs in by.items():
        accs = [r["top1"] for r in rs]
        mean = statistics.mean(accs)
        out.append({
            "method": method, "seeds": len(rs), "top1_mean": mean,
            "top1_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "retention": mean / teacher_top1 if teacher_top1 == teacher_top1 else None,
            "gain_over_alone": mean - alone if alone is not None else None,
            "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in rs),
        })
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/cifar10-subset")
    p.add_argument("--teacher", default="cifar:resnet56")
    p.add_argument("--teacher-epochs", type=int, default=40)
    p.add_argument("--teacher-file", help="use this edgedistill model.safetensors as the teacher")
    p.add_argument("--student", default="cifar:resnet8")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--no-teacher-cache", dest="teacher_cache", action="store_false",
                   help="run the live teacher in every run instead of one teacher-output cache per seed")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--out", default="benchmarks/results/methods")
    args = p.parse_args()
    args.n_train = sum(1 for f in Path(args.root, "train").rglob("*") if f.is_file())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(file=open(os.devnull, "w")) if not os.environ.get("VERBOSE") else Console()
    show = Console()
    teacher, teacher_top1 = train_teacher(args, out, console)
    rows = []
    for seed in args.seeds:  # seeds outermost: methods interleave, so machine noise spreads evenly
        for method in args.methods:
            row = one_run(args, out, teacher, method, seed, console)
            if row is None:
                show.print(f"{method:>8} seed {seed}: running in another process; rerun this command to include it")
                continue
            rows.append(row)
            teacher_top1 = row["teacher_top1"] if row["teacher_top1"] == row["teacher_top1"] else teacher_top1
            show.print(f"{method:>8} seed {seed}: top-1 {row['top1']:.2f}  ({row['wall_s']:.0f} s)")
    summary = summarize(rows, teacher_top1)
    result = {"args": vars(args), "teacher": teacher, "teacher_top1": teacher_top1, "runs": rows,
              "summary": summary, "threads": __import__("torch").get_num_threads()}
    (out / "methods.json").write_text(portable(json.dumps(result, indent=2)))
    table = Table(title=f"{args.student} ← {teacher} (top-1 {teacher_top1:.2f}), {args.epochs} epochs, "
                        f"val split, seeds {args.seeds}")
    for col in ("method", "top-1 mean ± std", "retention", "gain vs alone", "s/epoch"):
        table.add_column(col, justify="right")
    md = ["| method | top-1 mean ± std | retention | gain vs alone | s/epoch |", "|---|---|---|---|---|"]
    for s in summary:
        cells = [s["method"], f"{s['top1_mean']:.2f} ± {s['top1_std']:.2f}",
                 f"{100 * s['retention']:.1f}%" if s["retention"] else "–",
                 f"{s['gain_over_alone']:+.2f}" if s["gain_over_alone"] is not None else "–",
                 f"{s['seconds_per_epoch']:.1f}"]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    show.print(table)
    (out / "methods.md").write_text(portable("\n".join(md) + "\n"))


if __name__ == "__main__":
    main()
