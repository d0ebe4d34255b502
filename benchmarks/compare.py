"""Which distillation method helps on the CIFAR-10 subset, with intervals and corrected tests: `edgedistill compare`.

    python benchmarks/compare.py --root ../shared/data/cifar10-subset            # 5 arms × 5 seeds
    python benchmarks/compare.py --smoke                                          # digits, seconds: checks the script

Arms: alone, kd, dkd (β=2 for 10 classes), dist, ctkd; one teacher per seed shared by every arm. The
runs are scheduled through `edgedistill compare`'s Optuna study: rerunning the command resumes (finished
runs are reused, an interrupted one continues), and `--workers 2` runs two processes sharing it. Writes
compare.json, report.md, forest.png and report.html to --out (machine paths made relative). Not part of the
test suite: the full run takes many hours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml
from portable import portable
from rich.console import Console

from edgedistill.commands.compare import run_compare

ARMS = {
    "alone": {"distill.terms": []},
    "kd": {"distill.terms": [{"name": "kd", "weight": 1.0, "T": 4}]},
    "dkd": {"distill.terms": [{"name": "dkd", "weight": 1.0, "alpha": 1.0, "beta": 2.0, "T": 4, "warmup": 1}]},
    "dist": {"distill.terms": [{"name": "dist", "weight": 1.0, "beta": 1.0, "gamma": 1.0, "T": 1}]},
    "ctkd": {"distill.terms": [{"name": "ctkd", "weight": 1.0}]},
}


def recipe(args: argparse.Namespace, runs: Path) -> dict:
    if args.smoke:
        data = {"source": "digits", "image_size": 16, "augment": "padcrop", "hflip": False, "workers": 0,
                "max_train_samples": 128, "max_val_samples": 64}
        teacher, train = {"model": "cifar:resnet8", "epochs": 1}, {"epochs": 1, "batch_size": 32}
    else:
        data = {"source": "imagefolder", "root": str(Path(args.root).resolve()), "image_size": 32, "augment": "padcrop",
                "hflip": True, "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616],
                "workers": args.data_workers}
        teacher = {"model": args.teacher, "epochs": args.teacher_epochs}
        if args.teacher_weights:
            teacher["weights"] = str(Path(args.teacher_weights).resolve())
        train = {"epochs": args.epochs, "batch_size": 128, "lr": 0.1, "warmup_epochs": 1, "threads": args.threads}
    distill = {"teacher_cache": True, "cache_dir": str(runs / "teacher-cache")}
    return {"data": data, "teacher": teacher, "student": {"model": "cifar:resnet8"}, "train": train,
            "distill": distill,
            "eval": {"latency_runs": 20}, "output": {"dir": str(runs), "name": "methods"},
            "compare": {"arms": {a: ARMS[a] for a in args.arms}, "seeds": args.seeds, "baseline": "alone",
                        "workers": args.workers}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/cifar10-subset")
    p.add_argument("--teacher", default="cifar:resnet20")
    p.add_argument("--teacher-epochs", type=int, default=40)
    p.add_argument("--teacher-weights", help="a trained teacher (safetensors) shared by every seed instead of one "
                   "trained per seed, e.g. the edge benchmark's runs/s0/teacher/model.safetensors (resnet56)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    p.add_argument("--workers", type=int, default=1, help="compare processes sharing the study")
    p.add_argument("--data-workers", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny digits run (2 arms, 2 seeds) to check the script")
    p.add_argument("--runs", default="runs/bench-compare", help="where the comparison's run folders go")
    p.add_argument("--out", default="benchmarks/results/compare")
    args = p.parse_args()
    if args.smoke:
        args.arms, args.seeds = args.arms[:2], min(args.seeds, 2)
        args.runs, args.out = args.runs + "-smoke", args.out + "-smoke"
    runs, out = Path(args.runs), Path(args.out)
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / "compare.yaml"
    path.write_text(yaml.safe_dump(recipe(args, runs), sort_keys=False))
    folder = run_compare(path, [], resume=(runs / "methods").is_dir(), console=Console())
    out.mkdir(parents=True, exist_ok=True)
    for name in ("compare.json", "report.md"):
        if (folder / name).exists():
            (out / name).write_text(portable((folder / name).read_text()))
    for name in ("forest.png", "report.html"):
        if (folder / name).exists():
            shutil.copy2(folder / name, out / name)


if __name__ == "__main__":
    main()
