"""What several teachers and unlabeled images add: same student, same budget, several seeds.

    python benchmarks/teachers.py --root ../shared/data/cifar10-subset --seeds 0 1 2
    python benchmarks/teachers.py --root ../shared/data/cifar10-subset --seeds 1 --no-table   # one seed per core
    python benchmarks/teachers.py --root ../shared/data/cifar10-subset --seeds 0 1 2 --parts ensemble \
        --ensembles confidence class_weights --merge     # more ensemble rules; rows added to the stored table
    python benchmarks/teachers.py --smoke          # digits, 1 epoch, 1 seed: checks the script runs (≈2 min)

Teachers are trained once, by the runs of --teacher-seed, and every other seed's student learns from those
same weights (the question is what the student gains, not how teachers vary).
(a) two teachers of different architectures (--teacher-a, --teacher-b), each trained on all labelled images,
    combined (teachers.ensemble, each rule of --ensembles) vs the better of the two alone (by its val top-1)
    teaching the same student; the student alone (cross-entropy only) for scale. The worse teacher's student runs
    for --teacher-seed only. --parts picks what runs: single (the one-teacher arms), ensemble, b; the
    --teacher-seed runs the single arms whenever ensemble is asked for (they train the teachers), but only the
    parts asked for become rows.
(b) --labelled images with labels + --unlabeled more with their labels hidden (data.unlabeled) vs the
    --labelled alone vs all --labelled + --unlabeled labelled, KD in every arm. The teacher of the first two
    arms (--teacher-a's architecture) learns from the --labelled images only; the third arm is (a)'s KD from
    --teacher-a (trained on all labelled images). Same budget = same optimizer steps: the --labelled arms run
    (labelled + unlabeled) / labelled × --epochs epochs (their teacher likewise), and one unlabeled batch
    rides along each labelled batch, so the unlabeled arm sees twice the images per step.
Every arm is an ordinary run folder under --out; writes teachers.json and teachers.md (val top-1 mean ± std
over seeds, n per row) to --results; with --merge the rows already stored there stay, and those measured now
replace their namesakes. Not part of the test suite: hours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from portable import portable

from edgedistill.data import DATA_SOURCES
from edgedistill.data.build import first_samples
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe


def base(args: argparse.Namespace, seed: int) -> list[str]:
    data = (["data.source=digits", "data.image_size=16", "data.hflip=false"] if args.smoke else
            ["data.source=imagefolder", f"data.root={args.root}", "data.image_size=32", "data.hflip=true",
             "data.mean=[0.4914,0.4822,0.4465]", "data.std=[0.2470,0.2435,0.2616]", "data.device_resident=true"])
    return data + ["data.augment=padcrop", "data.workers=0", f"student.model={args.student}",
                   f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}", "train.lr=0.1",
                   "train.weight_decay=5e-4", f"train.warmup_epochs={0 if args.smoke else 1}", f"train.seed={seed}",
                   f"train.threads={args.threads}", f"output.dir={args.out}", "eval.latency_runs=5",
                   "eval.warmup_runs=1", "distill.terms=[{name: kd, weight: 1.0, T: 4}]"]


ONLY_FINISHED = False  # --only-finished: read the arms that finished, run nothing


def arm(name: str, overrides: list[str]) -> dict[str, Any]:
    """One run (reused when its metrics.json exists); its models' val top-1 ({} when --only-finished and not
    finished)."""
    out_dir = Path(next(o for o in overrides if o.startswith("output.dir=")).split("=", 1)[1])
    done = out_dir / name / "metrics.json"
    if not done.exists() and ONLY_FINISHED:
        return {}
    if not done.exists():
        resume = ["train.resume=true"] if (out_dir / name).is_dir() else []
        run(load_recipe(None, overrides + [f"output.name={name}"] + resume))
    m = json.loads(done.read_text())
    return {k: v["top1"] for k, v in m["models"].items()}


def weights_of(args: argparse.Namespace, trained_in: str, wait_s: float = 4 * 3600) -> Path:
    """The teacher trained by the --teacher-seed run `trained_in`; waits while another process trains it."""
    file = args.out / f"{trained_in}-s{args.teacher_seed}" / "teacher" / "model.safetensors"
    deadline = time.time() + wait_s
    if not file.exists():
        print(f"waiting for {file} (the --seeds {args.teacher_seed} process trains it)", flush=True)
    while not file.exists():
        if time.time() > deadline:
            raise SystemExit(f"{file} is missing: run --seeds {args.teacher_seed} first (it trains the teachers)")
        time.sleep(20)
    return file.resolve()


def teacher_top1(args: argparse.Namespace, trained_in: str) -> float:
    """The trained teacher's last-epoch val top-1 (its stage log)."""
    weights_of(args, trained_in)
    log = args.out / f"{trained_in}-s{args.teacher_seed}" / "teacher" / "metrics.jsonl"
    return float(json.loads(log.read_text().splitlines()[-1])["val_top1"])


