"""What benchmarks/seg.py and det.py share: their options, the teacher trained once by one seed's run and loaded
by the others, one seed's run folder reused when finished, mean ± sd."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe


def add_options(ap: argparse.ArgumentParser, task: str, **defaults: Any) -> None:
    """The options both benchmarks take; `defaults` (by dest) are the task's own settings."""
    ap.add_argument("--out", type=Path, default=Path(f"runs/bench-{task}"))
    ap.add_argument("--results", type=Path, default=Path(f"benchmarks/results/{task}"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--teacher-seed", type=int, default=0)
    ap.add_argument("--teacher-weights", type=Path, help="a trained teacher every seed loads (none is trained)")
    ap.add_argument("--teacher")
    ap.add_argument("--student")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--split", choices=["val", "test"], default="test")
    for opt in ("--epochs", "--teacher-epochs", "--batch-size", "--eval-every", "--threads"):
        ap.add_argument(opt, type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--terms")
    ap.add_argument("--no-table", action="store_true", help="only run the arms (e.g. one seed per process)")
    ap.set_defaults(**defaults)


def teacher_first(args: argparse.Namespace) -> list[int]:
    """The teacher's run first: the other seeds load its weights."""
    s = args.seeds
    return [args.teacher_seed] + [x for x in s if x != args.teacher_seed] if args.teacher_seed in s else list(s)


def teacher_weights(args: argparse.Namespace, prefix: str, wait_s: float = 4 * 3600) -> Path:
    """--teacher-weights, or the teacher of the --teacher-seed run (waits while another process trains it)."""
    if args.teacher_weights is not None:
        return args.teacher_weights
    file = args.out / f"{prefix}-s{args.teacher_seed}" / "teacher" / "model.safetensors"
    deadline = time.time() + wait_s
    while not file.exists():
        if time.time() > deadline:
            raise SystemExit(f"no teacher at {file}: run --seeds {args.teacher_seed} first")
        time.sleep(30)
    return file


def seed_run(args: argparse.Namespace, prefix: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    """One seed's run folder OUT/PREFIX-sSEED (reused when finished, resumed when cut off); its metrics.json."""
    name = f"{prefix}-s{seed}"
    done = args.out / name / "metrics.json"
    if not done.exists():
        ov = overrides + [f"output.name={name}"]
        if seed != args.teacher_seed or args.teacher_weights is not None:
            ov.append(f"teacher.weights={teacher_weights(args, prefix)}")
        if (args.out / name).is_dir():
            ov.append("train.resume=true")
        run(load_recipe(None, ov))
    return json.loads(done.read_text())


def mean_sd(v: list[float]) -> dict[str, float]:
    return {"mean": statistics.mean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0}


def write_results(folder: Path, name: str, res: dict[str, Any], lines: list[str]) -> None:
    """NAME.json and NAME.md (the printed table) under `folder`, machine paths made portable; then print it."""
    from portable import portable

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(portable(json.dumps(res, indent=2)) + "\n")
    (folder / f"{name}.md").write_text(portable("\n".join(lines) + "\n"))
    print("\n".join(lines))
