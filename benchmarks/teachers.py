"""What several teachers and unlabeled images add: same student, same budget, several seeds.

    python benchmarks/teachers.py --root ../shared/data/cifar10-subset --seeds 0 1 2
    python benchmarks/teachers.py --smoke          # digits, 1 epoch, 1 seed: checks the script runs (≈2 min)

(a) two teachers of different architectures (--teacher-a, --teacher-b) combined (teachers.ensemble=mean)
    vs each one alone teaching the same student;
(b) --labelled images with labels + --unlabeled more with their labels hidden (data.unlabeled) vs the
    --labelled alone vs all --labelled + --unlabeled labelled. The teacher of (b) learns from the labelled
    images of its arm. One unlabeled batch rides along each labelled batch: same steps, twice the images.
Every arm is an ordinary run folder under --out; writes teachers.json and teachers.md (val top-1 mean ± std
over seeds). Not part of the test suite: hours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgedistill.data import DATA_SOURCES
from edgedistill.data.build import _first
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe


def base(args: argparse.Namespace, out: Path, seed: int) -> list[str]:
    data = (["data.source=digits", "data.image_size=16", "data.hflip=false"] if args.smoke else
            ["data.source=imagefolder", f"data.root={args.root}", "data.image_size=32", "data.hflip=true",
             "data.mean=[0.4914,0.4822,0.4465]", "data.std=[0.2470,0.2435,0.2616]"])
    return data + ["data.augment=padcrop", f"data.workers={args.workers}", f"student.model={args.student}",
                   f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", f"train.seed={seed}",
                   f"output.dir={out}", "eval.latency_runs=5", "eval.warmup_runs=1",
                   "distill.terms=[{name: kd, weight: 1.0, T: 4}]"]


def arm(name: str, overrides: list[str]) -> dict[str, Any]:
    """One run (reused when its metrics.json exists); its models' val top-1."""
    out_dir = Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])
    done = out_dir / name / "metrics.json"
    if not done.exists():
        run(load_recipe(None, overrides + [f"output.name={name}"]))
    m = json.loads(done.read_text())
    return {k: v["top1"] for k, v in m["models"].items()}


def unlabeled_folder(args: argparse.Namespace, ov: list[str], folder: Path) -> Path:
    """Train images outside the labelled subset (up to --unlabeled), labels dropped: files in one flat folder."""
    if folder.exists():
        return folder
    cfg = load_recipe(None, ov).data
    train = DATA_SOURCES.get(cfg.source)(cfg).train
    kept = set(getattr(_first(train, args.labelled, cfg.split_seed), "indices", range(len(train))))
    rest = [i for i in range(len(train)) if i not in kept][: args.unlabeled]
    tmp = Path(tempfile.mkdtemp(dir=folder.parent))
    for i in rest:
        img, _ = train[i]  # the label is read by the source and dropped here
        Image.fromarray(np.asarray(img)).save(tmp / f"{i:06d}.png")
    tmp.rename(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-teachers"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-a", default="cifar:resnet32x4")
    ap.add_argument("--teacher-b", default="cifar:wrn_40_2")
    ap.add_argument("--student", default="cifar:resnet8")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--teacher-epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--labelled", type=int, default=1000)
    ap.add_argument("--unlabeled", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="digits, 1 epoch, seed 0, small teachers, temp folder")
    args = ap.parse_args()
    if args.smoke:
        args.out = Path(tempfile.mkdtemp(prefix="bench-teachers-"))
        args.seeds, args.epochs, args.teacher_epochs, args.workers = [0], 1, 1, 0
        args.teacher_a, args.teacher_b, args.labelled, args.unlabeled = "cifar:resnet14", "cifar:resnet8", 300, 300
    elif args.root is None:
        ap.error("--root is required (or --smoke)")
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    for seed in args.seeds:
        out = args.out / f"seed{seed}"
        ov = base(args, out, seed)
        teach = [f"teacher.epochs={args.teacher_epochs}"]
        a = arm("teacher-a", ov + teach + [f"teacher.model={args.teacher_a}"])
        b = arm("teacher-b", ov + teach + [f"teacher.model={args.teacher_b}", "eval.baseline=false"])
        files = [out / n / "teacher" / "model.safetensors" for n in ("teacher-a", "teacher-b")]
        members = (f"teachers.models=[{{model: {args.teacher_a}, weights: {files[0]}}}, "
                   f"{{model: {args.teacher_b}, weights: {files[1]}}}]")
        both = arm("two-teachers", ov + [members, "teachers.ensemble=mean", "eval.baseline=false"])
        add("(a) student alone", a["student_alone"])
        add(f"(a) KD from {args.teacher_a}", a["student"])
        add(f"(a) KD from {args.teacher_b}", b["student"])
        add("(a) KD from both (mean)", both["student"])
        add(f"(a) teacher {args.teacher_a}", a["teacher"])
        add(f"(a) teacher {args.teacher_b}", b["teacher"])
        add("(a) teachers combined (mean)", both["teacher"])
        few = ov + teach + [f"teacher.model={args.teacher_a}", f"data.max_train_samples={args.labelled}"]
        folder = unlabeled_folder(args, few, args.out / "unlabeled")
        lab = arm("labelled", few)
        unl = arm("labelled+unlabeled", few + [f"data.unlabeled={folder}", "eval.baseline=false"])
        full = arm("all-labelled", ov + teach + [f"teacher.model={args.teacher_a}", "eval.baseline=false",
                                                 f"data.max_train_samples={args.labelled + args.unlabeled}"])
        add(f"(b) {args.labelled} labelled, student alone", lab["student_alone"])
        add(f"(b) {args.labelled} labelled, KD", lab["student"])
        add(f"(b) {args.labelled} labelled + {args.unlabeled} unlabeled, KD", unl["student"])
        add(f"(b) {args.labelled + args.unlabeled} labelled, KD", full["student"])

    def fmt(v: list[float]) -> str:
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    table = ["| arm | val top-1 % (mean ± std over seeds) |", "|---|---|",
             *(f"| {k} | {fmt(v)} |" for k, v in rows.items())]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teachers.json").write_text(json.dumps({"seeds": args.seeds, "args": vars(args) | {
        "root": str(args.root), "out": str(args.out)}, "top1": rows}, indent=1, default=str))
    (args.out / "teachers.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    if args.smoke:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