def teacher(args: argparse.Namespace, seed: int | None, model: str, trained_in: str, epochs: int) -> list[str]:
    """Train `model` in the --teacher-seed run `trained_in`; every other seed loads that run's weights."""
    if seed == args.teacher_seed:  # seed None: always the trained weights
        return [f"teacher.model={model}", f"teacher.epochs={epochs}"]
    return [f"teacher.model={model}", f"teacher.weights={weights_of(args, trained_in)}", "teacher.epochs=null"]


def unlabeled_folder(args: argparse.Namespace, ov: list[str], folder: Path) -> Path:
    """Train images outside the labelled subset (up to --unlabeled), labels dropped: files in one flat folder."""
    if folder.exists():
        return folder
    cfg = load_recipe(None, ov).data
    train = DATA_SOURCES.get(cfg.source)(cfg).train
    kept = set(getattr(first_samples(train, args.labelled, cfg.split_seed), "indices", range(len(train))))
    rest = [i for i in range(len(train)) if i not in kept][: args.unlabeled]
    folder.parent.mkdir(parents=True, exist_ok=True)
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
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/teachers"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-seed", type=int, default=0)
    ap.add_argument("--teacher-a", default="cifar:resnet20")
    ap.add_argument("--teacher-b", default="cifar:wrn_16_2")
    ap.add_argument("--student", default="cifar:resnet8")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--teacher-epochs", type=int, default=25)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--labelled", type=int, default=1000)
    ap.add_argument("--unlabeled", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--parts", nargs="+", choices=["single", "ensemble", "b"], default=["single", "ensemble", "b"])
    ap.add_argument("--ensembles", nargs="+", default=["mean"],
                    choices=["mean", "geometric", "confidence", "class_weights"],
                    help="teachers.ensemble rules, one (a) arm each")
    ap.add_argument("--merge", action="store_true", help="keep the rows stored in --results, replace re-measured")
    ap.add_argument("--only-teacher-b", action="store_true", help="train teacher B's run only (a 2nd process)")
    ap.add_argument("--only-finished", action="store_true", help="table of the finished arms; train nothing")
    ap.add_argument("--no-table", action="store_true", help="only run the arms (e.g. one seed per process)")
    ap.add_argument("--smoke", action="store_true", help="digits, 1 epoch, seed 0, small teachers, temp folder")
    args = ap.parse_args()
    global ONLY_FINISHED
    ONLY_FINISHED = args.only_finished
    if args.smoke:
        args.out = Path(tempfile.mkdtemp(prefix="bench-teachers-"))
        args.results = args.out / "results"
        args.seeds, args.epochs, args.teacher_epochs, args.teacher_seed = [0], 1, 1, 0
        args.teacher_a, args.teacher_b, args.labelled, args.unlabeled = "cifar:resnet14", "cifar:resnet8", 300, 300
    elif args.root is None:
        ap.error("--root is required (or --smoke)")
    args.root = args.root.resolve() if args.root else None
    scale = (args.labelled + args.unlabeled) / args.labelled  # the --labelled arms: as many steps as all-labelled
    few_epochs, few_teacher_epochs = round(args.epochs * scale), round(args.teacher_epochs * scale)
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None:
            rows.setdefault(name, []).append(value)

    order = sorted(args.seeds, key=lambda s: s != args.teacher_seed)  # the teachers' seed first
    for seed in order:
        ov = base(args, seed)
        def tb() -> list[str]:  # called only by arms that need teacher B (other seeds wait for its weights)
            return teacher(args, seed, args.teacher_b, "a-teacher-b", args.teacher_epochs)

        if args.only_teacher_b:  # a second process trains teacher B while the first runs the rest
            arm(f"a-teacher-b-s{seed}", ov + tb() + ["eval.baseline=false"])
            return
        single = "single" in args.parts
        if single or ("ensemble" in args.parts and seed == args.teacher_seed):  # these runs train the teachers
            a = arm(f"a-teacher-a-s{seed}",
                    ov + teacher(args, seed, args.teacher_a, "a-teacher-a", args.teacher_epochs))
            b_runs = seed == args.teacher_seed or teacher_top1(args, "a-teacher-b") > teacher_top1(args, "a-teacher-a")
            b = arm(f"a-teacher-b-s{seed}", ov + tb() + ["eval.baseline=false"]) if b_runs else None
            if single:
                add("(a) student alone (cross-entropy)", a.get("student_alone"))
                add(f"(a) KD from {args.teacher_a}", a.get("student"))
                if b is not None:
                    add(f"(a) KD from {args.teacher_b}", b.get("student"))
                add(f"(a) teacher {args.teacher_a}", a.get("teacher"))
                if b is not None:
                    add(f"(a) teacher {args.teacher_b}", b.get("teacher"))
                add(f"(b) {args.labelled + args.unlabeled} labelled, KD (= (a) KD from {args.teacher_a})",
                    a.get("student"))
        if "ensemble" in args.parts:
            files = [weights_of(args, f"a-teacher-{k}") for k in "ab"]
            members = (f"teachers.models=[{{model: {args.teacher_a}, weights: {files[0]}}}, "
                       f"{{model: {args.teacher_b}, weights: {files[1]}}}]")
            for rule in args.ensembles:
                name = f"a-both-s{seed}" if rule == "mean" else f"a-both-{rule}-s{seed}"
                both = arm(name, ov + [members, f"teachers.ensemble={rule}", "eval.baseline=false"])
                label = "mean of probabilities" if rule == "mean" else f"ensemble={rule}"
                add(f"(a) KD from both ({label})", both.get("student"))
                add("(a) teachers combined (mean)" if rule == "mean" else f"(a) teachers combined ({rule})",
                    both.get("teacher"))
        if "b" in args.parts:
            # unlabeled images mix into batches only through the DataLoader path (not data.device_resident): both
            # --labelled arms take it, so they differ by the unlabeled images alone
            few = ov + [f"data.max_train_samples={args.labelled}", f"train.epochs={few_epochs}",
                        "eval.baseline=false", "data.device_resident=false"]
            folder = unlabeled_folder(args, few, args.out / "unlabeled")
            lab = arm(f"b-labelled-s{seed}",
                      few + teacher(args, seed, args.teacher_a, "b-labelled", few_teacher_epochs))
            unl = arm(f"b-unlabeled-s{seed}",
                      few + teacher(args, None, args.teacher_a, "b-labelled", few_teacher_epochs)
                      + [f"data.unlabeled={folder.resolve()}"])
            add(f"(b) teacher {args.teacher_a} on {args.labelled} labelled", lab.get("teacher"))
            add(f"(b) {args.labelled} labelled, KD", lab.get("student"))
            add(f"(b) {args.labelled} labelled + {args.unlabeled} unlabeled, KD", unl.get("student"))
    if args.no_table:
        return
    stored = args.results / "teachers.json"
    old = json.loads(stored.read_text()) if args.merge and stored.exists() else {"seeds": [], "top1": {}}
    rows = {**old["top1"], **rows}  # stored rows first, in their order; re-measured ones replace them
    rows = dict(sorted(rows.items(), key=lambda kv: kv[0][:3]))  # (a) rows, then (b) rows, each in order

    def fmt(v: list[float]) -> str:
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}"

    table = ["| arm | val top-1 % (mean ± std over seeds) | seeds | per seed |", "|---|---|---|---|",
             *(f"| {k} | {fmt(v)} | {len(v)} | {', '.join(f'{x:.1f}' for x in v)} |" for k, v in rows.items())]
    args.results.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("root", "out", "results")}
    (args.results / "teachers.json").write_text(portable(json.dumps(
        {"seeds": sorted({*args.seeds, *old["seeds"]}), "labelled_epochs": few_epochs, "args": settings,
         "top1": rows}, indent=1)))
    (args.results / "teachers.md").write_text(portable("\n".join(table) + "\n"))
    print("\n".join(table))
    if args.smoke:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
